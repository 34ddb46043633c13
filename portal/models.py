"""Portal models: subscribers' browser sessions, one-time login codes and plan-change
requests waiting for an operator."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class PortalSession(Base):
    """A subscriber logged in to the portal. The cookie holds a random id; only its SHA-256
    is stored, so logging out (or an operator's password reset) ends the session for good."""

    __tablename__ = "portal_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(8))  # password | otp


class PortalOtp(Base):
    """A one-time login code sent by SMS to a phone number. Only an HMAC of the code is kept;
    it expires, allows a few wrong tries and is spent by its first right one."""

    __tablename__ = "portal_otps"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(32))  # the normalised number (MSISDN)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        # the hot query: a number's recent codes (rate limit, then the live one)
        Index("ix_portal_otps_phone_created", "phone", "created_at"),
    )


class PlanChangeRequest(Base):
    """A subscriber's request to move to another plan; an operator approves (the change is
    then made by :func:`billing.plan_changes.change_plan`) or rejects it."""

    __tablename__ = "portal_plan_requests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    effective: Mapped[str] = mapped_column(String(16))  # now | next_cycle
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
