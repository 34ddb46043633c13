"""Login, sessions, lock-out and CSRF."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from admin import auth, users
from admin.models import StaffUser
from billing.subscribers import get_subscriber
from radbill.audit import AuditLog
from radbill.db import utcnow
from tests.admin.conftest import PASSWORD, csrf, csrf_of, login
from tests.factories import make_plan, make_subscriber


def test_passwords_are_stored_as_argon2id(staff: Any, factory: Any) -> None:
    with factory() as s:
        stored = s.scalars(select(StaffUser.password_hash)
                           .where(StaffUser.username == "admin")).one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_login_renews_the_session_and_sets_safe_cookie_flags(client_for: Any) -> None:
    client = client_for(None)
    page = client.get("/login")
    before = client.get_cookie("radbill_admin")
    assert before is not None  # the anonymous session holding the login form's CSRF token
    resp = client.post("/login", data={"username": "billing", "password": PASSWORD,
                                       "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302
    header = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("radbill_admin="))
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
    after = client.get_cookie("radbill_admin")
    assert after is not None and after.value != before.value
    # the CSRF token changed with the session
    assert csrf(client) != csrf_of(page.get_data(as_text=True))


def test_a_planted_pre_login_cookie_does_not_log_anyone_in(client_for: Any, app: Any) -> None:
    attacker = client_for(None)
    attacker.get("/login")
    planted = attacker.get_cookie("radbill_admin")
    assert planted is not None
    victim = client_for(None)
    victim.set_cookie("radbill_admin", planted.value, domain="localhost")
    assert login(victim, "admin").status_code == 302
    # the attacker's copy of the old cookie is still anonymous
    assert attacker.get("/").status_code == 302


def test_logout_ends_the_session_on_the_server(client_for: Any, app: Any) -> None:
    client = client_for("admin")
    cookie = client.get_cookie("radbill_admin")
    assert cookie is not None
    assert client.get("/").status_code == 200
    resp = client.post("/logout", data={"csrf_token": csrf(client)})
    assert resp.status_code == 302
    replay = app.test_client()
    replay.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})
    replay.set_cookie("radbill_admin", cookie.value, domain="localhost")
    resp = replay.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_wrong_password_and_unknown_user_get_the_same_answer(client_for: Any) -> None:
    a = login(client_for(None), "admin", "wrong-password-1")
    b = login(client_for(None), "nobody", "wrong-password-1")
    assert a.status_code == b.status_code == 401
    assert "wrong username or password" in a.get_data(as_text=True)
    assert "wrong username or password" in b.get_data(as_text=True)


def test_lock_out_after_five_wrong_passwords(client_for: Any, factory: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(users.MAX_FAILED_LOGINS):
        assert login(client_for(None), "noc", "wrong-password-1").status_code == 401
    # even the right password is refused while locked
    resp = login(client_for(None), "noc")
    assert resp.status_code == 401
    assert "locked" in resp.get_data(as_text=True)
    with factory() as s:
        user = users.get_user(s, "noc")
        assert user.locked_until is not None
        locked = s.scalars(select(AuditLog).where(AuditLog.action == "staff.locked")).one()
        assert locked.actor == "noc"
    # other accounts are not affected
    assert login(client_for(None), "admin").status_code == 302
    later = utcnow() + users.LOCKOUT + dt.timedelta(seconds=1)
    monkeypatch.setattr(auth, "now", lambda: later)
    assert login(client_for(None), "noc").status_code == 302


def test_a_right_password_resets_the_failure_count(client_for: Any, factory: Any) -> None:
    for _ in range(users.MAX_FAILED_LOGINS - 1):
        login(client_for(None), "noc", "wrong-password-1")
    assert login(client_for(None), "noc").status_code == 302
    with factory() as s:
        assert users.get_user(s, "noc").failed_logins == 0


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_forms_without_the_csrf_token_are_rejected_and_change_nothing(
        token: str | None, client_for: Any, factory: Any, box: Any) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box)
    client = client_for("admin")
    data = {"reason": "forged"} | ({"csrf_token": token} if token else {})
    resp = client.post("/subscribers/alice/suspend", data=data)
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)
    with factory() as s:
        assert str(get_subscriber(s, "alice").status) == "active"


def test_the_login_form_needs_its_csrf_token_too(client_for: Any) -> None:
    client = client_for(None)
    resp = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert resp.status_code == 400


def test_a_token_from_another_session_is_rejected(client_for: Any, factory: Any,
                                                  box: Any) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box)
    other = csrf(client_for("billing"))
    resp = client_for("admin").post("/subscribers/alice/suspend", data={"csrf_token": other})
    assert resp.status_code == 400


def test_login_redirects_only_to_local_paths(client_for: Any) -> None:
    client = client_for(None)
    page = client.get("/login?next=https://evil.example/")
    resp = client.post("/login?next=https://evil.example/", data={
        "username": "admin", "password": PASSWORD,
        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.headers["Location"] == "/"


def test_api_tokens(client_for: Any, token_for: Any, factory: Any) -> None:
    client = client_for(None)
    assert client.get("/api/v1/plans").status_code == 401
    bad = client.get("/api/v1/plans", headers={"Authorization": "Bearer rbt_nope"})
    assert bad.status_code == 401 and bad.json["error"] == "unauthorized"
    assert bad.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/plans", headers=token_for("noc")).status_code == 200
    # a browser session cookie does not authenticate the API (so CSRF cannot reach it)
    browser = client_for("admin")
    assert browser.get("/api/v1/plans").status_code == 401


def test_nul_characters_are_refused_before_any_query(client_for: Any, token_for: Any) -> None:
    client = client_for("admin")
    assert client.get("/subscribers/?q=a%00b").status_code == 400
    resp = client.get("/api/v1/subscribers?q=a%00b", headers=token_for("admin"))
    assert resp.status_code == 422 and resp.json["fields"] == {
        "q": "must not contain NUL characters"}
    resp = client.get("/api/v1/subscribers/a%00b", headers=token_for("admin"))
    assert resp.status_code == 422 and "username" in resp.json["fields"]
