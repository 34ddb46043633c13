"""`radbill user create|list|token`: staff users and API tokens from the command line."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from radbill.cli import main


def test_user_create_list_and_token(db: Any, database_url: str, tmp_path: Any,
                                    monkeypatch: Any, app: Any) -> None:
    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))
    run = CliRunner().invoke
    bad = run(main, ["user", "create", "ops", "--role", "admin", "--password", "short"])
    assert bad.exit_code == 1 and "at least 10 characters" in bad.output
    bad = run(main, ["user", "create", "ops", "--role", "root", "--password", "long-enough-1"])
    assert bad.exit_code == 2
    ok = run(main, ["user", "create", "ops", "--role", "billing", "--password", "long-enough-1"])
    assert ok.exit_code == 0, ok.output
    dup = run(main, ["user", "create", "ops", "--role", "noc", "--password", "long-enough-1"])
    assert dup.exit_code == 1 and "already exists" in dup.output
    listed = run(main, ["user", "list", "--json"])
    assert '"role": "billing"' in listed.output
    token = run(main, ["user", "token", "ops", "--name", "crm"]).output.strip()
    assert token.startswith("rbt_")
    client = app.test_client()
    assert client.get("/api/v1/plans",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
