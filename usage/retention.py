"""Retention of the usage part: the per-session, per-day counters (``usage_session_days``)
go with the sessions they follow; the usage per subscriber and day (``usage_days``) and per
period are what reports and caps read, and are never pruned."""

from __future__ import annotations

from sqlalchemy import and_

from radbill.pruning import Prunable
from usage.models import UsageSessionDay

SESSION_DAYS = Prunable(
    "usage_session_days", UsageSessionDay.id, UsageSessionDay.day,
    lambda before: and_(UsageSessionDay.day < before))
"""A session's highest counters on days before the cut-off (a date): late records for
sessions that old no longer arrive."""
