"""The ledger: every charge, payment, credit, fee, refund and write-off, append-only.

Amounts are signed from the ISP's side: what the subscriber owes is positive (charges, late
fees, refunds paid out), what reduces it is negative (payments, credits, write-offs). The
balance is the sum. Invoices are settled oldest first (:func:`settle`): an invoice is paid once
the credits cover it and everything older.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.models import Invoice, InvoiceKind, InvoiceStatus, LedgerEntry, LedgerKind
from billing.money import ZERO, round_money


def post(session: Session, *, subscriber_id: int, kind: LedgerKind, amount: Decimal,
         currency: str, effective_on: dt.date, description: str, actor: str = "system",
         invoice_id: int | None = None, payment_id: int | None = None) -> LedgerEntry:
    """Append one entry in the caller's transaction. *amount* is signed (see module doc)."""
    amount = round_money(amount, currency)
    if kind in (LedgerKind.CHARGE, LedgerKind.LATE_FEE, LedgerKind.REFUND) and amount <= 0:
        raise ValueError(f"a {kind} must be positive, got {amount}")
    if kind in (LedgerKind.PAYMENT, LedgerKind.CREDIT, LedgerKind.WRITE_OFF) and amount >= 0:
        raise ValueError(f"a {kind} must be negative, got {amount}")
    entry = LedgerEntry(subscriber_id=subscriber_id, kind=kind, amount=amount,
                        currency=currency, effective_on=effective_on, description=description,
                        actor=actor, invoice_id=invoice_id, payment_id=payment_id)
    session.add(entry)
    return entry


def balance(session: Session, subscriber_id: int) -> Decimal:
    """What the subscriber owes (negative: credit in hand)."""
    session.flush()
    total = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                           .where(LedgerEntry.subscriber_id == subscriber_id))
    return Decimal(total or 0)


@dataclass(frozen=True)
class Settlement:
    """The subscriber's invoices after settlement."""

    balance: Decimal
    open_invoices: tuple[tuple[Invoice, Decimal], ...]  # (invoice, outstanding), oldest first
    newly_paid: tuple[Invoice, ...]

    def overdue(self, today: dt.date) -> Decimal:
        """Outstanding on invoices whose due date has passed."""
        return sum((o for inv, o in self.open_invoices if inv.due_on < today), ZERO)


def settle(  # noqa: PLR0912 - one branch per kind of entry and per invoice outcome
    session: Session, subscriber_id: int, today: dt.date
) -> Settlement:
    """Apply the credits to invoices oldest first and update their status.

    A credit attached to an invoice (a credit note, a plan-change credit) reduces that
    invoice first; what it does not use, and every unattached credit (payments), covers the
    unattached debits and then the invoices oldest first. An invoice its own credits cover
    entirely is ``credited``, one the general credits cover is ``paid``."""
    session.flush()
    entries = session.execute(
        select(LedgerEntry.amount, LedgerEntry.invoice_id)
        .where(LedgerEntry.subscriber_id == subscriber_id)
    ).all()
    charged: dict[int, Decimal] = {}
    attached_credit: dict[int, Decimal] = {}
    credits = unattached = ZERO
    for amount, invoice_id in entries:
        if invoice_id is None:
            if amount < 0:
                credits -= amount
            else:
                unattached += amount
        elif amount > 0:
            charged[invoice_id] = charged.get(invoice_id, ZERO) + amount
        else:
            attached_credit[invoice_id] = attached_credit.get(invoice_id, ZERO) - amount
    invoices = session.scalars(
        select(Invoice).where(Invoice.subscriber_id == subscriber_id,
                              Invoice.kind != InvoiceKind.CREDIT_NOTE)
        .order_by(Invoice.due_on, Invoice.id)
    ).all()
    needs: dict[int, Decimal] = {}
    for inv in invoices:
        own = attached_credit.get(inv.id, ZERO)
        charge = charged.get(inv.id, ZERO)
        needs[inv.id] = max(charge - own, ZERO)
        credits += max(own - charge, ZERO)  # a net credit (downgrade) is money in hand
    remaining = credits - unattached
    open_: list[tuple[Invoice, Decimal]] = []
    paid: list[Invoice] = []
    for inv in invoices:
        need = needs[inv.id]
        fully_credited = attached_credit.get(inv.id, ZERO) > 0 and need == 0 and (
            charged.get(inv.id, ZERO) > 0)
        if fully_credited:
            inv.status, inv.paid_on = InvoiceStatus.CREDITED, inv.paid_on or today
        elif remaining >= need:
            if inv.status is not InvoiceStatus.PAID:
                inv.status, inv.paid_on = InvoiceStatus.PAID, today
                paid.append(inv)
        else:
            open_.append((inv, need - max(remaining, ZERO)))
            if inv.status is not InvoiceStatus.OPEN:  # a refund or reversal reopened it
                inv.status, inv.paid_on = InvoiceStatus.OPEN, None
        remaining -= need
    total = sum((a for a, _ in entries), ZERO)
    return Settlement(total, tuple(open_), tuple(paid))


def entries(session: Session, subscriber_id: int, limit: int = 200) -> list[LedgerEntry]:
    """The subscriber's ledger, newest first."""
    return list(session.scalars(
        select(LedgerEntry).where(LedgerEntry.subscriber_id == subscriber_id)
        .order_by(LedgerEntry.id.desc()).limit(limit)))
