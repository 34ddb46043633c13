"""The post-auth log: each auth decision as FreeRADIUS logged it, bounded for the database,
and read back (why a subscriber's logins were accepted or rejected)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from radius.bounds import MAX_TEXT, display_text, ip_address, received_at
from radius.models import PostAuth

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


def recent_decisions(session: Session, username: str, limit: int = 10) -> list[PostAuth]:
    """The user's latest authentication decisions, newest first."""
    return list(session.scalars(select(PostAuth).where(PostAuth.username == username)
                                .order_by(PostAuth.at.desc(), PostAuth.id.desc()).limit(limit)))
