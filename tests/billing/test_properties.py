"""Properties of billing over random sequences of runs (with gaps), payments, credit notes,
charges, plan changes (both modes), status changes, promises and write-offs: the books
balance, no document credits more tax than was invoiced, every document's amount due is
what the ledger said at its issue, no document is dated before its subscriber's activation or
after its run, nobody is suspended owing nothing or left active past the ladder's suspension
day, and the PDFs say what the database says."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from sqlalchemy import func, select

from billing import ledger
from billing.archive import document
from billing.dunning import service_ends
from billing.isp import calendar
from billing.isp import settings as isp_settings
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    Subscriber,
    SubscriberStatus,
)
from billing.money import ZERO, format_money
from billing.pdf import render_invoice_pdf
from billing.standing import account_state, ladder_of
from radbill.errors import DomainError
from tests.billing.sim import Sim, change_plan
from tests.conftest import BACKEND, wipe

USERS = ("pre", "post", "daily", "fixed")
START = dt.date(2026, 11, 1)
PAYMENTS = st.tuples(st.just("pay"), st.sampled_from(USERS),
                     st.sampled_from(["full", "part", "over", "ahead"]))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("days"), st.integers(1, 15)),
        st.tuples(st.just("skip"), st.integers(2, 12)),  # runs missed, then one run
        PAYMENTS, PAYMENTS,
        st.tuples(st.just("promise"), st.sampled_from(USERS), st.integers(1, 6)),
        st.tuples(st.just("plan"), st.sampled_from(("pre", "post", "fixed")),
                  st.sampled_from(("now", "next_cycle"))),
        st.tuples(st.just("credit"), st.sampled_from(USERS), st.sampled_from(["part", "all"])),
        st.tuples(st.just("charge"), st.sampled_from(USERS), st.integers(1, 500)),
        st.tuples(st.just("write-off"), st.sampled_from(USERS), st.booleans()),
        st.tuples(st.just("status"), st.sampled_from(USERS),
                  st.sampled_from(["disabled", "active", "suspended", "terminated"])),
    ),
    min_size=8, max_size=20,
)


def check_books(sim: Sim) -> None:
    """The ledger, the documents and their amounts agree."""
    with sim.factory() as s, s.begin():
        for sub in s.scalars(select(Subscriber)).unique():
            settled = ledger.settle(s, sub.id, sim.today)
            balance = ledger.balance(s, sub.id)
            owed = settled.outstanding
            # the balance is what the open documents still owe, less credit in hand (and
            # credit in hand only when nothing is owed)
            unapplied = owed - balance
            assert unapplied >= 0, (sub.username, balance, owed)
            assert unapplied == 0 or owed == 0, (sub.username, balance, owed)
            docs = s.scalars(select(Invoice).where(Invoice.subscriber_id == sub.id)
                             .order_by(Invoice.id)).all()
            entries = s.execute(select(LedgerEntry.id, LedgerEntry.amount,
                                       LedgerEntry.invoice_id, LedgerEntry.description)
                                .where(LedgerEntry.subscriber_id == sub.id)
                                .order_by(LedgerEntry.id)).all()
            for doc in docs:
                # not dated before the subscriber's activation, nor after the run
                assert START <= doc.issued_on <= sim.today, (doc.number, doc.issued_on)
                assert doc.total == doc.subtotal + doc.duty + doc.tax, doc.number
                if doc.kind is InvoiceKind.CREDIT_NOTE:
                    assert doc.due_on is None and doc.status is InvoiceStatus.APPLIED
                    mine = [e for e in entries
                            if e.description.startswith(f"Credit note {doc.number} ")]
                else:
                    assert doc.total >= 0 and doc.due_on is not None, doc.number
                    assert doc.due_on >= doc.issued_on, doc.number
                    mine = [e for e in entries if e.invoice_id == doc.id and e.amount > 0]
                    credited = s.scalars(select(Invoice).where(
                        Invoice.credits_invoice_id == doc.id)).all()
                    # never more credited than invoiced: in all, and of the tax
                    assert -sum((n.total for n in credited), ZERO) <= doc.total, doc.number
                    assert -sum((n.tax for n in credited), ZERO) <= doc.tax, doc.number
                    assert -sum((n.duty for n in credited), ZERO) <= doc.duty, doc.number
                if not mine:
                    assert doc.total == 0, doc.number
                    continue
                # what the document says was owed before it, and is due now, is the ledger
                before = sum((e.amount for e in entries if e.id < mine[0].id), ZERO)
                assert doc.previous_balance == before, (doc.number, doc.previous_balance,
                                                        before)
                assert doc.amount_due == max(before + doc.total, ZERO), doc.number
        dupes = s.execute(select(Invoice.subscriber_id, Invoice.period_start, func.count())
                          .where(Invoice.kind == "period", Invoice.status != "credited")
                          .group_by(Invoice.subscriber_id, Invoice.period_start)
                          .having(func.count() > 1)).all()
        assert dupes == []


def check_dunning(sim: Sim, after_run: bool) -> None:
    """Nobody suspended for non-payment owes nothing overdue; right after a run, nobody
    active (and not promised) is on or past the day the ladder suspends them."""
    today = sim.today
    with sim.factory() as s, s.begin():
        isp = isp_settings(s)
        cal = calendar(s)
        for sub in s.scalars(select(Subscriber)).unique():
            account, settled = account_state(s, isp, sub, sub.plan, today)
            if sub.status is SubscriberStatus.SUSPENDED and sub.suspended_for_nonpayment:
                assert settled.overdue(today) > 0, f"{sub.username} suspended owing nothing"
            promised = account.promise_until is not None and today <= account.promise_until
            if after_run and sub.status is SubscriberStatus.ACTIVE and not promised:
                ends = service_ends(account, today, ladder_of(sub.plan, isp), cal)
                assert ends is None or ends > today, (sub.username, ends)
            if after_run and sub.billing_paused_on is None and str(sub.status) in (
                    "active", "suspended"):
                assert sub.period_start <= today < sub.period_end, sub.username


def check_pdfs(sim: Sim) -> None:
    """The archived document says what the database says: number, total and amount due."""
    with sim.factory() as s:
        for inv in s.scalars(select(Invoice).order_by(Invoice.id.desc()).limit(6)):
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(
                render_invoice_pdf(document(s, inv)))).pages)
            assert inv.number in text
            assert f"Total {format_money(inv.total, inv.currency)}" in text
            if inv.amount_due is not None:
                assert f"Amount due now {format_money(inv.amount_due, inv.currency)}" in text


def act(sim: Sim, step: tuple[object, ...], refs: list[int]) -> bool:  # noqa: PLR0912 - a branch per step
    """Carry out one step; True if it ran the billing."""
    kind = step[0]
    if kind == "days":
        for _ in range(int(str(step[1]))):
            sim.today += dt.timedelta(days=1)
            sim.run(per_account=sim.today.day % 2 == 0)  # both paths, day about
        return True
    if kind == "skip":
        sim.today += dt.timedelta(days=int(str(step[1])))
        sim.run()
        return True
    user = str(step[1])
    with contextlib.suppress(DomainError):  # refused steps write nothing
        if kind == "pay":
            owed = sim.balance(user)
            amount = {"full": owed, "part": owed / 2, "over": owed + 500,
                      "ahead": max(owed, ZERO) + 3000}[str(step[2])]
            amount = amount.quantize(Decimal("0.01"))
            if amount > 0:
                refs.append(1)
                sim.pay(user, str(amount), ref=f"P{len(refs)}")
        elif kind == "promise":
            sim.promise(user, sim.today + dt.timedelta(days=int(str(step[2]))))
        elif kind == "plan":
            current = sim.sub(user).plan.name
            other = {"Post": "Post2", "Post2": "Post", "Pre": "Pre2", "Pre2": "Pre",
                     "Fixed": "Fixed2", "Fixed2": "Fixed"}[current]
            change_plan(sim, user, other, str(step[2]))
        elif kind == "credit":
            docs = [i for i in sim.invoices(user) if i["kind"] != "credit_note"]
            if docs:
                half = (docs[-1]["total"] / 3).quantize(Decimal("0.01"))
                sim.credit_note(docs[-1]["number"], None if step[2] == "all" else str(half))
        elif kind == "charge":
            sim.adjust(user, "charge", str(step[2]))
        elif kind == "write-off":
            owed = sim.outstanding(user)
            if owed:
                number = next(iter(owed))
                sim.adjust(user, "write-off", str(owed[number]), invoice=number,
                           reconnect=bool(step[2]))
        elif kind == "status":
            sim.set_status(user, str(step[2]), reason="test")
    return False


# PostgreSQL takes about four times as long per example; the rules are the same on both.
@settings(max_examples=20 if BACKEND == "sqlite" else 6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps)
def test_random_histories_keep_the_books_the_documents_and_the_ladder_right(
        engine, box, sequence) -> None:  # type: ignore[no-untyped-def]
    wipe(engine)
    sim = Sim(engine, box, START)
    sim.isp(suspension_guard_percent=100, postpaid_due_days=5, suspended_notice_days=4,
            tax_profile="in-gst", state_code="29", tax_id="29ABCDE1234F1Z5",
            late_fee_taxable=True)
    sim.plan("Post", price="1000", tax_percent="18", grace_days=3, late_fee="10",
             late_fee_percent=True, late_fee_cap="60")
    sim.plan("Post2", price="1500", tax_percent="18", grace_days=2)
    sim.plan("Pre", price="700", billing_mode="prepaid", grace_days=2, late_fee="25",
             tax_percent="18")
    sim.plan("Pre2", price="400", billing_mode="prepaid", grace_days=1, late_fee="10",
             tax_percent="18")
    sim.plan("Daily", price="20", billing_cycle="daily", billing_mode="prepaid")
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=1, tax_percent="18",
             billing_mode="prepaid", setup_fee="300")
    sim.plan("Fixed2", price="600", cycle_anchor="fixed_day", billing_day=1,
             tax_percent="18", billing_mode="prepaid")
    sim.subscriber("post", "Post")
    sim.subscriber("pre", "Pre", state_code="27")  # another State: IGST
    sim.subscriber("daily", "Daily", service="hotspot")
    sim.today = START + dt.timedelta(days=9)
    sim.subscriber("fixed", "Fixed")  # a short, prorated first period
    sim.run()
    check_dunning(sim, after_run=True)
    refs: list[int] = []
    for step in sequence:
        ran = act(sim, step, refs)
        check_books(sim)
        check_dunning(sim, after_run=ran)
    check_pdfs(sim)
    wipe(engine)
