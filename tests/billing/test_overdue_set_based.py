"""The set-based overdue report (one query for everybody: the dashboard, the API and
``radbill billing overdue`` at a million subscribers; today's read from what the settlement
keeps on each open document, ``invoices.outstanding``, which must always be what settling
the ledger says) says exactly what settling each subscriber one by one says: the same
people, the same amounts to the cent, the same oldest due date, the same count and totals
per currency, for today and for a past day (the books as they stood then). Random histories
of runs, payments, credit notes, charges, write-offs, plan and status changes and promises
(the property test's steps), fixed seeds (the "ci" profile derandomizes)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, select, update

from billing import ledger, owed, reports
from billing.ledger import allocate
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    OverdueAccount,
    OverdueDayTotal,
    OverdueSinceCount,
    Subscriber,
)
from billing.money import ZERO, round_money
from radbill import migrate
from tests.billing.sim import Sim
from tests.billing.test_properties import START, act, steps
from tests.conftest import BACKEND, wipe
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture
from tests.radbill.test_migration_0018 import downgrade

Row = tuple[str, str, str, str]  # username, overdue, currency, oldest due date


def one_by_one(sim: Sim, day: dt.date) -> list[Row]:
    """Each subscriber settled on its own (the per-account path): what is overdue on *day*.
    Today: :func:`billing.ledger.settle` (what the subscriber page shows); a past day: the
    same settlement over the entries effective by then and the documents issued by then."""
    out: list[Row] = []
    with sim.factory() as s:
        for sub in s.scalars(select(Subscriber).order_by(Subscriber.username)).unique():
            currency = sub.plan.currency
            if day == sim.today:
                settled = ledger.settle(s, sub.id, day)
                open_ = [(inv.due_on, owed) for inv, owed in settled.open_invoices]
            else:
                entries = [(a, i, k) for a, i, k in s.execute(
                    select(LedgerEntry.amount, LedgerEntry.invoice_id, LedgerEntry.kind)
                    .where(LedgerEntry.subscriber_id == sub.id,
                           LedgerEntry.effective_on <= day).order_by(LedgerEntry.id))]
                docs = s.execute(select(Invoice.id, Invoice.due_on).where(
                    Invoice.subscriber_id == sub.id, Invoice.kind != InvoiceKind.CREDIT_NOTE,
                    Invoice.issued_on <= day).order_by(Invoice.due_on, Invoice.id)).all()
                outcomes = allocate(entries, [(i, InvoiceStatus.OPEN, None) for i, _ in docs],
                                    day)
                open_ = [(due, o.outstanding) for (_, due), o in zip(docs, outcomes,
                                                                     strict=True)
                         if o.status is InvoiceStatus.OPEN]
            past_due = [(due, owed) for due, owed in open_ if due is not None and due < day]
            amount = sum((owed for _, owed in past_due), ZERO)
            if amount > 0:
                out.append((sub.username, str(round_money(amount, currency)), currency,
                            str(min(due for due, _ in past_due))))
            s.rollback()  # settle() may only have restated what the services already wrote
    return out


def set_based(sim: Sim, day: dt.date) -> tuple[list[Row], int, dict[str, str]]:
    """The report: today from what the settlement keeps on each document, a past day
    recomputed from the ledger."""
    with sim.factory() as s:
        report = reports.overdue(s, day, as_of=sim.today)
        count, totals = reports.overdue_summary(s, day, as_of=sim.today)
    rows = sorted((str(r["username"]), str(r["overdue"]), str(r["currency"]),
                   str(r["oldest_due_on"])) for r in report["subscribers"])  # type: ignore[attr-defined]
    assert report["count"] == count
    assert report["totals"] == {c: str(v) for c, v in totals.items()}
    return rows, count, {c: str(v) for c, v in totals.items()}


def recomputed_figures(sim: Sim) -> tuple[dict[str, int], dict[str, int], dict[int, str]]:
    """The kept overdue figures (billing.owed) worked out here, independently, from every
    document row: cents and documents owed per due date and currency, subscribers per
    oldest owed due date, each subscriber's oldest owed due date."""
    days: dict[str, int] = {}
    docs: dict[str, int] = {}
    since: dict[int, dt.date] = {}
    with sim.factory() as s:
        for sub_id, status, kind, due_on, currency, outstanding in s.execute(select(
                Invoice.subscriber_id, Invoice.status, Invoice.kind, Invoice.due_on,
                Invoice.currency, Invoice.outstanding).order_by(Invoice.id)):
            if (status is InvoiceStatus.OPEN and kind is not InvoiceKind.CREDIT_NOTE
                    and due_on is not None and Decimal(outstanding) > 0):
                key = f"{due_on} {currency}"
                days[key] = days.get(key, 0) + int(Decimal(outstanding) * 100)
                docs[key] = docs.get(key, 0) + 1
                since[sub_id] = min(since.get(sub_id, due_on), due_on)
    counts: dict[str, int] = {}
    for d in since.values():
        counts[str(d)] = counts.get(str(d), 0) + 1
    return (days | {f"n {k}": v for k, v in docs.items()},
            counts, {k: str(v) for k, v in since.items()})


