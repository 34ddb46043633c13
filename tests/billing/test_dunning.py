"""The ladder, day by day, with exact actions: each day's steps are fed back as done (with
their day), as the billing run records them in the outbox."""

import dataclasses
import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.dunning import (
    Account,
    Calendar,
    Ladder,
    UnpaidInvoice,
    due_actions,
    service_ends,
    suspension_day,
)

D = dt.date
ONE = dt.timedelta(days=1)
INV = UnpaidInvoice(id=7, number="INV-000007", due_on=D(2026, 12, 10), total=Decimal("1000.00"),
                    outstanding=Decimal("1000.00"), issued_on=D(2026, 11, 30))
LADDER = Ladder(grace_days=3, reminder_days=3, late_fee=Decimal("50"))
NO_OFF = Calendar()


def account(**kw) -> Account:  # type: ignore[no-untyped-def]
    args = {"subscriber_id": 1, "username": "alice", "status": "active", "currency": "BDT",
            "unpaid": (INV,), **kw}
    return Account(**args)


def walk(first: dt.date, last: dt.date, acct: Account | None = None, ladder: Ladder = LADDER,
         cal: Calendar = NO_OFF, days: set[dt.date] | None = None
         ) -> dict[dt.date, list[str]]:
    """Run the ladder on each day from *first* to *last* (only on *days* if given), recording
    what it did as the billing run would. Returns the steps per day that had any."""
    acct = acct or account()
    out: dict[dt.date, list[str]] = {}
    day = first
    while day <= last:
        if days is None or day in days:
            actions = due_actions(acct, day, ladder, cal)
            if actions:
                out[day] = [a.kind for a in actions]
            done = dict(acct.done_on)
            for a in actions:
                done.setdefault(a.key, day)
            status = acct.status
            if any(a.kind == "suspend" for a in actions):
                status = "suspended"
            acct = dataclasses.replace(acct, done=frozenset(done), done_on=done, status=status,
                                       suspended_on=acct.suspended_on or (
                                           day if status == "suspended" else None))
        day += ONE
    return out


def test_ladder_day_by_day() -> None:
    # due 10 Dec, reminder 3 days ahead, grace 11-13 Dec, suspension 14 Dec
    assert walk(D(2026, 12, 1), D(2026, 12, 20)) == {
        D(2026, 12, 7): ["reminder"],
        D(2026, 12, 10): ["due_notice"],
        D(2026, 12, 11): ["late_fee"],
        D(2026, 12, 13): ["final_reminder"],
        D(2026, 12, 14): ["suspend"],
    }


def test_missed_runs_never_skip_a_step_or_its_spacing() -> None:
    # No run from 1 to 15 Dec (the scheduler was down). The first run sends the reminder; the
    # subscriber gets the reminder's 3 days, then the due notice, the grace days and the
    # final reminder, before any late fee or suspension.
    days = {D(2026, 12, 16) + ONE * i for i in range(20)}
    assert walk(D(2026, 12, 1), D(2027, 1, 5), days=days) == {
        D(2026, 12, 16): ["reminder"],
        D(2026, 12, 19): ["due_notice"],
        D(2026, 12, 20): ["late_fee"],
        D(2026, 12, 22): ["final_reminder"],
        D(2026, 12, 23): ["suspend"],
    }


def test_a_run_missed_on_the_final_reminder_day_delays_suspension() -> None:
    days = {D(2026, 12, 1) + ONE * i for i in range(40)} - {D(2026, 12, 13)}
    walked = walk(D(2026, 12, 1), D(2026, 12, 20), days=days)
    assert walked[D(2026, 12, 14)] == ["final_reminder"]
    assert walked[D(2026, 12, 15)] == ["suspend"]


def test_done_steps_are_not_repeated() -> None:
    done = {"reminder:7": D(2026, 12, 7), "due:7": D(2026, 12, 10),
            "latefee:7": D(2026, 12, 11), "final:7": D(2026, 12, 13)}
    acct = account(done=frozenset(done), done_on=done)
    assert [a.kind for a in due_actions(acct, D(2026, 12, 13), LADDER, NO_OFF)] == []
    assert [a.kind for a in due_actions(acct, D(2026, 12, 14), LADDER, NO_OFF)] == ["suspend"]


