"""Migration 0007: the NAS's old ``api_tls`` boolean becomes the ``api_tls_mode`` setting
(true -> anon: it encrypted and authenticated nothing, as anon does), and back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from radbill import migrate
from radbill.db import make_engine
from tests import pgserver
from tests.conftest import BACKEND


@pytest.fixture
def fresh(tmp_path, request) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """An empty database of the test backend, migrated by the test itself."""
    if BACKEND == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield eng
        eng.dispose()
        return
    admin = request.getfixturevalue("pg_admin_url")
    name, url = pgserver.create_database(admin)
    eng = make_engine(pgserver.sqlalchemy_url(url))
    try:
        yield eng
    finally:
        eng.dispose()
        pgserver.drop_database(admin, name)


def test_api_tls_true_becomes_anon_and_back(fresh: Engine) -> None:
    migrate.upgrade(fresh, "0005")
    with fresh.begin() as conn:
        for i, tls in enumerate((True, False), 1):
            conn.execute(text(
                "INSERT INTO nas (name, ip_address, secret_enc, nas_type, coa_port, "
                "require_message_authenticator, api_port, api_username, api_tls, enforce_via, "
                "created_at) VALUES (:n, :ip, 'x', 'mikrotik', 3799, true, 8729, 'radbill', "
                ":tls, 'coa', CURRENT_TIMESTAMP)"), {"n": f"r{i}", "ip": f"10.0.0.{i}", "tls": tls})
    migrate.upgrade(fresh, "0007")
    with fresh.connect() as conn:
        rows = conn.execute(text("SELECT name, api_tls_mode, api_tls_ca, api_tls_fingerprint "
                                 "FROM nas ORDER BY name")).all()
    assert [tuple(r) for r in rows] == [("r1", "anon", None, None), ("r2", "none", None, None)]
    cfg = migrate.alembic_config(fresh)
    from alembic import command

    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0005")
    with fresh.connect() as conn:
        back = conn.execute(text("SELECT name, api_tls FROM nas ORDER BY name")).all()
    assert [(n, bool(t)) for n, t in back] == [("r1", True), ("r2", False)]
