"""What the page views share: who is acting, and how a service error becomes a status."""

from __future__ import annotations

from flask import Response, g

from radbill.errors import Conflict, DomainError, NotFound


def actor() -> str:
    """The staff user acting, as written to the audit log."""
    return str(g.user.username)


def status_of(exc: DomainError) -> int:
    """404 for unknown things, 409 for conflicts, 422 for bad input."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 422


def pdf_response(data: bytes, number: str) -> Response:
    """An invoice's PDF, shown in the browser under its number."""
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{number}.pdf"'})
