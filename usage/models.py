"""Usage models: traffic per subscriber and day, the high-water marks each session reached on
each day (what makes the daily figures exact whatever order records arrive in), the counted
usage of the current billing period with its cap state, and data top-up packs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class UsageDay(Base):
    """Bytes and seconds one subscriber used on one day (the ISP's local date). Download is
    what the NAS sent to the subscriber (Acct-Output), upload what it received (Acct-Input)."""

    __tablename__ = "usage_days"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    download: Mapped[int] = mapped_column(BigInteger, default=0)
    upload: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageSessionDay(Base):
    """The highest counters one run of an accounting session reported on one day. A run's
    usage on a day is how far its running maximum rose that day, so a session spanning
    midnight is split by its interim records, a duplicate changes nothing, a late record
    moves bytes to the day they were used, and a counter that falls back is never negative.

    A *run* is the session as its NAS counts it from zero: a NAS that reboots and reuses the
    Acct-Session-Id starts a new run (its counters from zero again), told apart by when it
    started (event time less Acct-Session-Time), so what it carries is counted in full
    rather than hidden under the old run's peak."""

    __tablename__ = "usage_session_days"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    nas_ip: Mapped[str] = mapped_column(String(45))
    acct_session_id: Mapped[str] = mapped_column(String(253))  # as radius_sessions
    username: Mapped[str] = mapped_column(String(253))
    day: Mapped[dt.date] = mapped_column(Date)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    session_time: Mapped[int] = mapped_column(BigInteger, default=0)
    # Unix seconds: when the run started (as first estimated; later records of the run
    # estimate it within seconds), and the latest event time of its records on this day.
    # 0: the start is unknown (marks kept before 0026 whose session row was gone).
    run_start: Mapped[int] = mapped_column(BigInteger, default=0)
    run_seen: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("uq_usage_session_days_key", "nas_ip", "acct_session_id", "username",
              "run_start", "day", unique=True),
        # retention prunes them with the sessions, oldest day first (usage_days stays)
        Index("ix_usage_session_days_day", "day"),
    )


class UsageState(Base):
    """A subscriber's current billing period as the cap sees it: what counts against the
    cap (reset by an operator sets it back to zero), the top-ups bought for the period, the
    notices sent, and whether the subscriber is exempt (kept from period to period)."""

    __tablename__ = "usage_states"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    download: Mapped[int] = mapped_column(BigInteger, default=0)
    upload: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    extra_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    notified_80: Mapped[bool] = mapped_column(Boolean, default=False)
    notified_100: Mapped[bool] = mapped_column(Boolean, default=False)
    exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TopupPack(Base):
    """A data add-on a plan offers: its size and price."""

    __tablename__ = "usage_topup_packs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    name: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("plan_id", "name"),)


class Topup(Base):
    """A pack bought for one period: charged on a numbered document, raising that period's
    cap."""

    __tablename__ = "usage_topups"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("usage_topup_packs.id"))
    period_start: Mapped[dt.date] = mapped_column(Date)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    document: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
