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
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from radbill.pruning import Prunable, count_matching
from radius.models import PostAuth, PostAuthDay, RadiusSession

KEY_CHUNK = 1000  # (username, day) pairs per statement: a bounded IN list

CLOSED_SESSIONS = Prunable(
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


def summarise_postauth(session: Session, before: dt.datetime, tz: ZoneInfo,
                       limit: int) -> int:
    """Fold up to *limit* post-auth rows older than *before* (oldest first) into their
    users' day summaries and delete them, in the caller's transaction. Returns how many rows
    it folded (0: nothing left to do). A row that arrives late for a day already summarised
    (a spool replayed) is added to that day's summary."""
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
