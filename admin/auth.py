"""Logging staff in and out, and the permission every route declares.

The session cookie (signed, Secure, HttpOnly, SameSite=Lax) carries a random session id whose
hash is stored server-side (:class:`admin.models.StaffSession`): logging out ends the session
for good, and every login starts a new one, so a session id planted before login is useless.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from admin import csrf, users
from admin.db import commit, get_db, now
from admin.roles import Permission, allowed

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__)


def requires(permission: Permission) -> Callable[[F], F]:
    """Let only users whose role grants *permission* use the route. Anonymous visitors of a
    page are sent to the login page; logged-in users without the permission get 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if not allowed(user.role if user else None, permission):
                if user is None:
                    if request.path.startswith("/api/"):
                        abort(401)
                    return redirect(url_for("auth.login", next=request.full_path))
                abort(403)
            return view(*args, **kwargs)

        wrapped.permission = permission  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def check_every_route_declares_a_permission(app: Flask) -> None:
    """Refuse to start if a route was added without ``@requires``."""
    missing = [name for name, fn in app.view_functions.items()
               if name != "static" and not hasattr(fn, "permission")]
    if missing:
        raise RuntimeError(f"routes without a permission: {', '.join(sorted(missing))}")


@bp.before_app_request
def load_user() -> None:
    """The logged-in staff user of a browser session, or None."""
    g.user = None
    if request.path.startswith("/api/"):
        return  # the API authenticates with bearer tokens only
    sid = session.get("sid")
    if sid:
        g.user = users.session_user(get_db(), str(sid), now())
        if g.user is None:
            session.clear()


@bp.route("/login", methods=["GET", "POST"])
@requires(Permission.PUBLIC)
def login() -> Any:
    """The login form."""
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        db = get_db()
        try:
            user = users.authenticate(db, username, password, now())
        except users.LoginFailed as exc:
            commit()  # the failure count (and a lock-out) must stick
            error = str(exc)
        else:
            old_sid = session.get("sid")
            if old_sid:
                users.end_session(db, str(old_sid))
            sid = users.start_session(db, user, now())
            commit()
            session.clear()  # a new session: nothing from before the login survives
            session["sid"] = sid
            session.permanent = True
            csrf.renew()
            target = request.args.get("next") or ""
            # Only local paths: never an open redirect to another site.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("dashboard.index")
            return redirect(target)
    status = 401 if error else 200
    return render_template("login.html", error=error,
                           username=request.form.get("username", "")), status


@bp.route("/logout", methods=["POST"])
@requires(Permission.READ)
def logout() -> Response:
    """End this browser session."""
    sid = session.get("sid")
    if sid:
        users.end_session(get_db(), str(sid))
        commit()
    session.clear()
    return redirect(url_for("auth.login"))