def kept_figures(sim: Sim) -> tuple[dict[str, int], dict[str, int], dict[int, str]]:
    with sim.factory() as s:
        days = {f"{d} {c}": int(a) for d, c, a, _ in s.execute(select(
            OverdueDayTotal.due_on, OverdueDayTotal.currency, OverdueDayTotal.amount_cents,
            OverdueDayTotal.documents))}
        days |= {f"n {d} {c}": int(n) for d, c, _, n in s.execute(select(
            OverdueDayTotal.due_on, OverdueDayTotal.currency, OverdueDayTotal.amount_cents,
            OverdueDayTotal.documents))}
        counts = {str(d): int(n) for d, n in s.execute(select(
            OverdueSinceCount.since, OverdueSinceCount.subscribers))}
        since = {i: str(d) for i, d in s.execute(select(
            OverdueAccount.subscriber_id, OverdueAccount.since)) if d is not None}
    return days, counts, since


def check(sim: Sim) -> None:
    # the overdue figures the invoices' triggers keep are the documents' (recomputed here
    # and by the check command)
    assert kept_figures(sim) == recomputed_figures(sim)
    with sim.factory() as s:
        assert owed.check(s) == owed.OwedCheck([], 0)
    # what every document keeps as owed is what settling its account's ledger says
    with sim.factory() as s:
        assert ledger.check_outstanding(s, sim.today) == []
        # every document keeps its subscriber's username (the overdue list's order)
        assert s.execute(select(Invoice.number).join(Subscriber).where(
            Invoice.username != Subscriber.username)).all() == []
    for day in (sim.today, sim.today - dt.timedelta(days=6)):
        # the list in order (oldest due date, then username), whole and cut
        want = sorted(one_by_one(sim, day), key=lambda r: (r[3], r[0]))
        for limit in (10_000, 2, 1):
            with sim.factory() as s:
                page = reports.overdue(s, day, limit=limit, as_of=sim.today)
            assert [(str(r["username"]), str(r["overdue"]), str(r["currency"]),
                     str(r["oldest_due_on"])) for r in page["subscribers"]  # type: ignore[attr-defined]
                    ] == want[:limit], (day, limit)
    for day in (sim.today, sim.today - dt.timedelta(days=6)):
        rows, count, totals = set_based(sim, day)  # first: one_by_one settles (rolled back)
        expected = one_by_one(sim, day)
        assert rows == expected, day
        assert count == len(expected)
        want: dict[str, Decimal] = {}
        for _, amount, currency, _ in expected:
            want[currency] = want.get(currency, ZERO) + Decimal(amount)
        assert totals == {c: str(v) for c, v in sorted(want.items())}


