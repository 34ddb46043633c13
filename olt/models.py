"""OLTs, their ONUs, subscriber bindings, ONU signal history and the OLT channel of the
enforcement queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from radbill import crypto
from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class Olt(Base):
    """An optical line terminal radbill reaches over SNMP. Secrets are encrypted."""

    __tablename__ = "olts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    vendor: Mapped[str] = mapped_column(String(32))  # an olt.profiles name
    host: Mapped[str] = mapped_column(String(45))
    port: Mapped[int] = mapped_column(Integer, default=161)
    community_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    write_community_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    v3_user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    v3_auth_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    v3_priv_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # profile fields this OLT's firmware needs changed (olt.profiles.parse_overrides)
    overrides: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    timeout_ms: Mapped[int] = mapped_column(Integer, default=2000)
    retries: Mapped[int] = mapped_column(Integer, default=1)
    weak_rx_dbm: Mapped[float] = mapped_column(Float, default=-27.0)
    last_uptime: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # centiseconds
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("host", "port"),)


class Onu(Base):
    """An ONU as last seen on its OLT: found by its serial or MAC, never by index alone."""

    __tablename__ = "onus"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    olt_id: Mapped[int] = mapped_column(ForeignKey("olts.id"))
    ident: Mapped[str] = mapped_column(String(32))  # serial HWTC1A2B3C4D or MAC aa:bb:..
    snmp_index: Mapped[str] = mapped_column(String(64))  # as of seen_at; moves on reboot
    pon: Mapped[str | None] = mapped_column(String(16), nullable=True)
    onu_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    rx_dbm: Mapped[float | None] = mapped_column(Float, nullable=True)
    weak: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # as read back
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("olt_id", "ident"),)


class OnuBinding(Base):
    """Which ONU (OLT + serial/MAC) is a subscriber's line. One ONU, one subscriber."""

    __tablename__ = "onu_bindings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), unique=True)
    olt_id: Mapped[int] = mapped_column(ForeignKey("olts.id"))
    ident: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("olt_id", "ident"),)


class OnuSample(Base):
    """One poll of one ONU: status and Rx power over time (the signal chart)."""

    __tablename__ = "onu_samples"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    onu_id: Mapped[int] = mapped_column(ForeignKey("onus.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean)
    rx_dbm: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_onu_samples_onu_at", "onu_id", "at"),)


class OltTask(Base):
    """The OLT channel of an enforcement request: block or unblock one bound ONU, verified
    by reading the OLT back. Its attempts are ``enforcement_attempts`` rows with channel
    ``olt``; it retries and fails on its own, beside the request's NAS work."""

    __tablename__ = "olt_tasks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("enforcement_requests.id"))
    subscriber_id: Mapped[int] = mapped_column(Integer, index=True)
    olt_id: Mapped[int] = mapped_column(ForeignKey("olts.id"))
    ident: Mapped[str] = mapped_column(String(32))
    block: Mapped[bool] = mapped_column(Boolean)
    # pending -> working -> done; retry (back-off) | failed | superseded
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_olt_tasks_due", "status", "next_attempt_at"),)


crypto.encrypted(Olt.community_enc, Olt.write_community_enc, Olt.v3_auth_key_enc,
                 Olt.v3_priv_key_enc)
