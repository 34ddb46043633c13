"""The dunning ladder: which step is due for an account on a given day. Pure, no I/O.

For an open document due on day D, with G grace days and a reminder lead of N days, the
steps, each at most once:

============================  ============================================================
reminder                      from D - L, where L = min(N, days from issue to due)
due-date notice               on D1 = max(D, reminder day + L)
late fee                      the day after D2, the day the due notice went out, if at least
                              the ISP's minimum is still outstanding: a percentage of what is
                              outstanding then (never of the original total), or a fixed fee
throttle (optional)           from D2 + T until S, at the plan's fair-usage speed
final reminder                on S - 1, where S is the first day the ISP suspends on at or
                              after D2 + G + 1 (weekly off-days and holidays push it on)
suspension                    on S, and never before the day after the final reminder,
                              unless a promise to pay runs
termination (optional)        N days after suspension
============================  ============================================================

Each step waits for the one before it, and the later steps are dated from the day the earlier
ones really happened: on a day-by-day schedule nothing moves, but after missed runs the
subscriber still gets the reminder, due notice and final reminder with their spacing before
any late fee or suspension. A late-fee document has no reminder or due notice of its own
(its issue is the notice) and bears no late fee. A suspended subscriber gets no notices
(they are suspended already); optionally a periodic "still suspended, pay to restore" notice.

:func:`due_actions` returns every step that is due and not yet done; the billing run applies
them. Done steps are recognised by their keys (stored as outbox dedupe keys, with the day
they happened), so a second run on the same day does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
    late_fee_min_outstanding: Decimal = ZERO  # no fee below this outstanding
    suspended_notice_days: int = 0  # 0: no periodic notice while suspended

    def late_fee_for(self, outstanding: Decimal, currency: str) -> Decimal:
        """The late fee on an invoice with *outstanding* still owed when it is assessed:
        none when nothing, or less than the minimum, is outstanding."""
        if self.late_fee <= 0 or outstanding <= 0 or outstanding < self.late_fee_min_outstanding:
            return ZERO
        fee = (percent_of(outstanding, self.late_fee, currency) if self.late_fee_percent
               else round_money(self.late_fee, currency))
        if self.late_fee_cap is not None:
            fee = min(fee, round_money(self.late_fee_cap, currency))
        return fee


@dataclass(frozen=True)
class UnpaidInvoice:
    """An issued document not yet covered by payments."""

    id: int
    number: str
    due_on: dt.date
    total: Decimal
    outstanding: Decimal
    issued_on: dt.date | None = None  # None: as if issued the full reminder lead before due
    late_fee: bool = False  # a late-fee document: no reminder, due notice or fee of its own


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
    done_on: Mapping[str, dt.date] = field(default_factory=dict)  # when each key happened


@dataclass(frozen=True)
class Action:
    """One step to take. ``key`` makes it happen once."""

    kind: str  # reminder | due_notice | late_fee | final_reminder | throttle | suspend |
    #            terminate | reconnect | promise_broken | still_suspended
    key: str
    invoice_id: int | None = None
    amount: Decimal | None = None
    reason: str = ""
    due_on: dt.date | None = None  # reminders and due notices: the day payment is due
    suspend_on: dt.date | None = None  # final reminders: the day service stops


def suspension_day(due_on: dt.date, ladder: Ladder, cal: Calendar) -> dt.date:
    """The day a document due on *due_on* leads to suspension if still unpaid and every
    notice went out on time: the first working day after the grace days."""
    return cal.next_working_day(due_on + dt.timedelta(days=ladder.grace_days + 1))


def overdue_amount(account: Account, today: dt.date) -> Decimal:
    """What is past its due date and unpaid."""
    return sum((i.outstanding for i in account.unpaid if i.due_on < today), ZERO)


def keys(invoice_id: int) -> tuple[str, str, str, str]:
    """The done-keys of a document's steps: reminder, due notice, late fee, final reminder."""
    return (f"reminder:{invoice_id}", f"due:{invoice_id}", f"latefee:{invoice_id}",
            f"final:{invoice_id}")


