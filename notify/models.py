"""Notify models: the outbox (events to tell), deliveries (one per event, channel and
recipient), channel settings, subscribers' preferences, short links and templates."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import text

from radbill import crypto
from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class Outbox(Base):
    """An event to tell a subscriber about, written in the same transaction as the event by
    :func:`notify.outbox.enqueue`; ``dedupe_key`` makes each event happen once however often
    a run repeats. ``sent_at`` is when the delivery worker planned its deliveries."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The ISP's business day of the event (the billing run's date): the dunning ladder
    # spaces its steps by these dates.
    event_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        # The worker's hot query: events not planned yet, oldest first.
        Index("ix_outbox_unplanned", "id", sqlite_where=text("sent_at IS NULL"),
              postgresql_where=text("sent_at IS NULL")),
        # retention prunes the oldest first
        Index("ix_outbox_created_at", "created_at"),
    )


class DeliveryStatus(enum.StrEnum):
    """Where a delivery is. queued -> sending -> sent -> delivered; sending -> retrying ->
    sending; -> failed (permanent, or dead letter); -> skipped (with why)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"


OPEN_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)


class Delivery(Base):
    """One message to one recipient over one channel for one event (or operator alert).
    ``idempotency_key`` (event, channel, recipient) is unique: planning twice plans once.
    ``provider_id`` is what the provider dedupes on (SSL Wireless ``csms_id``)."""

    __tablename__ = "notify_deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), nullable=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"),
                                                      nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # sms | email | telegram
    recipient: Mapped[str] = mapped_column(String(254))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    provider_id: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dead_letter: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    encoding: Mapped[str | None] = mapped_column(String(8), nullable=True)  # gsm7 | ucs2
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provider_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # India (TRAI DLT): the registered template and the values of its variables
    dlt_template_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    variables: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)

    @property
    def shown_text(self) -> str | None:
        """The text as staff see it: a message carrying a secret (a portal login code)
        shows none while it is still to be sent; once done its secret is blanked
        (:func:`notify.delivery.redact_secrets`)."""
        from notify.rules import SECRET_FIELDS

        if self.kind in SECRET_FIELDS and self.status in OPEN_STATUSES:
            return "(a one-time code: shown once it is sent, blanked)"
        return self.body

    __table_args__ = (
        Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notify_deliveries_provider_ref", "provider_ref"),
        # recording a round's answers looks deliveries up by the id the provider saw
        Index("ix_notify_deliveries_provider_id", "provider_id"),
        # retention prunes the oldest first; and finds the deliveries of an outbox event
        Index("ix_notify_deliveries_created_at", "created_at"),
        Index("ix_notify_deliveries_outbox_id", "outbox_id"),
    )


class EarlyReport(Base):
    """A delivery report that came before its message was recorded as sent (the provider
    answers the webhook while our worker is still recording the round): applied when it is."""

    __tablename__ = "notify_early_reports"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(128), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    delivered: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(256))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Channel(Base):
    """How one channel (sms, email, telegram) is reached: provider and settings (data, not
    code: a generic HTTP gateway is entirely settings), secrets encrypted and never shown
    back. A channel paused by an account-level error sends nothing until resumed."""

    __tablename__ = "notify_channels"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)  # sms | email | telegram
    provider: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, object]] = mapped_column(JSON)
    secrets_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Preference(Base):
    """A subscriber's language and opt-outs (per channel)."""

    __tablename__ = "notify_preferences"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    email_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)


class ShortLink(Base):
    """``/p/<code>``: a short link to an invoice's payment page, for SMS."""

    __tablename__ = "notify_short_links"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("target"),)


class Template(Base):
    """An operator's template for one event kind, channel and locale (overrides the shipped
    one). ``dlt_template_id``: India's registered template (TRAI DLT)."""

    __tablename__ = "notify_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    dlt_template_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "channel", "locale"),)


class AlertState(Base):
    """Whether operators were last told an alert kind is open or resolved: they hear of each
    change of state once, not of every occurrence."""

    __tablename__ = "notify_alert_states"

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    open: Mapped[bool] = mapped_column(Boolean, default=False)
    last_alert_id: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


crypto.encrypted(Channel.secrets_enc)
