"""The CLI: the commands of the issue, JSON output, and one-line errors that write nothing."""

import json

import pytest
from click.testing import CliRunner

from radbill.cli import main


def test_happy_path_with_json(cli) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "Home-20", "--price", "500", "--currency", "BDT", "--rate", "10M/10M",
        "--burst", "20M/20M")
    plans = json.loads(cli("plan", "list", "--json").output)
    assert plans[0]["name"] == "Home-20" and plans[0]["price"] == "500.00"
    assert plans[0]["burst"] == "20M/20M"
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "Home-20", "--service",
        "hotspot", "--mac", "AA:BB:CC:DD:EE:FF", "--ip", "10.0.0.5")
    shown = json.loads(cli("subscriber", "show", "alice", "--json").output)
    assert shown["status"] == "active" and shown["service"] == "hotspot"
    assert shown["open_sessions"] == [] and shown["recent_sessions"] == []
    assert "password" not in json.dumps(shown)
    assert "is now suspended" in cli("subscriber", "suspend", "alice", "--reason", "x").output
    assert "was already suspended" in cli("subscriber", "suspend", "alice").output
    cli("subscriber", "reconnect", "alice")
    listed = json.loads(cli("subscriber", "list", "--json").output)
    assert [(s["username"], s["status"]) for s in listed] == [("alice", "active")]
    cli("nas", "create", "core-1", "--ip", "127.0.0.1", "--secret", "testing1234",
        "--coa-port", "3799")
    nas = json.loads(cli("nas", "list", "--json").output)
    assert nas == [{"name": "core-1", "ip_address": "127.0.0.1", "type": "mikrotik",
                    "coa_port": 3799, "require_message_authenticator": True, "api_port": None,
                    "api_username": None, "api_tls": "none", "enforce_via": "coa"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscriber", "create", "bob", "--password", "pw", "--plan", "Nope"], "unknown plan"),
        (["subscriber", "create", "alice", "--password", "pw", "--plan", "P"], "already exists"),
        (["plan", "create", "X", "--price", "1", "--currency", "BDT", "--rate", "ten"],
         "malformed rate"),
        (["subscriber", "create", "bob", "--password", "pw", "--plan", "P", "--ip", "10.0.0.300"],
         "invalid IPv4"),
        (["subscriber", "create", "bob", "--password", "pw", "--plan", "P", "--mac", "AA:BB"],
         "invalid MAC"),
        (["nas", "create", "n", "--ip", "not-an-ip", "--secret", "testing1234"],
         "invalid IP"),
        (["nas", "create", "n", "--ip", "127.0.0.2", "--secret", 'bad"secret'], "secret"),
        (["subscriber", "suspend", "ghost"], "unknown subscriber"),
    ],
)
def test_bad_input_one_line_error_nonzero_exit_nothing_written(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "P", "--price", "1", "--currency", "BDT", "--rate", "1M")
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "P")
    before = cli("subscriber", "list", "--json").output, cli("nas", "list", "--json").output
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    after = cli("subscriber", "list", "--json").output, cli("nas", "list", "--json").output
    assert after == before


def test_unreachable_database_is_a_clear_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADBILL_DATABASE_URL", "postgresql+psycopg://x@127.0.0.1:1/none")
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["plan", "list"])
    assert result.exit_code == 2
    assert result.output.startswith("error: database unreachable")


def test_bad_configuration_is_a_clear_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADBILL_SUSPENDED_MODE", "drop")
    result = CliRunner().invoke(main, ["plan", "list"])
    assert result.exit_code == 1
    assert "RADBILL_SUSPENDED_MODE" in result.output
