"""Security headers on every kind of page, no inline code for the CSP to allow, and the rate
limits on the login form and the payment endpoints (in one process, and shared by several
processes through Redis)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine

from admin import create_app
from radbill.config import ConfigError, Settings
from tests.admin.conftest import HttpsClient, csrf_of, login
from tests.admin.helpers import overdue_subscriber
from tests.admin.test_access import routes
from tests.pgserver import free_tcp_port

INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)", re.I), "inline <script>"),
    (re.compile(r"<style", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event-handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def check_headers(resp: Any, what: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives.get("frame-ancestors") == "'none'", (what, csp)
    assert directives.get("script-src") == "'self'", (what, csp)
    assert directives.get("style-src") == "'self'", (what, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", what
    assert resp.headers.get("X-Frame-Options") == "DENY", what
    assert resp.headers.get("Referrer-Policy") == "same-origin", what
    assert resp.headers.get("Cache-Control") == "no-store", what


def check_no_inline_code(resp: Any, what: str) -> None:
    if resp.mimetype != "text/html":
        return
    html = resp.get_data(as_text=True)
    for pattern, name in INLINE:
        assert not pattern.search(html), f"{what}: {name}"


@pytest.fixture
def billed(factory: Any, box: Any) -> str:
    """bob's overdue invoice: the key of its payment link."""
    overdue_subscriber(factory, box)
    from sqlalchemy import select

    from billing.models import Invoice

    with factory() as s:
        return str(s.scalars(select(Invoice.pay_token)).one())


def test_every_page_has_the_headers_and_no_inline_code(
        app: Flask, client_for: Any, token_for: Any, billed: str) -> None:
    admin = client_for("admin")
    pages = 0
    for endpoint, method, route in routes(app):
        if method != "GET" or endpoint in ("static", "portal.static", "auth.logout"):
            continue
        path = route.replace("/alice", "/bob").replace("no-such-key", billed)
        resp = admin.get(path)
        check_headers(resp, path)
        check_no_inline_code(resp, path)
        pages += 1
    assert pages >= 15
    anonymous = client_for(None)
    for path in ("/login", f"/pay/{billed}", "/pay/no-such-key", "/nowhere",
                 "/pay/return/bkash?ref=x"):
        resp = anonymous.get(path)
        check_headers(resp, path)
        check_no_inline_code(resp, path)
    api = anonymous.get("/api/v1/plans", headers=token_for("noc"))
    assert api.status_code == 200
    check_headers(api, "api")
    denied = anonymous.get("/api/v1/plans")
    assert denied.status_code == 401
    check_headers(denied, "api 401")


def test_static_files_may_be_cached_and_every_template_is_free_of_inline_code(
        client_for: Any) -> None:
    from pathlib import Path

    import admin
    import payments

    resp = client_for(None).get("/static/admin.css")
    assert resp.status_code == 200 and resp.headers.get("Cache-Control") != "no-store"
    templates = [*Path(admin.__file__).parent.glob("templates/*.html"),
                 *Path(payments.__file__).parent.glob("templates/*.html")]
    assert len(templates) >= 15
    for path in templates:
        text = path.read_text()
        for pattern, name in INLINE:
            assert not pattern.search(text), f"{path.name}: {name}"


def test_hsts_only_over_https(app: Flask, client_for: Any) -> None:
    assert "Strict-Transport-Security" in client_for(None).get("/login").headers
    plain = app.test_client().get("/login", base_url="http://192.0.2.10")
    assert "Strict-Transport-Security" not in plain.headers


# -- rate limits --------------------------------------------------------------------------------


def test_logins_from_one_address_are_rate_limited(app: Flask, staff: Any) -> None:
    client = HttpsClient(app, app.response_class, use_cookies=True)
    client.environ_base["REMOTE_ADDR"] = "192.0.2.40"
    codes = [login(client, "admin").status_code for _ in range(21)]
    assert codes == [302] * 20 + [429]
    other = HttpsClient(app, app.response_class, use_cookies=True)
    other.environ_base["REMOTE_ADDR"] = "192.0.2.41"
    assert login(other, "admin").status_code == 302  # per address


@pytest.mark.parametrize(("method", "path", "limit"), [
    ("GET", "/pay/some-key", 60),
    ("POST", "/pay/some-key/start", 10),
    ("GET", "/pay/return/bkash?ref=RB1", 30),
    ("POST", "/pay/return/bkash", 30),
])
def test_payment_endpoints_are_rate_limited(app: Flask, method: str, path: str, limit: int
                                            ) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.50"
    data = None
    if path.endswith("/start"):  # a session with a CSRF token, as the payment page gives
        data = {"csrf_token": csrf_of(client.get("/login").get_data(as_text=True)),
                "gateway": "bkash"}
    codes = [client.open(path, method=method, data=data).status_code
             for _ in range(limit + 1)]
    assert 429 not in codes[:limit] and codes[limit] == 429, codes
    resp = client.open(path, method=method, data=data)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.51"
    assert other.open(path, method=method).status_code != 429  # per address


def test_a_webhook_is_never_rate_limited(app: Flask) -> None:
    client = app.test_client()
    codes = {client.post("/webhooks/bkash", data=b"x").status_code for _ in range(80)}
    assert 429 not in codes


def test_a_bad_rate_limit_store_is_a_clear_configuration_error(db: Engine,
                                                              settings: Settings) -> None:
    with pytest.raises(ConfigError, match="RADBILL_RATELIMIT_STORAGE"):
        create_app(replace(settings, ratelimit_storage="carrier-pigeon://x"), engine=db)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A private Redis on a free loopback port (Debian's redis-server)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is missing: run scripts/setup-debian.sh")
    port = free_tcp_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("shared", [True, False])
def test_workers_share_one_count_through_redis(shared: bool, request: pytest.FixtureRequest,
                                              db: Engine, settings: Settings) -> None:
    """Two app instances stand for two gunicorn workers: with Redis the limit is one count
    for both; with the in-process default each counts alone (which is why Redis is the
    setting for several workers)."""
    storage = request.getfixturevalue("redis_url") if shared else "memory://"
    workers = [create_app(replace(settings, ratelimit_storage=storage), engine=db)
               for _ in range(2)]
    clients = [w.test_client() for w in workers]
    codes = [clients[i % 2].get("/pay/return/bkash").status_code for i in range(31)]
    if shared:
        assert 429 not in codes[:30] and codes[30] == 429, codes
    else:
        assert 429 not in codes


def test_the_login_page_itself_is_not_counted(app: Flask) -> None:
    client = app.test_client()
    assert {client.get("/login").status_code for _ in range(40)} == {200}
