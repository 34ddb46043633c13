"""Issuing documents: invoices (periods, plan changes, charges, late fees) and credit notes.

Numbers come from the ISP settings row, locked for the transaction: two runs can never take
the same number, and a transaction that fails takes its numbers back with it, so each series
has no gaps. Invoices and credit notes are separate series (Mushak-6.7, CGST rule 53(1A)(c)).
One period invoice per subscriber and period is a unique constraint.

Every document records what the subscriber owed before it and owes after it (the ledger at
its issue), so it can say what to pay now, and the buyer as they were at issue. Tax is
computed per line by the ISP's country profile (:mod:`billing.tax`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, replace
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
    LedgerKind,
    Subscriber,
)
from billing.money import ZERO, round_money
from billing.tax import LineTax, TaxRule, breakdown, intra_state
from notify.outbox import Recipient, enqueue
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
    """An invoice line before it is issued (its value before tax)."""

    description: str
    amount: Decimal
    quantity: Decimal = Decimal(1)
    # the line's own tax rate, where it differs from the document's (a plan changed in the
    # period: each plan's days are taxed at that plan's rate)
    vat_percent: Decimal | None = None

    @property
    def unit_price(self) -> Decimal:
        return self.amount if self.quantity == 1 else (self.amount / self.quantity)


# The line of a late-fee document names the invoice it is charged on.
LATE_FEE_LINE = "Late fee on invoice "


def format_number(prefix: str, n: int) -> str:
    """Document number *n* with the series' prefix: ``INV-000042``."""
    return f"{prefix}{n:06d}"


def financial_year(day: dt.date, start_month: int) -> int:
    """The financial year *day* falls in, named by its first calendar year (July 2026 to
    June 2027 is 2026 when years start in July)."""
    return day.year if day.month >= start_month else day.year - 1


def series_prefix(isp: IspSettings, prefix: str) -> str:
    """*prefix* with the financial year of the running series, where numbers restart each
    year: ``INV-`` becomes ``INV-2627/``."""
    if not isp.financial_year_series or isp.series_year is None:
        return prefix
    year = isp.series_year
    return f"{prefix}{year % 100:02d}{(year + 1) % 100:02d}/"


def roll_series(isp: IspSettings, issued_on: dt.date) -> None:
    """Start the new financial year's series when a document is the first issued in it (both
    counters restart at 1). *isp* must be locked by the caller's transaction; documents are
    issued in date order (never back-dated), so a year never comes back."""
    if series_rolls(isp, issued_on):
        isp.series_year = financial_year(issued_on, isp.financial_year_start_month)
        isp.next_invoice_number = 1
        isp.next_credit_note_number = 1


def series_rolls(isp: IspSettings, issued_on: dt.date) -> bool:
    """Whether a document issued on *issued_on* starts a new series (:func:`roll_series`)."""
    if not isp.financial_year_series:
        return False
    year = financial_year(issued_on, isp.financial_year_start_month)
    return isp.series_year is None or year > isp.series_year


def next_number(isp: IspSettings, issued_on: dt.date, *, credit_note: bool = False) -> str:
    """Take the next number of the invoice (or credit note) series for a document issued on
    *issued_on*. *isp* must be locked by the caller's transaction."""
    roll_series(isp, issued_on)
    if credit_note:
        number = format_number(series_prefix(isp, isp.credit_note_prefix),
                               isp.next_credit_note_number)
        isp.next_credit_note_number += 1
        return number
    number = format_number(series_prefix(isp, isp.invoice_prefix), isp.next_invoice_number)
    isp.next_invoice_number += 1
    return number


class Addressee(Recipient, Protocol):
    """Whom a document goes to (a :class:`Subscriber`, or a row of one): the recipient of
    its notice, with what a tax document names."""

    @property
    def address(self) -> str | None: ...
    @property
    def tax_id(self) -> str | None: ...
    @property
    def state_code(self) -> str | None: ...


@dataclass(frozen=True)
class Buyer:
    """The buyer named on a document."""

    name: str
    address: str | None
    tax_id: str | None
    place_of_supply: str | None


def buyer_of(isp: IspSettings, sub: Addressee) -> Buyer:
    """The subscriber as a document's buyer; the place of supply is where they are connected
    (their State, the ISP's own when not set)."""
    return Buyer(name=sub.full_name or sub.username, address=sub.address,
                 tax_id=sub.tax_id, place_of_supply=sub.state_code or isp.state_code or None)


