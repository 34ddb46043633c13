"""Failed logins slow down whoever fails, per address and per name, and never lock an
operator out for good: unknown names, wrong passwords and disabled accounts get the same
answer through the same work (one argon2 verification), and a throttled answer is the same
whether the name exists or not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from admin import auth, throttle, users
from admin.models import LoginThrottle
from radbill.audit import AuditLog
from radbill.db import utcnow
from tests.admin.conftest import PASSWORD, HttpsClient, csrf_of
from tests.conftest import BACKEND

WRONG = "wrong-password-1"


def client_at(app: Flask, address: str) -> FlaskClient:
    """A browser at *address* (over HTTPS)."""
    client = HttpsClient(app, app.response_class, use_cookies=True)
    client.environ_base["REMOTE_ADDR"] = address
    return client


def attempt(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(page.get_data(as_text=True))})


def error_of(resp: Any) -> str:
    html = resp.get_data(as_text=True)
    start = html.index('role="alert">') + len('role="alert">')
    return html[start:html.index("<", start)]


class CountingHasher(PasswordHasher):
    """argon2id with cheap parameters that records every hash it verifies."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    hasher = CountingHasher()
    monkeypatch.setattr(users, "hasher", hasher)
    return hasher


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The login view's clock, moved by the test."""
    now = [utcnow()]
    monkeypatch.setattr(auth, "now", lambda: now[0])
    return now


def test_unknown_name_wrong_password_and_disabled_account_are_answered_alike(
        app: Flask, counting: CountingHasher, factory: Any) -> None:
    with factory() as s, s.begin():
        users.create_user(s, "ops", PASSWORD, "noc", actor="test")
        users.create_user(s, "gone", PASSWORD, "noc", actor="test")
        users.set_active(s, "gone", False, actor="test")
    answers = {}
    for case, (name, password) in {"unknown": ("nobody", PASSWORD),
                                   "wrong": ("ops", WRONG),
                                   "disabled": ("gone", PASSWORD)}.items():
        counting.verified.clear()
        resp = attempt(client_at(app, "192.0.2.1"), name, password)
        answers[case] = (resp.status_code, error_of(resp))
        # the same work on every path: exactly one argon2 verification
        assert len(counting.verified) == 1, case
        if case == "unknown":
            assert counting.verified == [users.dummy_hash()]
    assert set(answers.values()) == {(401, "wrong username or password")}


def test_the_dummy_hash_costs_what_a_real_one_costs(counting: CountingHasher) -> None:
    real = counting.hash(PASSWORD)
    assert real.split("$")[:4] == users.dummy_hash().split("$")[:4]  # argon2id, v, m/t/p


def test_failures_back_off_per_name_and_address_and_the_wait_doubles(
        app: Flask, staff: Any, clock: list[dt.datetime], counting: CountingHasher) -> None:
    client = client_at(app, "192.0.2.5")
    free = throttle.RULES["pair"].free
    for _ in range(free):
        assert attempt(client, "admin", WRONG).status_code == 401
    waits = []
    for _ in range(4):
        counting.verified.clear()
        held = attempt(client, "admin")  # even the right password waits
        assert held.status_code == 429 and counting.verified == []  # no argon2 work
        waits.append(int(held.headers["Retry-After"]))
        clock[0] += dt.timedelta(seconds=waits[-1])
        assert attempt(client, "admin", WRONG).status_code == 401
    assert waits == [1, 2, 4, 8]
    # another address is not held by this pair (nor by the name, below its threshold)
    assert attempt(client_at(app, "192.0.2.6"), "admin").status_code == 302
    clock[0] += dt.timedelta(seconds=16)
    assert attempt(client, "admin").status_code == 302


