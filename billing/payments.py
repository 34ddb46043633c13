"""Recording payments. The moment the balance covers what is overdue, the subscriber is
reactivated in the same transaction that posts the payment; a partial payment is recorded
and reconnects nobody."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import accounts, ledger
from billing.invoices import notify
from billing.isp import settings
from billing.models import LedgerKind, Payment
from billing.plans import parse_money
from billing.run import sync_paid_until
from billing.subscribers import get_subscriber
from radbill import audit
from radbill.errors import Conflict, InvalidInput

METHODS = ("cash", "bank", "bkash", "nagad", "sslcommerz", "razorpay", "other")


@dataclass(frozen=True)
class PaymentResult:
    """What a payment did."""

    payment_id: int
    balance: Decimal
    overdue: Decimal
    reconnected: bool
    invoices_paid: tuple[str, ...]


def record_payment(session: Session, username: str, amount: str | Decimal, *, method: str,
                   reference: str, today: dt.date, actor: str) -> PaymentResult:
    """Post a payment, settle invoices oldest first, and reconnect if nothing is overdue."""
    value = parse_money(amount)
    if value <= 0:
        raise InvalidInput(f"payment amount {amount!r} must be above zero")
    if method not in METHODS:
        raise InvalidInput(f"unknown payment method {method!r}: use {', '.join(METHODS)}")
    reference = (reference or "").strip()
    if not reference or len(reference) > 128:
        raise InvalidInput("a payment needs a reference (receipt or transaction id), "
                           "at most 128 characters")
    sub = get_subscriber(session, username, lock=True)
    plan = sub.plan
    payment = Payment(subscriber_id=sub.id, amount=value, currency=plan.currency,
                      method=method, reference=reference, actor=actor)
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a {method} payment with reference {reference!r} is already "
                       "recorded") from None
    ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.PAYMENT, amount=-value,
                currency=plan.currency, effective_on=today,
                description=f"Payment {method} {reference}", actor=actor,
                payment_id=payment.id)
    settled, reconnected = accounts.settle_and_reconnect(
        session, sub, today, f"paid ({method} {reference})", actor)
    overdue = settled.overdue(today)
    sync_paid_until(session, settings(session), sub, plan)
    audit.record(session, actor=actor, action="payment.record", entity="subscriber",
                 entity_id=sub.id, after={"amount": str(value), "method": method,
                                          "reference": reference},
                 reason=f"balance {settled.balance}")
    notify(session, sub, "payment_received", f"payment:{payment.id}", amount=value,
           currency=plan.currency, method=method, reference=reference,
           balance=settled.balance)
    return PaymentResult(payment.id, settled.balance, overdue, reconnected,
                         tuple(inv.number for inv in settled.newly_paid))


ADJUSTMENT_KINDS = {
    # kind: (ledger kind, sign of the posted amount)
    "refund": (LedgerKind.REFUND, 1),  # money paid back: the subscriber's credit shrinks
    "charge": (LedgerKind.ADJUSTMENT, 1),  # an extra charge outside an invoice
    "credit": (LedgerKind.CREDIT, -1),  # goodwill credit outside an invoice
    "write-off": (LedgerKind.WRITE_OFF, -1),  # debt given up
}


def adjust(session: Session, username: str, kind: str, amount: str | Decimal, *,
           reason: str, today: dt.date, actor: str) -> Decimal:
    """Post a refund, manual charge, credit or write-off; returns the new balance. A credit
    or write-off that clears what is overdue reconnects, like a payment."""
    if kind not in ADJUSTMENT_KINDS:
        raise InvalidInput(f"unknown adjustment {kind!r}: use {', '.join(ADJUSTMENT_KINDS)}")
    value = parse_money(amount)
    if value <= 0:
        raise InvalidInput(f"amount {amount!r} must be above zero")
    if not reason.strip():
        raise InvalidInput("an adjustment needs a reason")
    sub = get_subscriber(session, username, lock=True)
    ledger_kind, sign = ADJUSTMENT_KINDS[kind]
    if kind == "refund" and value > -ledger.balance(session, sub.id):
        raise Conflict(f"refund {value} is more than {username}'s credit "
                       f"({-ledger.balance(session, sub.id)})")
    ledger.post(session, subscriber_id=sub.id, kind=ledger_kind, amount=sign * value,
                currency=sub.plan.currency, effective_on=today, description=reason,
                actor=actor)
    audit.record(session, actor=actor, action=f"ledger.{kind}", entity="subscriber",
                 entity_id=sub.id, after={"amount": str(value)}, reason=reason)
    settled, _ = accounts.settle_and_reconnect(session, sub, today, f"{kind}: {reason}", actor)
    return settled.balance


def list_payments(session: Session, *, subscriber_id: int | None = None, limit: int = 500
                  ) -> list[Payment]:
    """Payments newest first, optionally of one subscriber."""
    stmt = select(Payment).order_by(Payment.id.desc()).limit(limit)
    if subscriber_id is not None:
        stmt = stmt.where(Payment.subscriber_id == subscriber_id)
    return list(session.scalars(stmt))
