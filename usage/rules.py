"""Usage rules: pure functions over plain values (no database, no clock).

A session's counters only ever say "so much since the session started". Usage per day comes
from the highest counters the session reported on each day (its *marks*): the day's usage is
how far the running maximum rose on that day. That makes the split exact whatever order the
records arrive in (a late Interim moves bytes back to the day they were used), a duplicate
changes nothing, a session spanning midnight or a period boundary is split by its interim
records, and a counter that falls back is never negative usage.

A NAS that reboots may reuse an Acct-Session-Id: its counters start again from zero. Marks
are therefore kept per *run* (the session as the NAS counts it from zero), told apart by the
start each record implies (event time less Acct-Session-Time, see :func:`run_of`); each run
has its own running maximum, so the new run's usage is counted in full, not hidden until it
passes the old run's peak.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

# (input octets = upload, output octets = download, session seconds)
Counters = tuple[int, int, int]
ZERO: Counters = (0, 0, 0)



def higher(a: Counters, b: Counters) -> Counters:
    """Each counter's maximum."""
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def contributions(marks: Mapping[dt.date, Counters]) -> dict[dt.date, Counters]:
    """Per day with a mark, how far the session's running maximum rose that day."""
    if len(marks) == 1:  # most sessions: one day, the same as the loop below
        for day, c in marks.items():
            return {day: higher(ZERO, c)}
    out: dict[dt.date, Counters] = {}
    top = ZERO
    for day in sorted(marks):
        new = higher(top, marks[day])
        out[day] = (new[0] - top[0], new[1] - top[1], new[2] - top[2])
        top = new
    return out


# How far apart (seconds) the start a record implies may be from its run's span and still
# be the same run: FreeRADIUS's receive time and the NAS's Acct-Session-Time disagree by a
# second or two, and Interims a NAS held back arrive late (as the accounting limits allow).
RUN_SLACK = 60


def run_of(runs: Mapping[int, int], start: int, at: int, session_time: int) -> int | None:
    """The run (by its start, Unix seconds) a record belongs to, among *runs* (start ->
    latest event time seen), or None for a new run. A record reported at *at* implies the
    run started at *start* (*at* less its Acct-Session-Time): it belongs to the run whose
    span [start, latest] overlaps [*start*, *at*] (within :data:`RUN_SLACK`), the nearest
    start if several do. Two runs of one session id never overlap: the NAS reused the id
    only after the old run ended (a reboot). A record without a session time (a NAS that
    never sends one) belongs to the run under way at *at*: such a NAS's resets stay
    undetected, as before runs were kept, rather than every record becoming a run."""
    best: int | None = None
    for run, seen in runs.items():
        if start <= seen + RUN_SLACK and at >= run - RUN_SLACK and (
                best is None or (abs(start - run), run) < (abs(start - best), best)):
            best = run
    if best is None and session_time == 0:
        began = [run for run in runs if run <= at + RUN_SLACK]
        best = max(began) if began else None
    return best


def counted(cap_counts: str, download: int, upload: int) -> int:
    """The bytes that count against a cap that counts *cap_counts*."""
    if cap_counts == "download":
        return download
    if cap_counts == "upload":
        return upload
    return download + upload


def calendar_month(day: dt.date) -> tuple[dt.date, dt.date]:
    """[first of the month, first of the next) around *day*."""
    start = day.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def current_period(period_start: dt.date | None, period_end: dt.date | None, today: dt.date
                   ) -> tuple[dt.date, dt.date]:
    """The period usage is counted in: the subscriber's billing period, or the calendar
    month for an account without one."""
    if period_start is not None and period_end is not None:
        return period_start, period_end
    return calendar_month(today)


@dataclass(frozen=True)
class CapState:
    """What the cap rule looks at. ``limit`` is the plan's cap plus this period's top-ups
    (None: no cap)."""

    limit: int | None
    used: int
    exempt: bool
    has_fup: bool
    throttled: bool
    notified_80: bool
    notified_100: bool


@dataclass(frozen=True)
class CapActions:
    """What to do: the notices to send, and True (throttle), False (restore) or None."""

    notice_80: bool = False
    notice_100: bool = False
    throttle: bool | None = None


def cap_actions(s: CapState) -> CapActions:
    """Throttle at the cap (when the plan has a fair-usage speed and the subscriber is not
    exempt); restore when no longer over it (new period, top-up, reset) or exempt. A notice
    at 80% and at 100%, each once per period."""
    return CapActions(*decide(s.limit, s.used, s.exempt, s.has_fup, s.throttled,
                              s.notified_80, s.notified_100))


def decide(limit: int | None, used: int, exempt: bool, has_fup: bool, throttled: bool,
           notified_80: bool, notified_100: bool) -> tuple[bool, bool, bool | None]:
    """:func:`cap_actions` on plain values, as (notice at 80%, notice at 100%, throttle):
    usage metering asks it for every subscriber of a batch, most of whom need nothing."""
    if limit is None:
        return False, False, (False if throttled else None)
    over = used >= limit
    want = over and has_fup and not exempt
    return (not exempt and not notified_80 and used * 5 >= limit * 4,
            not exempt and not notified_100 and over,
            want if want != throttled else None)


def remainder(quota: int | None, used: int) -> int | None:
    """What is left of a quota (never below zero), None without one."""
    return None if quota is None else max(0, quota - used)
