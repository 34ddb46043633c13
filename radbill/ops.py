"""Operations records: scheduled job runs and alerts for the NOC."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow
from radbill.pruning import Prunable


class JobRun(Base):
    """One run of a scheduled or manual job: when, how it ended, what it did."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|ok|failed
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Alert(Base):
    """Something an operator must look at."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


def raise_alert(session: Session, kind: str, message: str, data: dict[str, Any] | None = None
                ) -> Alert:
    """Record an alert in the caller's transaction."""
    alert = Alert(kind=kind, message=message, data=data)
    session.add(alert)
    session.flush()
    return alert


def recent_runs(session: Session, limit: int = 100) -> list[JobRun]:
    """Job runs, newest first."""
    return list(session.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(limit)))


def open_alerts(session: Session, limit: int = 100) -> list[Alert]:
    """Alerts nobody resolved yet, newest first."""
    return list(session.scalars(select(Alert).where(Alert.resolved_at.is_(None))
                                .order_by(Alert.id.desc()).limit(limit)))


JOB_RUNS = Prunable("job_runs", JobRun.id, JobRun.started_at,
                    lambda before: (JobRun.started_at < before) & (JobRun.status != "running"))
"""Finished job runs started before the cut-off."""
