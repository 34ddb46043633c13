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

from billing import accounts, invoices, ledger, totals
from billing.isp import local_today, settings, start_of_day_utc
from billing.models import InvoiceKind, IspSettings, LedgerKind, Payment, Subscriber
from billing.plans import parse_money
from billing.subscribers import get_subscriber
from notify.outbox import enqueue as notify
from radbill import audit
from radbill.db import utcnow
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


def _effective(session: Session, sub: Subscriber, on: dt.date, today: dt.date, what: str
               ) -> None:
    """An effective date must be today or earlier, and not before billing started."""
    if on > today:
        raise InvalidInput(f"{what} date {on} is in the future (today is {today})")
    if sub.billing_started_on is not None and on < sub.billing_started_on:
        raise InvalidInput(f"{what} date {on} is before {sub.username}'s billing started "
                           f"({sub.billing_started_on})")


def received_at(isp: IspSettings, on: dt.date, today: dt.date) -> dt.datetime:
    """When money received on the business day *on* counts as received: now for today, the
    start of that day (ISP time) for an earlier day entered late."""
    return utcnow() if on == today else start_of_day_utc(isp, on)


def record_payment(session: Session, username: str, amount: str | Decimal, *, method: str,
                   reference: str, today: dt.date, actor: str, on: dt.date | None = None,
                   invoice: str | None = None, invoice_id: int | None = None
                   ) -> PaymentResult:
    """Post a payment received on *on* (default *today*), settle the documents, and reconnect
    if nothing is overdue. A payment for an *invoice* (its number, or *invoice_id*: paid from
    its link) pays that invoice first, so paying an invoice's amount closes it; what is left,
    and a payment for no invoice, pays the documents oldest first. A terminated account keeps
    it as credit (refundable): nothing is reconnected or enforced."""
    value = parse_money(amount)
    if value <= 0:
        raise InvalidInput(f"payment amount {amount!r} must be above zero")
    if method not in METHODS:
        raise InvalidInput(f"unknown payment method {method!r}: use {', '.join(METHODS)}")
    reference = (reference or "").strip()
    if not reference or len(reference) > 128 or any(ord(c) < 0x20 for c in reference):
        raise InvalidInput("a payment needs a reference (receipt or transaction id), "
                           "at most 128 characters, no control characters")
    sub = get_subscriber(session, username, lock=True)
    day = on or today
    _effective(session, sub, day, today, "payment")
    if invoice is not None:
        target = invoices.get_invoice(session, invoice)
        if target.subscriber_id != sub.id or target.kind is InvoiceKind.CREDIT_NOTE:
            raise InvalidInput(f"{invoice} is not an invoice of {username}'s")
        invoice_id = target.id
    plan = sub.plan
    isp = settings(session)
    payment = Payment(subscriber_id=sub.id, amount=value, currency=plan.currency,
                      method=method, reference=reference, actor=actor,
                      received_at=received_at(isp, day, today))
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a {method} payment with reference {reference!r} is already "
                       "recorded") from None
    # the day's total moves with the payment (the dashboard and daily summary read it)
    totals.add_payment(session, local_today(isp, payment.received_at), plan.currency, method,
                       value)
    ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.PAYMENT, amount=-value,
                currency=plan.currency, effective_on=day,
                description=f"Payment {method} {reference}", actor=actor,
                payment_id=payment.id, invoice_id=invoice_id)
    if day < today:  # entered late: a late fee it would have prevented is taken back
        accounts.waive_late_fees(session, sub, day, today, actor)
    settled, reconnected = accounts.settle_and_reconnect(
        session, sub, day, f"paid ({method} {reference})", actor, as_of=today)
    overdue = settled.overdue(day)
    audit.record(session, actor=actor, action="payment.record", entity="subscriber",
                 entity_id=sub.id, after={"amount": str(value), "method": method,
                                          "reference": reference, "on": str(day)},
                 reason=f"balance {settled.balance}")
    notify(session, sub, "payment_received", f"payment:{payment.id}", on=day, amount=value,
           currency=plan.currency, method=method, reference=reference,
           balance=settled.balance, amount_due=settled.outstanding)
    return PaymentResult(payment.id, settled.balance, overdue, reconnected,
                         tuple(inv.number for inv in settled.newly_paid))


