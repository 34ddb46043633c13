"""The dunning ladder: which step is due for an account on a given day. Pure, no I/O.

For an unpaid invoice due on day D with G grace days (D+1 .. D+G), suspension falls on S, the
first day on which the ISP suspends at or after D + G + 1 (weekly off-days and holidays push it
on). An invoice is overdue from D + 1. The steps:

============================  ============================================================
reminder                      from D - N (default 3) until D
due-date notice               on D (or the first run after it, before S)
late fee                      once, the day after D, if still unpaid
throttle (optional)           from D + T until S, at the plan's fair-usage speed
final reminder                on S - 1 (24 hours before suspension)
suspension                    on S, unless a promise to pay runs
termination (optional)        N days after suspension
============================  ============================================================

:func:`due_actions` returns every step that is due and not yet done; the billing run applies
them. Done steps are recognised by their keys (stored as outbox dedupe keys), so a second run
on the same day does nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from billing.money import ZERO, percent_of, round_money

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Calendar:
    """Days on which the ISP does not suspend anybody."""

    weekly_off: frozenset[int] = frozenset()  # date.weekday(): Monday 0 ... Sunday 6
    holidays: frozenset[dt.date] = frozenset()

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() not in self.weekly_off and day not in self.holidays

    def next_working_day(self, day: dt.date) -> dt.date:
        """*day* itself if the ISP works then, else the next day it does."""
        for _ in range(366):
            if self.is_working_day(day):
                return day
            day += ONE_DAY
        raise ValueError("no working day within a year: check the calendar")


@dataclass(frozen=True)
class Ladder:
    """An ISP's (or plan's) dunning settings."""

    grace_days: int = 0
    reminder_days: int = 3
    late_fee: Decimal = ZERO
    late_fee_percent: bool = False
    late_fee_cap: Decimal | None = None
    throttle_after_days: int | None = None
    terminate_after_days: int | None = None

    def late_fee_for(self, invoice_total: Decimal, currency: str) -> Decimal:
        """The late fee for an invoice of *invoice_total*."""
        if self.late_fee <= 0:
            return ZERO
        fee = (percent_of(invoice_total, self.late_fee, currency) if self.late_fee_percent
               else round_money(self.late_fee, currency))
        if self.late_fee_cap is not None:
            fee = min(fee, round_money(self.late_fee_cap, currency))
        return fee


@dataclass(frozen=True)
class UnpaidInvoice:
    """An issued invoice not yet covered by payments."""

    id: int
    number: str
    due_on: dt.date
    total: Decimal
    outstanding: Decimal


@dataclass(frozen=True)
class Account:
    """What the ladder needs of one subscriber."""

    subscriber_id: int
    username: str
    status: str  # active | suspended | disabled | terminated
    currency: str
    unpaid: tuple[UnpaidInvoice, ...]  # oldest first
    throttled: bool = False
    suspended_on: dt.date | None = None
    suspended_for_nonpayment: bool = False
    promise_until: dt.date | None = None
    done: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Action:
    """One step to take. ``key`` makes it happen once."""

    kind: str  # reminder | due_notice | late_fee | final_reminder | throttle | suspend |
    #            terminate | reconnect | promise_broken
    key: str
    invoice_id: int | None = None
    amount: Decimal | None = None
    reason: str = ""


def suspension_day(due_on: dt.date, ladder: Ladder, cal: Calendar) -> dt.date:
    """The day an invoice due on *due_on* leads to suspension if still unpaid: the first
    working day after the grace days."""
    return cal.next_working_day(due_on + dt.timedelta(days=ladder.grace_days + 1))


def overdue_amount(account: Account, today: dt.date) -> Decimal:
    """What is past its due date and unpaid."""
    return sum((i.outstanding for i in account.unpaid if i.due_on < today), ZERO)


def due_actions(  # noqa: PLR0912 - one branch per rung of the ladder
    account: Account, today: dt.date, ladder: Ladder, cal: Calendar
) -> list[Action]:
    """Every ladder step due for *account* on *today* and not yet done."""
    if account.status in ("terminated", "disabled"):
        return []
    actions: list[Action] = []

    def add(kind: str, key: str, **kw: object) -> None:
        if key not in account.done:
            actions.append(Action(kind, key, **kw))  # type: ignore[arg-type]

    promised = account.promise_until is not None and today <= account.promise_until
    suspend_from: dt.date | None = None
    for inv in account.unpaid:
        if inv.outstanding <= 0:
            continue
        s_day = suspension_day(inv.due_on, ladder, cal)
        suspend_from = s_day if suspend_from is None else min(suspend_from, s_day)
        if inv.due_on - dt.timedelta(days=ladder.reminder_days) <= today < inv.due_on:
            add("reminder", f"reminder:{inv.id}", invoice_id=inv.id)
        final_day = s_day - ONE_DAY == today and not promised
        if inv.due_on <= today < s_day and not final_day:
            # with no grace days the final reminder falls on the due date: send only that
            add("due_notice", f"due:{inv.id}", invoice_id=inv.id)
        if today > inv.due_on:
            fee = ladder.late_fee_for(inv.total, account.currency)
            if fee > 0:
                add("late_fee", f"latefee:{inv.id}", invoice_id=inv.id, amount=fee)
        if final_day:
            add("final_reminder", f"final:{inv.id}", invoice_id=inv.id)
        if (ladder.throttle_after_days is not None and not promised and not account.throttled
                and account.status == "active"
                and inv.due_on + dt.timedelta(days=ladder.throttle_after_days) <= today < s_day):
            actions.append(Action("throttle", f"throttle:{inv.id}", invoice_id=inv.id,
                                  reason=f"invoice {inv.number} unpaid"))
    if account.promise_until is not None and today > account.promise_until and (
        overdue_amount(account, today) > 0
    ):
        # the outbox key is unique across subscribers: it must name the subscriber
        add("promise_broken",
            f"promise-broken:{account.subscriber_id}:{account.promise_until.isoformat()}")
    if (account.status == "active" and suspend_from is not None and today >= suspend_from
            and not promised):
        oldest = next(i for i in account.unpaid if i.outstanding > 0)
        actions.append(Action("suspend", f"suspend:{oldest.id}", invoice_id=oldest.id,
                              reason=f"invoice {oldest.number} unpaid past the grace period"))
    if (account.status == "suspended" and account.suspended_for_nonpayment
            and overdue_amount(account, today) <= 0):
        actions.append(Action("reconnect", "reconnect", reason="nothing overdue"))
    if (account.status == "suspended" and ladder.terminate_after_days is not None
            and account.suspended_on is not None
            and today >= account.suspended_on + dt.timedelta(days=ladder.terminate_after_days)):
        actions.append(Action("terminate", "terminate",
                              reason=f"suspended for {ladder.terminate_after_days} days"))
    return actions
