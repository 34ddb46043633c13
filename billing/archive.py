"""The invoice archive: a PDF and its SHA-256 for every issued invoice.

Rendering (tens of milliseconds an invoice) is kept out of the billing run's transactions:
the run issues invoices, :func:`render_pending` archives those without a file yet. It is run
right after every real billing run and by the scheduler, and is safe to repeat: an invoice is
immutable, so its document (and file) never changes once written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing.documents import DocumentLine, InvoiceDocument
from billing.invoices import invoice_lines
from billing.isp import profile, settings
from billing.models import Invoice, Subscriber
from billing.pdf import render_invoice_pdf

log = logging.getLogger("radbill.billing")


def document(session: Session, inv: Invoice) -> InvoiceDocument:
    """What the invoice shows."""
    sub = session.get(Subscriber, inv.subscriber_id)
    assert sub is not None
    return InvoiceDocument(
        number=inv.number, issued_on=inv.issued_on, due_on=inv.due_on,
        period_start=inv.period_start, period_end=inv.period_end, currency=inv.currency,
        isp=profile(settings(session)), subscriber_username=sub.username,
        subscriber_name=sub.full_name or sub.username, subscriber_phone=sub.phone or "",
        plan_name=inv.plan_name,
        lines=tuple(DocumentLine(ln.description, ln.quantity, ln.unit_price, ln.amount)
                    for ln in invoice_lines(session, inv.id)),
        subtotal=inv.subtotal, tax_percent=inv.tax_percent, tax=inv.tax, total=inv.total,
        payment_link=inv.payment_link,
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Write *data* to *path* so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def render_pending(factory: sessionmaker[Session], archive_dir: Path, batch: int = 100) -> int:
    """Render and archive every invoice that has no PDF yet. Returns how many."""
    done = 0
    while True:
        with factory() as session, session.begin():
            pending = session.scalars(select(Invoice).where(Invoice.pdf_path.is_(None))
                                      .order_by(Invoice.id).limit(batch)).all()
            if not pending:
                return done
            for inv in pending:
                data = render_invoice_pdf(document(session, inv))
                path = archive_dir / str(inv.issued_on.year) / f"{inv.number}.pdf"
                write_atomically(path, data)
                inv.pdf_path = str(path)
                inv.pdf_sha256 = hashlib.sha256(data).hexdigest()
                done += 1
        log.info("archived %d invoice PDFs", done)


def verify(inv: Invoice) -> bool:
    """True if the archived file is there and matches its checksum."""
    if not inv.pdf_path or not inv.pdf_sha256:
        return False
    try:
        data = Path(inv.pdf_path).read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == inv.pdf_sha256
