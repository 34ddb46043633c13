"""Usage this billing period, for the portal's chart.

One function, :func:`usage_this_period`, is all the portal asks; it reads the usage part
(per subscriber and day, kept by the accounting ingester).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from billing.models import Subscriber
from usage import service as usage_service


@dataclass(frozen=True)
class DayUsage:
    """Bytes a subscriber moved on one day (download: to the subscriber)."""

    day: dt.date
    download: int
    upload: int


def period_of(sub: Subscriber, today: dt.date) -> tuple[dt.date, dt.date]:
    """The current billing period (first and last day); the month so far without one."""
    if sub.period_start and sub.period_end and sub.period_start <= today:
        return sub.period_start, min(sub.period_end, today)
    return today.replace(day=1), today


def usage_this_period(session: Session, sub: Subscriber, today: dt.date) -> list[DayUsage]:
    """One entry per day of the current period up to *today* (zero on days without use),
    from the usage part's per-day metering (a session's bytes on the days they moved)."""
    first, last = period_of(sub, today)
    days = {first + dt.timedelta(days=i): (0, 0) for i in range((last - first).days + 1)}
    for row in usage_service.daily_usage(session, sub.id, first, last + dt.timedelta(days=1)):
        if row.day in days:
            days[row.day] = (int(row.download), int(row.upload))
    return [DayUsage(d, down, up) for d, (down, up) in sorted(days.items())]
