"""What the RADIUS policy reads of billing, in plain SQL through the driver.

The policy's snapshot (:mod:`radius.snapshot`) runs inside FreeRADIUS, where SQLAlchemy and
the ORM models would cost some 35 MB of the server's memory: it reads the subscribers, plans
and the billing run's progress here, through a :class:`~radbill.dbapi.Reader`, and nothing
else of billing. The columns are those of :class:`~billing.models.Subscriber`,
:class:`~billing.models.Plan` and :class:`~billing.models.IspSettings` (a test compares what
these read with what the ORM reads, on both databases).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from radbill.dbapi import Reader, day, utc

AUTH_CHUNK = 1_000  # rows per fetch from the server-side cursor (few at a time: less left behind)

# the columns of subscribers the snapshot may ask for: names are never taken from elsewhere
SUBSCRIBER_COLUMNS = frozenset({
    "username", "password_enc", "service", "status", "plan_id", "static_ip", "ip_pool",
    "mac_address", "simultaneous_use", "paid_until", "fup_throttled", "framed_ipv6_prefix",
    "delegated_ipv6_prefix", "ipv6_pool", "cap_throttled", "quota_left_bytes",
    "quota_left_seconds", "auth_version",
})


class PlanRow(NamedTuple):
    """A plan as the policy reads it (the :class:`~billing.models.Plan` columns of these
    names; :func:`billing.rates.plan_rate` and friends take it as they take a Plan)."""

    id: int
    name: str
    download_bps: int
    upload_bps: int
    burst_download_bps: int | None
    burst_upload_bps: int | None
    burst_threshold_download_bps: int | None
    burst_threshold_upload_bps: int | None
    burst_time_s: int | None
    data_cap_bytes: int | None
    fup_download_bps: int | None
    fup_upload_bps: int | None
    time_quota_s: int | None
    ip_pool: str | None
    ipv6_pool: str | None
    delegated_ipv6_pool: str | None
    idle_timeout: int | None
    auth_version: int


_PLANS = (f"SELECT {', '.join(PlanRow._fields)} FROM plans "  # noqa: S608 - names of our own
          "WHERE auth_version > %(version)s")


def plans_since(reader: Reader, version: int) -> list[PlanRow]:
    """Plans whose authorization state changed after *version* of the auth feed."""
    return [PlanRow(*row) for row in reader.rows(_PLANS, {"version": version})]


def auth_rows_since(reader: Reader, version: int, columns: Sequence[str],
                    chunk: int = AUTH_CHUNK) -> Iterator[Sequence[Sequence[Any]]]:
    """The subscribers whose authorization state changed after *version* of the auth feed
    (everything for version 0): only the named *columns* (in that order), in lists of at
    most *chunk* rows from a server-side cursor, so a million subscribers are never in
    memory at once. Statuses come as the text stored; timestamps as aware UTC datetimes on
    both databases; flags as stored (SQLite: 0/1)."""
    unknown = set(columns) - SUBSCRIBER_COLUMNS
    if unknown:
        raise ValueError(f"not a subscriber column the policy reads: {sorted(unknown)}")
    sql = (f"SELECT {', '.join(columns)} FROM subscribers "  # noqa: S608 - checked above
           "WHERE auth_version > %(version)s")
    times = [i for i, name in enumerate(columns) if name in _TIMESTAMPS]
    for rows in reader.chunks(sql, {"version": version}, chunk):
        # SQLite holds the text SQLAlchemy wrote there
        yield [_with_utc(row, times) for row in rows] if reader.sqlite and times else rows


_TIMESTAMPS = frozenset({"paid_until"})


def _with_utc(row: Sequence[Any], times: list[int]) -> list[Any]:
    values = list(row)
    for i in times:
        values[i] = utc(values[i])
    return values


def billed_until(reader: Reader) -> dt.datetime | None:
    """:func:`billing.isp.billed_until`: the end of the last day billing ran for, as UTC
    (None before the first run)."""
    found = reader.rows("SELECT billed_through, timezone FROM isp_settings WHERE id = 1")
    if not found:
        raise RuntimeError("ISP settings missing: run 'radbill db upgrade'")
    through, zone = found[0]
    return end_of_billed_day(day(through), zone)


def end_of_billed_day(billed_through: dt.date | None, timezone: str) -> dt.datetime | None:
    """The end of the ISP's day *billed_through* (local midnight after it) as UTC; None
    before the first run."""
    if billed_through is None:
        return None
    following = billed_through + dt.timedelta(days=1)
    return dt.datetime.combine(following, dt.time(0), tzinfo=ZoneInfo(timezone)
                               ).astimezone(dt.UTC)
