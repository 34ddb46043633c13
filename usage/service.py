"""Usage service: metering from accounting, the period's cap state, throttling to the
fair-usage speed and back, notices, operator exemptions, counter resets, top-ups, Hotspot
quota remainders, and the set of subscribers over their cap.

:func:`record_usage` runs inside the accounting ingester's transaction (see
:func:`radius.ingest.apply_accounting`): the usage moves with the sessions it comes from, so a
crash applies both or neither, and a replayed record changes nothing. It touches only the
sessions and subscribers of the batch (a few statements per chunk of 300, never scans): it
reads plain rows (``= ANY(array)`` on PostgreSQL, IN lists elsewhere), computes in Python,
and writes with executemany (COPY, ``UPDATE .. FROM unnest`` and an array upsert on
PostgreSQL); only a subscriber the cap rule acts on is loaded as ORM objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    and_,
    any_,
    bindparam,
    case,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from billing.accounts import enforce
from billing.batch import Rows
from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.models import Plan, ServiceType, Subscriber
from billing.plans import parse_money, parse_size
from billing.subscribers import get_subscriber
from notify.outbox import enqueue
from radbill import audit
from radbill.db import AUTH_FEED, bump, expire_held, utcnow
from radbill.errors import Conflict, InvalidInput, NotFound
from radbill.gcpause import collector_paused
from radbill.pgarrays import column
from radius.accounting import INTERIM, START, STOP, AcctRecord
from usage import rules
from usage.models import Topup, TopupPack, UsageDay, UsageSessionDay, UsageState

CHUNK = 300
# Keys per statement on PostgreSQL, where they go as arrays (one parameter per column, the
# same text whatever the count): the ingester's largest batch, so one statement a batch.
PG_CHUNK = 5000
ACTOR = "usage"
T = TypeVar("T")
Key = tuple[str, str, str]


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _ids_in(session: Session, col: ColumnElement[int] | InstrumentedAttribute[int],
            ids: Sequence[int]
            ) -> ColumnElement[bool]:
    """``col IN ids``; on PostgreSQL ``col = ANY(array)``: one parameter and the same
    statement text whatever the count, so it is not parsed afresh for each batch."""
    if session.get_bind().dialect.name == "postgresql":
        return col == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))
    return col.in_(list(ids))


# -- metering ----------------------------------------------------------------------------------


def record_usage(session: Session, recs: Sequence[AcctRecord],
                 subscriber_ids: Mapping[str, int], now: dt.datetime | None = None, *,
                 while_computing: AbstractContextManager[object] | None = None) -> set[int]:
    """Add what *recs* (accounting records the accounting service applied) say was used to
    the subscribers' days and current periods, throttle or notify whoever crossed a mark,
    and update Hotspot quota remainders, in the caller's transaction. Records of unknown
    users count for nobody. Returns the subscribers whose usage changed.

    *while_computing*, if given, is entered once the stored marks are read and left before
    the next statement: inside it this function does arithmetic only, never touching the
    session or its connection, so the caller may use the connection meanwhile (the
    ingester writes the batch's sessions there). It is not entered when nothing is to be
    read (no record of a known subscriber with something counted)."""
    with collector_paused():
        return _record_usage(session, recs, subscriber_ids, now,
                             while_computing or nullcontext())


def _record_usage(session: Session, recs: Sequence[AcctRecord],
                  subscriber_ids: Mapping[str, int], now: dt.datetime | None,
                  while_computing: AbstractContextManager[object]) -> set[int]:
    isp = isp_settings(session)
    tz = ZoneInfo(isp.timezone)
    today = local_today(isp, now or utcnow())
    marks, owner = _marks(recs, subscriber_ids, tz)
    if not marks:
        return set()
    keys = sorted(marks)
    # Plain rows and executemany statements, not ORM objects: this runs for every batch.
    stored = _stored_marks(session, keys)
    with while_computing:
        inserts, updates, deltas = _changes(keys, stored, marks, owner)
    _write_marks(session, inserts, updates)
    if not deltas:
        return set()
    _add_days(session, deltas)
    touched = sorted({sid for sid, _ in deltas})
    _update_periods(session, touched, deltas, today)
    return set(touched)


# what a batch reported per session (event time, local day, counters), and what is stored
Marks = dict[Key, list[tuple[int, dt.date, rules.Counters]]]
Stored = dict[Key, dict[tuple[int, dt.date], tuple[int, rules.Counters, int]]]


def _changes(keys: Sequence[Key], stored: Stored, marks: Marks, owner: Mapping[Key, int]
             ) -> tuple[list[dict[str, object]], list[dict[str, object]],
                        dict[tuple[int, dt.date], list[int]]]:
    """The marks to insert and update, and the usage each subscriber's days gain (download,
    upload, seconds), from the stored marks of the sessions and what the batch reported.
    Arithmetic only: no database."""
    deltas: dict[tuple[int, dt.date], list[int]] = {}
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    no_rows: dict[tuple[int, dt.date], tuple[int, rules.Counters, int]] = {}
    for key in keys:
        rows = stored.get(key, no_rows)
        sid = owner[key]
        before, after, seen_after = _runs(rows, marks[key])
        for run, days in after.items():
            for day, c in days.items():
                old_row = rows.get((run, day))
                seen = seen_after[(run, day)]
                if old_row is None:
                    inserts.append({"nas_ip": key[0], "acct_session_id": key[1],
                                    "username": key[2], "run_start": run, "day": day,
                                    "subscriber_id": sid, "input_octets": c[0],
                                    "output_octets": c[1], "session_time": c[2],
                                    "run_seen": seen})
                elif old_row[1] != c or old_row[2] != seen:
                    updates.append({"id": old_row[0], "input_octets": c[0],
                                    "output_octets": c[1], "session_time": c[2],
                                    "run_seen": seen})
            old_days = before.get(run)
            if old_days == days:  # no mark of the run moved: nor did its usage
                continue
            was = rules.contributions(old_days) if old_days else {}
            for day, c in rules.contributions(days).items():
                old = was.get(day, rules.ZERO)
                if c != old:
                    d = deltas.get((sid, day))
                    if d is None:
                        d = deltas[(sid, day)] = [0, 0, 0]
                    d[0] += c[1] - old[1]  # download: output octets
                    d[1] += c[0] - old[0]  # upload: input octets
                    d[2] += c[2] - old[2]
    return inserts, updates, deltas


RunDays = dict[int, dict[dt.date, rules.Counters]]  # run start -> day -> the day's mark


def _runs(rows: Mapping[tuple[int, dt.date], tuple[int, rules.Counters, int]],
          found: Sequence[tuple[int, dt.date, rules.Counters]]
          ) -> tuple[RunDays, RunDays, dict[tuple[int, dt.date], int]]:
    """One session's marks per run and day before and after the records *found* (event
    time, day, counters; in event time order), and the latest event time of each run and
    day after them. *rows*: the stored marks (row id, counters, latest event time)."""
    runs: dict[int, int] = {}  # run start -> the latest event time seen of the run
    before: RunDays = {}
    for (run, day), (_, c, seen) in rows.items():
        runs[run] = max(runs.get(run, seen), seen)
        before.setdefault(run, {})[day] = c
    after = {run: dict(days) for run, days in before.items()}
    seen_after = {k: seen for k, (_, _, seen) in rows.items()}
    for at, day, counters in found:
        known = rules.run_of(runs, at - counters[2], at, counters[2])
        run = at - counters[2] if known is None else known
        runs[run] = max(runs.get(run, at), at)
        days = after.setdefault(run, {})
        days[day] = rules.higher(days.get(day, rules.ZERO), counters)
        seen_after[(run, day)] = max(seen_after.get((run, day), at), at)
    return before, after, seen_after


# Fixed texts with the keys as binary arrays (%b): prepared once per connection, and no
# text array built element by element in Python (see radius.accounting.apply_many).
_PG_MARKS = (
    "SELECT t.id, t.nas_ip, t.acct_session_id, t.username, t.day, t.input_octets, "
    "t.output_octets, t.session_time, t.run_start, t.run_seen FROM usage_session_days AS t "
    "JOIN unnest(%b::varchar[], %b::varchar[], %b::varchar[]) AS k(nas_ip, acct_session_id, "
    "username) ON t.nas_ip = k.nas_ip AND t.acct_session_id = k.acct_session_id "
    "AND t.username = k.username FOR UPDATE OF t")


def _stored_marks(session: Session, keys: Sequence[Key]) -> Stored:
    """The marks already kept for these sessions (row id, counters and the latest event
    time per run and day), locked: on PostgreSQL one statement per :data:`PG_CHUNK` keys
    (joined to them as three arrays), elsewhere tuple IN lists of :data:`CHUNK`."""
    stored: Stored = {}
    t = cast(Table, UsageSessionDay.__table__)
    if session.get_bind().dialect.name == "postgresql":
        conn = session.connection()
        for chunk in _chunks(keys, PG_CHUNK):
            # .all(): one fetch of every row (iterating fetches them one by one)
            rows: Iterator[Any] = iter(conn.exec_driver_sql(_PG_MARKS, tuple(
                column([c[i] for c in chunk], "varchar") for i in range(3))).all())
            for rid, nas, acct_id, user, day, i, o, st, run, seen in rows:
                stored.setdefault((nas, acct_id, user), {})[(run, day)] = (rid, (i, o, st),
                                                                            seen)
        return stored
    with session.no_autoflush:
        for chunk in _chunks(keys):
            query = (select(t.c.id, t.c.nas_ip, t.c.acct_session_id, t.c.username,
                            t.c.day, t.c.input_octets, t.c.output_octets,
                            t.c.session_time, t.c.run_start, t.c.run_seen)
                     .where(tuple_(t.c.nas_ip, t.c.acct_session_id, t.c.username)
                            .in_(list(chunk))).with_for_update())
            for rid, nas, acct_id, user, day, i, o, st, run, seen in session.execute(query):
                stored.setdefault((nas, acct_id, user), {})[(run, day)] = (rid, (i, o, st),
                                                                            seen)
    return stored


def _write_marks(session: Session, inserts: list[dict[str, object]],
                 updates: list[dict[str, object]]) -> None:
    t = cast(Table, UsageSessionDay.__table__)
    rows = Rows(session)  # COPY and one UPDATE .. FROM unnest on PostgreSQL
    rows.insert(t, inserts)
    rows.update(t, updates)


def _marks(recs: Sequence[AcctRecord], subscriber_ids: Mapping[str, int], tz: ZoneInfo
           ) -> tuple[Marks, dict[Key, int]]:
    """What each session of a known subscriber reported in *recs*: (event time in Unix
    seconds, local day, counters) in event time order, and whose each session is. A record
    with nothing counted yet (a Start) is left out: it raises no mark."""
    marks: Marks = {}
    owner: dict[Key, int] = {}
    # a batch's records share few event times (whole seconds): each converted once
    when: dict[dt.datetime, tuple[int, dt.date]] = {}
    for r in recs:
        if r.status not in (START, INTERIM, STOP) or r.username is None:
            continue
        sid = subscriber_ids.get(r.username)
        if sid is None or r.acct_session_id is None:
            continue
        counters = (r.input_octets, r.output_octets, r.session_time)
        if counters == rules.ZERO:
            continue
        key = (r.nas_ip, r.acct_session_id, r.username)
        at = when.get(r.event_time)
        if at is None:
            at = when[r.event_time] = (int(r.event_time.timestamp()),
                                       r.event_time.astimezone(tz).date())
        marks.setdefault(key, []).append((*at, counters))
        owner[key] = sid
    for found in marks.values():
        found.sort()
    return marks, owner


def _add_days(session: Session, deltas: Mapping[tuple[int, dt.date], list[int]]) -> None:
    """Add the deltas to the subscribers' days in (subscriber, day) order with one upsert
    (INSERT .. ON CONFLICT DO UPDATE adding to the stored figures): on PostgreSQL one
    statement over arrays (sent in binary: psycopg writes text arrays element by element in
    Python), elsewhere an executemany."""
    t = cast(Table, UsageDay.__table__)
    pairs = sorted(deltas)
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(
            "INSERT INTO usage_days (subscriber_id, day, download, upload, seconds) "
            "SELECT * FROM unnest(%b::bigint[], %b::date[], %b::bigint[], %b::bigint[], "
            "%b::bigint[]) AS u(subscriber_id, day, download, upload, seconds) "
            "ORDER BY subscriber_id, day "
            "ON CONFLICT (subscriber_id, day) DO UPDATE SET "
            "download = usage_days.download + excluded.download, "
            "upload = usage_days.upload + excluded.upload, "
            "seconds = usage_days.seconds + excluded.seconds",
            (column([p[0] for p in pairs], "bigint"), column([p[1] for p in pairs], "date"),
             column([deltas[p][0] for p in pairs], "bigint"),
             column([deltas[p][1] for p in pairs], "bigint"),
             column([deltas[p][2] for p in pairs], "bigint")))
        return
    stmt = sqlite_insert(t)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.subscriber_id, t.c.day],
        set_={"download": t.c.download + stmt.excluded.download,
              "upload": t.c.upload + stmt.excluded.upload,
              "seconds": t.c.seconds + stmt.excluded.seconds}),
        [{"subscriber_id": p[0], "day": p[1], "download": deltas[p][0],
          "upload": deltas[p][1], "seconds": deltas[p][2]} for p in pairs])


@dataclass
class _Period:
    """A subscriber's period state as plain values (a usage_states row, or one to insert)."""

    period_start: dt.date
    period_end: dt.date
    download: int
    upload: int
    seconds: int
    extra_bytes: int
    notified_80: bool
    notified_100: bool
    exempt: bool
    stored: bool  # a row exists (UPDATE) or not (INSERT)
    rolled: bool = False  # a new period (every column written), else only the counters
    written: bool = False  # stored with this batch's deltas already (nothing to write)


