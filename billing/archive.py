"""The invoice archive: a PDF and its SHA-256 for every issued invoice.

Rendering (tens of milliseconds an invoice) is kept out of the billing run's transactions:
the run issues invoices, :func:`render_pending` archives those without a file yet. It is run
right after every real billing run and by the scheduler, and is safe to repeat: an invoice is
immutable, so its document (and file) never changes once written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from billing import tax
from billing.documents import DocumentLine, InvoiceDocument, TaxAmount
from billing.invoices import invoice_lines
from billing.isp import profile, settings
from billing.models import Invoice, InvoiceKind, IspSettings, Subscriber
from billing.pdf import render_invoice_pdf
from billing.tax import TaxRule

log = logging.getLogger("radbill.billing")


def document(session: Session, inv: Invoice) -> InvoiceDocument:
    """What the invoice or credit note shows: the document as issued (the buyer as named at
    issue, its lines with their taxes, what was owed before it and is due now)."""
    sub = session.get(Subscriber, inv.subscriber_id)
    assert sub is not None
    isp = settings(session)
    heads = inv.tax_breakdown or []
    rates = {h["name"]: Decimal(h["rate"]) for h in heads}
    duty_rate = rates.get("SD", Decimal(0))
    original = (session.get(Invoice, inv.credits_invoice_id)
                if inv.credits_invoice_id is not None else None)
    credit = inv.kind is InvoiceKind.CREDIT_NOTE
    lines = invoice_lines(session, inv.id)
    doc_taxes = tuple(TaxAmount(h["name"], Decimal(h["rate"]), Decimal(h["amount"]))
                      for h in heads if h["name"] != "SD")
    return InvoiceDocument(
        number=inv.number, issued_on=inv.issued_on, due_on=inv.due_on,
        issued_at=local_time(isp, inv.created_at),
        period_start=inv.period_start, period_end=inv.period_end, currency=inv.currency,
        isp=profile(isp), subscriber_username=sub.username,
        subscriber_name=inv.buyer_name or sub.full_name or sub.username,
        subscriber_phone=sub.phone or "", subscriber_address=inv.buyer_address or "",
        subscriber_tax_id=inv.buyer_tax_id or "",
        place_of_supply=tax.place_of_supply(isp.tax_profile, inv.place_of_supply),
        plan_name=inv.plan_name,
        lines=tuple(DocumentLine(ln.description, ln.quantity, ln.unit_price, ln.amount,
                                 ln.duty or Decimal(0),
                                 doc_taxes if len(lines) == 1 and ln.tax is not None
                                 else _line_taxes(isp, inv, ln.amount, ln.tax, rates))
                    for ln in lines),
        subtotal=inv.subtotal, tax_percent=inv.tax_percent, tax=inv.tax, total=inv.total,
        duty=inv.duty, duty_rate=duty_rate,
        taxes=doc_taxes,
        previous_balance=inv.previous_balance, amount_due=inv.amount_due,
        payment_link=inv.payment_link if not credit else None,
        title=tax.document_title(isp.tax_profile, credit),
        credits=(original.number, original.issued_on) if original is not None else None,
        reason=inv.reason or "",
    )


def _line_taxes(isp: IspSettings, inv: Invoice, amount: Decimal, line_tax: Decimal | None,
                rates: dict[str, Decimal]) -> tuple[TaxAmount, ...]:
    """A line's tax heads, as issued: recomputed by the same per-line rule (it is
    deterministic), and checked against the tax stored on the line. (A one-line document's
    line has the document's heads.)"""
    if line_tax is None or not rates or line_tax == 0:
        return ()
    names = [n for n in rates if n != "SD"]
    if not names:
        return ()
    # the document's rate first, then the others it carries (a line per plan, each at its
    # plan's rate, when the plan changed in the period)
    candidates = [inv.tax_percent, *sorted({Decimal(h["rate"]) for h in inv.tax_breakdown or []
                                            if h["name"] != "SD"} - {inv.tax_percent})]
    for vat in candidates:
        rule = TaxRule(profile=isp.tax_profile if isp.tax_profile else "",
                       vat_percent=vat, duty_percent=rates.get("SD", Decimal(0)),
                       intra_state="IGST" not in names)
        computed = rule.line(amount, inv.currency)
        if computed.tax == line_tax:
            return tuple(TaxAmount(h.name, h.rate, h.amount) for h in computed.heads)
    # the profile changed since: show the stored total only
    return (TaxAmount(names[0] if len(names) == 1 else "Tax", inv.tax_percent, line_tax),)


def local_time(isp: IspSettings, at: dt.datetime) -> str:
    """*at* as HH:MM in the ISP's time zone (the time of issue on tax documents)."""
    return at.astimezone(ZoneInfo(isp.timezone)).strftime("%H:%M")


def write_atomically(path: Path, data: bytes) -> None:
    """Write *data* to *path* so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # invoices name subscribers and their addresses: owner-only, whatever the umask
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
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


def _archived(inv: Invoice) -> bytes | None:
    """The archived file's bytes if it is there and matches its checksum."""
    if not inv.pdf_path or not inv.pdf_sha256:
        return None
    try:
        data = Path(inv.pdf_path).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == inv.pdf_sha256 else None


def verify(inv: Invoice) -> bool:
    """True if the archived file is there and matches its checksum."""
    return _archived(inv) is not None


def pdf_of(session: Session, inv: Invoice) -> bytes:
    """The invoice's PDF: the archived file if it matches its checksum (read once: the bytes
    checked are the bytes served), else rendered now (the archive job has not reached this
    invoice yet, or the file is gone or damaged)."""
    data = _archived(inv)
    return data if data is not None else render_invoice_pdf(document(session, inv))


def verify_all(factory: sessionmaker[Session], batch: int = 1000, keep: int = 100
               ) -> tuple[int, list[str]]:
    """Check every archived PDF against its checksum, in batches; return how many verified
    and the numbers of (at most *keep*) that did not."""
    verified, last = 0, 0
    bad: list[str] = []
    while True:
        with factory() as session:
            rows = session.scalars(select(Invoice).where(
                Invoice.id > last, Invoice.pdf_path.is_not(None)).order_by(Invoice.id)
                .limit(batch)).all()
            if not rows:
                return verified, bad
            for inv in rows:
                if verify(inv):
                    verified += 1
                elif len(bad) < keep:
                    bad.append(inv.number)
            last = rows[-1].id


def relocate(session: Session, old_dir: Path, new_dir: Path) -> int:
    """Point the archived invoices under *old_dir* at the same files under *new_dir* (a
    restore onto another data directory). Returns how many moved."""
    old, new = f"{str(old_dir).rstrip('/')}/", f"{str(new_dir).rstrip('/')}/"
    result = session.execute(
        update(Invoice).where(Invoice.pdf_path.startswith(old, autoescape=True))
        .values(pdf_path=literal(new) + func.substr(Invoice.pdf_path, len(old) + 1))
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
