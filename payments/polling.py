"""Asking gateways about payments nobody told us about: a lost webhook or a subscriber who
closed the browser must never leave a paid subscriber suspended.

Every intent still pending a few minutes after it was started is queried (then every few
minutes, for two days); the answer goes through :func:`payments.intents.apply` like any
notification. A pending intent older than that is marked expired; if the payer's return or
a notification had come for it and the gateway never confirmed it either way
(``declared_at``), the expiry raises a ``payment-expired-unconfirmed`` alert and an audit
entry: money may have moved without radbill knowing.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from billing.models import Subscriber
from payments import intents
from payments.gateways.base import GatewayError, PaymentGateway
from payments.models import PaymentIntent
from radbill import audit
from radbill.db import utcnow
from radbill.ops import raise_alert

log = logging.getLogger("radbill.payments")

MIN_AGE = dt.timedelta(minutes=3)
EVERY = dt.timedelta(minutes=2)
MAX_AGE = dt.timedelta(days=2)


def poll(factory: sessionmaker[Session], adapters: dict[str, PaymentGateway], *,
         now: dt.datetime | None = None, min_age: dt.timedelta = MIN_AGE,
         every: dt.timedelta = EVERY, max_age: dt.timedelta = MAX_AGE) -> dict[str, int]:
    """One polling pass. Returns counts by outcome (and ``errors``, ``expired``)."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    with factory() as session, session.begin():
        _alert_declared_expiring(session, now - max_age)
        expired = session.execute(
            update(PaymentIntent)
            .where(PaymentIntent.status.in_(("created", "pending")),
                   PaymentIntent.created_at < now - max_age)
            .values(status="failed", hold_reason="expired: never confirmed")
            .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
        due = list(session.execute(
            select(PaymentIntent.reference, PaymentIntent.gateway,
                   PaymentIntent.gateway_reference)
            # a declined attempt ends nothing: the subscriber may retry on the same link
            # and that capture's notification can be lost too (polled for a day)
            .where(or_(PaymentIntent.status == "pending",
                       (PaymentIntent.status == "failed")
                       & (PaymentIntent.created_at >= now - dt.timedelta(days=1))
                       & PaymentIntent.hold_reason.is_(None)),
                   PaymentIntent.created_at <= now - min_age,
                   or_(PaymentIntent.last_polled_at.is_(None),
                       PaymentIntent.last_polled_at <= now - every))
            .order_by(PaymentIntent.id)))
    if expired:
        counts["expired"] = int(expired)
    for reference, gateway, gateway_reference in due:
        adapter = adapters.get(gateway)
        if adapter is None:
            continue
        try:
            conf = adapter.query(reference, gateway_reference)
        except GatewayError as exc:
            log.error("polling %s %s failed: %s", gateway, reference, exc)
            with factory() as session, session.begin():
                intents.health(session, gateway, False, str(exc))
                _polled(session, reference, now)
            counts["errors"] = counts.get("errors", 0) + 1
            continue
        with factory() as session, session.begin():
            _polled(session, reference, now)
            outcome = intents.apply(session, gateway, conf, source="poll")
            intents.health(session, gateway, True)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _alert_declared_expiring(session: Session, cutoff: dt.datetime) -> None:
    """Alert on (and audit) every intent about to expire after a return or notification the
    gateway never confirmed. Few by nature (the payer came back, the gateway stayed silent or
    pending for two days), and each one is money an operator must look for."""
    rows = session.execute(
        select(PaymentIntent, Subscriber.username)
        .join(Subscriber, Subscriber.id == PaymentIntent.subscriber_id)
        .where(PaymentIntent.status.in_(("created", "pending")),
               PaymentIntent.created_at < cutoff, PaymentIntent.declared_at.is_not(None))
        .with_for_update(of=PaymentIntent)).all()
    for intent, username in rows:
        why = (f"the payer came back from {intent.gateway} on "
               f"{intent.declared_at:%Y-%m-%d %H:%M} UTC but {intent.gateway} never confirmed "
               "the payment")
        audit.record(session, actor="payment-poll", action="payment.expired-unconfirmed",
                     entity="payment_intent", entity_id=intent.id, reason=why,
                     before={"status": intent.status},
                     after={"status": "failed", "reference": intent.reference,
                            "gateway_reference": intent.gateway_reference})
        raise_alert(session, "payment-expired-unconfirmed",
                    f"{intent.gateway} payment {intent.reference} of {intent.amount} "
                    f"{intent.currency} by {username} expired unpaid: {why}; check the "
                    f"{intent.gateway} dashboard for {intent.gateway_reference or 'it'}",
                    {"intent": intent.reference, "gateway": intent.gateway,
                     "gateway_reference": intent.gateway_reference})
        log.warning("payment %s expired after an unconfirmed return", intent.reference)


def _polled(session: Session, reference: str, now: dt.datetime) -> None:
    session.execute(update(PaymentIntent).where(PaymentIntent.reference == reference)
                    .values(polls=PaymentIntent.polls + 1, last_polled_at=now)
                    .execution_options(synchronize_session=False))
