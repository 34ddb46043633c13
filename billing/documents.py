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


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line, amounts already rounded for the currency."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on one invoice."""

    number: str
    issued_on: dt.date
    due_on: dt.date
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
