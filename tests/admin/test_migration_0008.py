"""Migration 0008 on a database with staff, sessions and tokens: nothing is lost (on SQLite a
table rebuild of staff_users would cascade to its sessions and tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from radbill import migrate
from radbill.db import make_engine
from tests import pgserver
from tests.conftest import BACKEND


@pytest.fixture
def fresh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty database of the backend under test."""
    if BACKEND == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    admin = request.getfixturevalue("pg_admin_url")
    name, url = pgserver.create_database(admin)
    engine = make_engine(pgserver.sqlalchemy_url(url))
    try:
        yield engine
    finally:
        engine.dispose()
        pgserver.drop_database(admin, name)


def test_0008_keeps_every_row(fresh: Engine) -> None:
    migrate.upgrade(fresh, "0005")
    with fresh.begin() as conn:
        conn.execute(text(
            "INSERT INTO staff_users (id, username, password_hash, role, active, "
            "failed_logins, locked_until, created_at) VALUES (1, 'ops', '$argon2id$x', "
            "'admin', true, 3, NULL, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO staff_sessions (id_hash, user_id, created_at, expires_at) VALUES "
            "('s1', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES "
            "(1, 1, 'crm', 'h1', CURRENT_TIMESTAMP)"))
    migrate.upgrade(fresh, "0008")
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT username FROM staff_users")).scalars().all() == [
            "ops"]
        assert conn.execute(text("SELECT count(*) FROM staff_sessions")).scalar() == 1
        assert conn.execute(text(
            "SELECT name, expires_at FROM api_tokens")).all() == [("crm", None)]
        assert conn.execute(text("SELECT count(*) FROM login_throttle")).scalar() == 0
        columns = {c for c, in conn.execute(text(
            "SELECT name FROM pragma_table_info('staff_users')" if BACKEND == "sqlite" else
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'staff_users'"))}
        assert "locked_until" not in columns and "failed_logins" not in columns
