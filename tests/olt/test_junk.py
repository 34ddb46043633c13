"""Generated junk in every argument of the OLT commands that write: one ``error:`` line and a
non-zero exit, never a traceback, and nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from radbill.cli import main
from tests.conftest import BACKEND
from tests.radbill.test_junk_input import JUNK, fingerprint

BASE = ["olt", "create", "o1", "--vendor", "zte-gpon", "--ip", "10.9.9.9", "--community", "c"]
COMMANDS: list[Callable[[str], list[str]]] = [
    lambda j: ["olt", "create", j, *BASE[3:]],
    lambda j: [*BASE[:4], j, *BASE[5:]],
    lambda j: [*BASE[:6], j, *BASE[7:]],
    lambda j: [*BASE[:8], j],
    lambda j: [*BASE, "--port", j],
    lambda j: [*BASE, "--write-community", j],
    lambda j: [*BASE, "--overrides", j],
    lambda j: [*BASE, "--overrides", json.dumps({"block_oid": j})],
    lambda j: [*BASE, "--timeout-ms", j],
    lambda j: [*BASE, "--retries", j],
    lambda j: [*BASE, "--weak-rx", j],
    lambda j: [*BASE[:8], "--v3-user", j, "--v3-auth-key", "k" * 8, "--v3-priv-key", "p" * 8],
    lambda j: [*BASE[:6], "--v3-user", "u", "--v3-auth-key", j, "--v3-priv-key", "p" * 8],
    lambda j: ["olt", "set", "olt-1", "--overrides", j],
    lambda j: ["olt", "set", "olt-1", "--weak-rx", j],
    lambda j: ["olt", "set", j, "--retries", "2"],
    lambda j: ["subscriber", "set-onu", "alice", "--olt", "olt-1", "--serial", j],
    lambda j: ["subscriber", "set-onu", "alice", "--olt", "epon", "--mac", j],
    lambda j: ["subscriber", "set-onu", "alice", "--olt", j, "--serial", "HWTC00000001"],
    lambda j: ["subscriber", "set-onu", j, "--olt", "olt-1", "--serial", "HWTC00000001"],
]


@settings(max_examples=200 if BACKEND == "sqlite" else 80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), junk=JUNK)
def test_junk_in_olt_commands_is_one_error_line_and_writes_nothing(
        cli: Any, db: Engine, command: Callable[[str], list[str]], junk: str) -> None:
    if not fingerprint(db)["plans"]:
        cli("plan", "create", "P", "--price", "1", "--currency", "BDT", "--rate", "1M")
        cli("subscriber", "create", "alice", "--password", "pw", "--plan", "P")
        cli("olt", "create", "olt-1", "--vendor", "huawei-gpon", "--ip", "10.9.9.1",
            "--community", "c")
        cli("olt", "create", "epon", "--vendor", "bdcom-epon", "--ip", "10.9.9.2",
            "--community", "c")
    args = command(junk)
    before = fingerprint(db)
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, result.exception)
    if result.exit_code == 0:
        return  # junk that happens to be valid (an OLT named "🙂" is refused, "x" is fine)
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2), (args, result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    assert fingerprint(db) == before, args
