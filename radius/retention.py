"""Retention of the RADIUS part's growing tables (driven by ``retention/``).

Post-auth rows older than the cut-off are folded into one :class:`~radius.models.PostAuthDay`
per user and ISP day, then deleted, batch by batch (each batch the caller's transaction, so a
crash leaves every row either still raw or already summarised, never both). Closed accounting
sessions are deleted oldest first; the open ones never. The detail spools are in
:mod:`radius.ingest` (:func:`~radius.ingest.tidy_spool`): they live on each RADIUS node.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Table, and_, case, cast, delete, func, or_, select, true, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from radbill.pruning import MAX_BATCH, Prunable, count_matching
from radius import partitions
from radius.models import PostAuth, PostAuthDay, RadiusSession, RadiusSessionKey

KEY_CHUNK = 1000  # (username, day) pairs per statement: a bounded IN list

@dataclass(frozen=True)
class _ClosedSessions(Prunable):
    """Closed sessions, deleted with their keys (``radius_session_keys``)."""

    def delete(self, session: Session, before: Any, limit: int) -> int:
        limit = max(1, min(int(limit), MAX_BATCH))
        s = RadiusSession
        rows = session.execute(
            select(s.id, s.nas_ip, s.acct_session_id, s.username).where(self.where(before))
            .order_by(s.stopped_at, s.id).limit(limit)).all()
        if not rows:
            return 0
        session.execute(delete(s).where(s.id.in_([r[0] for r in rows]))
                        .execution_options(synchronize_session=False))
        k = RadiusSessionKey
        for i in range(0, len(rows), KEY_CHUNK):
            session.execute(delete(k).where(
                tuple_(k.nas_ip, k.acct_session_id, k.username, k.session_id).in_(
                    [(r[1], r[2], r[3], r[0]) for r in rows[i : i + KEY_CHUNK]]))
                .execution_options(synchronize_session=False))
        return len(rows)


def session_months_ahead(engine: Any, now: dt.datetime) -> list[str]:
    """The current month's partition of sessions and two ahead, created if missing
    (PostgreSQL; nothing on SQLite): :func:`radius.partitions.ensure_months`."""
    return partitions.ensure_months(engine, now)


def drop_session_months(engine: Any, before: dt.datetime, batch: int) -> partitions.Dropped:
    """Whole months of closed sessions stopped before *before* dropped (PostgreSQL; nothing on
    SQLite): :func:`radius.partitions.drop_old_months`. The other months' closed sessions go
    by :data:`CLOSED_SESSIONS` batches."""
    return partitions.drop_old_months(engine, before, batch)


CLOSED_SESSIONS = _ClosedSessions(
    "sessions", RadiusSession.id, RadiusSession.stopped_at,
    lambda before: and_(RadiusSession.stopped_at.is_not(None),
                        RadiusSession.stopped_at < before))
"""Closed sessions that stopped before the cut-off (open ones are never pruned)."""


def _fold(summary: PostAuthDay, row: PostAuth, fresh: bool) -> None:
    """Count *row* into its day's *summary* (rows come oldest first within a batch)."""
    if row.decision == "accept":
        summary.accepts += 1
        if summary.last_accept_at is None or row.at >= summary.last_accept_at:
            summary.last_accept_at, summary.last_accept_reason = row.at, row.reason
    else:
        summary.rejects += 1
    summary.first_at = min(summary.first_at, row.at)
    if fresh or row.at >= summary.last_at:
        summary.last_at, summary.last_decision = row.at, row.decision
        summary.last_reason, summary.last_reply_message = row.reason, row.reply_message
        summary.last_nas_ip = row.nas_ip
        summary.last_calling_station_id = row.calling_station_id
        summary.last_auth_method = row.auth_method


