"""Logging staff in and out, and the permission every route declares.

The session cookie (signed, HttpOnly, SameSite=Lax, Secure over HTTPS) carries a random
session id whose hash is stored server-side (:class:`admin.models.StaffSession`): logging out
ends the session for good, and every login starts a new one, so a session id planted before
login is useless.

A successful login also leaves a signed *device cookie* naming the user: a browser holding
one for the name it logs in with is not held back by that name's back-off (the one strangers
can raise, see :mod:`admin.throttle`), so an operator keeps logging in from the browser they
always use while someone else guesses at their name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from admin import csrf, security, users
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
               if name != "static" and not name.endswith(".static")
               and not hasattr(fn, "permission")]
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


DEVICE_COOKIE = "radbill_device"
DEVICE_LIFETIME = 90 * 24 * 3600  # seconds


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="radbill-device")


def _trusted_device(username: str) -> bool:
    """Whether this browser logged in as *username* before (a signed cookie says so)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return False
    try:
        names = _devices().loads(raw, max_age=DEVICE_LIFETIME)
    except BadSignature:
        return False
    return isinstance(names, list) and username in names


def _remember_device(response: Response, username: str) -> None:
    names: list[str] = []
    raw = request.cookies.get(DEVICE_COOKIE)
    if raw:
        try:
            old = _devices().loads(raw, max_age=DEVICE_LIFETIME)
        except BadSignature:
            old = []
        names = [n for n in old if isinstance(n, str) and n != username] if isinstance(
            old, list) else []
    names = [username, *names][:5]  # a shared browser: the last few names
    response.set_cookie(DEVICE_COOKIE, _devices().dumps(names), max_age=DEVICE_LIFETIME,
                        path=url_for("auth.login"), secure=request.is_secure, httponly=True,
                        samesite="Lax")


@bp.route("/login", methods=["GET", "POST"])
@requires(Permission.PUBLIC)
def login() -> Any:
    """The login form."""
    error, status, retry_after = None, 200, None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        db = get_db()
        try:
            user = users.authenticate(db, username, password, now(),
                                      address=request.remote_addr,
                                      trusted_device=_trusted_device(username))
        except users.LoginThrottled as exc:
            error, status, retry_after = str(exc), 429, exc.retry_after
        except users.LoginFailed as exc:
            commit()  # the failure count must stick
            error, status = str(exc), 401
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
            # Only a path on this site: never an open redirect to another one.
            target = security.safe_next(request.args.get("next")) or url_for("dashboard.index")
            response = redirect(target)
            _remember_device(response, user.username)
            return response
    response = make_response(render_template("login.html", error=error,
                                             username=request.form.get("username", "")), status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


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