def tax_rule(isp: IspSettings, vat_percent: Decimal, buyer: Buyer, *, duty: bool = True
             ) -> TaxRule:
    """How a document for *buyer* at *vat_percent* is taxed (with the ISP's supplementary
    duty, unless *duty* is False)."""
    return TaxRule(profile=isp.tax_profile, vat_percent=vat_percent,
                   duty_percent=isp.supplementary_duty_percent if duty else ZERO,
                   intra_state=intra_state(isp.state_code, buyer.place_of_supply))


@dataclass(frozen=True)
class DraftLine:
    """A line as it is issued: its value, duty and tax."""

    line: Line
    taxes: LineTax


@dataclass(frozen=True)
class Draft:
    """A document as it will be issued: what :func:`issue` writes, computed without I/O."""

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
    duty: Decimal
    tax: Decimal
    total: Decimal
    tax_breakdown: list[dict[str, str]]
    previous_balance: Decimal
    amount_due: Decimal
    buyer: Buyer
    payment_link: str | None
    pay_token: str
    lines: tuple[DraftLine, ...]

    def line_values(self) -> list[dict[str, object]]:
        """The lines' column values (without the invoice id)."""
        return [{"position": position, "description": dl.line.description,
                 "quantity": dl.line.quantity,
                 "unit_price": round_money(dl.line.unit_price, self.currency),
                 "amount": round_money(dl.line.amount, self.currency),
                 "duty": dl.taxes.duty, "tax": dl.taxes.tax}
                for position, dl in enumerate(self.lines, 1)]

    def columns(self) -> dict[str, object]:
        """The invoice row's column values this draft decides."""
        b = self.buyer
        return {"number": self.number, "kind": self.kind, "plan_name": self.plan_name,
                "period_start": self.period_start, "period_end": self.period_end,
                "issued_on": self.issued_on, "due_on": self.due_on, "currency": self.currency,
                "subtotal": self.subtotal, "tax_percent": self.tax_percent, "duty": self.duty,
                "tax": self.tax, "total": self.total, "tax_breakdown": self.tax_breakdown,
                "previous_balance": self.previous_balance, "amount_due": self.amount_due,
                "buyer_name": b.name, "buyer_address": b.address, "buyer_tax_id": b.tax_id,
                "place_of_supply": b.place_of_supply, "payment_link": self.payment_link,
                "pay_token": self.pay_token,
                # owed in full until settled (billing.ledger.settle keeps it from then on)
                "outstanding": max(self.total, ZERO)}

    def ledger_entry(self) -> tuple[LedgerKind, str] | None:
        """The ledger entry issuing posts for the total: a late fee or a charge (none for a
        zero total)."""
        if self.total <= 0:
            return None
        if self.kind is InvoiceKind.LATE_FEE:
            return LedgerKind.LATE_FEE, f"Late fee invoice {self.number}"
        return LedgerKind.CHARGE, f"Invoice {self.number}"

    def notice(self) -> dict[str, object]:
        """The ``invoice_issued`` event's details (see :func:`notify.outbox.notice_payload`)."""
        return {"invoice": self.number, "document": str(self.kind), "total": self.total,
                "currency": self.currency, "due_on": self.due_on,
                "period": f"{self.period_start}..{self.period_end}",
                "previous_balance": self.previous_balance, "amount_due": self.amount_due,
                "payment_link": self.payment_link}