_SUB_COLS = (Subscriber.id, Subscriber.period_start, Subscriber.period_end, Subscriber.service,
             Subscriber.cap_throttled, Subscriber.quota_left_bytes,
             Subscriber.quota_left_seconds, Plan.cap_counts, Plan.data_cap_bytes,
             Plan.fup_download_bps, Plan.time_quota_s)


def _update_periods(session: Session, ids: Sequence[int],
                    deltas: Mapping[tuple[int, dt.date], list[int]], today: dt.date) -> None:
    """Add the batch's deltas to the subscribers' current periods (rolling those whose
    period moved) with plain rows and executemany statements; only the few subscribers the
    cap rule acts on (a notice, a throttle or restore, a quota remainder) go through
    :func:`_evaluate` as ORM objects, in subscriber order as before."""
    if session.get_bind().dialect.name == "postgresql":
        subs, states, periods = _add_to_periods_pg(session, ids, deltas, today)
    else:
        subs, states = _read_periods(session, ids)
        periods = {sid: rules.current_period(sub[1], sub[2], today)
                   for sid, sub in subs.items()}
    stale = [sid for sid in ids if sid in subs and (
        sid not in states or states[sid].period_start != periods[sid][0])]
    fresh = set(stale)
    for (sid, day), d in deltas.items():
        state = states.get(sid)
        if (sid in fresh or state is None or state.written
                or not periods[sid][0] <= day < periods[sid][1]):
            continue
        state.download += d[0]
        state.upload += d[1]
        state.seconds += d[2]
    sums = _period_sums(session, [(sid, *periods[sid]) for sid in stale])
    for sid in stale:
        old = states.get(sid)
        down, up, secs = sums.get(sid, (0, 0, 0))
        states[sid] = _Period(period_start=periods[sid][0], period_end=periods[sid][1],
                              download=down, upload=up, seconds=secs, extra_bytes=0,
                              notified_80=False, notified_100=False,
                              exempt=bool(old and old.exempt), stored=old is not None,
                              rolled=True)
    acting = [sid for sid in ids if sid in subs and _acts(subs[sid], states[sid])]
    _write_periods(session, [(sid, states[sid]) for sid in ids if sid in subs])
    for chunk in _chunks(acting):
        orm_subs = {s.id: s for s in session.scalars(
            select(Subscriber).where(Subscriber.id.in_(chunk))
            .execution_options(populate_existing=True))}
        orm_states = {s.subscriber_id: s for s in session.scalars(
            select(UsageState).where(UsageState.subscriber_id.in_(chunk))
            .execution_options(populate_existing=True))}
        for sid in chunk:
            _evaluate(session, orm_subs[sid], orm_states[sid], "usage", today)


