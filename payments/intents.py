"""Payment intents: starting a gateway payment for an invoice, and turning what a gateway
confirms into ledger postings exactly once.

Every confirmation (webhook, return callback, poll) goes through :func:`apply`, in one
transaction that locks the intent, records the gateway event under a unique key, checks the
payment against the intent (invoice, amount, currency), and posts it with
:func:`billing.payments.record_payment` (which settles invoices and reconnects in that same
transaction, and whose ``(method, reference)`` unique constraint is the last line against a
double posting). Anything that does not match is held for an operator, never posted as paid.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import ledger
from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.models import Invoice, InvoiceStatus, LedgerKind, Subscriber
from billing.payments import record_payment
from payments.gateways.base import Checkout, Confirmation, PaymentOrder, Status
from payments.models import GatewayEvent, GatewayHealth, PaymentIntent
from radbill import audit
from radbill.db import utcnow
from radbill.errors import Conflict, InvalidInput, NotFound
from radbill.ops import raise_alert

log = logging.getLogger("radbill.payments")

FINAL = ("paid", "failed", "held", "refunded")


@dataclass(frozen=True)
class Due:
    """What a payment link shows: the invoice and what is left to pay on it. Never the
    username (a login name is half a credential) nor anything else about the subscriber but
    the first name."""

    key: str  # the link's key, for the page's own form
    number: str
    first_name: str
    currency: str
    total: Decimal
    outstanding: Decimal  # still owed on this invoice
    amount_due: Decimal  # everything owed now (this invoice, older ones, late fees)
    due_on: dt.date
    paid: bool


def invoice_for_link(session: Session, key: str) -> Invoice:
    """The invoice a payment link ``/pay/<key>`` opens. Raises NotFound."""
    key = key[:64]
    inv = session.scalars(select(Invoice).where(Invoice.pay_token == key)).one_or_none()
    if inv is None:
        # Links sent before invoices had a key were ``/pay/<number>``. Such a link keeps
        # working while its invoice is open: the subscriber may still pay by it, and its
        # reminders carry that same link. Once the invoice is paid or credited it is a 404.
        # Walking the sequential numbers therefore finds only open invoices issued before the
        # upgrade, a set that only shrinks, and nothing issued since (those answer to their
        # key alone).
        inv = session.scalars(select(Invoice).where(Invoice.number == key,
                                                    Invoice.pay_token.is_(None))).one_or_none()
        if (inv is None or inv.status != InvoiceStatus.OPEN
                or not (inv.payment_link or "").endswith(f"/pay/{inv.number}")):
            raise NotFound("no such payment link")
    if inv.kind == "credit_note" or inv.due_on is None:
        raise NotFound("a credit note: nothing to pay")
    return inv


def due(session: Session, key: str) -> Due:
    """The payment page's view of the invoice link *key* opens. Raises NotFound."""
    inv = invoice_for_link(session, key)
    assert inv.due_on is not None  # invoice_for_link opens no credit note
    sub = session.get(Subscriber, inv.subscriber_id)
    assert sub is not None
    settled = ledger.settle(session, sub.id, local_today(isp_settings(session), utcnow()))
    outstanding = next((o for i, o in settled.open_invoices if i.id == inv.id), Decimal("0"))
    return Due(key=key, number=inv.number, first_name=first_name(sub.full_name),
               currency=inv.currency, total=inv.total, outstanding=outstanding,
               amount_due=settled.outstanding if outstanding > 0 else Decimal("0"),
               due_on=inv.due_on, paid=outstanding <= 0)


def first_name(full_name: str | None) -> str:
    """The first word of a full name, or nothing (never the username in its place)."""
    words = (full_name or "").split()
    return words[0][:40] if words else ""