@dataclass(frozen=True)
class Schedule:
    """Where one document stands on the ladder today."""

    actions: tuple[Action, ...]  # notices and the late fee due today
    due_on: dt.date | None  # D2: due after the notices really sent (None: not reached)
    suspend_from: dt.date | None  # the day suspension may happen (None: not reached yet)


def lead(inv: UnpaidInvoice, ladder: Ladder) -> int:
    """How many days before its due date a document's reminder goes out."""
    if inv.late_fee:
        return 0
    if inv.issued_on is None:
        return ladder.reminder_days
    return max(0, min(ladder.reminder_days, (inv.due_on - inv.issued_on).days))


def schedule(  # noqa: PLR0912 - one branch per rung, each waiting on the one before
    inv: UnpaidInvoice, today: dt.date, ladder: Ladder, cal: Calendar,
    done_on: Mapping[str, dt.date], *, notices: bool, promised: bool, currency: str,
    project: bool = False,
) -> Schedule:
    """The steps of *inv* due today (see the module documentation). Without *notices*
    (suspended subscribers) notices are not sent and count as sent on their day. With
    *project*, steps not done yet count as done on their day (or today, when late): the
    suspension day the ladder is heading for."""
    rem_key, due_key, fee_key, final_key = keys(inv.id)
    grace = dt.timedelta(days=ladder.grace_days + 1)
    out: list[Action] = []

    def happens(key: str, nominal: dt.date, action: Action) -> dt.date | None:
        """The day the step *key* happened (or happens today); None if it is not due."""
        done = done_on.get(key)
        if done is not None:
            return done
        if project:
            return max(nominal, today)
        if today < nominal:
            return None
        if not notices:
            return nominal
        out.append(action)
        return today

    def reached(d2: dt.date | None = None, suspend_from: dt.date | None = None) -> Schedule:
        return Schedule(tuple(out), d2, suspend_from)

    n_lead = lead(inv, ladder)
    d1 = inv.due_on
    if n_lead > 0:
        sent = happens(rem_key, inv.due_on - dt.timedelta(days=n_lead),
                       Action("reminder", rem_key, inv.id, due_on=inv.due_on))
        if sent is None:
            return reached()
        d1 = max(inv.due_on, sent + dt.timedelta(days=n_lead))
    final_sent = done_on.get(final_key)
    if inv.late_fee:
        d2 = d1  # its issue was its notice
    elif due_key not in done_on and final_sent is not None:
        d2 = max(d1, final_sent)  # the final reminder went out as the due notice (no grace)
    else:
        notice_day = max(d1, today)
        if due_key not in done_on and (
                cal.next_working_day(notice_day + grace) - ONE_DAY == notice_day):
            # No grace: the final reminder falls on the due date and says it all.
            if today < d1 and not project:
                return reached()
            d2 = notice_day
        else:
            sent = happens(due_key, d1, Action("due_notice", due_key, inv.id, due_on=d1))
            if sent is None:
                return reached()
            d2 = max(d1, sent)
    s_day = cal.next_working_day(d2 + grace)
    if not inv.late_fee and not project and today > d2 and fee_key not in done_on:
        fee = ladder.late_fee_for(inv.outstanding, currency)
        if fee > 0:
            out.append(Action("late_fee", fee_key, inv.id, amount=fee))
    if promised and final_key not in done_on and not project:
        return reached(d2)
    final = happens(final_key, s_day - ONE_DAY,
                    Action("final_reminder", final_key, inv.id, suspend_on=s_day))
    if final is None:
        return reached(d2)
    return reached(d2, max(s_day, final + ONE_DAY))


