"""The operators' admin UI and JSON API (Flask).

A thin application factory in the Flask tutorial's manner: configuration, the database, and
blueprints whose views call the billing, RADIUS and staff services and render the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

from flask import Flask
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException

from radbill.config import Settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None,
               config: dict[str, Any] | None = None) -> Flask:
    """Build the admin app for *settings* (``RADBILL_*`` from the environment by default)."""
    from admin import api, auth, csrf, db, filters, security
    from admin.views import (
        accounting,
        catalog,
        dashboard,
        messages,
        money,
        olts,
        operations,
        plan_requests,
        reports,
        staff,
        subscribers,
        usage,
    )
    from radbill.crypto import load_key
    from radbill.db import engine_from_settings

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        # Derived from radbill's secret key, so a deployment has one secret to keep.
        SECRET_KEY=hmac.new(load_key(settings), b"radbill-admin-session",
                            hashlib.sha256).hexdigest(),
        SESSION_COOKIE_NAME="radbill_admin",
        # (Secure is decided per request: admin.security.SessionInterface)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=1024 * 1024,
        RADBILL_SETTINGS=settings,
    )
    if config:
        app.config.update(config)
    db.init_app(app, engine or engine_from_settings(settings))
    csrf.init_app(app)
    filters.init_app(app)
    app.register_blueprint(auth.bp)
    for module in (dashboard, subscribers, catalog, olts, money, operations, accounting, staff,
                   messages, reports, plan_requests, usage):
        app.register_blueprint(module.bp)
    app.register_blueprint(api.bp)
    from payments import web as payments_web
    from payments.config import adapters

    if "RADBILL_GATEWAYS" not in app.config:
        app.config["RADBILL_GATEWAYS"] = adapters(settings)
    app.register_blueprint(payments_web.bp)
    from notify import web as notify_web

    app.register_blueprint(notify_web.bp)
    from portal import web as portal_web

    app.register_blueprint(portal_web.bp)
    security.init_app(app, settings)
    app.before_request(_refuse_nul_characters)
    app.register_error_handler(HTTPException, _http_error)
    auth.check_every_route_declares_a_permission(app)
    return app


def _http_error(exc: HTTPException) -> Any:
    """JSON under /api/, a page elsewhere."""
    from flask import make_response, render_template, request

    from admin import api

    if request.path.startswith("/api/"):
        response = make_response(api.http_error(exc))
    else:
        response = make_response(render_template("error.html", error=exc), exc.code or 500)
    limit = getattr(exc, "limit", None)  # a rate limit (Flask-Limiter): when to come back
    if exc.code == 429 and limit is not None:
        response.headers["Retry-After"] = str(limit.limit.get_expiry())
    return response


def _refuse_nul_characters() -> None:
    """PostgreSQL text cannot hold NUL: a page refuses such input before any query (the API
    answers 422 per field instead)."""
    from flask import abort, request

    from admin.csrf import EXEMPT

    # (gateways' notifications are verified on their raw body: parsing it here would consume it)
    if not request.path.startswith("/api/") and ("\x00" in request.path or any(
            "\x00" in str(v) for v in (request.view_args or {}).values())):
        abort(404)  # (the API answers 422 with the field instead)
    if not request.path.startswith(EXEMPT) and any(
            "\x00" in v for v in (*request.args.values(), *request.form.values())):
        abort(400, description="NUL characters are not allowed in input.")
