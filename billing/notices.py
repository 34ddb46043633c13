"""What the notify part asks billing at send time: whether an event still holds (is the
invoice still open, is the subscriber still suspended) and an invoice's archived PDF."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import Invoice, InvoiceStatus, Subscriber

CHUNK = 900  # bound IN (...) lists
T = TypeVar("T")


@dataclass(frozen=True)
class Facts:
    """Subscribers' statuses and which of the named invoices are still open (with what
    they still owe, when known)."""

    statuses: dict[int, str]
    open_invoices: dict[str, Decimal | None]
    known_invoices: frozenset[str]


def _chunks(items: list[T]) -> Iterable[list[T]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def facts(session: Session, subscriber_ids: Iterable[int], invoice_numbers: Iterable[str]
          ) -> Facts:
    """The state now of these subscribers and invoices."""
    statuses: dict[int, str] = {}
    for ids in _chunks(sorted(set(subscriber_ids))):
        statuses.update({i: str(s) for i, s in session.execute(
            select(Subscriber.id, Subscriber.status).where(Subscriber.id.in_(ids)))})
    open_: dict[str, Decimal | None] = {}
    known: set[str] = set()
    for numbers in _chunks(sorted(set(invoice_numbers))):
        for number, status, due in session.execute(
                select(Invoice.number, Invoice.status, Invoice.amount_due)
                .where(Invoice.number.in_(numbers))):
            known.add(number)
            if status == InvoiceStatus.OPEN:
                open_[number] = due
    return Facts(statuses, open_, frozenset(known))


class PdfNotReady(Exception):
    """The invoice's PDF is not archived yet (the renderer runs after the billing run)."""


def archived_pdf(session: Session, number: str) -> tuple[bytes, str] | None:
    """The archived PDF of invoice *number* and its SHA-256, verified against the archive's
    record; None when there is no such invoice. :class:`PdfNotReady` when not yet written,
    ``ValueError`` when the file does not match its recorded hash."""
    inv = session.scalars(select(Invoice).where(Invoice.number == number)).one_or_none()
    if inv is None:
        return None
    if not inv.pdf_path or not inv.pdf_sha256:
        raise PdfNotReady(number)
    data = Path(inv.pdf_path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != inv.pdf_sha256:
        raise ValueError(f"archived PDF of {number} does not match its SHA-256")
    return data, digest
