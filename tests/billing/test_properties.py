"""Properties of billing over random sequences of days, payments and promises."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billing.dunning import suspension_day
from billing.isp import calendar
from billing.models import Invoice, LedgerEntry, Payment, Subscriber
from billing.run import ladder_of
from radbill.errors import Conflict
from tests.billing.sim import Sim, change_plan
from tests.conftest import wipe

USERS = ("pre", "post", "daily")
steps = st.lists(
    st.one_of(
        st.tuples(st.just("days"), st.integers(1, 9)),
        st.tuples(st.just("pay"), st.sampled_from(USERS), st.sampled_from(["full", "part",
                                                                           "over"])),
        st.tuples(st.just("promise"), st.sampled_from(USERS), st.integers(1, 6)),
        st.tuples(st.just("plan"), st.sampled_from(("pre", "post")),
                  st.sampled_from(("now", "next_cycle"))),
    ),
    min_size=1, max_size=14,
)


def check_invariants(sim: Sim) -> None:
    from billing import ledger

    with sim.factory() as s:
        # the balance is the sum of the ledger, and the ledger explains every invoice and
        # payment exactly
        for sub in s.scalars(select(Subscriber)).unique():
            ledger_sum = s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                                  .where(LedgerEntry.subscriber_id == sub.id))
            invoiced = s.scalar(select(func.coalesce(func.sum(Invoice.total), 0))
                                .where(Invoice.subscriber_id == sub.id))
            fees = s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.subscriber_id == sub.id, LedgerEntry.kind == "late_fee"))
            paid = s.scalar(select(func.coalesce(func.sum(Payment.amount), 0))
                            .where(Payment.subscriber_id == sub.id))
            # every invoice (credits and plan changes included) is one ledger entry of its
            # total, every late fee and payment one entry
            assert Decimal(ledger_sum) == Decimal(invoiced) + Decimal(fees) - Decimal(paid)
            assert ledger.balance(s, sub.id) == Decimal(ledger_sum)
        # at most one period invoice per subscriber and period
        dupes = s.execute(select(Invoice.subscriber_id, Invoice.period_start, func.count())
                          .where(Invoice.kind == "period")
                          .group_by(Invoice.subscriber_id, Invoice.period_start)
                          .having(func.count() > 1)).all()
        assert dupes == []


def check_dunning_state(sim: Sim, after_run: bool = True) -> None:
    """Nobody with nothing overdue stays suspended (at any time), and, right after the run
    of the day, nobody overdue past grace (and not promised) stays active. (A plan change
    can shorten the grace period during the day; the next run acts on it.)"""
    from billing import accounts, ledger

    today = sim.today
    with sim.factory() as s, s.begin():
        cal = calendar(s)
        for sub in s.scalars(select(Subscriber)).unique():
            settled = ledger.settle(s, sub.id, today)
            overdue = settled.overdue(today)
            if sub.status == "suspended":
                assert overdue > 0, f"{sub.username} suspended with nothing overdue"
            promise = accounts.active_promise(s, sub.id)
            promised = promise is not None and today <= promise.until
            past_grace = any(suspension_day(inv.due_on, ladder_of(sub.plan), cal) <= today
                             for inv, owed in settled.open_invoices if owed > 0)
            if after_run and sub.status == "active" and not promised:
                assert not past_grace, f"{sub.username} active though overdue past grace"
            if after_run and str(sub.status) in ("active", "suspended"):
                # billing is current: today lies in the current period, and a prepaid
                # period is invoiced by its first day
                assert sub.period_start <= today < sub.period_end, sub.username
                if sub.plan.billing_mode == "prepaid":
                    assert s.scalar(select(Invoice.id).where(
                        Invoice.subscriber_id == sub.id, Invoice.kind == "period",
                        Invoice.period_start == sub.period_start)) is not None, sub.username


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_random_days_payments_and_promises_keep_the_books_and_the_ladder_right(
        engine, box, sequence) -> None:  # type: ignore[no-untyped-def]
    wipe(engine)
    sim = Sim(engine, box, dt.date(2026, 11, 1))
    sim.isp(suspension_guard_percent=100, postpaid_due_days=5)
    sim.plan("Post", price="1000", tax_percent="5", grace_days=3, late_fee="10",
             late_fee_percent=True, late_fee_cap="60")
    sim.plan("Pre", price="700", billing_mode="prepaid", grace_days=2, late_fee="25")
    sim.plan("Daily", price="20", billing_cycle="daily", billing_mode="prepaid")
    sim.plan("Post2", price="1500", tax_percent="5", grace_days=2)
    sim.plan("Pre2", price="400", billing_mode="prepaid", grace_days=1, late_fee="10")
    other = {"Post": "Post2", "Post2": "Post", "Pre": "Pre2", "Pre2": "Pre"}
    sim.subscriber("post", "Post")
    sim.subscriber("pre", "Pre")
    sim.subscriber("daily", "Daily", service="hotspot")
    sim.run()
    check_dunning_state(sim)
    refs = 0
    for step in sequence:
        if step[0] == "days":
            for _ in range(step[1]):
                sim.today += dt.timedelta(days=1)
                sim.run()
                check_dunning_state(sim)
        elif step[0] == "pay":
            owed = sim.balance(step[1])
            amount = {"full": owed, "part": owed / 2, "over": owed + 500}[step[2]]
            amount = amount.quantize(Decimal("0.01"))
            if amount > 0:
                refs += 1
                sim.pay(step[1], str(amount), ref=f"P{refs}")
                check_dunning_state(sim, after_run=False)
        elif step[0] == "plan":
            current = sim.sub(step[1]).plan.name
            with contextlib.suppress(Conflict):  # one immediate change a day
                change_plan(sim, step[1], other[current], step[2])
            check_dunning_state(sim, after_run=False)
        else:
            with contextlib.suppress(Conflict):  # one promise a period: refused, no write
                sim.promise(step[1], sim.today + dt.timedelta(days=step[2]))
        check_invariants(sim)
    wipe(engine)