def due_actions(  # noqa: PLR0912 - one branch per rung of the ladder
    account: Account, today: dt.date, ladder: Ladder, cal: Calendar
) -> list[Action]:
    """Every ladder step due for *account* on *today* and not yet done."""
    if account.status in ("terminated", "disabled"):
        return []
    actions: list[Action] = []
    done_on = {k: account.done_on.get(k, today) for k in account.done}
    suspended = account.status == "suspended"
    promised = account.promise_until is not None and today <= account.promise_until
    suspend_from: dt.date | None = None
    if account.promise_until is not None and today > account.promise_until and (
        overdue_amount(account, today) > 0
    ):
        # the outbox key is unique across subscribers: it must name the subscriber
        key = f"promise-broken:{account.subscriber_id}:{account.promise_until.isoformat()}"
        if key not in done_on:
            actions.append(Action("promise_broken", key))
    for inv in account.unpaid:
        if inv.outstanding <= 0:
            continue
        plan = schedule(inv, today, ladder, cal, done_on, notices=not suspended,
                        promised=promised, currency=account.currency)
        actions += plan.actions
        if plan.suspend_from is not None:
            suspend_from = (plan.suspend_from if suspend_from is None
                            else min(suspend_from, plan.suspend_from))
        if (ladder.throttle_after_days is not None and not promised and not account.throttled
                and account.status == "active" and plan.due_on is not None
                and plan.due_on + dt.timedelta(days=ladder.throttle_after_days) <= today
                and not any(a.kind == "throttle" for a in actions)):
            actions.append(Action("throttle", f"throttle:{inv.id}", invoice_id=inv.id,
                                  reason=f"invoice {inv.number} unpaid"))
    finals = [a for a in actions if a.kind == "final_reminder"]
    if (account.status == "active" and suspend_from is not None and today >= suspend_from
            and not promised):
        oldest = next(i for i in account.unpaid if i.outstanding > 0)
        # no "suspended tomorrow" for another document on the day of the suspension
        actions = [a for a in actions if a.kind != "final_reminder"]
        actions.append(Action("suspend", f"suspend:{oldest.id}", invoice_id=oldest.id,
                              reason=f"invoice {oldest.number} unpaid past the grace period"))
    elif finals:  # one "suspended tomorrow" a day is enough: the oldest document's
        sent_today = any(k.startswith("final:") and on == today for k, on in done_on.items())
        keep = None if sent_today else finals[0]
        actions = [a for a in actions if a.kind != "final_reminder" or a is keep]
    if (suspended and account.suspended_for_nonpayment
            and overdue_amount(account, today) <= 0):
        actions.append(Action("reconnect", "reconnect", reason="nothing overdue"))
    elif (suspended and account.suspended_for_nonpayment and account.suspended_on is not None
            and ladder.suspended_notice_days > 0):
        every = ladder.suspended_notice_days
        k = (today - account.suspended_on).days // every
        key = f"still-suspended:{account.subscriber_id}:{account.suspended_on}:{k}"
        if k >= 1 and key not in done_on:
            actions.append(Action("still_suspended", key,
                                  amount=overdue_amount(account, today)))
    if (suspended and ladder.terminate_after_days is not None
            and account.suspended_on is not None
            and today >= account.suspended_on + dt.timedelta(days=ladder.terminate_after_days)):
        actions.append(Action("terminate", "terminate",
                              reason=f"suspended for {ladder.terminate_after_days} days"))
    return actions


def service_ends(account: Account, today: dt.date, ladder: Ladder, cal: Calendar) -> (
        dt.date | None):
    """The day the ladder would suspend *account* if nothing more is paid and every future
    step goes out on time (None: nothing open leads to suspension). A prepaid subscriber's
    service runs until the start of this day: RADIUS and the ladder agree."""
    done_on = {k: account.done_on.get(k, today) for k in account.done}
    # while a promise runs the ladder holds its final reminder back: it goes out the day
    # after the promise, and the suspension follows it, as from that day
    promise = account.promise_until if (
        account.promise_until is not None and account.promise_until >= today) else None
    start = promise + ONE_DAY if promise is not None else today
    days = [schedule(inv, start, ladder, cal, done_on, notices=True, promised=False,
                     currency=account.currency, project=True).suspend_from
            for inv in account.unpaid if inv.outstanding > 0]
    found = [d for d in days if d is not None]
    if not found:
        return None
    day = min(found)
    if promise is not None:
        day = max(day, promise + ONE_DAY)
    return day
