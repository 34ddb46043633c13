"""`radbill nas create --api-tls none|anon|verify`: the per-NAS API-SSL setting, validated,
and what the enforcement worker makes of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from coa import queue
from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radius.models import Nas
from radius.nas import fingerprint_of
from tests.coa.pki import make_router_cert

BASE = ["nas", "create", "r1", "--ip", "10.9.0.1", "--secret", "testing1234",
        "--api-user", "radbill", "--api-password", "pw"]


def nas_refs(database_url: str, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    engine = create_engine(database_url)
    try:
        with Session(engine) as s:
            box = SecretBox(load_key(Settings(data_dir=tmp_path, database_url=database_url)))
            return queue.nas_refs(s, box)
    finally:
        engine.dispose()


def test_anon_is_api_ssl_on_8729(cli, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(cli(*BASE, "--api-tls", "anon", "--json").output)
    assert (out["api_tls"], out["api_port"]) == ("anon", 8729)
    ref, _ = nas_refs(database_url, tmp_path)["10.9.0.1"]
    assert (ref.api_tls, ref.api_tls_ca, ref.api_tls_fingerprint) == ("anon", None, None)


def test_verify_keeps_the_ca_or_the_pin(cli, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert = make_router_cert(tmp_path / "pki")
    (tmp_path / "ca.pem").write_text(cert.ca_pem)
    cli(*BASE, "--api-tls", "verify", "--api-tls-ca", str(tmp_path / "ca.pem"))
    pin = fingerprint_of(cert.pem)
    colons = ":".join(pin[i:i + 2] for i in range(0, 64, 2)).upper()  # as openssl prints it
    cli("nas", "create", "r2", "--ip", "10.9.0.2", "--secret", "testing1234", "--api-user",
        "radbill", "--api-password", "pw", "--api-tls", "verify",
        "--api-tls-fingerprint", colons)
    refs = nas_refs(database_url, tmp_path)
    assert refs["10.9.0.1"][0].api_tls_ca == cert.ca_pem
    assert refs["10.9.0.2"][0].api_tls_fingerprint == pin


@pytest.mark.parametrize(("extra", "message"), [
    (["--api-tls", "tls"], "Invalid value for '--api-tls'"),
    (["--api-tls", "anon", "--api-tls-fingerprint", "ab" * 32], "needs --api-tls verify"),
    (["--api-tls", "verify", "--api-tls-fingerprint", "xyz"], "SHA-256 in hex"),
    (["--api-tls", "verify", "--api-tls-ca", "{not_pem}"], "must be PEM certificates"),
    (["--api-tls", "verify", "--api-tls-ca", "{broken_pem}"], "not a usable certificate"),
])
def test_bad_tls_settings_are_one_line_errors_and_write_nothing(
        cli, database_url, tmp_path, extra, message) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "not.pem").write_text("hello")
    (tmp_path / "broken.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    args = [a.format(not_pem=tmp_path / "not.pem", broken_pem=tmp_path / "broken.pem")
            for a in extra]
    result = cli(*BASE, *args, ok=False)
    assert result.exit_code != 0
    assert message in result.output
    if not message.startswith("Invalid value"):  # click's own usage errors are several lines
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
    engine = create_engine(database_url)
    with Session(engine) as s:
        assert s.scalars(select(Nas)).all() == []
    engine.dispose()


def test_tls_without_api_credentials_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("nas", "create", "r1", "--ip", "10.9.0.1", "--secret", "testing1234",
                 "--api-tls", "anon", ok=False)
    assert result.output.strip() == "error: --api-tls needs --api-user and --api-password"
