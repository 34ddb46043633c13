"""Payment intents (one subscriber paying one invoice through one gateway), the notifications
gateways send us, and each gateway's health."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class PaymentIntent(Base):
    """A payment started from a payment link: created -> pending (sent to the gateway) ->
    paid | failed | held (confirmed but not matching: amount, currency; waits for an
    operator) | refunded. Its ``reference`` is what the gateway knows us by."""

    __tablename__ = "payment_intents"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="created", index=True)
    gateway_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    confirmed_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    confirmed_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    refunded_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a notification or the payer's return for this intent could not be confirmed by
    # the gateway (pending, or the gateway unreachable): expiring unpaid after that raises
    # an alert instead of passing silently.
    declared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("gateway", "gateway_reference"),
                      UniqueConstraint("gateway", "transaction_id"))


class GatewayEvent(Base):
    """Every notification or callback a gateway sent us, genuine or not. ``event_key`` is the
    gateway's event id (or the transaction id and status when it has none): a delivery seen
    before is answered 200 and changes nothing."""

    __tablename__ = "gateway_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(160))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(32))
    intent_id: Mapped[int | None] = mapped_column(ForeignKey("payment_intents.id"),
                                                  nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("gateway", "event_key"),)


class GatewayHealth(Base):
    """Whether a gateway's confirmations are working. While one is failing, subscribers with
    a payment pending on it are not suspended (and the NOC is told)."""

    __tablename__ = "gateway_health"

    gateway: Mapped[str] = mapped_column(String(32), primary_key=True)
    failing: Mapped[bool] = mapped_column(Boolean, default=False)
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
