"""The notify commands under generated junk: one `error:` line and nothing written, or a
valid value (and then nothing unbounded reaches the database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from radbill.cli import main
from tests.conftest import BACKEND
from tests.radbill.test_junk_input import COMMANDS as ALL
from tests.radbill.test_junk_input import JUNK, fingerprint

NOTIFY: list[Callable[[str], list[str]]] = [c for c in ALL if c("x")[0] == "notify"]


def test_the_notify_commands_are_in_the_suite_wide_junk_list() -> None:
    assert len(NOTIFY) == 15


@settings(max_examples=200 if BACKEND == "sqlite" else 80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(NOTIFY), junk=JUNK)
def test_junk_in_notify_commands(cli: Any, db: Engine, command: Callable[[str], list[str]],
                                 junk: str) -> None:
    args = command(junk)
    before = fingerprint(db)
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, result.exception)
    if result.exit_code == 0:
        return
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2), (args, result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    assert fingerprint(db) == before, args
