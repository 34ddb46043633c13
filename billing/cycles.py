"""Billing periods: when each period of a plan starts and ends. Pure, no I/O.

Periods are half-open ranges of the ISP's local dates, ``[start, end)``: a period that ends on
1 December covers 30 November entirely and not 1 December.

* monthly on the anniversary: the same day of the month as activation, clamped to the month's
  last day (a subscriber activated on 31 January renews on 28 February, then 31 March);
* monthly on a fixed billing day (1-28): every period ends on that day; the first one runs
  from activation to the next billing day and is prorated;
* weekly, daily, and N-day validity (prepaid packs, Hotspot vouchers).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

ANNIVERSARY, FIXED_DAY = "anniversary", "fixed_day"


@dataclass(frozen=True)
class Cycle:
    """How a plan renews."""

    kind: str  # monthly | weekly | daily | days
    anchor: str = ANNIVERSARY  # monthly only: anniversary | fixed_day
    billing_day: int | None = None  # monthly fixed_day: 1-28
    validity_days: int | None = None  # days

    def __post_init__(self) -> None:
        if self.kind not in ("monthly", "weekly", "daily", "days"):
            raise ValueError(f"unknown cycle {self.kind!r}")
        if self.kind == "monthly" and self.anchor == FIXED_DAY and not (
            self.billing_day and 1 <= self.billing_day <= 28
        ):
            raise ValueError("a fixed billing day must be 1-28")
        if self.kind == "days" and not (self.validity_days and self.validity_days > 0):
            raise ValueError("an N-day cycle needs validity_days")


def add_months(day: dt.date, months: int, anchor_day: int) -> dt.date:
    """The date *months* after *day*'s month, on *anchor_day* clamped to that month's end."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(anchor_day, last))


def period_end(cycle: Cycle, start: dt.date, anchor_day: int) -> dt.date:
    """The end (exclusive) of the period that starts on *start*."""
    if cycle.kind == "daily":
        return start + dt.timedelta(days=1)
    if cycle.kind == "weekly":
        return start + dt.timedelta(days=7)
    if cycle.kind == "days":
        assert cycle.validity_days is not None
        return start + dt.timedelta(days=cycle.validity_days)
    if cycle.anchor == FIXED_DAY:
        assert cycle.billing_day is not None
        candidate = start.replace(day=cycle.billing_day)
        return candidate if candidate > start else add_months(start, 1, cycle.billing_day)
    return add_months(start, 1, anchor_day)


def full_period_days(cycle: Cycle, end: dt.date, anchor_day: int) -> int:
    """How many days a whole period ending on *end* has (the base for proration)."""
    if cycle.kind != "monthly":
        return (period_end(cycle, end, anchor_day) - end).days
    day = cycle.billing_day if cycle.anchor == FIXED_DAY and cycle.billing_day else anchor_day
    return (end - add_months(end, -1, day)).days
