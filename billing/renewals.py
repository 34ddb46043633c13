"""Renewals: which period invoices come due by a day, with their dates and lines. Pure, no I/O.

Both paths of the billing run (:func:`billing.run.renew` per account and
:mod:`billing.batch` set-based) bill periods with these rules:

* A document is dated the day it is really issued: the run's day. A prepaid period is
  invoiced ahead, the reminder lead before it starts (less than a period: a daily pack is
  invoiced on its day), and is due on its first day. A postpaid period is invoiced at its end.
* Due dates count from the issue date with the plan's terms: postpaid after the ISP's payment
  terms; prepaid on the period's first day when issued ahead of it, and otherwise (the first
  invoice of a new subscriber, a renewal a missed run issues late) after the ISP's payment
  terms, at most the period's length less a day. With the ISP's strict-prepay setting the
  first invoice is due at once: service starts when it is paid.
* A monthly period shorter than a whole month (the first period to a fixed billing day)
  is prorated on the whole month's days. A postpaid period the subscriber changed plan in is
  billed with a line per plan, each prorated on the whole period's days.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from billing.cycles import Cycle, full_period_days, period_end
from billing.invoices import Line
from billing.money import prorate

ONE_DAY = dt.timedelta(days=1)


class Priced(Protocol):
    """What renewals read of a plan (a :class:`billing.models.Plan`)."""

    id: int
    name: str
    price: Decimal
    currency: str
    setup_fee: Decimal
    reminder_days: int
    tax_percent: Decimal

    @property
    def prepaid(self) -> bool: ...


@dataclass(frozen=True)
class Segment:
    """Part of a period on one plan: [start, end)."""

    start: dt.date
    end: dt.date
    plan: Priced


@dataclass(frozen=True)
class Bill:
    """A period invoice to issue."""

    start: dt.date
    end: dt.date
    plan: Priced  # the plan the period is invoiced at (its last segment's)
    issued: dt.date
    due: dt.date
    opening: bool  # the first period since billing started
    segments: tuple[Segment, ...] = ()


@dataclass
class Renewal:
    """What renewing an account by a day does: the bills, the plan switch a scheduled change
    makes (the day it takes effect), and where the account's current period ends up."""

    bills: list[Bill] = field(default_factory=list)
    switched_on: dt.date | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None


def lead_days(reminder_days: int, start: dt.date, end: dt.date) -> int:
    """How many days before a prepaid period its invoice is issued: the reminder lead, but
    always less than a period (a daily pack is invoiced on its day)."""
    return max(0, min(reminder_days, (end - start).days - 1))


def due_date(*, prepaid: bool, start: dt.date, end: dt.date, issued: dt.date,
             terms_days: int, opening: bool, strict_prepay: bool,
             whole_days: int | None = None) -> dt.date:
    """The due date of a period invoice issued on *issued* (see the module documentation).
    *whole_days*: the days of a whole period of the plan (a short first period is still due
    after the full payment terms; a daily pack at once)."""
    if not prepaid:
        return issued + dt.timedelta(days=terms_days)
    if issued < start:
        return start
    if opening and strict_prepay:
        return issued
    length = whole_days if whole_days is not None else (end - start).days
    return issued + dt.timedelta(days=min(terms_days, max(0, length - 1)))


