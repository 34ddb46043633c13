"""Fixtures for the portal: the web app of tests/admin, subscribers with open accounting
sessions (through the accounting service), clients arriving from a given address."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from radbill.db import utcnow
from radius import accounting
from radius.ingest import apply_accounting
from tests.admin import conftest as admin_fixtures
from tests.admin.conftest import HttpsClient
from tests.usage.helpers import acct

# the admin app's fixtures, for the portal (which is part of the same app)
app = admin_fixtures.app
settings = admin_fixtures.settings
factory = admin_fixtures.factory
cheap_hashes = admin_fixtures.cheap_hashes
staff = admin_fixtures.staff
client_for = admin_fixtures.client_for
token_for = admin_fixtures.token_for

PORTAL_PASSWORD = "s3cret"  # tests.factories.make_subscriber's


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def online(factory: Any, username: str, ip: str, nas: str = "127.0.0.1",
           sid: str | None = None, *, bytes_down: int = 0, bytes_up: int = 0) -> None:
    """An Accounting-Start (and an Interim with counters) for *username* at *ip*."""
    now = utcnow()
    sid = sid or f"s-{username}-{ip}"
    # through the ingester's path, as the detail spool arrives: usage is metered with it
    records = [{**acct("Start", sid, username, now - dt.timedelta(minutes=5), nas=nas),
                "Framed-IP-Address": ip}]
    if bytes_down or bytes_up:
        records.append({**acct("Interim-Update", sid, username, now, 300, bytes_up,
                               bytes_down, nas=nas), "Framed-IP-Address": ip})
    with factory() as s, s.begin():
        assert apply_accounting(s, records) == {}


def offline(factory: Any, username: str, ip: str, nas: str = "127.0.0.1",
            sid: str | None = None) -> None:
    sid = sid or f"s-{username}-{ip}"
    with factory() as s, s.begin():
        accounting.apply(s, accounting.AcctRecord(
            status="Stop", nas_ip=nas, event_time=utcnow(), username=username,
            acct_session_id=sid, framed_ip=ip, session_time=300,
            terminate_cause="User-Request"))


@pytest.fixture
def client_at(app: Flask) -> Any:
    """A test client whose requests come from *address*."""

    def make(address: str = "198.51.100.9") -> FlaskClient:
        client = HttpsClient(app, app.response_class, use_cookies=True)
        client.environ_base["REMOTE_ADDR"] = address
        return client

    return make


def portal_login(client: FlaskClient, username: str, password: str = PORTAL_PASSWORD) -> Any:
    page = client.get("/portal/login")
    return client.post("/portal/login", data={
        "username": username, "password": password,
        "csrf_token": csrf_of(page.get_data(as_text=True))})