def test_late_fee_is_on_what_is_outstanding_when_assessed() -> None:
    pct = Ladder(late_fee=Decimal("10"), late_fee_percent=True, late_fee_cap=Decimal("80"))
    assert pct.late_fee_for(Decimal("1000.00"), "BDT") == Decimal("80.00")
    assert pct.late_fee_for(Decimal("500.00"), "BDT") == Decimal("50.00")
    assert pct.late_fee_for(Decimal("0.01"), "BDT") == Decimal("0.00")
    assert Ladder().late_fee_for(Decimal("500.00"), "BDT") == Decimal("0")
    fixed = Ladder(late_fee=Decimal("50"), late_fee_min_outstanding=Decimal("1.00"))
    assert fixed.late_fee_for(Decimal("0.99"), "BDT") == Decimal("0")
    assert fixed.late_fee_for(Decimal("1.00"), "BDT") == Decimal("50.00")
    # the fee the ladder assesses is a percentage of what is left, not of the total
    part_paid = dataclasses.replace(INV, outstanding=Decimal("550.00"))
    ladder = dataclasses.replace(pct, grace_days=3)
    done = {"reminder:7": D(2026, 12, 7), "due:7": D(2026, 12, 10)}
    acct = account(unpaid=(part_paid,), done=frozenset(done), done_on=done)
    fees = [a.amount for a in due_actions(acct, D(2026, 12, 11), ladder, NO_OFF)
            if a.kind == "late_fee"]
    assert fees == [Decimal("55.00")]


def test_a_late_fee_document_has_no_reminder_due_notice_or_fee_of_its_own() -> None:
    fee = UnpaidInvoice(id=9, number="INV-000009", due_on=D(2026, 12, 11),
                        total=Decimal("50.00"), outstanding=Decimal("50.00"),
                        issued_on=D(2026, 12, 11), late_fee=True)
    assert walk(D(2026, 12, 11), D(2026, 12, 20), account(unpaid=(fee,))) == {
        D(2026, 12, 14): ["final_reminder"],
        D(2026, 12, 15): ["suspend"],
    }


def test_weekly_off_day_and_holiday_push_suspension() -> None:
    # due 10 Dec + 3 grace days: suspension on 14 Dec 2026, a Monday. Make Monday a weekly
    # off-day and Tuesday 15 a holiday: suspension moves to Wednesday 16.
    assert suspension_day(INV.due_on, LADDER, NO_OFF) == D(2026, 12, 14)
    cal = Calendar(weekly_off=frozenset({0}), holidays=frozenset({D(2026, 12, 15)}))
    assert suspension_day(INV.due_on, LADDER, cal) == D(2026, 12, 16)
    walked = walk(D(2026, 12, 1), D(2026, 12, 20), cal=cal)
    assert walked[D(2026, 12, 15)] == ["final_reminder"]
    assert walked[D(2026, 12, 16)] == ["suspend"]


def test_promise_holds_suspension_then_lapses() -> None:
    promised = account(promise_until=D(2026, 12, 20))
    walked = walk(D(2026, 12, 1), D(2026, 12, 25), promised)
    assert all("suspend" not in steps for day, steps in walked.items() if day <= D(2026, 12, 20))
    assert all("final_reminder" not in steps for day, steps in walked.items()
               if day <= D(2026, 12, 20))
    # the promise lapses: the final reminder it held back, then the suspension
    assert walked[D(2026, 12, 21)] == ["promise_broken", "final_reminder"]
    assert walked[D(2026, 12, 22)] == ["suspend"]


def test_throttle_stage_before_suspension() -> None:
    ladder = Ladder(grace_days=5, throttle_after_days=2)
    walked = walk(D(2026, 12, 1), D(2026, 12, 20), ladder=ladder)
    assert walked[D(2026, 12, 12)] == ["throttle"]
    throttled = account(throttled=True)
    assert all("throttle" not in steps
               for steps in walk(D(2026, 12, 1), D(2026, 12, 20), throttled, ladder).values())


def test_suspended_with_nothing_overdue_is_reconnected() -> None:
    paid = account(status="suspended", suspended_for_nonpayment=True, unpaid=())
    assert [a.kind for a in due_actions(paid, D(2026, 12, 20), LADDER, NO_OFF)] == ["reconnect"]
    by_operator = account(status="suspended", suspended_for_nonpayment=False, unpaid=())
    assert due_actions(by_operator, D(2026, 12, 20), LADDER, NO_OFF) == []


