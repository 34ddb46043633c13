"""The post-auth log: each auth decision as FreeRADIUS logged it, bounded for the database,
and read back (why a subscriber's logins were accepted or rejected)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from radius.bounds import MAX_TEXT, display_text, ip_address, received_at
from radius.models import PostAuth, PostAuthDay

MAX_REPLY_MESSAGE = 1000  # Reply-Message is one attribute (253) but may be repeated


def row_from_attrs(attrs: Mapping[str, str]) -> dict[str, Any]:
    """The ``radius_postauth`` row for one logged decision. Every field is display text:
    this is a log of what was tried, so a login name with a NUL or a 300-character
    Calling-Station-Id is stored (cleaned, cut to its column) rather than lost (see
    :mod:`radius.bounds`). Raises :class:`~radius.bounds.InvalidRecord` only for a
    Timestamp that is no time (a corrupt spool)."""
    # These records are replies (see raddb/mods/detail): the request's details arrive as
    # internal Radbill-* attributes.
    return {
        "at": received_at(attrs),
        "username": display_text(attrs.get("Radbill-User-Name"), MAX_TEXT) or "",
        "nas_ip": ip_address(attrs.get("Radbill-NAS-Address")),
        "calling_station_id": display_text(attrs.get("Radbill-Calling-Station"), MAX_TEXT),
        "decision": display_text(attrs.get("Radbill-Decision"), 16) or "reject",
        "reason": display_text(attrs.get("Radbill-Reason"), 64) or "unknown",
        "reply_message": display_text(attrs.get("Reply-Message"), MAX_REPLY_MESSAGE),
        "auth_method": display_text(attrs.get("Radbill-Auth-Method"), 16),
        "rate_limit": display_text(attrs.get("Mikrotik-Rate-Limit"), 128),
    }


def recent_decisions(session: Session, username: str, limit: int = 10
                     ) -> list[PostAuth | PostAuthDay]:
    """The user's latest authentication decisions, newest first; once the log older than the
    retention is summarised, the days before it follow (one per day, its last decision with
    the day's ``accepts`` and ``rejects``)."""
    rows: list[PostAuth | PostAuthDay] = list(session.scalars(
        select(PostAuth).where(PostAuth.username == username)
        .order_by(PostAuth.at.desc(), PostAuth.id.desc()).limit(limit)))
    if len(rows) < limit:
        oldest = rows[-1].at if rows else None
        days = select(PostAuthDay).where(PostAuthDay.username == username)
        if oldest is not None:
            days = days.where(PostAuthDay.last_at <= oldest)
        rows.extend(session.scalars(days.order_by(PostAuthDay.day.desc())
                                    .limit(limit - len(rows))))
    return rows


def last_accept(session: Session, username: str) -> tuple[str, dt.datetime] | None:
    """The reason and time of the user's last accepted login, from the log or, once that
    is summarised, from the day summaries; None if there is none."""
    row = session.execute(
        select(PostAuth.reason, PostAuth.at).where(PostAuth.username == username,
                                                   PostAuth.decision == "accept")
        .order_by(PostAuth.at.desc(), PostAuth.id.desc()).limit(1)).first()
    if row is not None:
        return row[0], row[1]
    day = session.execute(
        select(PostAuthDay.last_accept_reason, PostAuthDay.last_accept_at)
        .where(PostAuthDay.username == username, PostAuthDay.last_accept_at.is_not(None))
        .order_by(PostAuthDay.day.desc()).limit(1)).first()
    if day is None or day[0] is None or day[1] is None:
        return None
    return day[0], day[1]