_PG_SUBS = (
    "SELECT s.id, s.period_start, s.period_end, s.service, s.cap_throttled, "
    "s.quota_left_bytes, s.quota_left_seconds, p.cap_counts, p.data_cap_bytes, "
    "p.fup_download_bps, p.time_quota_s FROM subscribers AS s JOIN plans AS p "
    "ON p.id = s.plan_id WHERE s.id = ANY(%b::integer[])")
_PG_STATES = (
    "SELECT subscriber_id, period_start, period_end, download, upload, seconds, extra_bytes, "
    "notified_80, notified_100, exempt FROM usage_states "
    "WHERE subscriber_id = ANY(%b::integer[]) FOR UPDATE")


_PG_ADD = (
    "UPDATE usage_states AS t SET download = t.download + u.download, "
    "upload = t.upload + u.upload, seconds = t.seconds + u.seconds, updated_at = %s "
    "FROM unnest(%b::integer[], %b::date[], %b::bigint[], %b::bigint[], %b::bigint[]) "
    "AS u(subscriber_id, period_start, download, upload, seconds) "
    "WHERE t.subscriber_id = u.subscriber_id AND t.period_start = u.period_start "
    "RETURNING t.subscriber_id, t.period_start, t.period_end, t.download, t.upload, "
    "t.seconds, t.extra_bytes, t.notified_80, t.notified_100, t.exempt")


