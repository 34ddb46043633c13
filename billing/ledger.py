"""The ledger: every charge, payment, credit, fee, refund and write-off, append-only.

Amounts are signed from the ISP's side: what the subscriber owes is positive (charges, late
fees, refunds paid out), what reduces it is negative (payments, credits, write-offs). The
balance is the sum. Invoices are settled oldest first (:func:`settle`): an invoice is paid once
the credits cover it and everything older.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, func, select
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
    if kind is LedgerKind.WRITE_OFF and invoice_id is None:
        raise ValueError("a write-off gives up (part of) one invoice: name it")
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
        return sum((o for inv, o in self.open_invoices if inv.due_on and inv.due_on < today),
                   ZERO)

    @property
    def outstanding(self) -> Decimal:
        """Everything owed on open documents (what a subscriber is asked to pay now)."""
        return sum((o for _, o in self.open_invoices), ZERO)


@dataclass(frozen=True)
class Outcome:
    """One invoice after settlement: its status, paid date and what is still owed on it."""

    status: InvoiceStatus
    paid_on: dt.date | None
    outstanding: Decimal  # zero unless open
    newly_paid: bool


Entry = tuple[Decimal, int | None, LedgerKind]  # amount, invoice id, kind


def allocate(  # noqa: PLR0912 - one branch per kind of entry and per invoice outcome
    entries: Sequence[Entry],
    invoices: Sequence[tuple[int, InvoiceStatus, dt.date | None]],
    today: dt.date,
) -> list[Outcome]:
    """Settlement as a pure rule: *entries* are a subscriber's ledger, *invoices* its
    documents but credit notes, oldest first by due date (id, status, paid_on). Returns each
    document's outcome, in the same order. See :func:`settle`."""
    charged: dict[int, Decimal] = {}
    attached_credit: dict[int, Decimal] = {}
    written_off: set[int] = set()
    paid_direct: set[int] = set()  # a payment was made for this very document
    credits = unattached = ZERO
    for amount, invoice_id, kind in entries:
        if invoice_id is None:
            if amount < 0:
                credits -= amount
            else:
                unattached += amount  # refunds (and charges posted before debit notes)
        elif amount > 0:
            charged[invoice_id] = charged.get(invoice_id, ZERO) + amount
        else:
            attached_credit[invoice_id] = attached_credit.get(invoice_id, ZERO) - amount
            if kind is LedgerKind.WRITE_OFF:
                written_off.add(invoice_id)
            elif kind is LedgerKind.PAYMENT:
                paid_direct.add(invoice_id)
    needs: list[Decimal] = []
    for inv_id, _status, _paid_on in invoices:
        own = attached_credit.get(inv_id, ZERO)
        charge = charged.get(inv_id, ZERO)
        needs.append(max(charge - own, ZERO))
        credits += max(own - charge, ZERO)  # a net credit is money in hand
    remaining = credits - unattached
    out: list[Outcome] = []
    for (inv_id, status, paid_on), need in zip(invoices, needs, strict=True):
        own_settled = attached_credit.get(inv_id, ZERO) > 0 and need == 0 and (
            charged.get(inv_id, ZERO) > 0)
        settled_status = (InvoiceStatus.WRITTEN_OFF if inv_id in written_off
                          else InvoiceStatus.CREDITED if own_settled and inv_id not in paid_direct
                          else InvoiceStatus.PAID)
        if own_settled or remaining >= need:
            if status is settled_status:
                out.append(Outcome(status, paid_on, ZERO, False))
            else:
                out.append(Outcome(settled_status, paid_on if status in SETTLED else today,
                                   ZERO, status is InvoiceStatus.OPEN
                                   and settled_status is InvoiceStatus.PAID))
        elif status is not InvoiceStatus.OPEN:  # a refund or reversal reopened it
            out.append(Outcome(InvoiceStatus.OPEN, None, need - max(remaining, ZERO), False))
        else:
            out.append(Outcome(status, paid_on, need - max(remaining, ZERO), False))
        remaining -= need
    return out


# Statuses of a document nothing more is owed on.
SETTLED = frozenset({InvoiceStatus.PAID, InvoiceStatus.CREDITED, InvoiceStatus.WRITTEN_OFF})


def settle(session: Session, subscriber_id: int, today: dt.date) -> Settlement:
    """Apply the credits to the documents oldest first and update their status.

    A credit attached to a document (a credit note, a write-off) reduces that document
    first; what it does not use, and every unattached credit (payments), covers the
    unattached debits (refunds) and then the documents oldest first. A document its credit
    notes cover entirely is ``credited``, one with a write-off ``written_off``, one the
    general credits cover ``paid``."""
    session.flush()
    entries = [(amount, invoice_id, kind) for amount, invoice_id, kind in session.execute(
        select(LedgerEntry.amount, LedgerEntry.invoice_id, LedgerEntry.kind)
        .where(LedgerEntry.subscriber_id == subscriber_id)
    ).all()]
    invoices = session.scalars(
        select(Invoice).where(Invoice.subscriber_id == subscriber_id,
                              Invoice.kind != InvoiceKind.CREDIT_NOTE)
        .order_by(Invoice.due_on, Invoice.id)
    ).all()
    outcomes = allocate(entries, [(inv.id, inv.status, inv.paid_on) for inv in invoices], today)
    open_: list[tuple[Invoice, Decimal]] = []
    paid: list[Invoice] = []
    for inv, outcome in zip(invoices, outcomes, strict=True):
        if (inv.status, inv.paid_on) != (outcome.status, outcome.paid_on):
            inv.status, inv.paid_on = outcome.status, outcome.paid_on
        if inv.outstanding != outcome.outstanding:  # kept for the overdue report
            inv.outstanding = outcome.outstanding
        if outcome.newly_paid:
            paid.append(inv)
        if outcome.status is InvoiceStatus.OPEN:
            open_.append((inv, outcome.outstanding))
    total = sum((a for a, _, _ in entries), ZERO)
    return Settlement(total, tuple(open_), tuple(paid))