def create(session: Session, key: str, gateway: str, public_url: str
           ) -> tuple[PaymentIntent, PaymentOrder]:
    """A new intent to pay everything owed now, from the invoice link *key* opens, through
    *gateway*, and the order to send to the gateway (settlement covers the oldest documents
    first, so paying less than everything could leave an older one open and the subscriber
    suspended). Raises Conflict if nothing is left to pay on the invoice."""
    view = due(session, key)
    if view.paid:
        raise Conflict(f"invoice {view.number} is already paid")
    inv = invoice_for_link(session, key)
    sub = session.get(Subscriber, inv.subscriber_id)
    assert sub is not None
    intent = PaymentIntent(reference=f"RB{inv.id}{secrets.token_hex(5).upper()}",
                           subscriber_id=sub.id, invoice_id=inv.id, gateway=gateway,
                           amount=view.amount_due, currency=view.currency)
    session.add(intent)
    session.flush()
    # The gateway's checkout page shows the name and description: no username there either.
    order = PaymentOrder(
        reference=intent.reference, invoice_number=inv.number, amount=view.amount_due,
        currency=view.currency, customer_name=sub.full_name or "Subscriber",
        customer_phone=sub.phone or "", description=f"Invoice {inv.number}",
        # The reference rides in the path: bKash appends "?paymentID=..&status=.." to the
        # callback URL by concatenation, which would fold a query string of ours into its own.
        return_url=f"{public_url}/pay/return/{gateway}/{intent.reference}",
        notify_url=f"{public_url}/webhooks/{gateway}")
    return intent, order


def started(session: Session, reference: str, checkout: Checkout) -> None:
    """The gateway accepted the order: remember its reference; the intent is pending."""
    intent = _intent(session, reference, lock=True)
    intent.gateway_reference = checkout.gateway_reference
    intent.status = "pending"


def find(session: Session, reference: str, gateway: str) -> PaymentIntent | None:
    """The intent *reference* started on *gateway*, if any."""
    return session.scalars(select(PaymentIntent).where(
        PaymentIntent.reference == reference[:64], PaymentIntent.gateway == gateway)
    ).one_or_none()


def _intent(session: Session, reference: str, *, lock: bool = False) -> PaymentIntent:
    stmt = select(PaymentIntent).where(PaymentIntent.reference == reference)
    if lock:
        stmt = stmt.with_for_update()
    intent = session.scalars(stmt).one_or_none()
    if intent is None:
        raise NotFound(f"unknown payment {reference!r}")
    return intent


def _event(session: Session, gateway: str, key: str, outcome: str, intent_id: int | None,
           detail: str | None = None) -> bool:
    """Record a delivery; False if this event was seen before (nothing else to do)."""
    try:
        with session.begin_nested():
            session.add(GatewayEvent(gateway=gateway, event_key=key[:160], outcome=outcome,
                                     intent_id=intent_id, detail=detail))
    except IntegrityError:
        return False
    return True


def apply(  # noqa: PLR0911 - one return per outcome
        session: Session, gateway: str, conf: Confirmation, *, source: str) -> str:
    """Apply one verified confirmation. Returns what happened: ``posted``, ``duplicate``,
    ``held``, ``failed``, ``pending``, ``refunded``, ``unknown``, ``ignored``."""
    intent = session.scalars(select(PaymentIntent).where(
        PaymentIntent.reference == conf.reference, PaymentIntent.gateway == gateway)
        .with_for_update()).one_or_none()
    key = conf.event_id or f"{conf.transaction_id or conf.reference}:{conf.status}"
    if not conf.reference:
        # a payment on the same gateway account that radbill did not start (the ISP's other
        # sales): acknowledged so the gateway keeps the webhook enabled, otherwise ignored
        _event(session, gateway, key, "ignored", None, "no radbill reference")
        return "ignored"
    if intent is None:
        if _event(session, gateway, key, "unknown", None, f"reference {conf.reference!r}"):
            audit.record(session, actor=f"gateway:{gateway}", action="payment.unknown",
                         entity="payment_intent", entity_id=conf.reference,
                         after={"reference": conf.reference, "amount": str(conf.amount),
                                "currency": conf.currency, "source": source})
            raise_alert(session, "payment-unknown",
                        f"{gateway} confirmed {conf.amount} {conf.currency} for unknown "
                        f"payment {conf.reference!r}: nothing posted; check the gateway "
                        "dashboard", {"gateway": gateway, "reference": conf.reference})
        return "unknown"
    if not _event(session, gateway, key, str(conf.status), intent.id, source):
        return "duplicate"
    if conf.status is Status.PENDING and source != "poll":
        declared(session, intent)
    if conf.status is Status.PAID:
        return _paid(session, intent, conf, source)
    if conf.status is Status.REFUNDED:
        return _refunded(session, intent, conf, source)
    if conf.status is Status.FAILED and intent.status in ("created", "pending"):
        intent.status = "failed"
        return "failed"
    return "pending" if conf.status is Status.PENDING else "duplicate"


