"""Invoices (with their PDFs) and payments."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from admin.auth import requires
from admin.db import get_db
from admin.roles import Permission
from admin.views.common import pdf_response
from billing import archive, invoices, payments
from billing.models import Subscriber
from payments import intents
from payments.models import PaymentIntent
from radbill.errors import DomainError

bp = Blueprint("money", __name__)


@bp.route("/invoices")
@requires(Permission.READ)
def invoice_list() -> Any:
    """Invoices newest first, by status."""
    db = get_db()
    error, rows = None, []
    try:
        rows = invoices.list_invoices(db, status=request.args.get("status") or None, limit=300)
    except DomainError as exc:
        error = str(exc)
    names = {s.id: s.username for s in db.query(Subscriber).filter(
        Subscriber.id.in_({i.subscriber_id for i in rows}))} if rows else {}
    return render_template("invoices.html", rows=rows, names=names, error=error,
                           args=request.args), 422 if error else 200


@bp.route("/invoices/<number>.pdf")
@requires(Permission.READ)
def invoice_pdf(number: str) -> Response:
    """The archived PDF (checked against its SHA-256), or one rendered now if the archive
    job has not reached this invoice yet."""
    db = get_db()
    try:
        inv = invoices.get_invoice(db, number)
    except DomainError:
        abort(404)
    return pdf_response(archive.pdf_of(db, inv), inv.number)


def held_payments() -> list[PaymentIntent]:
    """Gateway payments held for review (the amount or currency did not match)."""
    return intents.held(get_db())


@bp.route("/payments")
@requires(Permission.READ)
def payment_list() -> str:
    """Payments newest first, and those held for review."""
    db = get_db()
    rows = payments.list_payments(db, limit=300)
    held = held_payments()
    ids = {p.subscriber_id for p in rows} | {h.subscriber_id for h in held}
    names = {s.id: s.username for s in db.query(Subscriber).filter(
        Subscriber.id.in_(ids))} if ids else {}
    return render_template("payments.html", rows=rows, names=names, held=held)