def summarise_postauth_by_row(session: Session, before: dt.datetime, tz: ZoneInfo,
                              limit: int) -> int:
    """:func:`summarise_postauth` one row at a time in Python (about 4,500 rows/s): the
    reference the set-based fold is tested against (the same summaries from the same rows)."""
    # Locked (PostgreSQL; SQLite writes one at a time anyway): two runs at once fold
    # disjoint rows, and each waits for the other's summaries, so no count is lost or doubled.
    rows: Sequence[PostAuth] = session.scalars(
        select(PostAuth).where(PostAuth.at < before)
        .order_by(PostAuth.at, PostAuth.id).limit(max(1, limit))
        .with_for_update(skip_locked=True)).all()
    if not rows:
        return 0
    groups: dict[tuple[str, dt.date], list[PostAuth]] = {}
    for row in rows:
        groups.setdefault((row.username, row.at.astimezone(tz).date()), []).append(row)
    existing: dict[tuple[str, dt.date], PostAuthDay] = {}
    days = sorted({day for _, day in groups})  # a batch spans a day or two: oldest first
    names = sorted({name for name, _ in groups})
    for i in range(0, len(names), KEY_CHUNK):
        # by the primary key (username, day) with = ANY lists; a row-value IN list of
        # pairs is no index lookup on PostgreSQL. A pair not in the batch is just not used.
        for found in session.scalars(select(PostAuthDay).where(
                PostAuthDay.username.in_(names[i:i + KEY_CHUNK]), PostAuthDay.day.in_(days))
                .with_for_update()):
            existing[(found.username, found.day)] = found
    for key, group in groups.items():
        summary = existing.get(key)
        if summary is None:
            first = group[0]
            summary = PostAuthDay(username=key[0], day=key[1], accepts=0, rejects=0,
                                  first_at=first.at, last_at=first.at,
                                  last_decision=first.decision, last_reason=first.reason)
            session.add(summary)
            fresh = True
        else:
            fresh = False
        for row in group:  # oldest first: the last one standing is the day's last
            _fold(summary, row, fresh)
    session.flush()
    ids = [row.id for row in rows]
    session.execute(delete(PostAuth).where(PostAuth.id.in_(ids))
                    .execution_options(synchronize_session=False))
    for row in rows:
        session.expunge(row)
    return len(rows)


def _isp_day_sqlite(at: str | None, zone: str) -> str | None:
    """The ISP's local date of a UTC timestamp as SQLite stores it (naive text)."""
    if at is None:
        return None
    utc = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC)
    return utc.astimezone(ZoneInfo(zone)).date().isoformat()