@settings(max_examples=12 if BACKEND == "sqlite" else 5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps)
def test_the_set_based_overdue_is_the_per_subscriber_settlement(
        engine, box, sequence) -> None:  # type: ignore[no-untyped-def]
    wipe(engine)
    sim = Sim(engine, box, START)
    sim.isp(suspension_guard_percent=100, postpaid_due_days=5, suspended_notice_days=4)
    sim.plan("Post", price="1000", tax_percent="18", grace_days=3, late_fee="10",
             late_fee_percent=True, late_fee_cap="60")
    sim.plan("Post2", price="1500", tax_percent="18", grace_days=2)
    sim.plan("Pre", price="700", billing_mode="prepaid", grace_days=2, late_fee="25",
             tax_percent="18")
    sim.plan("Pre2", price="400", billing_mode="prepaid", grace_days=1, late_fee="10")
    sim.plan("Daily", price="20", billing_cycle="daily", billing_mode="prepaid",
             currency="USD")
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=1, tax_percent="18",
             billing_mode="prepaid", setup_fee="300")
    sim.plan("Fixed2", price="600", cycle_anchor="fixed_day", billing_day=1,
             billing_mode="prepaid")
    sim.subscriber("post", "Post")
    sim.subscriber("pre", "Pre")
    sim.subscriber("daily", "Daily", service="hotspot")
    sim.today = START + dt.timedelta(days=9)
    sim.subscriber("fixed", "Fixed")
    sim.run()
    check(sim)
    refs: list[int] = []
    for step in sequence:
        act(sim, step, refs)
        check(sim)
    wipe(engine)


def test_the_dashboard_counts_everybody_overdue_not_the_first_page(sim: Sim) -> None:
    sim.plan("Home", price="1000", grace_days=30)
    for i in range(5):
        sim.subscriber(f"u{i}", "Home")
    sim.days_until(dt.date(2026, 12, 20))  # everybody's first invoice unpaid, due 8 Dec
    with sim.factory() as s:
        page = reports.overdue(s, sim.today, limit=2, as_of=sim.today)
        count, totals = reports.overdue_summary(s, sim.today, as_of=sim.today)
    assert [r["username"] for r in page["subscribers"]] == ["u0", "u1"]  # type: ignore[index]
    assert (page["count"], page["totals"]) == (5, {"BDT": "5000.00"})
    assert (count, totals) == (5, {"BDT": Decimal("5000.00")})


def _first_invoices_overdue(sim: Sim, subscribers: int) -> None:
    """*subscribers* on one plan, their first invoices issued 1 Dec (due 8 Dec), today 9 Dec."""
    sim.plan("Home", price="1000", grace_days=30)
    for i in range(subscribers):
        sim.subscriber(f"u{i}", "Home")
    sim.today = dt.date(2026, 12, 1)
    sim.run()
    sim.today = dt.date(2026, 12, 9)


def test_overdue_check_finds_a_drifted_amount_and_repair_restates_it(sim: Sim, cli) -> None:  # type: ignore[no-untyped-def]
    _first_invoices_overdue(sim, 2)
    assert json.loads(cli("billing", "overdue-check", "--json").output)["documents"] == 0
    with sim.factory() as s:
        number = s.scalars(select(Invoice.number).join(Subscriber).where(
            Subscriber.username == "u1").order_by(Invoice.id)).first()
        s.execute(update(Invoice).where(Invoice.number == number)
                  .values(outstanding=Decimal("1.00")))
        s.commit()
    found = cli("billing", "overdue-check", "--json", ok=False)
    assert found.exit_code == 1
    assert json.loads(found.output)["drift"] == [
        {"username": "u1", "invoice": number, "kept": "1.00", "settled": "1000.00"}]
    with sim.factory() as s:  # what the pages read is off by as much
        assert reports.overdue_summary(s, sim.today, as_of=sim.today) == (
            2, {"BDT": Decimal("1001.00")})
    repaired = json.loads(cli("billing", "overdue-check", "--repair", "--json").output)
    assert (repaired["documents"], repaired["repaired"]) == (1, True)
    assert json.loads(cli("billing", "overdue-check", "--json").output)["documents"] == 0
    with sim.factory() as s:
        assert reports.overdue_summary(s, sim.today, as_of=sim.today) == (
            2, {"BDT": Decimal("2000.00")})