def entries(session: Session, subscriber_id: int, limit: int = 200) -> list[LedgerEntry]:
    """The subscriber's ledger, newest first."""
    return list(session.scalars(
        select(LedgerEntry).where(LedgerEntry.subscriber_id == subscriber_id)
        .order_by(LedgerEntry.id.desc()).limit(limit)))


def owed_on(session: Session, subscriber_id: int, invoice_id: int, day: dt.date) -> Decimal:
    """What was still owed on one document at the end of *day*, by the ledger's effective
    dates and the documents issued by then (settlement as :func:`settle` does it)."""
    entries = [(amount, inv_id, kind) for amount, inv_id, kind in session.execute(
        select(LedgerEntry.amount, LedgerEntry.invoice_id, LedgerEntry.kind).where(
            LedgerEntry.subscriber_id == subscriber_id, LedgerEntry.effective_on <= day))]
    documents = session.execute(
        select(Invoice.id).where(Invoice.subscriber_id == subscriber_id,
                                 Invoice.kind != InvoiceKind.CREDIT_NOTE,
                                 Invoice.issued_on <= day)
        .order_by(Invoice.due_on, Invoice.id)).scalars().all()
    outcomes = allocate(entries, [(i, InvoiceStatus.OPEN, None) for i in documents], day)
    return next((o.outstanding for i, o in zip(documents, outcomes, strict=True)
                 if i == invoice_id), ZERO)


@dataclass(frozen=True)
class Drift:
    """A document whose kept outstanding amount is not what settling its account says."""

    subscriber_id: int
    invoice_id: int
    kept: Decimal  # what the invoice row says is owed (zero unless open)
    settled: Decimal  # what settlement of the ledger says is owed (zero unless open)


def outstanding_drift(conn: Connection, first_id: int, last_id: int,
                      today: dt.date) -> list[Drift]:
    """The documents of subscribers *first_id* to *last_id* whose kept outstanding amount
    (``invoices.outstanding`` on an open document, zero on a settled one) differs from what
    :func:`allocate` makes of the ledger as it stands, in subscriber and invoice order. Core
    statements on *conn*: the migration that introduced the amount uses it too."""
    entries: dict[int, list[Entry]] = {}
    for sub_id, amount, invoice_id, kind in conn.execute(
            select(LedgerEntry.subscriber_id, LedgerEntry.amount, LedgerEntry.invoice_id,
                   LedgerEntry.kind)
            .where(LedgerEntry.subscriber_id.between(first_id, last_id))
            .order_by(LedgerEntry.subscriber_id, LedgerEntry.id)):
        entries.setdefault(sub_id, []).append((Decimal(amount), invoice_id, LedgerKind(kind)))
    documents: dict[int, list[tuple[int, InvoiceStatus, dt.date | None, Decimal]]] = {}
    for sub_id, inv_id, status, paid_on, kept in conn.execute(
            select(Invoice.subscriber_id, Invoice.id, Invoice.status, Invoice.paid_on,
                   Invoice.outstanding)
            .where(Invoice.subscriber_id.between(first_id, last_id),
                   Invoice.kind != InvoiceKind.CREDIT_NOTE)
            .order_by(Invoice.subscriber_id, Invoice.due_on, Invoice.id)):
        documents.setdefault(sub_id, []).append(
            (inv_id, InvoiceStatus(status), paid_on, Decimal(kept)))
    out: list[Drift] = []
    for sub_id, docs in documents.items():
        outcomes = allocate(entries.get(sub_id, []), [(i, s, p) for i, s, p, _ in docs], today)
        for (inv_id, status, _, kept), outcome in zip(docs, outcomes, strict=True):
            have = kept if status is InvoiceStatus.OPEN else ZERO
            if have != outcome.outstanding:
                out.append(Drift(sub_id, inv_id, have, outcome.outstanding))
    return out


CHECK_CHUNK = 5_000  # subscribers per settlement read


def check_outstanding(session: Session, today: dt.date, *, repair: bool = False
                      ) -> list[Drift]:
    """Every document whose kept outstanding amount differs from what settling the ledger
    says (:func:`outstanding_drift`, chunk by chunk of subscribers). With *repair*, each
    account concerned is settled (:func:`settle`), in the caller's transaction: its
    documents' status, paid date and outstanding amount are restated from the ledger."""
    session.flush()
    top = session.scalar(select(func.max(Invoice.subscriber_id)))
    found: list[Drift] = []
    conn = session.connection()
    for first in range(1, int(top or 0) + 1, CHECK_CHUNK):
        found.extend(outstanding_drift(conn, first, first + CHECK_CHUNK - 1, today))
    if repair:
        for sub_id in sorted({d.subscriber_id for d in found}):
            settle(session, sub_id, today)
        session.flush()
    return found