def _add_to_periods_pg(session: Session, ids: Sequence[int],
                       deltas: Mapping[tuple[int, dt.date], list[int]], today: dt.date
                       ) -> tuple[dict[int, tuple[Any, ...]], dict[int, _Period],
                                  dict[int, tuple[dt.date, dt.date]]]:
    """PostgreSQL: add the deltas to the stored periods that are current in one
    ``UPDATE .. FROM unnest .. RETURNING`` (no locked read before it, no second write), and
    read (locked) only the periods it did not find: new subscribers and periods to roll.
    Returns the subscribers (rows of ``_SUB_COLS``), their periods as now stored or found
    (``written``: this batch's deltas are in them) and each one's current period."""
    subs, _ = _read_periods(session, ids, with_states=False)
    periods = {sid: rules.current_period(sub[1], sub[2], today) for sid, sub in subs.items()}
    add = {sid: [0, 0, 0] for sid in ids if sid in subs}
    for (sid, day), d in deltas.items():
        acc = add.get(sid)
        if acc is not None and periods[sid][0] <= day < periods[sid][1]:
            acc[0] += d[0]
            acc[1] += d[1]
            acc[2] += d[2]
    order = list(add)
    conn = session.connection()
    states: dict[int, _Period] = {}
    stamp = utcnow()
    for chunk in _chunks(order, PG_CHUNK):
        for row in conn.exec_driver_sql(_PG_ADD, (
                stamp, column(chunk, "integer"), column([periods[sid][0] for sid in chunk], "date"),
                column([add[sid][0] for sid in chunk], "bigint"),
                column([add[sid][1] for sid in chunk], "bigint"),
                column([add[sid][2] for sid in chunk], "bigint"))).all():
            states[row[0]] = _period(row, written=True)
    missing = [sid for sid in order if sid not in states]
    if missing:
        _, found = _read_periods(session, missing, with_subs=False)
        states.update(found)
    return subs, states, periods


def _read_periods(session: Session, ids: Sequence[int], *, with_subs: bool = True,
                  with_states: bool = True
                  ) -> tuple[dict[int, tuple[Any, ...]], dict[int, _Period]]:
    """The subscribers (rows of ``_SUB_COLS``) and their stored periods (locked): on
    PostgreSQL two statements per :data:`PG_CHUNK` ids (binary arrays, fixed text),
    elsewhere per :data:`CHUNK` ids."""
    subs: dict[int, tuple[Any, ...]] = {}
    states: dict[int, _Period] = {}
    if session.get_bind().dialect.name == "postgresql":
        conn = session.connection()
        service = {m.value: m for m in ServiceType}
        for chunk in _chunks(list(ids), PG_CHUNK):
            if with_subs:
                for row in conn.exec_driver_sql(_PG_SUBS, (column(chunk, "integer"),)).all():
                    subs[row[0]] = (row[0], row[1], row[2], service[row[3]], *row[4:])
            if with_states:
                for row in conn.exec_driver_sql(_PG_STATES, (column(chunk, "integer"),)).all():
                    states[row[0]] = _period(row)
        return subs, states
    for chunk in _chunks(list(ids)):
        if with_subs:
            subs.update((row[0], tuple(row)) for row in session.execute(
                select(*_SUB_COLS).join(Plan, Plan.id == Subscriber.plan_id)
                .where(Subscriber.id.in_(list(chunk)))))
        if not with_states:
            continue
        for row in session.execute(
                select(UsageState.subscriber_id, UsageState.period_start,
                       UsageState.period_end, UsageState.download, UsageState.upload,
                       UsageState.seconds, UsageState.extra_bytes, UsageState.notified_80,
                       UsageState.notified_100, UsageState.exempt)
                .where(UsageState.subscriber_id.in_(list(chunk)))
                .with_for_update()):
            states[row[0]] = _period(row)
    return subs, states


