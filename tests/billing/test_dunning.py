"""The ladder, day by day, with exact actions."""

import datetime as dt
from decimal import Decimal

from billing.dunning import Account, Calendar, Ladder, UnpaidInvoice, due_actions, suspension_day

D = dt.date
INV = UnpaidInvoice(id=7, number="INV-000007", due_on=D(2026, 12, 10), total=Decimal("1000.00"),
                    outstanding=Decimal("1000.00"))
LADDER = Ladder(grace_days=3, reminder_days=3, late_fee=Decimal("50"))
NO_OFF = Calendar()


def account(**kw) -> Account:  # type: ignore[no-untyped-def]
    args = {"subscriber_id": 1, "username": "alice", "status": "active", "currency": "BDT",
            "unpaid": (INV,), **kw}
    return Account(**args)


def kinds(today: dt.date, acct: Account | None = None, ladder: Ladder = LADDER,
          cal: Calendar = NO_OFF) -> list[str]:
    return [a.kind for a in due_actions(acct or account(), today, ladder, cal)]


def test_ladder_day_by_day() -> None:
    assert kinds(D(2026, 12, 6)) == []
    assert kinds(D(2026, 12, 7)) == ["reminder"]
    assert kinds(D(2026, 12, 9)) == ["reminder"]
    assert kinds(D(2026, 12, 10)) == ["due_notice"]
    assert kinds(D(2026, 12, 11)) == ["due_notice", "late_fee"]
    assert kinds(D(2026, 12, 12)) == ["due_notice", "late_fee"]
    assert kinds(D(2026, 12, 13)) == ["late_fee", "final_reminder"]
    assert kinds(D(2026, 12, 14)) == ["late_fee", "suspend"]


def test_done_steps_are_not_repeated() -> None:
    acct = account(done=frozenset({"reminder:7", "due:7", "latefee:7", "final:7"}))
    assert kinds(D(2026, 12, 13), acct) == []


def test_late_fee_amounts() -> None:
    acts = due_actions(account(), D(2026, 12, 11), LADDER, NO_OFF)
    assert [a.amount for a in acts if a.kind == "late_fee"] == [Decimal("50.00")]
    pct = Ladder(late_fee=Decimal("10"), late_fee_percent=True, late_fee_cap=Decimal("80"))
    assert pct.late_fee_for(Decimal("1000.00"), "BDT") == Decimal("80.00")
    assert pct.late_fee_for(Decimal("500.00"), "BDT") == Decimal("50.00")
    assert Ladder().late_fee_for(Decimal("500.00"), "BDT") == Decimal("0")


def test_weekly_off_day_and_holiday_push_suspension() -> None:
    # due 10 Dec + 3 grace days: suspension on 14 Dec 2026, a Monday. Make Monday a weekly
    # off-day and Tuesday 15 a holiday: suspension moves to Wednesday 16.
    assert suspension_day(INV.due_on, LADDER, NO_OFF) == D(2026, 12, 14)
    cal = Calendar(weekly_off=frozenset({0}), holidays=frozenset({D(2026, 12, 15)}))
    assert suspension_day(INV.due_on, LADDER, cal) == D(2026, 12, 16)
    assert "suspend" not in kinds(D(2026, 12, 14), cal=cal)
    assert "suspend" not in kinds(D(2026, 12, 15), cal=cal)
    assert kinds(D(2026, 12, 15), cal=cal)[-1] == "final_reminder"
    assert "suspend" in kinds(D(2026, 12, 16), cal=cal)


def test_promise_holds_suspension_then_lapses() -> None:
    promised = account(promise_until=D(2026, 12, 20))
    assert "suspend" not in kinds(D(2026, 12, 15), promised)
    assert "final_reminder" not in kinds(D(2026, 12, 13), promised)
    assert kinds(D(2026, 12, 21), promised)[-2:] == ["promise_broken", "suspend"]


def test_throttle_stage_before_suspension() -> None:
    ladder = Ladder(grace_days=5, throttle_after_days=2)
    assert "throttle" not in kinds(D(2026, 12, 11), ladder=ladder)
    assert "throttle" in kinds(D(2026, 12, 12), ladder=ladder)
    assert "throttle" not in kinds(D(2026, 12, 12), account(throttled=True), ladder=ladder)
    assert "throttle" not in kinds(D(2026, 12, 16), ladder=ladder)  # suspension day


def test_suspended_with_nothing_overdue_is_reconnected() -> None:
    paid = account(status="suspended", suspended_for_nonpayment=True, unpaid=())
    assert kinds(D(2026, 12, 20), paid) == ["reconnect"]
    by_operator = account(status="suspended", suspended_for_nonpayment=False, unpaid=())
    assert kinds(D(2026, 12, 20), by_operator) == []


def test_termination_after_n_days_suspended() -> None:
    ladder = Ladder(grace_days=3, terminate_after_days=30)
    acct = account(status="suspended", suspended_for_nonpayment=True,
                   suspended_on=D(2026, 12, 14))
    assert "terminate" not in kinds(D(2027, 1, 12), acct, ladder=ladder)
    assert "terminate" in kinds(D(2027, 1, 13), acct, ladder=ladder)


def test_disabled_and_terminated_get_nothing() -> None:
    assert kinds(D(2026, 12, 20), account(status="disabled")) == []
    assert kinds(D(2026, 12, 20), account(status="terminated")) == []


def test_no_grace_final_reminder_replaces_due_notice_on_the_due_date() -> None:
    ladder = Ladder(grace_days=0)
    assert kinds(D(2026, 12, 10), ladder=ladder) == ["final_reminder"]
    assert kinds(D(2026, 12, 11), ladder=ladder) == ["suspend"]
