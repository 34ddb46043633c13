"""What an invoice document shows: plain frozen data, filled by the invoice service and
rendered by :mod:`billing.pdf`. No database, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class IspProfile:
    """The issuer printed on every invoice."""

    name: str
    address: str = ""
    phone: str = ""
    email: str = ""
    logo_path: Path | None = None  # PNG or JPEG; left out when None or missing
    # Tax documents (billing.tax profiles): the seller's BIN / GSTIN, State, the service's
    # SAC code, and the authorised person who signs.
    tax_profile: str = ""
    tax_id: str = ""
    state_name: str = ""
    state_code: str = ""
    sac_code: str = ""
    signatory_name: str = ""
    signatory_designation: str = ""


@dataclass(frozen=True)
class TaxAmount:
    """A tax head on a line or a document: name, rate (percent) and amount."""

    name: str
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line, amounts already rounded for the currency."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    duty: Decimal = Decimal("0")  # supplementary duty (Bangladesh)
    taxes: tuple[TaxAmount, ...] = ()  # the line's tax heads (tax documents show them)


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on one invoice or credit note."""

    number: str
    issued_on: dt.date
    due_on: dt.date | None  # None: a credit note
    period_start: dt.date
    period_end: dt.date  # exclusive: the period ends when this day starts
    currency: str
    isp: IspProfile
    subscriber_username: str
    subscriber_name: str
    subscriber_phone: str
    plan_name: str
    lines: tuple[DocumentLine, ...]
    subtotal: Decimal
    tax_percent: Decimal
    tax: Decimal
    total: Decimal
    payment_link: str | None = None
    title: str = "Invoice"  # "Credit note" for corrections
    issued_at: str = ""  # the time of issue (HH:MM, ISP time), printed on tax documents
    duty: Decimal = Decimal("0")
    duty_rate: Decimal = Decimal("0")
    taxes: tuple[TaxAmount, ...] = ()  # the document's tax heads; none: one "VAT" row
    # What the subscriber owed before this document and owes after it (None: not kept).
    previous_balance: Decimal | None = None
    amount_due: Decimal | None = None
    subscriber_address: str = ""
    subscriber_tax_id: str = ""
    place_of_supply: str = ""
    credits: tuple[str, dt.date] | None = None  # a credit note's invoice: number, issue date
    reason: str = ""  # why a credit note was issued
