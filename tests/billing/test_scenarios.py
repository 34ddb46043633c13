"""Billing scenarios on a simulated clock: exact events, invoice lines and balances."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing.models import EnforcementRequest, Invoice
from radbill.errors import Conflict
from radbill.ops import Alert
from tests.billing.sim import Sim

D = dt.date


@pytest.fixture
def sim(db, box) -> Sim:  # type: ignore[no-untyped-def]
    s = Sim(db, box, D(2026, 11, 1))
    s.isp(postpaid_due_days=7)
    s.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=3, late_fee="50")
    return s


def test_monthly_postpaid_with_grace_and_late_fee(sim: Sim) -> None:
    sim.subscriber("alice", "Home")
    events = sim.days_until(D(2026, 12, 13))
    happened = {day: ev for day, ev in events.items() if ev}
    # due 8 Dec, grace 9-11 Dec, suspension 12 Dec
    assert happened == {
        D(2026, 12, 1): [("alice", "invoice")],
        D(2026, 12, 5): [("alice", "reminder")],
        D(2026, 12, 8): [("alice", "due_notice")],
        D(2026, 12, 9): [("alice", "late_fee")],
        D(2026, 12, 11): [("alice", "final_reminder")],
        D(2026, 12, 12): [("alice", "suspend")],
    }
    inv, fee = sim.invoices("alice")
    assert inv["number"] == "INV-000001"
    assert inv["period"] == (D(2026, 11, 1), D(2026, 12, 1))
    assert (inv["issued"], inv["due"]) == (D(2026, 12, 1), D(2026, 12, 8))
    assert inv["lines"] == [("Home 01 Nov 2026 - 30 Nov 2026", Decimal("1000.00"))]
    assert (inv["tax"], inv["total"]) == (Decimal("50.00"), Decimal("1050.00"))
    # the late fee is a document of its own, due at once
    assert (fee["number"], fee["kind"], fee["issued"], fee["due"], fee["total"]) == (
        "INV-000002", "late_fee", D(2026, 12, 9), D(2026, 12, 9), Decimal("50.00"))
    assert fee["lines"] == [("Late fee on invoice INV-000001", Decimal("50.00"))]
    assert (fee["previous_balance"], fee["amount_due"]) == (Decimal("1050.00"),
                                                            Decimal("1100.00"))
    assert sim.balance("alice") == Decimal("1100.00")
    assert sim.status("alice") == "suspended"
    assert sim.outbox("alice") == ["invoice_issued", "reminder", "due_notice", "invoice_issued",
                                   "late_fee", "final_reminder", "suspended"]
    # partial payment: recorded, still suspended
    result = sim.pay("alice", "500")
    assert not result.reconnected and result.overdue == Decimal("600.00")
    assert sim.status("alice") == "suspended"
    # the rest: reconnected in the same transaction
    result = sim.pay("alice", "600")
    assert result.reconnected and result.invoices_paid == ("INV-000001", "INV-000002")
    assert sim.status("alice") == "active" and sim.balance("alice") == Decimal("0.00")
    with sim.factory() as s:
        actions = [r.action for r in s.scalars(select(EnforcementRequest).order_by(
            EnforcementRequest.id))]
    assert actions == ["suspend", "reconnect"]


def test_payment_on_the_last_grace_day_prevents_suspension(sim: Sim) -> None:
    sim.subscriber("bob", "Home")
    sim.days_until(D(2026, 12, 10))
    assert sim.today == D(2026, 12, 11)  # the last grace day
    sim.pay("bob", "1100")  # invoice + late fee
    events = sim.days_until(D(2026, 12, 20))
    assert all(ev == [] for ev in events.values())
    assert sim.status("bob") == "active"
    assert sim.invoices("bob")[0]["status"] == "paid"


def test_overpayment_is_credit_used_by_the_next_invoice(sim: Sim) -> None:
    sim.subscriber("carol", "Home")
    sim.days_until(D(2026, 12, 1))
    sim.pay("carol", "2000")
    assert sim.balance("carol") == Decimal("-950.00")
    sim.days_until(D(2027, 1, 20))
    invs = sim.invoices("carol")
    assert [(i["kind"], i["status"]) for i in invs] == [
        ("period", "paid"), ("period", "open"), ("late_fee", "open")]
    assert sim.outstanding("carol") == {"INV-000002": Decimal("100.00"),
                                        "INV-000003": Decimal("50.00")}
    # 2100 charged, 2000 paid, and the 100 left of January was late: + 50
    assert sim.balance("carol") == Decimal("150.00")
    assert sim.status("carol") == "suspended"
    assert not sim.pay("carol", "100", ref="c1").reconnected
    assert sim.pay("carol", "50", ref="c2").reconnected


def test_prepaid_monthly_invoices_up_front_and_renews_from_balance(sim: Sim) -> None:
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=0)
    sim.subscriber("dave", "Pre")
    ev = sim.day()
    # a new subscriber's first invoice is due after the payment terms: no dunning at once
    assert ev == [("dave", "invoice")]
    (first,) = sim.invoices("dave")
    assert (first["issued"], first["due"]) == (D(2026, 11, 1), D(2026, 11, 8))
    sim.pay("dave", "1000")  # this month and the next
    # service runs until December's invoice, due 1 Dec with no grace, would suspend: 2 Dec
    until = sim.sub("dave").paid_until
    assert until == dt.datetime(2026, 12, 1, 18, 0, tzinfo=dt.UTC)  # 2 Dec 00:00 Dhaka
    events = sim.days_until(D(2026, 12, 2))
    # December is invoiced 3 days ahead and paid from the balance at once
    assert {d: e for d, e in events.items() if e} == {D(2026, 11, 28): [("dave", "invoice")]}
    assert [i["status"] for i in sim.invoices("dave")] == ["paid", "paid"]
    assert sim.invoices("dave")[1]["due"] == D(2026, 12, 1)
    assert sim.sub("dave").paid_until == dt.datetime(2027, 1, 1, 18, 0, tzinfo=dt.UTC)
    events = sim.days_until(D(2027, 1, 2))
    assert {d: e for d, e in events.items() if e} == {
        D(2026, 12, 29): [("dave", "invoice"), ("dave", "reminder")],
        D(2027, 1, 1): [("dave", "final_reminder")],
        D(2027, 1, 2): [("dave", "suspend")],
    }


def test_daily_hotspot_prepaid(sim: Sim) -> None:
    sim.plan("Day", price="20", billing_cycle="daily", billing_mode="prepaid", grace_days=0)
    sim.subscriber("hs1", "Day", service="hotspot")
    sim.pay("hs1", "60")  # three days in advance
    for _ in range(3):
        assert sim.day() == [("hs1", "invoice")]
    assert sim.day() == [("hs1", "invoice"), ("hs1", "final_reminder")]
    # no "suspended tomorrow" for the new pack on the day of the suspension
    assert sim.day() == [("hs1", "invoice"), ("hs1", "suspend")]
    assert sim.balance("hs1") == Decimal("40.00")
    assert [i["period"][0] for i in sim.invoices("hs1")] == [
        D(2026, 11, 1), D(2026, 11, 2), D(2026, 11, 3), D(2026, 11, 4), D(2026, 11, 5)]
    assert not sim.pay("hs1", "20", ref="r1").reconnected  # 5 Nov is overdue too
    assert sim.pay("hs1", "20", ref="r2").reconnected


def test_fixed_billing_day_prorates_the_first_period(sim: Sim) -> None:
    sim.plan("Fixed", price="1000", cycle_anchor="fixed_day", billing_day=1,
             billing_mode="prepaid")
    sim.today = D(2026, 11, 21)
    sim.subscriber("erin", "Fixed")
    sim.day()
    (inv,) = sim.invoices("erin")
    assert inv["period"] == (D(2026, 11, 21), D(2026, 12, 1))
    assert inv["lines"] == [("Fixed 21 Nov 2026 - 30 Nov 2026 (10 of 30 days)",
                             Decimal("333.33"))]


def test_setup_fee_once(sim: Sim) -> None:
    sim.plan("WithSetup", price="800", setup_fee="1500", billing_mode="prepaid")
    sim.subscriber("fay", "WithSetup")
    sim.pay("fay", "5000")
    sim.days_until(D(2026, 12, 1))
    lines = [inv["lines"] for inv in sim.invoices("fay")]
    assert lines[0][1] == ("Connection (setup) fee", Decimal("1500.00"))
    assert len(lines[1]) == 1


def test_promise_kept(sim: Sim) -> None:
    sim.subscriber("gus", "Home")
    sim.days_until(D(2026, 12, 12))
    assert sim.status("gus") == "suspended"
    sim.promise("gus", D(2026, 12, 20))
    assert sim.status("gus") == "active"  # reactivated at once
    with pytest.raises(Conflict, match="limit 1"):
        sim.promise("gus", D(2026, 12, 25))
    events = sim.days_until(D(2026, 12, 18))
    assert all(("gus", "suspend") not in ev for ev in events.values())
    sim.pay("gus", "1100")
    sim.days_until(D(2026, 12, 25))
    assert sim.status("gus") == "active"


def test_promise_broken_resumes_the_ladder(sim: Sim) -> None:
    sim.subscriber("hal", "Home")
    sim.days_until(D(2026, 12, 12))
    sim.promise("hal", D(2026, 12, 15))
    events = sim.days_until(D(2026, 12, 16))
    assert events[D(2026, 12, 15)] == []
    assert events[D(2026, 12, 16)] == [("hal", "promise_broken"), ("hal", "suspend")]


def test_two_promises_broken_on_the_same_day_each_get_their_notice(sim: Sim) -> None:
    for name in ("ida", "jon"):
        sim.subscriber(name, "Home")
    sim.days_until(D(2026, 12, 12))
    for name in ("ida", "jon"):
        sim.promise(name, D(2026, 12, 15))
    events = sim.days_until(D(2026, 12, 16))
    assert sorted(events[D(2026, 12, 16)]) == [("ida", "promise_broken"), ("ida", "suspend"),
                                               ("jon", "promise_broken"), ("jon", "suspend")]
    for name in ("ida", "jon"):
        assert "promise_broken" in sim.outbox(name)


def test_holiday_and_weekly_off_day_push_suspension(sim: Sim) -> None:
    # due 8 Dec, grace to 11 Dec: suspension on Saturday 12 Dec 2026. Saturday is the weekly
    # off-day and Sunday 13 a holiday: suspension moves to Monday 14.
    sim.isp(weekly_off_days="sat")
    from billing.models import Holiday

    with sim.factory() as s, s.begin():
        s.add(Holiday(day=D(2026, 12, 13), name="Test holiday"))
    sim.subscriber("ivy", "Home")
    events = sim.days_until(D(2026, 12, 14))
    assert events[D(2026, 12, 12)] == []
    assert events[D(2026, 12, 13)] == [("ivy", "final_reminder")]
    assert events[D(2026, 12, 14)] == [("ivy", "suspend")]


def test_bulk_suspension_guard_holds_and_waits_for_confirmation(sim: Sim) -> None:
    sim.isp(suspension_guard_min=0)
    for i in range(5):
        sim.subscriber(f"u{i}", "Home")
    sim.days_until(D(2026, 12, 11))  # invoiced 1 Dec, due 8 Dec, suspension on 12 Dec
    report = sim.run()
    assert report.suspensions_blocked == 5 and report.alert_id is not None
    assert all(sim.status(f"u{i}") == "active" for i in range(5))
    with sim.factory() as s:
        alert = s.get(Alert, report.alert_id)
        assert alert is not None and alert.kind == "bulk-suspension-held"
        assert "5 of 5 active" in alert.message
    again = sim.run()  # still held, one alert per run
    assert again.suspensions_blocked == 5
    confirmed = sim.run(confirm_suspensions=True)
    assert [e.kind for e in confirmed.events].count("suspend") == 5
    assert all(sim.status(f"u{i}") == "suspended" for i in range(5))


def test_guard_lets_a_normal_share_through(sim: Sim) -> None:
    sim.isp(suspension_guard_min=0)
    for i in range(10):
        sim.subscriber(f"p{i}", "Home")
    sim.days_until(D(2026, 12, 11))
    sim.today = D(2026, 12, 11)
    for i in range(9):
        sim.pay(f"p{i}", "1100")
    sim.today = D(2026, 12, 12)
    report = sim.run()
    assert report.suspensions_blocked == 0
    assert [(e.username, e.kind) for e in report.events] == [("p9", "suspend")]


def test_guard_floor_lets_a_few_suspensions_through_at_a_small_isp(sim: Sim) -> None:
    for i in range(3):  # 3 of 3 is 100%, but not more than the floor of 5
        sim.subscriber(f"f{i}", "Home")
    sim.days_until(D(2026, 12, 11))
    assert [e.kind for e in sim.run().events].count("suspend") == 3


def test_double_run_changes_nothing(sim: Sim) -> None:
    sim.subscriber("jo", "Home")
    sim.days_until(D(2026, 12, 8))
    first = sim.run()  # 9 Dec: the late fee
    assert [e.kind for e in first.events] == ["late_fee"]
    snapshot = (sim.invoices("jo"), sim.balance("jo"), sim.outbox("jo"), sim.status("jo"))
    second = sim.run()
    assert second.events == []
    assert (sim.invoices("jo"), sim.balance("jo"), sim.outbox("jo"), sim.status("jo")
            ) == snapshot


def test_dry_run_prints_exactly_what_the_real_run_does_and_changes_nothing(sim: Sim) -> None:
    for i in range(3):
        sim.subscriber(f"d{i}", "Home")
    sim.days_until(D(2026, 12, 8))  # 9 Dec: a late fee (an invoice) each
    before = (sim.invoices("d0"), sim.outbox("d0"), sim.status("d0"), sim.balance("d0"))
    dry = sim.run(dry_run=True)
    assert (sim.invoices("d0"), sim.outbox("d0"), sim.status("d0"), sim.balance("d0")
            ) == before
    real = sim.run()
    assert [str(e) for e in dry.events] == [str(e) for e in real.events]
    assert [e.kind for e in real.events] == ["late_fee"] * 3


def account_step(per_account: bool) -> tuple[object, str]:
    """Where the run handles one account: :func:`billing.run.process` on the per-account
    path, :func:`billing.batch.plan_account` on the batch path (module, name)."""
    from billing import batch
    from billing import run as run_module

    return (run_module, "process") if per_account else (batch, "plan_account")


@pytest.mark.parametrize("per_account", [False, True], ids=["batch", "per-account"])
def test_killed_run_and_rerun_give_one_invoice_per_subscriber_and_period(
        sim: Sim, monkeypatch, per_account: bool) -> None:  # type: ignore[no-untyped-def]
    for i in range(7):
        sim.subscriber(f"k{i}", "Home")
    sim.today = D(2026, 12, 1)
    module, name = account_step(per_account)
    real_step = getattr(module, name)
    calls = {"n": 0}

    def dying(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(module, name, dying)
    with pytest.raises(KeyboardInterrupt):
        billing_run_small_batches(sim, per_account)
    assert calls["n"] == 5
    with sim.factory() as s:  # the first two batches (four accounts) were committed
        assert s.scalar(select(func.count()).select_from(Invoice)) == 4
    monkeypatch.setattr(module, name, real_step)
    billing_run_small_batches(sim, per_account)
    sim.run(per_account=per_account)
    with sim.factory() as s:
        per_sub = s.execute(select(Invoice.subscriber_id, func.count()).group_by(
            Invoice.subscriber_id)).all()
        numbers = sorted(s.scalars(select(Invoice.number)))
    assert sorted(n for _, n in per_sub) == [1] * 7
    assert numbers == [f"INV-{i:06d}" for i in range(1, 8)]  # no gaps


def billing_run_small_batches(sim: Sim, per_account: bool = False) -> None:
    from billing.run import billing_run

    billing_run(sim.factory, sim.today, batch_size=2, per_account=per_account)


def test_invoice_numbers_are_gapless_across_subscribers(sim: Sim) -> None:
    for i in range(3):
        sim.subscriber(f"n{i}", "Home")
    sim.days_until(D(2027, 1, 1))
    numbers = [inv["number"] for i in range(3) for inv in sim.invoices(f"n{i}")]
    # each: November (1 Dec), its late fee (9 Dec), December (1 Jan)
    assert sorted(numbers) == [f"INV-{i:06d}" for i in range(1, 10)]


@pytest.mark.parametrize("per_account", [False, True], ids=["batch", "per-account"])
def test_one_broken_account_does_not_stop_billing_for_the_others(
        sim: Sim, monkeypatch, per_account: bool) -> None:  # type: ignore[no-untyped-def]
    from billing import renewals

    sim.plan("Home2", price="1000", tax_percent=Decimal("5"), grace_days=3, late_fee="50")
    for i in range(4):
        sim.subscriber(f"b{i}", "Home2" if i == 2 else "Home")
    sim.today = D(2026, 12, 1)
    real_lines = renewals.period_lines  # both paths price a period with it

    def broken(bill, cycle, anchor_day, **kwargs):  # type: ignore[no-untyped-def]
        if bill.plan.name == "Home2":  # b2's
            raise ValueError("corrupt period data")
        return real_lines(bill, cycle, anchor_day, **kwargs)

    monkeypatch.setattr(renewals, "period_lines", broken)
    report = sim.run(per_account=per_account)
    assert [(e.username, e.kind) for e in report.events] == [
        ("b0", "invoice"), ("b1", "invoice"), ("b3", "invoice")]
    assert [(e.username, e.detail) for e in report.errors] == [
        ("b2", "ValueError: corrupt period data")]
    assert sim.invoices("b2") == []
    with sim.factory() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "billing-errors")).one()
        assert "1 subscriber(s) could not be billed" in alert.message
    monkeypatch.setattr(renewals, "period_lines", real_lines)
    assert [(e.username, e.kind) for e in sim.run(per_account=per_account).events] == [
        ("b2", "invoice")]
    numbers = sorted(i["number"] for n in range(4) for i in sim.invoices(f"b{n}"))
    assert numbers == [f"INV-{i:06d}" for i in range(1, 5)]  # the failure left no gap


def test_a_failed_batch_write_falls_back_to_one_account_at_a_time(sim: Sim, monkeypatch
                                                                   ) -> None:  # type: ignore[no-untyped-def]
    """A segment whose set-based write fails is rolled back and billed account by account:
    the broken account is reported, the others are billed, numbering has no gap."""
    from billing import batch
    from billing import run as run_module

    for i in range(4):
        sim.subscriber(f"w{i}", "Home")
    sim.today = D(2026, 12, 1)
    real_apply, real_renew = batch.Writes.apply, run_module.renew
    writes: list[list[str]] = []

    def failing_apply(self, session, isp):  # type: ignore[no-untyped-def]
        writes.append([p.sub.username for p in self.segment])
        real_apply(self, session, isp)  # rows written, the savepoint rolled back
        raise RuntimeError("constraint violated")

    def broken(session, isp, sub, *args, **kwargs):  # type: ignore[no-untyped-def]
        if sub.username == "w2":
            raise ValueError("bad row")
        return real_renew(session, isp, sub, *args, **kwargs)

    monkeypatch.setattr(batch.Writes, "apply", failing_apply)
    monkeypatch.setattr(run_module, "renew", broken)
    report = sim.run()
    assert writes == [["w0", "w1", "w2", "w3"]]
    assert [(e.username, e.kind) for e in report.events] == [
        ("w0", "invoice"), ("w1", "invoice"), ("w3", "invoice")]
    assert [(e.username, e.detail) for e in report.errors] == [("w2", "ValueError: bad row")]
    assert [i["number"] for n in (0, 1, 3) for i in sim.invoices(f"w{n}")] == [
        "INV-000001", "INV-000002", "INV-000003"]
    assert sim.invoices("w2") == [] and sim.outbox("w2") == []
    assert sim.sub("w2").period_start == D(2026, 11, 1)  # not advanced either
    monkeypatch.setattr(batch.Writes, "apply", real_apply)
    monkeypatch.setattr(run_module, "renew", real_renew)
    assert [(e.username, e.kind) for e in sim.run().events] == [("w2", "invoice")]
    assert [i["number"] for i in sim.invoices("w2")] == ["INV-000004"]


@pytest.mark.parametrize("per_account", [False, True], ids=["batch", "per-account"])
def test_a_quiet_day_touches_no_account(sim: Sim, monkeypatch, per_account: bool) -> None:  # type: ignore[no-untyped-def]
    from billing import run as run_module
    from billing.models import Subscriber

    sim.plan("Pre", price="500", billing_mode="prepaid")
    for i in range(3):
        sim.subscriber(f"q{i}", "Home")
    sim.subscriber("qp", "Pre")
    first = sim.run(per_account=per_account).events[0]
    assert (first.username, first.kind) == ("qp", "invoice")
    sim.pay("qp", "500")
    touched: list[str] = []
    real = run_module.due_subscriber_ids

    def counting(session, as_of):  # type: ignore[no-untyped-def]
        ids = real(session, as_of)
        touched.extend(session.scalars(select(Subscriber.username)
                                       .where(Subscriber.id.in_(ids))))
        return ids

    monkeypatch.setattr(run_module, "due_subscriber_ids", counting)
    sim.today = D(2026, 11, 10)
    assert sim.run(per_account=per_account).events == [] and touched == []
    sim.today = D(2026, 11, 28)  # the prepaid December invoice is due to be issued ahead
    assert [(e.username, e.kind) for e in sim.run(per_account=per_account).events] == [
        ("qp", "invoice"), ("qp", "reminder")]
    assert touched == ["qp"]
    touched.clear()
    sim.today = D(2026, 12, 1)  # the postpaid periods end
    sim.run(per_account=per_account)
    assert sorted(touched) == ["q0", "q1", "q2", "qp"]