ADJUSTMENT_KINDS = ("refund", "charge", "credit", "write-off")


@dataclass(frozen=True)
class Adjustment:
    """What an adjustment did: the new balance, and the document it issued (a charge's
    invoice) or wrote off."""

    balance: Decimal
    document: str | None = None
    reconnected: bool = False


def adjust(session: Session, username: str, kind: str, amount: str | Decimal, *,
           reason: str, today: dt.date, actor: str, on: dt.date | None = None,
           invoice: str | None = None, reconnect: bool = False) -> Adjustment:
    """A refund (money paid back from credit), a manual charge (a one-line invoice, taxed
    like the plan, due after the ISP's payment terms), a goodwill credit, or a write-off of
    (part of) one invoice (*invoice*; the subscriber is reconnected only with *reconnect*),
    on the business day *on* (default *today*)."""
    if kind not in ADJUSTMENT_KINDS:
        raise InvalidInput(f"unknown adjustment {kind!r}: use {', '.join(ADJUSTMENT_KINDS)}")
    value = parse_money(amount)
    if value <= 0:
        raise InvalidInput(f"amount {amount!r} must be above zero")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500 or any(ord(c) < 0x20 for c in reason):
        raise InvalidInput("an adjustment needs a reason (at most 500 characters, one line)")
    sub = get_subscriber(session, username, lock=True)
    day = on or today
    _effective(session, sub, day, today, kind)
    if kind == "write-off":
        if not invoice:
            raise InvalidInput("a write-off names the invoice it gives up (--invoice)")
        owner = invoices.get_invoice(session, invoice).subscriber_id
        if owner != sub.id:
            raise InvalidInput(f"{invoice} is not {username}'s invoice")
        _, reconnected = accounts.write_off(session, invoice, value, reason=reason, today=day,
                                            actor=actor, reconnect=reconnect)
        accounts.refresh_service(session, sub, today)
        return Adjustment(ledger.balance(session, sub.id), invoice, reconnected)
    if invoice:
        raise InvalidInput(f"--invoice is for write-offs, not a {kind}")
    plan = sub.plan
    document = None
    if kind == "charge":
        isp = settings(session, lock=True)
        # a tax document is dated the day it is really issued (numbers follow dates); the
        # day the charge arose is on its line
        text = reason if day == today else f"{reason} ({day:%d %b %Y})"
        inv = invoices.issue(
            session, isp=isp, sub=sub, plan_name=plan.name, currency=plan.currency,
            vat_percent=plan.tax_percent, period_start=day, period_end=day + dt.timedelta(1),
            issued_on=today, due_on=today + dt.timedelta(days=isp.postpaid_due_days),
            lines=[invoices.Line(text, value)], kind=InvoiceKind.CHARGE, actor=actor)
        document = inv.number
    elif kind == "refund":
        if value > -ledger.balance(session, sub.id):
            raise Conflict(f"refund {value} is more than {username}'s credit "
                           f"({-ledger.balance(session, sub.id)})")
        ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.REFUND, amount=value,
                    currency=plan.currency, effective_on=day, description=reason, actor=actor)
    else:
        ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.CREDIT, amount=-value,
                    currency=plan.currency, effective_on=day, description=reason, actor=actor)
    audit.record(session, actor=actor, action=f"ledger.{kind}", entity="subscriber",
                 entity_id=sub.id, after={"amount": str(value), "document": document,
                                          "on": str(day)}, reason=reason)
    settled, reconnected = accounts.settle_and_reconnect(session, sub, day, f"{kind}: {reason}",
                                                         actor, as_of=today)
    return Adjustment(settled.balance, document, reconnected)


def list_payments(session: Session, *, subscriber_id: int | None = None, limit: int = 500
                  ) -> list[Payment]:
    """Payments newest first, optionally of one subscriber."""
    stmt = select(Payment).order_by(Payment.id.desc()).limit(limit)
    if subscriber_id is not None:
        stmt = stmt.where(Payment.subscriber_id == subscriber_id)
    return list(session.scalars(stmt))
