"""Fixtures for the admin app: the app on the test database, staff of every role, logged-in
clients and API tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from admin import create_app, users
from radbill.config import Settings
from radbill.db import session_factory

PASSWORD = "correct-horse-battery"
ROLES = ("admin", "billing", "noc")
BASE_URL = "https://localhost"  # the session cookie is Secure over HTTPS


class HttpsClient(FlaskClient):
    """A test client whose requests arrive over HTTPS (as behind a TLS proxy)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str) and "base_url" not in kwargs:
            kwargs["base_url"] = BASE_URL
        return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, with parameters that keep the suite fast."""
    monkeypatch.setattr(users, "hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                        parallelism=1))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url,
                    secret_key=Fernet.generate_key().decode())


@pytest.fixture
def app(db: Engine, settings: Settings) -> Flask:
    application = create_app(settings, engine=db)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def factory(db: Engine) -> Any:
    return session_factory(db)


@pytest.fixture
def staff(factory: Any) -> dict[str, str]:
    """One staff user per role, named after it."""
    with factory() as s, s.begin():
        for role in ROLES:
            users.create_user(s, role, PASSWORD, role, actor="test")
    return {role: role for role in ROLES}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(page.get_data(as_text=True))})


@pytest.fixture
def client_for(app: Flask, staff: dict[str, str]) -> Callable[[str | None], FlaskClient]:
    """A test client logged in with *role* (None: anonymous)."""

    def make(role: str | None) -> FlaskClient:
        client = HttpsClient(app, app.response_class, use_cookies=True)
        if role is not None:
            resp = login(client, role)
            assert resp.status_code == 302, resp.get_data(as_text=True)
        return client

    return make


def csrf(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token of the client's session (read from a page)."""
    return csrf_of(client.get(path).get_data(as_text=True))


@pytest.fixture
def token_for(factory: Any, staff: dict[str, str]) -> Callable[[str], dict[str, str]]:
    """Authorization headers for an API token of *role*."""

    def make(role: str) -> dict[str, str]:
        with factory() as s, s.begin():
            token = users.create_token(s, role, "test", actor="test")
        return {"Authorization": f"Bearer {token}"}

    return make
