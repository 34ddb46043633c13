"""Issuing invoices: gapless numbers, lines, tax, the ledger charge and the outbox event.

Numbers come from the ISP settings row, locked for the transaction: two runs can never take
the same number, and a transaction that fails takes its numbers back with it, so the sequence
has no gaps. One invoice per subscriber and period is a unique constraint.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from billing import ledger
from billing.models import (
    MUTABLE_INVOICE_FIELDS,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    IspSettings,
    LedgerEntry,
    LedgerKind,
    Outbox,
    Plan,
    Subscriber,
)
from billing.money import ZERO, percent_of, round_money
from radbill.errors import Conflict, InvalidInput, NotFound


class ImmutableInvoice(Conflict):
    """Something tried to change what an issued invoice says."""


@event.listens_for(Session, "before_flush")
def _invoices_are_immutable(session: Session, _context: object, _instances: object) -> None:
    # Issued invoices are what the customer was sent: only settlement and the archived file
    # may change. Corrections are credit notes (:func:`credit_note`).
    for obj in session.dirty:
        if isinstance(obj, Invoice | InvoiceLine):
            state: Any = inspect(obj)
            changed = {a.key for a in state.attrs if a.history.has_changes()}
            allowed = MUTABLE_INVOICE_FIELDS if isinstance(obj, Invoice) else frozenset()
            if changed - allowed:
                which = obj.number if isinstance(obj, Invoice) else f"line of {obj.invoice_id}"
                raise ImmutableInvoice(
                    f"issued invoice {which} cannot be "
                    f"changed ({', '.join(sorted(changed - allowed))}): issue a credit note")
    for obj in session.deleted:
        if isinstance(obj, Invoice | InvoiceLine):
            raise ImmutableInvoice("issued invoices are never deleted: issue a credit note")


@dataclass(frozen=True)
class Line:
    """An invoice line before it is issued."""

    description: str
    amount: Decimal
    quantity: Decimal = Decimal(1)

    @property
    def unit_price(self) -> Decimal:
        return self.amount if self.quantity == 1 else (self.amount / self.quantity)


def format_number(prefix: str, n: int) -> str:
    """Invoice number *n* with the ISP's prefix: ``INV-000042``."""
    return f"{prefix}{n:06d}"


def next_number(isp: IspSettings) -> str:
    """Take the next invoice number. *isp* must be locked by the caller's transaction."""
    number = format_number(isp.invoice_prefix, isp.next_invoice_number)
    isp.next_invoice_number += 1
    return number