def test_a_throttled_answer_does_not_tell_whether_the_name_exists(
        app: Flask, staff: Any, clock: list[dt.datetime]) -> None:
    client = client_at(app, "192.0.2.7")
    answers = []
    for name in ("admin", "no-such-user"):
        for _ in range(throttle.RULES["pair"].free):
            attempt(client, name, WRONG)
        resp = attempt(client, name, WRONG)
        answers.append((resp.status_code, resp.headers.get("Retry-After"), error_of(resp)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 429


def test_strangers_cannot_keep_an_operator_out(app: Flask, staff: Any, factory: Any,
                                               clock: list[dt.datetime]) -> None:
    own = client_at(app, "198.51.100.20")  # the operator's usual browser
    assert attempt(own, "billing").status_code == 302
    # guessing at the name from many addresses, a few tries each
    for i in range(throttle.RULES["name"].free + 5):
        attempt(client_at(app, f"203.0.113.{i + 1}"), "billing", WRONG)
    # a new browser is held back by the name's back-off...
    fresh = client_at(app, "198.51.100.21")
    assert attempt(fresh, "billing").status_code == 429
    # ...but the operator's own browser is not, from the same or another address
    assert attempt(own, "billing").status_code == 302
    own.environ_base["REMOTE_ADDR"] = "198.51.100.22"
    assert attempt(own, "billing").status_code == 302
    # a forged or foreign device cookie does not help a guesser
    fresh.set_cookie(auth.DEVICE_COOKIE, "forged", domain="localhost", path="/login")
    assert attempt(fresh, "billing").status_code == 429
    # and `radbill user unlock` (or the staff page) lifts the name's back-off at once
    with factory() as s, s.begin():
        assert users.unlock(s, "billing", actor="test") >= 1
    assert attempt(fresh, "billing").status_code == 302
    with factory() as s:
        assert s.scalars(select(AuditLog.action).where(
            AuditLog.action == "staff.unlock")).all() == ["staff.unlock"]


def test_one_address_spraying_many_names_is_held_back(app: Flask, staff: Any,
                                                       clock: list[dt.datetime]) -> None:
    sprayer = client_at(app, "2001:db8:1:2::10")
    for i in range(throttle.RULES["addr"].free):
        assert attempt(sprayer, f"name{i}", WRONG).status_code == 401
    assert attempt(sprayer, "admin").status_code == 429
    # the whole /64 is one address for this purpose
    assert attempt(client_at(app, "2001:db8:1:2::99"), "admin").status_code == 429
    assert attempt(client_at(app, "2001:db8:1:3::10"), "admin").status_code == 302


def test_failures_are_forgotten_after_an_hour_and_rows_do_not_pile_up(
        app: Flask, staff: Any, factory: Any, clock: list[dt.datetime]) -> None:
    for i in range(30):
        attempt(client_at(app, f"192.0.2.{100 + i}"), f"guess{i}", WRONG)
    with factory() as s:
        assert len(s.scalars(select(LoginThrottle)).all()) == 30 * 3
    clock[0] += throttle.FORGET_AFTER + dt.timedelta(seconds=1)
    attempt(client_at(app, "192.0.2.250"), "guess-late", WRONG)
    with factory() as s:
        keys = s.scalars(select(LoginThrottle.key)).all()
    assert sorted(keys) == ["addr:192.0.2.250", "name:guess-late",
                            "pair:guess-late|192.0.2.250"]


@pytest.mark.parametrize(("failures", "seconds"), [
    (0, 0), (4, 0), (5, 1), (6, 2), (9, 16), (14, 512), (15, 900), (10_000, 900)])
def test_backoff_rule(failures: int, seconds: int) -> None:
    assert throttle.backoff(failures, throttle.RULES["pair"]) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::/64"),
    ("2001:db8:0:0:ffff::1", "2001:db8::/64"), ("::ffff:192.0.2.1", "192.0.2.1"),
    (None, "unknown"), ("not-an-address", "not-an-address")])
def test_address_keys(address: str | None, key: str) -> None:
    assert throttle.address_key(address) == key


@pytest.mark.skipif(BACKEND == "sqlite", reason="SQLite transactions begin IMMEDIATE: "
                    "they never interleave, so no count can be lost there")
def test_concurrent_failures_are_all_counted(db: Any, factory: Any) -> None:
    now = utcnow()
    keys = throttle.keys("admin", "192.0.2.60")
    with factory() as s, s.begin():
        throttle.failed(s, keys, now)
    with factory() as a:
        throttle.wait(a, keys, now)  # worker A has read the counts...
        with factory() as b, b.begin():  # ...while worker B counts a failure
            throttle.failed(b, keys, now)
        throttle.failed(a, keys, now)
        a.commit()
    with factory() as s:
        assert set(s.scalars(select(LoginThrottle.failures))) == {3}