def _isp_day(session: Session, at: ColumnElement[dt.datetime],
             tz: ZoneInfo) -> ColumnElement[dt.date]:
    """SQL for the ISP's local date of *at*. PostgreSQL converts with its own time zone
    database; SQLite has none, so the connection gets the same conversion as a function
    (Python's zoneinfo, as :func:`summarise_postauth_by_row` uses)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(tz.key, at), Date)
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live connection: the session just checked it out
    raw.create_function("radbill_isp_day", 2, _isp_day_sqlite, deterministic=True)
    return func.radbill_isp_day(at, tz.key, type_=Date)


def summarise_postauth(session: Session, before: dt.datetime, tz: ZoneInfo,
                       limit: int) -> int:
    """Fold up to *limit* post-auth rows older than *before* (oldest first) into their
    users' day summaries and delete them, in the caller's transaction. Returns how many rows
    it folded (0: nothing left to do). A row that arrives late for a day already summarised
    (a spool replayed) is added to that day's summary.

    Set-based: one ``INSERT .. SELECT .. GROUP BY .. ON CONFLICT DO UPDATE`` (the day's
    last decision and last accept picked by ``row_number()`` over (at, id) descending, as
    the row-by-row fold's "oldest first, the last one standing wins") and one DELETE of the
    batch's ids; the same summaries as :func:`summarise_postauth_by_row`."""
    # Locked (PostgreSQL; SQLite writes one at a time anyway): two runs at once fold
    # disjoint rows, and each waits for the other's summaries (the upsert's row lock), so no
    # count is lost or doubled.
    ids = session.scalars(
        select(PostAuth.id).where(PostAuth.at < before)
        .order_by(PostAuth.at, PostAuth.id).limit(max(1, limit))
        .with_for_update(skip_locked=True)).all()
    if not ids:
        return 0
    if session.new or session.dirty or session.deleted:
        session.flush()  # Core statements below: no autoflush
    p = _table(PostAuth)
    keyed = select(p.c.id, p.c.username, _isp_day(session, p.c.at, tz).label("day"), p.c.at,
                   p.c.decision, p.c.reason, p.c.reply_message, p.c.nas_ip,
                   p.c.calling_station_id, p.c.auth_method
                   ).where(p.c.id.in_(ids)).subquery("k")
    k = keyed.c
    accept = k.decision == "accept"
    newest = (k.at.desc(), k.id.desc())
    ranked = select(
        k.username, k.day, k.at, k.decision, k.reason, k.reply_message, k.nas_ip,
        k.calling_station_id, k.auth_method,
        func.row_number().over(partition_by=(k.username, k.day), order_by=newest)
        .label("rn"),
        func.row_number().over(partition_by=(k.username, k.day, accept), order_by=newest)
        .label("arn")).subquery("r")
    r = ranked.c
    is_accept = r.decision == "accept"

    def of_last(column: ColumnElement[object]) -> ColumnElement[object]:
        return func.max(case((r.rn == 1, column)))  # one row per group has rn 1

    summary = select(
        r.username, r.day,
        func.sum(case((is_accept, 1), else_=0)), func.sum(case((is_accept, 0), else_=1)),
        func.min(r.at), func.max(r.at), of_last(r.decision), of_last(r.reason),
        of_last(r.reply_message), of_last(r.nas_ip), of_last(r.calling_station_id),
        of_last(r.auth_method), func.max(case((is_accept, r.at))),
        func.max(case((and_(is_accept, r.arn == 1), r.reason))),
    ).where(true()).group_by(r.username, r.day)  # WHERE: SQLite's upsert-after-SELECT rule
    d = _table(PostAuthDay)
    columns = ["username", "day", "accepts", "rejects", "first_at", "last_at",
               "last_decision", "last_reason", "last_reply_message", "last_nas_ip",
               "last_calling_station_id", "last_auth_method", "last_accept_at",
               "last_accept_reason"]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    ins = dialect.insert(d).from_select(columns, summary)
    new = ins.excluded
    later = new.last_at >= d.c.last_at  # ties: the batch's row came later (at, id)
    later_accept = and_(new.last_accept_at.is_not(None),
                        or_(d.c.last_accept_at.is_(None),
                            new.last_accept_at >= d.c.last_accept_at))
    last_cols = ("last_at", "last_decision", "last_reason", "last_reply_message",
                 "last_nas_ip", "last_calling_station_id", "last_auth_method")
    session.execute(ins.on_conflict_do_update(
        index_elements=[d.c.username, d.c.day],
        set_={"accepts": d.c.accepts + new.accepts, "rejects": d.c.rejects + new.rejects,
              "first_at": case((new.first_at < d.c.first_at, new.first_at),
                               else_=d.c.first_at),
              **{c: case((later, new[c]), else_=d.c[c]) for c in last_cols},
              **{c: case((later_accept, new[c]), else_=d.c[c])
                 for c in ("last_accept_at", "last_accept_reason")}}))
    session.execute(delete(PostAuth).where(PostAuth.id.in_(ids))
                    .execution_options(synchronize_session=False))
    return len(ids)


def _table(model: type[PostAuth] | type[PostAuthDay]) -> Table:
    """The model's table, typed as a Table (Core statements)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def postauth_to_summarise(session: Session, before: dt.datetime, cap: int) -> int:
    """How many post-auth rows older than *before* a run would summarise, up to *cap*."""
    return count_matching(session, PostAuth.id, PostAuth.at < before, cap)


def prune_postauth_days(session: Session, before: dt.date, limit: int) -> int:
    """Delete up to *limit* day summaries of days before *before*, oldest first."""
    keys = session.execute(
        select(PostAuthDay.username, PostAuthDay.day).where(PostAuthDay.day < before)
        .order_by(PostAuthDay.day, PostAuthDay.username).limit(max(1, min(limit, KEY_CHUNK))))
    by_day: dict[dt.date, list[str]] = {}
    n = 0
    for name, day in keys:
        by_day.setdefault(day, []).append(name)
        n += 1
    for day, names in by_day.items():
        session.execute(delete(PostAuthDay).where(PostAuthDay.day == day,
                                                  PostAuthDay.username.in_(names))
                        .execution_options(synchronize_session=False))
    return n


def postauth_days_to_prune(session: Session, before: dt.date, cap: int) -> int:
    """How many day summaries before *before* a run would delete, up to *cap*."""
    return count_matching(session, PostAuthDay.username, PostAuthDay.day < before, cap)