def new_pay_token() -> str:
    """A fresh payment-link key: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


Taxed = tuple[tuple[DraftLine, ...], Decimal, Decimal, Decimal,
              tuple[tuple[tuple[str, str], ...], ...]]
# A run taxes the same lines at the same rule many times. Keyed by the values as written
# (Decimal("5") and Decimal("5.00") are equal but print differently on the document).
_TAXED: dict[tuple[object, ...], Taxed] = {}
_TAXED_MAX = 4096


def _taxed(rule: TaxRule, lines: list[Line], vat_percent: Decimal, currency: str) -> Taxed:
    """*lines* taxed line by line: the lines, subtotal, duty, tax and the tax breakdown
    (each head as items: :func:`draft` gives every document its own dicts)."""
    key = (rule.profile, str(rule.vat_percent), str(rule.duty_percent), rule.intra_state,
           str(vat_percent), currency,
           *((ln.description, str(ln.amount), str(ln.quantity), str(ln.vat_percent))
             for ln in lines))
    found = _TAXED.get(key)
    if found is None:
        if len(_TAXED) >= _TAXED_MAX:
            _TAXED.clear()
        found = _TAXED[key] = _tax_lines(rule, lines, vat_percent, currency)
    return found


def _tax_lines(rule: TaxRule, lines: list[Line], vat_percent: Decimal, currency: str
               ) -> Taxed:
    taxed = tuple(DraftLine(ln, (rule if ln.vat_percent in (None, vat_percent) else
                                 replace(rule, vat_percent=ln.vat_percent))
                            .line(round_money(ln.amount, currency), currency))
                  for ln in lines)
    subtotal = round_money(sum((ln.amount for ln in lines), ZERO), currency)
    duty = sum((dl.taxes.duty for dl in taxed), ZERO)
    tax = sum((dl.taxes.tax for dl in taxed), ZERO)
    heads = tuple(tuple(head.items())
                  for head in breakdown((dl.taxes for dl in taxed), rule.duty_percent))
    return taxed, subtotal, duty, tax, heads


def draft(isp: IspSettings, number: str, *, plan_name: str, currency: str,
          vat_percent: Decimal, buyer: Buyer, period_start: dt.date, period_end: dt.date,
          issued_on: dt.date, due_on: dt.date, lines: list[Line], previous_balance: Decimal,
          kind: InvoiceKind = InvoiceKind.PERIOD) -> Draft:
    """The invoice *number* with *lines*, taxed line by line, and what it leaves to pay (a
    pure rule over its inputs, but for the random key of its payment link). Invoices are
    never negative: a reduction is a credit note."""
    if any(ln.amount < 0 for ln in lines):
        raise ValueError("an invoice line cannot be negative: issue a credit note")
    previous_balance = round_money(previous_balance, currency)
    token = new_pay_token()
    # a late fee the ISP does not treat as a taxable supply carries neither VAT nor SD
    rule = tax_rule(isp, vat_percent, buyer,
                    duty=kind != InvoiceKind.LATE_FEE or isp.late_fee_taxable)
    taxed, subtotal, duty, tax, heads = _taxed(rule, lines, vat_percent, currency)
    total = subtotal + duty + tax
    return Draft(
        number=number, kind=kind, plan_name=plan_name, period_start=period_start,
        period_end=period_end, issued_on=issued_on, due_on=due_on, currency=currency,
        subtotal=subtotal, tax_percent=vat_percent, duty=duty, tax=tax, total=total,
        tax_breakdown=[dict(head) for head in heads],
        previous_balance=previous_balance,
        amount_due=max(previous_balance + total, ZERO), buyer=buyer,
        # Not the number: numbers are sequential, so anyone could walk every invoice.
        payment_link=(f"{isp.payment_link_base.rstrip('/')}/pay/{token}"
                      if isp.payment_link_base else None),
        pay_token=token, lines=taxed)


def issue(session: Session, *, isp: IspSettings, sub: Subscriber, plan_name: str,
          currency: str, vat_percent: Decimal, period_start: dt.date, period_end: dt.date,
          issued_on: dt.date, due_on: dt.date, lines: list[Line],
          kind: InvoiceKind = InvoiceKind.PERIOD, actor: str = "system") -> Invoice:
    """Issue an invoice with *lines*: number, tax, the ledger entry and the outbox event."""
    d = draft(isp, next_number(isp, issued_on), plan_name=plan_name, currency=currency,
              vat_percent=vat_percent, buyer=buyer_of(isp, sub), period_start=period_start,
              period_end=period_end, issued_on=issued_on, due_on=due_on, lines=lines,
              previous_balance=ledger.balance(session, sub.id), kind=kind)
    invoice = Invoice(subscriber_id=sub.id, username=sub.username, **d.columns())
    session.add(invoice)
    session.flush()
    for values in d.line_values():
        session.add(InvoiceLine(invoice_id=invoice.id, **values))
    entry = d.ledger_entry()
    if entry is not None:
        ledger.post(session, subscriber_id=sub.id, kind=entry[0], amount=d.total,
                    currency=d.currency, effective_on=issued_on, description=entry[1],
                    invoice_id=invoice.id, actor=actor)
    enqueue(session, sub, "invoice_issued", f"invoice:{invoice.id}", on=issued_on, **d.notice())
    return invoice


def invoice_lines(session: Session, invoice_id: int) -> list[InvoiceLine]:
    """The lines of an invoice in order."""
    return list(session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
                                .order_by(InvoiceLine.position)))


def summary(inv: Invoice) -> dict[str, object]:
    """A plain dictionary of an invoice for JSON output."""
    return {
        "number": inv.number, "kind": str(inv.kind), "plan": inv.plan_name,
        "period_start": str(inv.period_start), "period_end": str(inv.period_end),
        "issued_on": str(inv.issued_on),
        "due_on": str(inv.due_on) if inv.due_on else None, "currency": inv.currency,
        "subtotal": str(inv.subtotal), "duty": str(inv.duty), "tax": str(inv.tax),
        "total": str(inv.total), "status": str(inv.status),
        "paid_on": str(inv.paid_on) if inv.paid_on else None,
        "previous_balance": (str(inv.previous_balance)
                             if inv.previous_balance is not None else None),
        "amount_due": str(inv.amount_due) if inv.amount_due is not None else None,
        "payment_link": inv.payment_link, "pdf_path": inv.pdf_path,
        "pdf_sha256": inv.pdf_sha256,
    }


Head = tuple[str, str]  # a tax head: its name and rate ("VAT", "5.00")


def heads_of(inv: Invoice) -> dict[Head, Decimal]:
    """An invoice's tax heads by name and rate: one name twice when a plan changed in the
    period and each plan's days were taxed at its own rate (VAT at the document's rate for
    invoices issued before heads were kept)."""
    if inv.tax_breakdown is not None:
        heads: dict[Head, Decimal] = {}
        for h in inv.tax_breakdown:
            if h["name"] != "SD":
                key = (h["name"], str(h["rate"]))
                heads[key] = heads.get(key, ZERO) + Decimal(h["amount"])
        return heads
    return {("VAT", str(inv.tax_percent)): inv.tax} if inv.tax else {}


@dataclass(frozen=True)
class CreditSplit:
    """What a credit note takes off each part of its invoice (positive amounts)."""

    subtotal: Decimal
    duty: Decimal
    heads: dict[Head, Decimal]

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.duty + sum(self.heads.values(), ZERO)


def split_credit(amount: Decimal, original: CreditSplit, remaining: CreditSplit,
                 currency: str) -> CreditSplit:
    """How a credit of *amount* (tax included) divides into value, duty and each tax head:
    in the invoice's proportions, never more of a part than is left of it, and the note that
    credits everything left takes exactly what is left (so the notes of an invoice never
    credit more tax than it carried). A pure rule."""
    if amount == remaining.total:
        return remaining
    ratio = amount / original.total

    def part(whole: Decimal, left: Decimal) -> Decimal:
        return min(left, round_money(whole * ratio, currency))

    duty = part(original.duty, remaining.duty)
    heads = {n: part(original.heads[n], left) for n, left in remaining.heads.items()}
    subtotal = amount - duty - sum(heads.values(), ZERO)
    excess = subtotal - remaining.subtotal
    if excess > 0:  # earlier notes took the value unevenly: the taxes take the rest
        subtotal = remaining.subtotal
        more = min(excess, remaining.duty - duty)
        duty, excess = duty + more, excess - more
        for name, left in remaining.heads.items():
            more = min(excess, left - heads[name])
            heads[name], excess = heads[name] + more, excess - more
    return CreditSplit(subtotal, duty, heads)


def credited(session: Session, original: Invoice) -> CreditSplit:
    """What the credit notes of *original* have taken off it so far."""
    notes = session.scalars(select(Invoice).where(Invoice.credits_invoice_id == original.id,
                                                  Invoice.kind == InvoiceKind.CREDIT_NOTE)).all()
    heads: dict[Head, Decimal] = dict.fromkeys(heads_of(original), ZERO)
    for note in notes:
        for head, value in heads_of(note).items():
            # a note that printed one rate per name counts against its name's first head
            key = head if head in heads else next((k for k in heads if k[0] == head[0]), head)
            heads[key] = heads.get(key, ZERO) - value
    return CreditSplit(-sum((n.subtotal for n in notes), ZERO),
                       -sum((n.duty for n in notes), ZERO), heads)


def credit_note(session: Session, *, isp: IspSettings, number: str, amount: Decimal | None,
                reason: str, today: dt.date, actor: str, settle: bool = True) -> Invoice:
    """Correct an issued invoice by crediting *amount* (tax included; None: everything not
    yet credited) of it, on a credit note of its own series. With *settle* the account is
    settled (and reconnected if nothing is overdue) in the same transaction."""
    original = session.scalars(select(Invoice).where(Invoice.number == number)
                               .with_for_update()).one_or_none()
    if original is None:
        raise NotFound(f"unknown invoice {number!r}")
    if original.kind is InvoiceKind.CREDIT_NOTE:
        raise InvalidInput(f"{number} is a credit note itself")
    if not reason.strip():
        raise InvalidInput("a credit note needs a reason")
    if today < original.issued_on:
        raise InvalidInput(f"a credit note cannot be dated {today}, before {number} was "
                           f"issued ({original.issued_on})")
    currency = original.currency
    whole = CreditSplit(original.subtotal, original.duty, heads_of(original))
    done = credited(session, original)
    left = CreditSplit(whole.subtotal - done.subtotal, whole.duty - done.duty,
                       {n: v - done.heads.get(n, ZERO) for n, v in whole.heads.items()})
    amount = left.total if amount is None else round_money(amount, currency)
    if amount <= 0 or amount > left.total:
        raise InvalidInput(f"credit {amount} must be above zero and at most the "
                           f"{left.total} not yet credited on {number}")
    part = split_credit(amount, whole, left, currency)
    sub = session.get(Subscriber, original.subscriber_id)
    assert sub is not None
    previous = round_money(ledger.balance(session, sub.id), currency)
    rates = {h["name"]: h["rate"] for h in original.tax_breakdown or []}
    note = Invoice(
        number=next_number(isp, today, credit_note=True), kind=InvoiceKind.CREDIT_NOTE,
        credits_invoice_id=original.id, reason=reason, subscriber_id=sub.id,
        username=sub.username,
        plan_name=original.plan_name, period_start=original.period_start,
        period_end=original.period_end, issued_on=today, due_on=None, currency=currency,
        subtotal=-part.subtotal, tax_percent=original.tax_percent, duty=-part.duty,
        tax=-sum(part.heads.values(), ZERO), total=-amount,
        tax_breakdown=([{"name": "SD", "rate": rates.get("SD", "0"), "amount": str(-part.duty)}]
                       if part.duty else [])
        + [{"name": name, "rate": rate, "amount": str(-v)}
           for (name, rate), v in part.heads.items()],
        previous_balance=previous, amount_due=max(previous - amount, ZERO),
        buyer_name=original.buyer_name or sub.full_name or sub.username,
        buyer_address=original.buyer_address, buyer_tax_id=original.buyer_tax_id,
        place_of_supply=original.place_of_supply, status=InvoiceStatus.APPLIED,
    )
    session.add(note)
    session.flush()
    session.add(InvoiceLine(invoice_id=note.id, position=1,
                            description=f"Credit for invoice {number}: {reason}",
                            quantity=Decimal(1), unit_price=-part.subtotal,
                            amount=-part.subtotal, duty=-part.duty,
                            tax=-sum(part.heads.values(), ZERO)))
    ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.CREDIT, amount=-amount,
                currency=currency, effective_on=today,
                description=f"Credit note {note.number} for {number}: {reason}",
                invoice_id=original.id, actor=actor)
    enqueue(session, sub, "credit_note", f"credit:{note.id}", on=today, invoice=number,
           credit_note=note.number, amount=amount, currency=currency, reason=reason,
           amount_due=note.amount_due)
    if settle:
        from billing.accounts import settle_and_reconnect  # accounts builds on this module

        settle_and_reconnect(session, sub, today, f"credit note {note.number}", actor)
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
            raise InvalidInput(f"unknown invoice status {status!r}: use "
                               f"{', '.join(s.value for s in InvoiceStatus)}") from None
    return list(session.scalars(stmt))


def get_invoice(session: Session, number: str) -> Invoice:
    """The invoice numbered *number*."""
    inv = session.scalars(select(Invoice).where(Invoice.number == number)).one_or_none()
    if inv is None:
        raise NotFound(f"unknown invoice {number!r}")
    return inv
