"""Login, sessions, lock-out and CSRF."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from admin import create_app, security
from admin.models import StaffUser
from billing.subscribers import get_subscriber
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


OFF_SITE = [
    "https://evil.example/", "//evil", "/\t/evil.example", "/\n/x", "/\r\n/x", "\\evil",
    "/\\evil", "https:evil", "http:/evil", " //evil", "/\x00/x", "javascript:alert(1)",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_redirects_off_the_site(target: str, client_for: Any) -> None:
    client = client_for(None)
    page = client.get("/login")
    resp = client.post("/login", query_string={"next": target}, data={
        "username": "admin", "password": PASSWORD,
        "csrf_token": csrf_of(page.get_data(as_text=True))})
    if "\x00" in target:
        assert resp.status_code == 400  # refused before anything else
        return
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize(("target", "expected"), [
    ("/subscribers/?q=rahman&status=active", "/subscribers/?q=rahman&status=active"),
    ("/subscribers/bob", "/subscribers/bob"),
    ("/subscribers/?q=a b", "/subscribers/?q=a%20b"),
    ("/subscribers/\u09b0", "/subscribers/%E0%A6%B0"),
])
def test_login_goes_back_to_the_page_asked_for(target: str, expected: str,
                                               client_for: Any) -> None:
    client = client_for(None)
    page = client.get("/login")
    resp = client.post("/login", query_string={"next": target}, data={
        "username": "admin", "password": PASSWORD,
        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.headers["Location"] == expected


@pytest.mark.parametrize("target", [*OFF_SITE, "", None, "subscribers", "/" + "a" * 2001])
def test_safe_next_refuses_everything_but_a_local_path(target: str | None) -> None:
    assert security.safe_next(target) is None


def test_plain_http_on_a_lan_address_can_log_in(app: Any, staff: Any) -> None:
    """No TLS proxy (a LAN deployment): the cookie is not Secure, so the browser keeps it."""
    client = app.test_client()
    page = client.get("/login", base_url="http://192.0.2.10:8080")
    token = csrf_of(page.get_data(as_text=True))
    resp = client.post("/login", base_url="http://192.0.2.10:8080", data={
        "username": "admin", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("radbill_admin="))
    assert "Secure" not in cookie and "HttpOnly" in cookie
    assert client.get("/", base_url="http://192.0.2.10:8080").status_code == 200


@pytest.mark.parametrize(("proxies", "forwarded", "secure"), [
    (1, "https", True),  # a declared TLS proxy says the browser used HTTPS
    (0, "https", False),  # nobody declared a proxy: the header is anyone's
    (1, "http", False),
])
def test_the_cookie_is_secure_behind_a_declared_tls_proxy(
        proxies: int, forwarded: str, secure: bool, db: Any, settings: Any,
        staff: Any) -> None:
    app = create_app(replace(settings, trusted_proxies=proxies), engine=db)
    client = app.test_client()
    headers = {"X-Forwarded-Proto": forwarded, "X-Forwarded-For": "198.51.100.7"}
    page = client.get("/login", headers=headers)
    resp = client.post("/login", headers=headers, data={
        "username": "admin", "password": PASSWORD,
        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("radbill_admin="))
    assert ("Secure" in cookie) is secure


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