def renewals(*, period_start: dt.date, period_end_: dt.date, anchor_day: int | None,
             last_billed: dt.date | None, plan: Priced, cycle: Cycle,
             next_plan: Priced | None, next_cycle: Cycle | None, as_of: dt.date,
             terms_days: int, strict_prepay: bool, billing_started_on: dt.date | None,
             changes: Sequence[tuple[dt.date, Priced, Priced]] = ()) -> Renewal:
    """Every period invoice due by *as_of* for an account whose current period is
    [*period_start*, *period_end_*) and whose latest period invoice started on
    *last_billed*. *changes* are the account's plan changes (day, from, to), oldest first,
    for postpaid periods billed per plan."""
    out = Renewal()
    start, end = period_start, period_end_
    last = last_billed

    def bill(s: dt.date, e: dt.date, p: Priced, c: Cycle) -> None:
        nonlocal last
        opening = billing_started_on is not None and s == billing_started_on
        out.bills.append(Bill(s, e, p, as_of, due_date(
            prepaid=p.prepaid, start=s, end=e, issued=as_of, terms_days=terms_days,
            opening=opening, strict_prepay=strict_prepay,
            whole_days=full_period_days(c, e, anchor_day or s.day)), opening,
            segments_of(s, e, p, changes) if not p.prepaid else ()))
        last = s

    for _ in range(400):  # a year of missed daily runs at most; the next run goes on
        if plan.prepaid:
            if start <= as_of and (last is None or start > last):
                bill(start, end, plan, cycle)
            # the next period is invoiced ahead, at the plan it will run on (unless that
            # plan is postpaid: then the period is invoiced at its end)
            upcoming, up_cycle = (next_plan, next_cycle) if next_plan else (plan, cycle)
            assert up_cycle is not None
            following = period_end(up_cycle, end, anchor_day or end.day)
            issue_on = end - dt.timedelta(days=lead_days(upcoming.reminder_days, end,
                                                         following))
            if upcoming.prepaid and issue_on <= as_of and (last is None or end > last):
                bill(end, following, upcoming, up_cycle)
        elif end <= as_of and (last is None or start > last):
            bill(start, end, plan, cycle)
        if end > as_of:
            break
        if next_plan is not None:
            assert next_cycle is not None
            plan, cycle, next_plan, next_cycle = next_plan, next_cycle, None, None
            out.switched_on = end
        start, end = end, period_end(cycle, end, anchor_day or end.day)
    out.period_start, out.period_end = start, end
    return out


def segments_of(start: dt.date, end: dt.date, plan: Priced,
              changes: Sequence[tuple[dt.date, Priced, Priced]]) -> tuple[Segment, ...]:
    """[start, end) split at the plan changes made inside it."""
    inside = [c for c in changes if start < c[0] < end]
    if not inside:
        return (Segment(start, end, plan),)
    out: list[Segment] = []
    cursor, current = start, inside[0][1]
    for day, _old, new in inside:
        out.append(Segment(cursor, day, current))
        cursor, current = day, new
    out.append(Segment(cursor, end, current))
    return tuple(out)


@functools.lru_cache(maxsize=1024)  # strftime is slow; a run labels the same periods
def _label(name: str, start: dt.date, end: dt.date) -> str:
    return f"{name} {start:%d %b %Y} - {end - ONE_DAY:%d %b %Y}"


def period_lines(bill: Bill, cycle: Cycle, anchor_day: int | None, *, setup_fee_due: bool,
                 whole_end: dt.date | None = None) -> list[Line]:
    """The lines of a period invoice: the plan for the period (prorated on the whole
    period's days when the period is short, a line per plan when it changed), and the
    one-off setup fee on the first invoice. *whole_end*: the end of the period a short bill
    is part of (its days are the base), when the bill ends early."""
    whole = full_period_days(cycle, whole_end or bill.end, anchor_day or bill.start.day)
    segments = bill.segments or (Segment(bill.start, bill.end, bill.plan),)
    lines: list[Line] = []
    for seg in segments:
        days = (seg.end - seg.start).days
        label = _label(seg.plan.name, seg.start, seg.end)
        rate = seg.plan.tax_percent  # each plan's days at its own tax rate
        if days < whole:
            lines.append(Line(f"{label} ({days} of {whole} days)",
                              prorate(seg.plan.price, days, whole, seg.plan.currency),
                              vat_percent=rate))
        else:
            lines.append(Line(label, seg.plan.price, vat_percent=rate))
    if bill.plan.setup_fee > 0 and setup_fee_due:
        lines.append(Line("Connection (setup) fee", bill.plan.setup_fee))
    return lines
