"""The post-auth log, read back: why a subscriber's logins were accepted or rejected."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from radius.models import PostAuth


def recent_decisions(session: Session, username: str, limit: int = 10) -> list[PostAuth]:
    """The user's latest authentication decisions, newest first."""
    return list(session.scalars(select(PostAuth).where(PostAuth.username == username)
                                .order_by(PostAuth.at.desc(), PostAuth.id.desc()).limit(limit)))