def test_a_suspended_subscriber_gets_no_dunning_notices_but_a_periodic_reminder() -> None:
    # suspended long ago for an older invoice; INV comes due while suspended
    old = UnpaidInvoice(id=3, number="INV-000003", due_on=D(2026, 11, 10),
                        total=Decimal("1000.00"), outstanding=Decimal("1000.00"),
                        issued_on=D(2026, 11, 1))
    done = {"reminder:3": D(2026, 11, 7), "due:3": D(2026, 11, 10),
            "latefee:3": D(2026, 11, 11), "final:3": D(2026, 11, 13)}
    acct = account(status="suspended", suspended_for_nonpayment=True,
                   suspended_on=D(2026, 11, 14), unpaid=(old, INV), done=frozenset(done),
                   done_on=done)
    walked = walk(D(2026, 12, 1), D(2026, 12, 20), acct)
    assert walked == {D(2026, 12, 11): ["late_fee"]}  # fees still apply; no notices
    weekly = dataclasses.replace(LADDER, suspended_notice_days=7)
    walked = walk(D(2026, 11, 14), D(2026, 12, 5), acct, weekly)
    assert [d for d, steps in walked.items() if "still_suspended" in steps] == [
        D(2026, 11, 21), D(2026, 11, 28), D(2026, 12, 5)]


def test_termination_after_n_days_suspended() -> None:
    ladder = Ladder(grace_days=3, terminate_after_days=30)
    acct = account(status="suspended", suspended_for_nonpayment=True,
                   suspended_on=D(2026, 12, 14))
    assert "terminate" not in [a.kind for a in due_actions(acct, D(2027, 1, 12), ladder,
                                                           NO_OFF)]
    assert "terminate" in [a.kind for a in due_actions(acct, D(2027, 1, 13), ladder, NO_OFF)]


def test_disabled_and_terminated_get_nothing() -> None:
    assert due_actions(account(status="disabled"), D(2026, 12, 20), LADDER, NO_OFF) == []
    assert due_actions(account(status="terminated"), D(2026, 12, 20), LADDER, NO_OFF) == []


def test_no_grace_final_reminder_replaces_due_notice_on_the_due_date() -> None:
    ladder = Ladder(grace_days=0)
    assert walk(D(2026, 12, 1), D(2026, 12, 20), ladder=ladder) == {
        D(2026, 12, 7): ["reminder"],
        D(2026, 12, 10): ["final_reminder"],
        D(2026, 12, 11): ["suspend"],
    }


def test_issued_on_its_due_date_there_is_no_reminder() -> None:
    today = dataclasses.replace(INV, issued_on=INV.due_on)
    assert walk(D(2026, 12, 10), D(2026, 12, 20), account(unpaid=(today,))) == {
        D(2026, 12, 10): ["due_notice"],
        D(2026, 12, 11): ["late_fee"],
        D(2026, 12, 13): ["final_reminder"],
        D(2026, 12, 14): ["suspend"],
    }


@settings(max_examples=300, deadline=None)
@given(due_offset=st.integers(0, 40), lead=st.integers(0, 10), grace=st.integers(0, 10),
       reminder=st.integers(0, 7), off=st.frozensets(st.integers(0, 6), max_size=3),
       holidays=st.frozensets(st.integers(0, 60), max_size=6),
       missed=st.frozensets(st.integers(0, 70), max_size=15))
def test_the_day_service_ends_is_the_day_the_ladder_suspends(
        due_offset: int, lead: int, grace: int, reminder: int, off: frozenset[int],
        holidays: frozenset[int], missed: frozenset[int]) -> None:
    """One date for RADIUS and the ladder: on every day the billing runs before the
    suspension, :func:`service_ends` names a day not yet past, and on the run that suspends
    it names the day the ladder would have suspended on had it run every day (later only by
    runs that were missed): each day's projection counts the steps not done yet as
    happening on their day, or that day when late."""
    start = D(2026, 11, 1)
    due = start + ONE * due_offset
    inv = UnpaidInvoice(1, "INV-1", due, Decimal("100.00"), Decimal("100.00"),
                        issued_on=due - ONE * lead)
    ladder = Ladder(grace_days=grace, reminder_days=reminder)
    cal = Calendar(weekly_off=off, holidays=frozenset(start + ONE * h for h in holidays))
    acct = account(unpaid=(inv,))
    day = inv.issued_on or start
    for _ in range(120):
        if (day - start).days not in missed:
            projected = service_ends(acct, day, ladder, cal)
            assert projected is not None
            actions = due_actions(acct, day, ladder, cal)
            if any(a.kind == "suspend" for a in actions):
                assert projected <= day
                assert all((d - start).days in missed
                           for d in (projected + ONE * i for i in range((day - projected).days)))
                return
            assert projected > day
            done = dict(acct.done_on)
            for a in actions:
                done.setdefault(a.key, day)
            acct = dataclasses.replace(acct, done=frozenset(done), done_on=done)
        day += ONE
    raise AssertionError("never suspended")