def _period(row: Sequence[Any], *, written: bool = False) -> _Period:
    """A stored period from a row (subscriber id, period start and end, download, upload,
    seconds, extra bytes, notified at 80 and 100%, exempt)."""
    _, start, end, down, up, secs, extra, n80, n100, exempt = row
    return _Period(start, end, down, up, secs, extra, n80, n100, exempt, stored=True,
                   written=written)


def _write_periods(session: Session, periods: Sequence[tuple[int, _Period]]) -> None:
    """Store the periods (new rows, rolled periods, and only the counters of the rest, one
    statement each), and expire the ORM copies
    of these rows a caller may hold."""
    t = cast(Table, UsageState.__table__)
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    counters: list[dict[str, object]] = []
    stamp = utcnow()
    for sid, st in periods:
        if st.written:
            continue
        if st.stored and not st.rolled:
            counters.append({"subscriber_id": sid, "download": st.download,
                             "upload": st.upload, "seconds": st.seconds, "updated_at": stamp})
            continue
        values = {"period_start": st.period_start, "period_end": st.period_end,
                  "download": st.download, "upload": st.upload, "seconds": st.seconds,
                  "extra_bytes": st.extra_bytes, "notified_80": st.notified_80,
                  "notified_100": st.notified_100, "exempt": st.exempt, "updated_at": stamp}
        if st.stored:
            updates.append({"subscriber_id": sid, **values})
        else:
            inserts.append({"subscriber_id": sid, **values})
    rows = Rows(session)  # COPY and one UPDATE .. FROM unnest on PostgreSQL
    rows.insert(t, inserts)
    rows.update(t, updates, key="subscriber_id")
    rows.update(t, counters, key="subscriber_id")
    expire_held(session, UsageState, (sid for sid, _ in periods))


def _acts(sub: tuple[Any, ...], st: _Period) -> bool:
    """Whether :func:`_evaluate` would do anything for this subscriber (*sub*: a row of
    ``_SUB_COLS``): a notice due, a throttle or restore, a quota remainder to change."""
    _, _, _, service, throttled, q_bytes, q_secs, counts, cap, fup, time_quota = sub
    used = rules.counted(counts, st.download, st.upload)
    limit = cap + st.extra_bytes if cap is not None else None
    notice_80, notice_100, throttle = rules.decide(
        limit, used, st.exempt, fup is not None, throttled, st.notified_80, st.notified_100)
    if notice_80 or notice_100 or throttle is not None:
        return True
    if service is ServiceType.HOTSPOT and (
            time_quota is not None or (cap is not None and fup is None)):
        left_bytes = (rules.remainder(limit, st.download + st.upload)
                      if fup is None else None)
        left_secs = rules.remainder(time_quota, st.seconds)
    else:
        left_bytes = left_secs = None
    return (left_bytes, left_secs) != (q_bytes, q_secs)


def _period_sums(session: Session, spans: Sequence[tuple[int, dt.date, dt.date]]
                 ) -> dict[int, list[int]]:
    """(download, upload, seconds) each subscriber used on the days of its own
    [start, end), for (subscriber id, start, end) spans (one query per chunk)."""
    sums: dict[int, list[int]] = {}
    pg = session.get_bind().dialect.name == "postgresql"
    for chunk in _chunks(spans, PG_CHUNK if pg else CHUNK):
        low, high = min(r[1] for r in chunk), max(r[2] for r in chunk)
        span = {r[0]: (r[1], r[2]) for r in chunk}
        with session.no_autoflush:
            for sid, day, down, up, secs in session.execute(
                    select(UsageDay.subscriber_id, UsageDay.day, UsageDay.download,
                           UsageDay.upload, UsageDay.seconds)
                    .where(_ids_in(session, UsageDay.subscriber_id, list(span)),
                           UsageDay.day >= low,
                           UsageDay.day < high)):
                if span[sid][0] <= day < span[sid][1]:
                    acc = sums.setdefault(sid, [0, 0, 0])
                    acc[0] += down
                    acc[1] += up
                    acc[2] += secs
    return sums


def _load(session: Session, ids: Sequence[int]
          ) -> tuple[dict[int, Subscriber], dict[int, UsageState]]:
    subs: dict[int, Subscriber] = {}
    states: dict[int, UsageState] = {}
    for chunk in _chunks(list(ids)):
        subs.update((s.id, s) for s in session.scalars(
            select(Subscriber).where(Subscriber.id.in_(chunk))))
        states.update((s.subscriber_id, s) for s in session.scalars(
            select(UsageState).where(UsageState.subscriber_id.in_(chunk)).with_for_update()))
    return subs, states