def _paid(session: Session, intent: PaymentIntent, conf: Confirmation, source: str) -> str:
    if intent.status in ("paid", "refunded"):
        return "duplicate"
    if intent.status == "held":
        return "held"
    if conf.transaction_id and session.scalar(select(PaymentIntent.id).where(
            PaymentIntent.gateway == intent.gateway, PaymentIntent.id != intent.id,
            PaymentIntent.transaction_id == conf.transaction_id)) is not None:
        return "duplicate"  # this money movement was already matched to another intent
    intent.confirmed_amount, intent.confirmed_currency = conf.amount, conf.currency
    if conf.gateway_reference and not intent.gateway_reference:
        intent.gateway_reference = conf.gateway_reference
    problem = None
    if not conf.transaction_id:
        problem = "the gateway gave no transaction id"
    elif conf.currency != intent.currency:
        problem = f"currency {conf.currency} instead of {intent.currency}"
    elif conf.amount != intent.amount:
        problem = f"amount {conf.amount} instead of {intent.amount} {intent.currency}"
    elif conf.review:
        problem = conf.review
    sub = session.get(Subscriber, intent.subscriber_id)
    assert sub is not None
    if problem is not None:
        intent.status, intent.hold_reason = "held", problem
        intent.transaction_id = conf.transaction_id
        audit.record(session, actor=f"gateway:{intent.gateway}", action="payment.held",
                     entity="payment_intent", entity_id=intent.id, reason=problem,
                     after={"reference": intent.reference, "transaction_id": conf.transaction_id,
                            "amount": str(conf.amount), "currency": conf.currency})
        raise_alert(session, "payment-held",
                    f"{intent.gateway} payment {conf.transaction_id} by {sub.username} is held "
                    f"for review: {problem}; nothing was posted",
                    {"intent": intent.reference, "gateway": intent.gateway})
        log.warning("payment %s held: %s", intent.reference, problem)
        return "held"
    assert conf.transaction_id is not None
    isp = isp_settings(session)
    try:
        with session.begin_nested():
            intent.transaction_id = conf.transaction_id
            session.flush()  # unique (gateway, transaction_id): a racing twin fails here
            # paid from the invoice's link: it pays that invoice first, the rest what
            # else is owed (billing.payments.record_payment)
            result = record_payment(session, sub.username, conf.amount, method=intent.gateway,
                                    reference=conf.transaction_id,
                                    today=local_today(isp, utcnow()),
                                    actor=f"gateway:{intent.gateway}",
                                    invoice_id=intent.invoice_id)
    except (Conflict, IntegrityError):
        # the same money was posted already (another intent, an operator): once only
        return "duplicate"
    intent.status, intent.payment_id, intent.confirmed_at = "paid", result.payment_id, utcnow()
    log.info("payment %s %s %s %s posted (%s)%s", intent.gateway, conf.transaction_id,
             conf.amount, conf.currency, source, "; reconnected" if result.reconnected else "")
    return "posted"


def _refunded(session: Session, intent: PaymentIntent, conf: Confirmation, source: str) -> str:
    if intent.status not in ("paid", "refunded"):
        # The refund is the first we hear of this payment (its capture notification was
        # lost or comes later): the money came in before it went out, so post both.
        if not conf.transaction_id:
            return "pending"
        paid = _paid(session, intent, replace(conf, status=Status.PAID), source)
        if intent.status != "paid":
            return paid
    delta = conf.refunded_amount - intent.refunded_amount
    if delta <= 0:
        return "duplicate"
    sub = session.get(Subscriber, intent.subscriber_id)
    assert sub is not None
    isp = isp_settings(session)
    today = local_today(isp, utcnow())
    ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.REFUND, amount=delta,
                currency=intent.currency, effective_on=today,
                description=f"{intent.gateway} refund of {intent.transaction_id}",
                actor=f"gateway:{intent.gateway}")
    ledger.settle(session, sub.id, today)
    intent.refunded_amount = conf.refunded_amount
    intent.status = "refunded"
    audit.record(session, actor=f"gateway:{intent.gateway}", action="payment.refund",
                 entity="payment_intent", entity_id=intent.id,
                 after={"refunded": str(conf.refunded_amount), "source": source})
    return "refunded"


