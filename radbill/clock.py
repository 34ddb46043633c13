"""The clock radbill reads: UTC, timezone-aware (no SQLAlchemy here: the RADIUS policy uses
it inside FreeRADIUS)."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)
