"""The audit trail: who changed what, when, from what to what, and why."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import JSON, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow
from radbill.pruning import Prunable


class AuditLog(Base):
    """One state change. Append-only: rows are never updated, and deleted only by retention
    once older than ``RADBILL_KEEP_AUDIT_DAYS`` (0: never)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),
                      # retention prunes the oldest first
                      Index("ix_audit_log_at", "at"))


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return json.loads(json.dumps(values, default=str))


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction."""
    row = AuditLog(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason,
    )
    session.add(row)
    return row


def entries(session: Session, *, entity: str | None = None, entity_id: str | int | None = None,
            actor: str | None = None, limit: int = 200) -> list[AuditLog]:
    """Audit rows newest first, optionally about one entity or by one actor."""
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if entity:
        stmt = stmt.where(AuditLog.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == str(entity_id))
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    return list(session.scalars(stmt))


PRUNABLE = Prunable("audit_log", AuditLog.id, AuditLog.at, lambda before: AuditLog.at < before)
"""Audit rows written before the cut-off (``RADBILL_KEEP_AUDIT_DAYS``; 0 keeps them)."""
