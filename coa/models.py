"""Enforcement attempts: every try to make a NAS follow an enforcement request.

The requests themselves (``enforcement_requests``) are written by billing in the transaction
that changes the subscriber; this part owns their life after that: claimed, attempted over
one or more channels, confirmed against the network, done or failed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class EnforcementAttempt(Base):
    """One message to one NAS about one session: channel, outcome, Error-Cause, latency."""

    __tablename__ = "enforcement_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("enforcement_requests.id"), index=True)
    subscriber_id: Mapped[int] = mapped_column(Integer, index=True)
    nas_ip: Mapped[str] = mapped_column(String(45))
    acct_session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    session_pk: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # radius_sessions.id
    channel: Mapped[str] = mapped_column(String(16))  # disconnect | coa | api
    outcome: Mapped[str] = mapped_column(String(16))  # ack | gone | nak | timeout | error
    error_cause: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    sends: Mapped[int] = mapped_column(Integer, default=1)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_enforcement_attempts_session", "nas_ip", "acct_session_id"),
                      # retention prunes the oldest first
                      Index("ix_enforcement_attempts_at", "at"))