def _roll_many(session: Session,
               rolls: Sequence[tuple[Subscriber, UsageState | None, dt.date, dt.date]]
               ) -> dict[int, UsageState]:
    """Start counting a new period for each (subscriber, old state, start, end): its usage
    so far from the days (one query per chunk, each subscriber's own range), no top-ups, no
    notices; an exemption carries over."""
    out: dict[int, UsageState] = {}
    sums = _period_sums(session, [(r[0].id, r[2], r[3]) for r in rolls])
    for chunk in _chunks(rolls):
        for sub, old, start, end in chunk:
            state = old
            if state is None:
                state = UsageState(subscriber_id=sub.id, exempt=False)
                session.add(state)
            state.period_start, state.period_end = start, end
            state.download, state.upload, state.seconds = sums.get(sub.id, [0, 0, 0])
            state.extra_bytes = 0
            state.notified_80 = state.notified_100 = False
            out[sub.id] = state
    return out


def _roll(session: Session, sub: Subscriber, state: UsageState | None, start: dt.date,
          end: dt.date) -> UsageState:
    """:func:`_roll_many` for one subscriber."""
    return _roll_many(session, [(sub, state, start, end)])[sub.id]


def _has_quota(sub: Subscriber, plan: Plan) -> bool:
    # A Hotspot plan's cap with no fair-usage speed to fall back to is a prepaid quota the
    # NAS enforces itself (Mikrotik-Total-Limit); a time quota is one by definition.
    return sub.service is ServiceType.HOTSPOT and (
        plan.time_quota_s is not None
        or (plan.data_cap_bytes is not None and plan.fup_download_bps is None))


def _evaluate(session: Session, sub: Subscriber, state: UsageState, actor: str,
              today: dt.date) -> None:
    """Apply the cap rule to one subscriber: notices, throttle or restore, quota remainders."""
    plan = sub.plan
    used = rules.counted(plan.cap_counts, state.download, state.upload)
    limit = plan.data_cap_bytes + state.extra_bytes if plan.data_cap_bytes is not None else None
    act = rules.cap_actions(rules.CapState(
        limit=limit, used=used, exempt=state.exempt, has_fup=plan.fup_download_bps is not None,
        throttled=sub.cap_throttled, notified_80=state.notified_80,
        notified_100=state.notified_100))
    period = f"{state.period_start:%Y-%m-%d}"
    for pct, due in ((80, act.notice_80), (100, act.notice_100)):
        if due:
            enqueue(session, sub, f"usage_{pct}", f"usage{pct}:{sub.id}:{period}",
                    on=today, percent=pct, used_bytes=used, cap_bytes=limit,
                    period_start=state.period_start,
                    period_end=state.period_end - dt.timedelta(days=1))
            setattr(state, f"notified_{pct}", True)
    changed = False
    if act.throttle is not None:
        sub.cap_throttled = act.throttle
        why = (f"over the data cap ({used} of {limit} bytes this period)" if act.throttle
               else "under the data cap again (new period, top-up, reset or exemption)")
        enforce(session, sub, "throttle" if act.throttle else "unthrottle", why)
        audit.record(session, actor=actor, action="usage.throttle" if act.throttle
                     else "usage.unthrottle", entity="subscriber", entity_id=sub.id,
                     before={"cap_throttled": not act.throttle},
                     after={"cap_throttled": act.throttle}, reason=why)
        changed = True
    if _has_quota(sub, plan):
        left_bytes = (rules.remainder(limit, state.download + state.upload)
                      if plan.fup_download_bps is None else None)
        left_secs = rules.remainder(plan.time_quota_s, state.seconds)
    else:
        left_bytes = left_secs = None
    if (left_bytes, left_secs) != (sub.quota_left_bytes, sub.quota_left_seconds):
        sub.quota_left_bytes, sub.quota_left_seconds = left_bytes, left_secs
        changed = True
    if changed:
        sub.auth_version = bump(session, AUTH_FEED)


# -- periods ------------------------------------------------------------------------------------


def renew_periods(session: Session, today: dt.date, limit: int = 500) -> int:
    """Start the new period's count for throttled and quota subscribers whose period has
    renewed (billing moved it, or the calendar month turned): the cap resets and full speed
    comes back live, quotas are whole again. Everybody else rolls at their next record.
    Returns how many were renewed (call again while it returns *limit*)."""
    stale = or_(
        and_(Subscriber.period_start.is_not(None),
             UsageState.period_start != Subscriber.period_start),
        and_(Subscriber.period_start.is_(None), UsageState.period_end <= today))
    ids = list(session.scalars(
        select(Subscriber.id).join(UsageState, UsageState.subscriber_id == Subscriber.id)
        .where(or_(Subscriber.cap_throttled.is_(True), Subscriber.quota_left_bytes.is_not(None),
                   Subscriber.quota_left_seconds.is_not(None)), stale)
        .order_by(Subscriber.id).limit(limit)))
    subs, states = _load(session, ids)
    rolled = _roll_many(session, [
        (subs[sid], states.get(sid),
         *rules.current_period(subs[sid].period_start, subs[sid].period_end, today))
        for sid in ids])
    for sid in ids:
        _evaluate(session, subs[sid], rolled[sid], "usage", today)
    return len(ids)