def test_overdue_check_finds_drifted_kept_figures_and_repair_restates_them(
        sim: Sim, cli) -> None:  # type: ignore[no-untyped-def]
    _first_invoices_overdue(sim, 3)
    assert json.loads(cli("billing", "overdue-check", "--json").output)["kept_figures"] == 0
    with sim.factory() as s:  # three figures drift: a total, a count, a subscriber's date
        s.execute(update(OverdueDayTotal).values(amount_cents=OverdueDayTotal.amount_cents + 1))
        s.execute(update(OverdueSinceCount).values(subscribers=7))
        u2 = s.scalars(select(Subscriber.id).where(Subscriber.username == "u2")).one()
        s.execute(update(OverdueAccount).where(OverdueAccount.subscriber_id == u2)
                  .values(since=None))
        s.commit()
        assert reports.overdue_summary(s, sim.today, as_of=sim.today) == (
            7, {"BDT": Decimal("3000.01")})
    found = cli("billing", "overdue-check", "--json", ok=False)
    assert found.exit_code == 1
    data = json.loads(found.output)
    assert (data["documents"], data["kept_figures"]) == (0, 3)
    assert data["kept_figures_drift"] == [
        {"table": "overdue_day_totals", "key": "2026-12-08 BDT", "kept": "(300001, 3)",
         "actual": "(300000, 3)"},
        {"table": "overdue_since_counts", "key": "2026-12-08", "kept": "7", "actual": "3"},
        {"table": "overdue_accounts", "key": str(u2), "kept": None, "actual": "2026-12-08"}]
    repaired = json.loads(cli("billing", "overdue-check", "--repair", "--json").output)
    assert (repaired["kept_figures"], repaired["kept_figures_repaired"]) == (3, True)
    assert json.loads(cli("billing", "overdue-check", "--json").output)["kept_figures"] == 0
    with sim.factory() as s:
        assert reports.overdue_summary(s, sim.today, as_of=sim.today) == (
            3, {"BDT": Decimal("3000.00")})
    # a payment moves the kept figures in its own transaction
    sim.pay("u1", "1000")
    with sim.factory() as s:
        assert reports.overdue_summary(s, sim.today, as_of=sim.today) == (
            2, {"BDT": Decimal("2000.00")})
    assert json.loads(cli("billing", "overdue-check", "--json").output)["kept_figures"] == 0


def test_billing_overdue_lists_the_first_limit_and_all_on_request(
        sim: Sim, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from radbill import cliutil

    sim.plan("Home", price="1000", grace_days=30)
    for i in range(5):
        sim.subscriber(f"u{i}", "Home")
    sim.days_until(dt.date(2026, 12, 20))  # everybody's first invoice unpaid, due 8 Dec
    monkeypatch.setattr(cliutil.App, "today", lambda self, session: sim.today)
    first = json.loads(cli("billing", "overdue", "--limit", "2", "--json").output)
    assert [r["username"] for r in first["subscribers"]] == ["u0", "u1"]
    assert (first["count"], first["totals"]) == (5, {"BDT": "5000.00"})
    everyone = json.loads(cli("billing", "overdue", "--all", "--json").output)
    assert [r["username"] for r in everyone["subscribers"]] == [f"u{i}" for i in range(5)]
    text_out = cli("billing", "overdue", "--limit", "2").output
    assert "5 overdue (the first 2: --limit N or --all for more)" in text_out


def test_the_upgrade_fills_the_kept_figures_from_the_documents(fresh: Engine, box) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    migrate.upgrade(fresh)
    sim = Sim(fresh, box, dt.date(2026, 11, 1))
    sim.plan("Home", price="1000", grace_days=30)
    sim.plan("Dollar", price="20", currency="USD", grace_days=30)
    for i in range(4):
        sim.subscriber(f"u{i}", "Home")
    sim.subscriber("d0", "Dollar")
    sim.days_until(dt.date(2026, 12, 20))  # two periods invoiced, the first past due
    sim.pay("u1", "1000")
    sim.pay("u2", "400.50")
    want = recomputed_figures(sim)
    assert want[1] and want[2]
    downgrade(fresh, "0027")
    migrate.upgrade(fresh)
    assert kept_figures(sim) == want
    sim.pay("u3", "250")  # and the triggers keep them from then on
    assert kept_figures(sim) == recomputed_figures(sim) != want
