"""Asking gateways about payments nobody told us about: a lost webhook or a subscriber who
closed the browser must never leave a paid subscriber suspended.

Every intent still pending a few minutes after it was started is queried (then every few
minutes, for two days); the answer goes through :func:`payments.intents.apply` like any
notification. A pending intent older than that is marked expired.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from payments import intents
from payments.gateways.base import GatewayError, PaymentGateway
from payments.models import PaymentIntent
from radbill.db import utcnow

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


def _polled(session: Session, reference: str, now: dt.datetime) -> None:
    session.execute(update(PaymentIntent).where(PaymentIntent.reference == reference)
                    .values(polls=PaymentIntent.polls + 1, last_polled_at=now)
                    .execution_options(synchronize_session=False))
