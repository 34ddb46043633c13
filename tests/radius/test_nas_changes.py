"""`radbill nas update|delete`: validated, audited, one-line errors that write nothing."""

import json

from sqlalchemy import select

from radbill.audit import AuditLog
from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import session_factory
from radius import accounting
from radius.accounting import AcctRecord
from radius.models import Nas


def nas_rows(db):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s:
        return [(n.name, n.ip_address, n.coa_port, n.nas_type, n.require_message_authenticator)
                for n in s.scalars(select(Nas).order_by(Nas.name))]


def test_update_changes_what_is_given_and_audits_it(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli("nas", "create", "core-1", "--ip", "10.0.0.1", "--secret", "secret-one-1")
    out = json.loads(cli("nas", "update", "core-1", "--ip", "10.0.0.9", "--coa-port", "1700",
                         "--no-message-authenticator", "--json").output)
    assert (out["ip_address"], out["coa_port"], out["require_message_authenticator"]) == (
        "10.0.0.9", 1700, False)
    cli("nas", "update", "core-1", "--secret", "secret-two-2")
    box = SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path)})))
    with session_factory(db)() as s:
        nas = s.scalar(select(Nas))
        assert box.decrypt(nas.secret_enc) == "secret-two-2"
        audits = [(a.action, a.after.get("secret_changed")) for a in s.scalars(
            select(AuditLog).where(AuditLog.entity == "nas").order_by(AuditLog.id))]
    assert audits == [("nas.create", None), ("nas.update", False), ("nas.update", True)]


def test_update_refuses_bad_input_in_one_line_and_writes_nothing(cli, db) -> None:  # type: ignore[no-untyped-def]
    cli("nas", "create", "core-1", "--ip", "10.0.0.1", "--secret", "secret-one-1")
    cli("nas", "create", "core-2", "--ip", "10.0.0.2", "--secret", "secret-one-1")
    before = nas_rows(db)
    for args, message in [
        (["--ip", "10.0.0.300"], "invalid IP address"),
        (["--ip", "10.0.0.2"], "already exists"),
        (["--secret", 'bad"secret'], "RADIUS secret"),
        (["--type", "nope"], "unknown NAS type"),
        (["--coa-port", "70000"], "outside 1-65535"),
    ]:
        result = cli("nas", "update", "core-1", *args, ok=False)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], result.output
    result = cli("nas", "update", "ghost", "--coa-port", "1700", ok=False)
    assert result.exit_code == 1 and "no NAS named 'ghost'" in result.output
    assert nas_rows(db) == before


def test_delete_refuses_a_nas_with_open_sessions_unless_forced(cli, db) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    cli("nas", "create", "core-1", "--ip", "10.0.0.1", "--secret", "secret-one-1")
    cli("nas", "create", "core-2", "--ip", "10.0.0.2", "--secret", "secret-one-1")
    assert "NAS core-2 at 10.0.0.2 deleted" in cli("nas", "delete", "core-2").output
    at = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    with session_factory(db)() as s, s.begin():
        accounting.apply(s, AcctRecord(status="Start", nas_ip="10.0.0.1", acct_session_id="s1",
                                       username="alice", event_time=at))
    result = cli("nas", "delete", "core-1", ok=False)
    assert result.exit_code == 1 and "1 open sessions" in result.output
    assert [r[0] for r in nas_rows(db)] == ["core-1"]
    out = json.loads(cli("nas", "delete", "core-1", "--force", "--json").output)
    assert out["open_sessions"] == 1 and nas_rows(db) == []
    with session_factory(db)() as s:
        actions = list(s.scalars(select(AuditLog.action).where(AuditLog.entity == "nas")
                                 .order_by(AuditLog.id)))
    assert actions == ["nas.create", "nas.create", "nas.delete", "nas.delete"]