def declared(session: Session, intent: PaymentIntent) -> None:
    """The gateway or the payer's browser came back about *intent* and the gateway could not
    confirm it (still pending, or unreachable). Remembered: if the intent then expires
    unpaid, money may have moved without radbill knowing, and polling raises an alert."""
    if intent.declared_at is None and intent.status in ("created", "pending"):
        intent.declared_at = utcnow()


def declared_by_reference(session: Session, gateway: str, reference: str) -> None:
    """:func:`declared` for a return whose confirmation failed (the gateway unreachable)."""
    intent = session.scalars(select(PaymentIntent).where(
        PaymentIntent.reference == reference[:64], PaymentIntent.gateway == gateway)
        .with_for_update()).one_or_none()
    if intent is not None:
        declared(session, intent)


def rejected(session: Session, gateway: str, why: str, source: str) -> None:
    """A notification that failed verification: audited, nothing else."""
    audit.record(session, actor=f"gateway:{gateway}", action="payment.rejected",
                 entity="gateway", entity_id=gateway, reason=why[:500], after={"source": source})
    log.warning("%s notification rejected (%s): %s", gateway, source, why)


def health(session: Session, gateway: str, ok: bool, error: str | None = None) -> None:
    """Record whether the gateway's confirmations work; alert when one starts failing."""
    row = session.get(GatewayHealth, gateway, with_for_update=True)
    if row is None:
        row = GatewayHealth(gateway=gateway, failing=False)
        session.add(row)
    now = utcnow()
    if ok:
        row.failing, row.failing_since, row.last_ok_at = False, None, now
        return
    row.last_error = (error or "")[:1000]
    if not row.failing:
        row.failing, row.failing_since = True, now
        raise_alert(session, "gateway-failing",
                    f"{gateway} confirmations are failing ({error}); subscribers with a "
                    f"payment pending on {gateway} are not suspended until it recovers",
                    {"gateway": gateway})


def holds(session: Session, subscriber_ids: list[int], now: dt.datetime,
          window: dt.timedelta = dt.timedelta(hours=24)) -> dict[int, str]:
    """Subscribers not to suspend now: a payment started on a gateway whose confirmations are
    failing, within *window*. By subscriber id, the reason."""
    failing = {g.gateway: g for g in session.scalars(
        select(GatewayHealth).where(GatewayHealth.failing.is_(True)))}
    if not failing or not subscriber_ids:
        return {}
    out: dict[int, str] = {}
    rows = [i for ids in _chunks(subscriber_ids) for i in session.scalars(
        select(PaymentIntent).where(
            PaymentIntent.subscriber_id.in_(ids),
            PaymentIntent.status.in_(("created", "pending", "failed")),
            PaymentIntent.gateway.in_(list(failing)),
            PaymentIntent.created_at >= now - window))]
    for intent in rows:
        out[intent.subscriber_id] = (f"payment {intent.reference} pending on {intent.gateway}, "
                                     "whose confirmations are failing")
    return out


def _chunks(ids: list[int], size: int = 900) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def held(session: Session) -> list[PaymentIntent]:
    """Payments held for review, newest first."""
    return list(session.scalars(select(PaymentIntent).where(PaymentIntent.status == "held")
                                .order_by(PaymentIntent.id.desc())))


def held_count(session: Session) -> int:
    """How many payments are held for review."""
    return int(session.scalar(select(func.count()).select_from(PaymentIntent)
                              .where(PaymentIntent.status == "held")) or 0)


def validate_gateway(name: str, configured: dict[str, object]) -> str:
    if name not in configured:
        raise InvalidInput(f"payment by {name!r} is not available")
    return name


def open_invoice_numbers(session: Session, subscriber_id: int) -> list[str]:
    """The subscriber's open invoices (for payment links in messages)."""
    return list(session.scalars(select(Invoice.number).where(
        Invoice.subscriber_id == subscriber_id, Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.due_on)))
