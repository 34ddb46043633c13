"""Secrets on disk stay private: what radbill writes is owner-only whatever the umask, and it
warns at start about what another local user can read."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from radbill.config import PROJECT_ROOT, Settings
from radbill.crypto import SecretBox
from radbill.secure import exposed, sensitive_paths, warn_if_exposed
from radius.server import Layout, render


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as a careless shell would have."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_the_rendered_freeradius_configuration_is_owner_only(tmp_path: Path,
                                                             open_umask: None) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://radbill:pw@db/x")
    layout = Layout.under(tmp_path / "radius")
    raddb = render(settings, layout, [], SecretBox(Fernet.generate_key()), auth_port=1812,
                   acct_port=1813, listen="127.0.0.1")
    assert any("radbill:pw@db" in p.read_text() for p in raddb.rglob("*") if p.is_file())
    assert modes(raddb) <= {0o700, 0o600}
    assert modes(layout.spool) <= {0o700, 0o600}


def test_archived_invoices_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    from billing.archive import write_atomically

    path = tmp_path / "invoices" / "2026" / "INV-000001.pdf"
    write_atomically(path, b"%PDF-1.7")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_cli_creates_the_data_directory_database_and_key_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "RADBILL_DATA_DIR": str(data), "RADBILL_DATABASE_URL": "",
           "RADBILL_SECRET_KEY": ""}
    subprocess.run(["sh", "-c", f"umask 022; exec {sys.executable} -m radbill.cli db upgrade"],
                   env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "radbill.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600


def test_readable_secrets_are_named_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    tmp_path.chmod(0o700)
    gateways = tmp_path / "gateways.json"
    gateways.write_text("{}")
    gateways.chmod(0o644)
    key = tmp_path / "secret.key"
    key.write_bytes(b"k")
    key.chmod(0o600)
    settings = Settings(data_dir=tmp_path, database_url="sqlite://", secret_key_file=key)
    assert gateways in sensitive_paths(settings)
    with caplog.at_level(logging.WARNING, logger="radbill.secure"):
        found = warn_if_exposed(settings)
    assert found == [f"file {gateways} is open to other local users (mode 644): "
                     f"chmod 600 {gateways}"]
    assert "SECRETS EXPOSED" in caplog.text
    gateways.chmod(0o600)
    assert exposed(sensitive_paths(settings)) == []