def _state_for(session: Session, sub: Subscriber, today: dt.date) -> UsageState:
    start, end = rules.current_period(sub.period_start, sub.period_end, today)
    state = session.scalars(select(UsageState).where(UsageState.subscriber_id == sub.id)
                            .with_for_update()).one_or_none()
    if state is None or state.period_start != start:
        state = _roll(session, sub, state, start, end)
    return state


# -- operators -----------------------------------------------------------------------------------


def _reason(text: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > 500 or any(ord(c) < 0x20 for c in text):
        raise InvalidInput("a reason is needed (at most 500 characters, one line)")
    return text


def set_exempt(session: Session, username: str, exempt: bool, *, today: dt.date, reason: str,
               actor: str) -> UsageState:
    """Exempt a subscriber from the cap (restored at once if throttled) or end it."""
    why = _reason(reason)
    sub = get_subscriber(session, username, lock=True)
    state = _state_for(session, sub, today)
    before = state.exempt
    state.exempt = exempt
    audit.record(session, actor=actor, action="usage.exempt", entity="subscriber",
                 entity_id=sub.id, before={"exempt": before}, after={"exempt": exempt},
                 reason=why)
    _evaluate(session, sub, state, actor, today)
    return state


def reset_counter(session: Session, username: str, *, today: dt.date, reason: str,
                  actor: str) -> UsageState:
    """Set what counts against this period's cap back to zero (the daily usage stays as it
    was measured); a throttle is lifted at once."""
    why = _reason(reason)
    sub = get_subscriber(session, username, lock=True)
    state = _state_for(session, sub, today)
    before = {"download": state.download, "upload": state.upload, "seconds": state.seconds}
    state.download = state.upload = state.seconds = 0
    state.notified_80 = state.notified_100 = False
    audit.record(session, actor=actor, action="usage.reset", entity="subscriber",
                 entity_id=sub.id, before=before,
                 after={"download": 0, "upload": 0, "seconds": 0,
                        "period_start": str(state.period_start)}, reason=why)
    _evaluate(session, sub, state, actor, today)
    return state


_PACK_NAME_MAX = 64


def add_pack(session: Session, plan_name: str, name: str, size: str, price: str | Decimal, *,
             actor: str) -> TopupPack:
    """Offer a data top-up pack on a plan."""
    name = (name or "").strip()
    if not name or len(name) > _PACK_NAME_MAX or any(ord(c) < 0x20 for c in name):
        raise InvalidInput(f"invalid pack name {name[:70]!r}: 1-64 characters, one line")
    plan = session.scalars(select(Plan).where(Plan.name == plan_name)).one_or_none()
    if plan is None:
        raise NotFound(f"unknown plan {plan_name!r}")
    if plan.data_cap_bytes is None:
        raise InvalidInput(f"plan {plan_name!r} has no data cap: a top-up would raise nothing")
    size_bytes, value = parse_size(size), parse_money(price)
    if session.scalars(select(TopupPack.id).where(TopupPack.plan_id == plan.id,
                                                  TopupPack.name == name)).first():
        raise Conflict(f"plan {plan_name!r} already has a pack {name!r}")
    pack = TopupPack(plan_id=plan.id, name=name, size_bytes=size_bytes, price=value)
    session.add(pack)
    session.flush()
    audit.record(session, actor=actor, action="usage.pack.create", entity="plan",
                 entity_id=plan.id, after={"pack": name, "size_bytes": size_bytes,
                                           "price": str(value)})
    return pack


def packs_of(session: Session, plan_id: int) -> list[TopupPack]:
    """The packs a plan offers, by name."""
    return list(session.scalars(select(TopupPack).where(TopupPack.plan_id == plan_id)
                                .order_by(TopupPack.name)))


def all_packs(session: Session, limit: int = 1000) -> list[tuple[str, TopupPack]]:
    """(plan name, pack) for every pack offered, by plan and pack name (at most *limit*)."""
    return [(name, pack) for name, pack in session.execute(
        select(Plan.name, TopupPack).join(Plan, Plan.id == TopupPack.plan_id)
        .order_by(Plan.name, TopupPack.name).limit(limit))]


def topups_of(session: Session, subscriber_id: int, period_start: dt.date, limit: int = 100
              ) -> list[Topup]:
    """The top-ups bought for the period starting *period_start*, oldest first."""
    return list(session.scalars(select(Topup).where(Topup.subscriber_id == subscriber_id,
                                                    Topup.period_start == period_start)
                                .order_by(Topup.id).limit(limit)))


def buy_topup(session: Session, username: str, pack_name: str, *, today: dt.date,
              actor: str) -> Topup:
    """Buy a pack of the subscriber's plan for the current period: a charge on a numbered
    document (billing's manual charge), the period's cap raised, a throttle lifted live."""
    from billing.payments import adjust

    sub = get_subscriber(session, username, lock=True)
    pack = session.scalars(select(TopupPack).where(TopupPack.plan_id == sub.plan_id,
                                                   TopupPack.name == pack_name)).one_or_none()
    if pack is None:
        raise NotFound(f"plan {sub.plan.name!r} has no top-up pack {pack_name!r}")
    state = _state_for(session, sub, today)
    charge = adjust(session, sub.username, "charge", pack.price,
                    reason=f"Data top-up {pack.name} ({pack.size_bytes:,} bytes) for the period "
                           f"{state.period_start:%d %b %Y} to {state.period_end:%d %b %Y}",
                    today=today, actor=actor)
    assert charge.document is not None  # a charge always issues its document
    state.extra_bytes += pack.size_bytes
    topup = Topup(subscriber_id=sub.id, pack_id=pack.id, period_start=state.period_start,
                  size_bytes=pack.size_bytes, price=pack.price, document=charge.document,
                  actor=actor)
    session.add(topup)
    session.flush()
    audit.record(session, actor=actor, action="usage.topup", entity="subscriber",
                 entity_id=sub.id, after={"pack": pack.name, "size_bytes": pack.size_bytes,
                                          "document": charge.document,
                                          "period_start": str(state.period_start)})
    _evaluate(session, sub, state, actor, today)
    return topup


# -- reading -------------------------------------------------------------------------------------


def usage_summary(session: Session, username: str, today: dt.date) -> dict[str, object]:
    """The subscriber's period as the cap counts it (read-only: a period not yet rolled
    reads from the days)."""
    sub = get_subscriber(session, username)
    start, end = rules.current_period(sub.period_start, sub.period_end, today)
    state = session.get(UsageState, sub.id)
    if state is None or state.period_start != start:
        down, up, secs = period_usage(session, sub.id, start, end)
        extra, exempt = 0, bool(state and state.exempt)
    else:
        down, up, secs = state.download, state.upload, state.seconds
        extra, exempt = state.extra_bytes, state.exempt
    plan = sub.plan
    cap = plan.data_cap_bytes + extra if plan.data_cap_bytes is not None else None
    return {"username": sub.username, "period_start": str(start), "period_end": str(end),
            "download": down, "upload": up, "seconds": secs, "counts": plan.cap_counts,
            "counted": rules.counted(plan.cap_counts, down, up), "cap_bytes": cap,
            "topup_bytes": extra, "exempt": exempt, "throttled": sub.cap_throttled,
            "quota_left_bytes": sub.quota_left_bytes,
            "quota_left_seconds": sub.quota_left_seconds}


def period_usage(session: Session, subscriber_id: int, start: dt.date, end: dt.date
                 ) -> tuple[int, int, int]:
    """(download, upload, seconds) measured on the days [start, end)."""
    down, up, secs = session.execute(
        select(func.coalesce(func.sum(UsageDay.download), 0),
               func.coalesce(func.sum(UsageDay.upload), 0),
               func.coalesce(func.sum(UsageDay.seconds), 0))
        .where(UsageDay.subscriber_id == subscriber_id, UsageDay.day >= start,
               UsageDay.day < end)).one()
    return int(down), int(up), int(secs)


def daily_usage(session: Session, subscriber_id: int, start: dt.date, end: dt.date
                ) -> list[UsageDay]:
    """The subscriber's days in [start, end), in order (at most 366)."""
    return list(session.scalars(select(UsageDay).where(
        UsageDay.subscriber_id == subscriber_id, UsageDay.day >= start, UsageDay.day < end)
        .order_by(UsageDay.day).limit(366)))


@dataclass(frozen=True)
class OverCap:
    """A subscriber at or over this period's cap."""

    subscriber_id: int
    username: str
    plan: str
    cap_bytes: int  # the plan's cap plus this period's top-ups
    counted_bytes: int
    throttled: bool
    exempt: bool
    has_fup: bool


def over_cap(session: Session, today: dt.date, *, after_id: int = 0, limit: int = 500
             ) -> list[OverCap]:
    """Subscribers at or over their cap in their current period, with whether they are
    throttled (and why they may not be: exempt, or the plan has no fair-usage speed), by
    subscriber id after *after_id* (keyset pages of at most *limit*). One indexed join of
    the per-subscriber period state; no session or day is read."""
    limit = max(1, min(limit, 5000))
    counted = case((Plan.cap_counts == "download", UsageState.download),
                   (Plan.cap_counts == "upload", UsageState.upload),
                   else_=UsageState.download + UsageState.upload)
    cap = Plan.data_cap_bytes + UsageState.extra_bytes
    current = or_(
        and_(Subscriber.period_start.is_not(None),
             UsageState.period_start == Subscriber.period_start),
        and_(Subscriber.period_start.is_(None), UsageState.period_start <= today,
             UsageState.period_end > today))
    rows = session.execute(
        select(Subscriber.id, Subscriber.username, Plan.name, cap, counted,
               Subscriber.cap_throttled, UsageState.exempt, Plan.fup_download_bps)
        .join(Plan, Plan.id == Subscriber.plan_id)
        .join(UsageState, UsageState.subscriber_id == Subscriber.id)
        .where(Plan.data_cap_bytes.is_not(None), current, counted >= cap,
               Subscriber.id > after_id)
        .order_by(Subscriber.id).limit(limit)).all()
    return [OverCap(int(i), u, p, int(c), int(n), bool(t), bool(e), f is not None)
            for i, u, p, c, n, t, e, f in rows]
