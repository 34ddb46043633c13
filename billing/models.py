"""Billing models: packages (plans) and subscribers."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radbill.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the values (readable in SQL), checked by a CHECK constraint on both databases.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class ServiceType(enum.StrEnum):
    """How the subscriber connects."""

    PPPOE = "pppoe"
    HOTSPOT = "hotspot"


class SubscriberStatus(enum.StrEnum):
    """Billing state. Only :mod:`billing.subscribers` changes it (see ``TRANSITIONS`` there)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # for non-payment: walled garden or reject, by configuration
    DISABLED = "disabled"  # by an operator, for any other reason: always rejected
    TERMINATED = "terminated"  # contract ended: always rejected, final


class BillingCycle(enum.StrEnum):
    """How often a plan renews."""

    MONTHLY = "monthly"
    WEEKLY = "weekly"
    DAILY = "daily"
    DAYS = "days"  # N-day validity (prepaid, hotspot vouchers)


class BillingMode(enum.StrEnum):
    """Whether the period is paid before (prepaid) or after (postpaid) it is used."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class Plan(Base):
    """A package an ISP sells: price, speed, cap and billing terms."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    download_bps: Mapped[int] = mapped_column(BigInteger)
    upload_bps: Mapped[int] = mapped_column(BigInteger)
    burst_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_threshold_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_threshold_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_time_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data_cap_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fup_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fup_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ip_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    billing_cycle: Mapped[BillingCycle] = mapped_column(
        _enum(BillingCycle, "billing_cycle"), default=BillingCycle.MONTHLY
    )
    validity_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    billing_mode: Mapped[BillingMode] = mapped_column(
        _enum(BillingMode, "billing_mode"), default=BillingMode.POSTPAID
    )
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    late_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
    auth_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("download_bps > 0 AND upload_bps > 0", name="rates_positive"),
        CheckConstraint("grace_days >= 0", name="grace_not_negative"),
    )


class Subscriber(Base):
    """A customer account that logs in over PPPoE or Hotspot."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # Fernet token: reversible on purpose, CHAP and MS-CHAPv2 need the cleartext.
    password_enc: Mapped[str] = mapped_column(Text)
    service: Mapped[ServiceType] = mapped_column(_enum(ServiceType, "service_type"))
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.ACTIVE
    )
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    plan: Mapped[Plan] = relationship(lazy="joined", innerjoin=True)
    static_ip: Mapped[str | None] = mapped_column(String(15), nullable=True, unique=True)
    ip_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac_address: Mapped[str | None] = mapped_column(String(17), nullable=True)
    simultaneous_use: Mapped[int] = mapped_column(Integer, default=1)
    # End of the paid period where one applies (prepaid): sessions are cut here.
    paid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fup_throttled: Mapped[bool] = mapped_column(Boolean, default=False)
    full_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    auth_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("simultaneous_use >= 1", name="simultaneous_use_positive"),
    )
