"""Usage this billing period, for the portal's chart.

One function, :func:`usage_this_period`, is all the portal asks: today it sums the
per-session accounting totals (a session's bytes count on the day it started, in the ISP's
time zone); when per-day usage tables exist, only this function changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from billing.isp import settings as isp_settings
from billing.models import Subscriber
from radius import accounting


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
    """One entry per day of the current period up to *today* (zero on days without use)."""
    first, last = period_of(sub, today)
    zone = ZoneInfo(isp_settings(session).timezone)
    start = dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    days = {first + dt.timedelta(days=i): [0, 0] for i in range((last - first).days + 1)}
    for row in accounting.sessions_between(session, sub.username, start, end):
        started = row.started_at if row.started_at.tzinfo else row.started_at.replace(
            tzinfo=dt.UTC)
        day = max(first, started.astimezone(zone).date())
        if day in days:
            # Acct-Output is what the NAS sent to the subscriber: their download.
            days[day][0] += int(row.output_octets or 0)
            days[day][1] += int(row.input_octets or 0)
    return [DayUsage(d, v[0], v[1]) for d, v in sorted(days.items())]