class Addressee(Protocol):
    """Whom an outbox event goes to (a :class:`Subscriber`, or a row of one)."""

    @property
    def username(self) -> str: ...
    @property
    def full_name(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...


def notice_payload(sub: Addressee, **payload: object) -> dict[str, object]:
    """An outbox event's payload: who to tell, and what (values as text)."""
    return {"username": sub.username, "name": sub.full_name, "phone": sub.phone,
            "email": sub.email,
            **{k: str(v) if v is not None else None for k, v in payload.items()}}


def notify(session: Session, sub: Subscriber, kind: str, key: str, **payload: object) -> bool:
    """Write an outbox event once per *key*. False if it was written before."""
    session.flush()
    if session.scalar(select(Outbox.id).where(Outbox.dedupe_key == key)) is not None:
        return False
    session.add(Outbox(kind=kind, subscriber_id=sub.id, dedupe_key=key,
                       payload=notice_payload(sub, **payload)))
    return True


@dataclass(frozen=True)
class Draft:
    """An invoice as it will be issued: what :func:`issue` writes, computed without I/O."""

    number: str
    kind: InvoiceKind
    plan_name: str
    period_start: dt.date
    period_end: dt.date
    issued_on: dt.date
    due_on: dt.date
    currency: str
    subtotal: Decimal
    tax_percent: Decimal
    tax: Decimal
    total: Decimal
    payment_link: str | None
    pay_token: str
    lines: tuple[Line, ...]

    def line_values(self) -> list[dict[str, object]]:
        """The invoice lines' column values (without the invoice id)."""
        return [{"position": position, "description": ln.description,
                 "quantity": ln.quantity,
                 "unit_price": round_money(ln.unit_price, self.currency),
                 "amount": round_money(ln.amount, self.currency)}
                for position, ln in enumerate(self.lines, 1)]

    def ledger_entry(self) -> tuple[LedgerKind, str] | None:
        """The ledger entry issuing posts for the total: a charge, a credit, or none."""
        if self.total > 0:
            return LedgerKind.CHARGE, f"Invoice {self.number}"
        if self.total < 0:
            return LedgerKind.CREDIT, f"Credit {self.number}"
        return None

    def notice(self) -> dict[str, object]:
        """The ``invoice_issued`` event's details (see :func:`notice_payload`)."""
        return {"invoice": self.number, "total": self.total, "currency": self.currency,
                "due_on": self.due_on, "period": f"{self.period_start}..{self.period_end}",
                "payment_link": self.payment_link}


def new_pay_token() -> str:
    """A fresh payment-link key: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def draft(isp: IspSettings, number: str, plan: Plan, *, period_start: dt.date,
          period_end: dt.date, issued_on: dt.date, due_on: dt.date, lines: list[Line],
          kind: InvoiceKind = InvoiceKind.PERIOD) -> Draft:
    """The invoice *number* with *lines*, tax and total (a pure rule over its inputs, but for
    the random key of its payment link)."""
    currency = plan.currency
    token = new_pay_token()
    subtotal = round_money(sum((ln.amount for ln in lines), ZERO), currency)
    tax = percent_of(subtotal, plan.tax_percent, currency)
    return Draft(
        number=number, kind=kind, plan_name=plan.name, period_start=period_start,
        period_end=period_end, issued_on=issued_on, due_on=due_on, currency=currency,
        subtotal=subtotal, tax_percent=plan.tax_percent, tax=tax, total=subtotal + tax,
        # Not the number: numbers are sequential, so anyone could walk every invoice.
        payment_link=(f"{isp.payment_link_base.rstrip('/')}/pay/{token}"
                      if isp.payment_link_base else None),
        pay_token=token, lines=tuple(lines))


def issue(session: Session, *, isp: IspSettings, sub: Subscriber, plan: Plan,
          period_start: dt.date, period_end: dt.date, issued_on: dt.date, due_on: dt.date,
          lines: list[Line], kind: InvoiceKind = InvoiceKind.PERIOD) -> Invoice:
    """Issue an invoice with *lines*: number, tax, the ledger entry (a charge, or a credit if
    the lines add up to less than zero) and the outbox event."""
    d = draft(isp, next_number(isp), plan, period_start=period_start, period_end=period_end,
              issued_on=issued_on, due_on=due_on, lines=lines, kind=kind)
    invoice = Invoice(
        number=d.number, kind=kind, subscriber_id=sub.id, plan_name=d.plan_name,
        period_start=period_start, period_end=period_end, issued_on=issued_on, due_on=due_on,
        currency=d.currency, subtotal=d.subtotal, tax_percent=d.tax_percent, tax=d.tax,
        total=d.total, payment_link=d.payment_link, pay_token=d.pay_token,
    )
    session.add(invoice)
    session.flush()
    for values in d.line_values():
        session.add(InvoiceLine(invoice_id=invoice.id, **values))
    entry = d.ledger_entry()
    if entry is not None:
        ledger.post(session, subscriber_id=sub.id, kind=entry[0], amount=d.total,
                    currency=d.currency, effective_on=issued_on, description=entry[1],
                    invoice_id=invoice.id)
    notify(session, sub, "invoice_issued", f"invoice:{invoice.id}", **d.notice())
    return invoice


def invoice_lines(session: Session, invoice_id: int) -> list[InvoiceLine]:
    """The lines of an invoice in order."""
    return list(session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
                                .order_by(InvoiceLine.position)))


def summary(inv: Invoice) -> dict[str, object]:
    """A plain dictionary of an invoice for JSON output."""
    return {
        "number": inv.number, "plan": inv.plan_name, "period_start": str(inv.period_start),
        "period_end": str(inv.period_end), "issued_on": str(inv.issued_on),
        "due_on": str(inv.due_on), "currency": inv.currency, "subtotal": str(inv.subtotal),
        "tax": str(inv.tax), "total": str(inv.total), "status": str(inv.status),
        "paid_on": str(inv.paid_on) if inv.paid_on else None,
        "payment_link": inv.payment_link, "pdf_path": inv.pdf_path,
        "pdf_sha256": inv.pdf_sha256,
    }


def credit_note(session: Session, *, isp: IspSettings, number: str, amount: Decimal,
                reason: str, today: dt.date, actor: str) -> Invoice:
    """Correct an issued invoice by crediting *amount* (tax included) of it."""
    original = session.scalars(select(Invoice).where(Invoice.number == number)
                               .with_for_update()).one_or_none()
    if original is None:
        raise NotFound(f"unknown invoice {number!r}")
    if original.kind is InvoiceKind.CREDIT_NOTE:
        raise InvalidInput(f"{number} is a credit note itself")
    if not reason.strip():
        raise InvalidInput("a credit note needs a reason")
    currency = original.currency
    amount = round_money(amount, currency)
    already = -sum((e.amount for e in session.scalars(select(LedgerEntry).where(
        LedgerEntry.invoice_id == original.id, LedgerEntry.kind == LedgerKind.CREDIT))), ZERO)
    if amount <= 0 or amount > original.total - already:
        raise InvalidInput(f"credit {amount} must be above zero and at most the "
                           f"{original.total - already} not yet credited on {number}")
    tax = round_money(amount * original.tax_percent / (100 + original.tax_percent), currency)
    note_number = next_number(isp)
    note = Invoice(
        number=note_number, kind=InvoiceKind.CREDIT_NOTE, credits_invoice_id=original.id,
        reason=reason, subscriber_id=original.subscriber_id, plan_name=original.plan_name,
        period_start=original.period_start, period_end=original.period_end, issued_on=today,
        due_on=today, currency=currency, subtotal=-(amount - tax),
        tax_percent=original.tax_percent, tax=-tax, total=-amount,
    )
    session.add(note)
    session.flush()
    session.add(InvoiceLine(invoice_id=note.id, position=1,
                            description=f"Credit for invoice {number}: {reason}",
                            quantity=Decimal(1), unit_price=-(amount - tax),
                            amount=-(amount - tax)))
    ledger.post(session, subscriber_id=original.subscriber_id, kind=LedgerKind.CREDIT,
                amount=-amount, currency=currency, effective_on=today,
                description=f"Credit note {note_number} for {number}: {reason}",
                invoice_id=original.id, actor=actor)
    sub = session.get(Subscriber, original.subscriber_id)
    assert sub is not None
    notify(session, sub, "credit_note", f"credit:{note.id}", invoice=number,
           credit_note=note_number, amount=amount, currency=currency, reason=reason)
    from billing.accounts import settle_and_reconnect  # accounts builds on this module

    settle_and_reconnect(session, sub, today, f"credit note {note_number}", actor)
    return note


def list_invoices(session: Session, *, subscriber_id: int | None = None,
                  status: str | None = None, limit: int = 500) -> list[Invoice]:
    """Invoices newest first, optionally of one subscriber or in one status."""
    stmt = select(Invoice).order_by(Invoice.id.desc()).limit(limit)
    if subscriber_id is not None:
        stmt = stmt.where(Invoice.subscriber_id == subscriber_id)
    if status:
        try:
            stmt = stmt.where(Invoice.status == InvoiceStatus(status))
        except ValueError:
            raise InvalidInput(f"unknown invoice status {status!r}: use open, paid or credited"
                               ) from None
    return list(session.scalars(stmt))


def get_invoice(session: Session, number: str) -> Invoice:
    """The invoice numbered *number*."""
    inv = session.scalars(select(Invoice).where(Invoice.number == number)).one_or_none()
    if inv is None:
        raise NotFound(f"unknown invoice {number!r}")
    return inv
