"""CSRF protection for every form: a random token per browser session, required on every
request that is not GET/HEAD/OPTIONS. The JSON API is exempt because it never reads the
cookie: it authenticates with a bearer token a forged cross-site request cannot carry."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

EXEMPT = ("/api/", "/webhooks/", "/pay/return/")


def token() -> str:
    """This browser session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def renew() -> None:
    """A fresh token (at login, with the fresh session)."""
    session["csrf"] = secrets.token_urlsafe(32)


def _check() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.path.startswith(EXEMPT) or request.routing_exception is not None:
        # the API uses bearer tokens; gateways' notifications and return redirects are
        # verified by their signatures and the gateway's API, never by our cookie; an
        # unknown route or method answers 404/405
        return
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="The form has expired or did not come from this site "
                               "(CSRF token missing or wrong). Reload the page and try again.")


def init_app(app: Flask) -> None:
    """Check every unsafe request and offer ``csrf_token()`` to templates."""
    app.before_request(_check)
    app.jinja_env.globals["csrf_token"] = token
