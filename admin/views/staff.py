"""Staff users and their API tokens, for admins: the same actions as ``radbill user ...``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from admin import users
from admin.auth import requires
from admin.db import commit, get_db, now
from admin.roles import Permission
from admin.views.common import actor, status_of
from radbill.errors import DomainError, InvalidInput

bp = Blueprint("staff", __name__)


def _page(status: int = 200, *, error: str | None = None, new_token: str | None = None,
          form: dict[str, str] | None = None) -> Any:
    db = get_db()
    moment = now()
    return render_template("staff.html", users=users.list_users(db),
                           throttled=users.throttled(db, moment),
                           tokens=users.list_tokens(db, limit=200), now=moment, error=error,
                           new_token=new_token, form=form or {}), status


def _done(message: str) -> Response:
    commit()
    flash(message)
    return redirect(url_for(".index"))


@bp.route("/staff")
@requires(Permission.MANAGE)
def index() -> Any:
    """Staff users (active, throttled, last login) and every API token."""
    return _page()


@bp.route("/staff/new", methods=["POST"])
@requires(Permission.MANAGE)
def create() -> Any:
    """Create a staff user."""
    f = request.form
    try:
        user = users.create_user(get_db(), f.get("username", "").strip(),
                                 f.get("password", ""), f.get("role", ""), actor=actor())
    except DomainError as exc:
        get_db().rollback()
        return _page(status_of(exc), error=str(exc),
                     form={k: v for k, v in f.items() if k != "password"})
    return _done(f"Staff user {user.username} created.")


def _act(username: str, what: str) -> Any:
    db = get_db()
    try:
        if what == "disable":
            users.set_active(db, username, False, actor=actor())
            message = f"{username} disabled; their sessions ended and tokens stopped."
        elif what == "enable":
            users.set_active(db, username, True, actor=actor())
            message = f"{username} enabled."
        elif what == "unlock":
            users.unlock(db, username, actor=actor())
            message = f"Failed logins of {username} forgotten."
        else:
            users.set_password(db, username, request.form.get("password", ""), actor=actor())
            message = f"Password of {username} changed; their sessions ended."
    except DomainError as exc:
        db.rollback()
        return _page(status_of(exc), error=str(exc))
    return _done(message)


@bp.route("/staff/<username>/disable", methods=["POST"])
@requires(Permission.MANAGE)
def disable(username: str) -> Any:
    """Disable a staff user (sessions end, tokens stop)."""
    return _act(username, "disable")


@bp.route("/staff/<username>/enable", methods=["POST"])
@requires(Permission.MANAGE)
def enable(username: str) -> Any:
    """Enable a disabled staff user."""
    return _act(username, "enable")


@bp.route("/staff/<username>/unlock", methods=["POST"])
@requires(Permission.MANAGE)
def unlock(username: str) -> Any:
    """Forget the failed logins counted for a name."""
    return _act(username, "unlock")


@bp.route("/staff/password", methods=["POST"])
@requires(Permission.MANAGE)
def password() -> Any:
    """Set a staff user's password (the user is picked in the form)."""
    return _act(request.form.get("username", ""), "password")


@bp.route("/staff/tokens", methods=["POST"])
@requires(Permission.MANAGE)
def token_create() -> Any:
    """Create an API token for the user picked in the form; it is shown once, on the answer
    page."""
    db = get_db()
    f = request.form
    try:
        username = f.get("username", "")
        days_text = (f.get("days") or "").strip()
        lifetime: dt.timedelta | None = users.TOKEN_LIFETIME
        if days_text == "never":
            lifetime = None
        elif days_text:
            if not days_text.isdigit() or not 1 <= int(days_text) <= 3650:
                raise InvalidInput("days: a whole number from 1 to 3650, or 'never'")
            lifetime = dt.timedelta(days=int(days_text))
        token = users.create_token(db, username, f.get("name", "").strip(), actor=actor(),
                                   lifetime=lifetime)
        commit()
    except DomainError as exc:
        db.rollback()
        return _page(status_of(exc), error=str(exc))
    # Rendered, not flashed: a flashed message would sit in the session cookie.
    return _page(201, new_token=token)


@bp.route("/staff/tokens/<int:token_id>/revoke", methods=["POST"])
@requires(Permission.MANAGE)
def token_revoke(token_id: int) -> Any:
    """Revoke an API token."""
    try:
        row = users.revoke_token(get_db(), token_id, actor=actor())
    except DomainError as exc:
        get_db().rollback()
        return _page(status_of(exc), error=str(exc))
    return _done(f"Token {row.name} revoked.")
