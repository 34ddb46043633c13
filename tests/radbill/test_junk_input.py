"""Every value the CLI takes is bounded: generated junk in every argument of the commands that
write gets one ``error:`` line and a non-zero exit, never a traceback, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from radbill.cli import main
from radbill.db import Base
from tests.conftest import BACKEND

# What operators (and attackers) type: numbers out of any range, exponent notation, other
# scripts' digits, control characters, impossible dates, very long text.
JUNK = st.one_of(
    st.sampled_from([
        "1e400", "1E+30", "-1", "-0.01", "0", "00", "99999999999999999999", "9" * 40,
        "1.005", "NaN", "Infinity", "-Infinity", " 5 ", "\uff15", "\u0661\u0662", "0x10", "1_000",
        "2026-02-30", "2026-13-01", "0000-00-00", "9999-12-31", "1970-01-01", "20261130",
        "x\n", "ok\n", "a\r\nb", "\x00", "nul\x00byte", "\t", "", " ", "-", "--", "%s",
        "{}", "'; DROP TABLE subscribers; --", "x" * 5000, "🙂", "Ünïcødé", "../../etc",
        "https://evil.example", "javascript:alert(1)", "ftp://x", "10M/5M/1M", "0/0",
        "999G/999G", "1k", "AA:BB:CC:DD:EE:FF\n", "256.1.1.1", "::1", "10.0.0.1\n",
        "BDT", "bdt", "XXX", "Home", "alice", "INV-000001", "+8801711000000\n",
    ]),
    st.text(max_size=30),
    st.integers(-(2**70), 2**70).map(str),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
)

# Commands that write, with the argument each example fills with junk (by position).
COMMANDS: list[Callable[[str], list[str]]] = [
    lambda j: ["plan", "create", j, "--price", "500", "--currency", "BDT", "--rate", "5M"],
    lambda j: ["plan", "create", "P1", "--price", j, "--currency", "BDT", "--rate", "5M"],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", j, "--rate", "5M"],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--data-cap", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--grace-days", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--late-fee", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--tax-percent", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--burst", j],
    lambda j: ["plan", "create", "P1", "--price", "5", "--currency", "BDT", "--rate", "5M",
               "--cycle", "days", "--validity-days", j],
    lambda j: ["plan", "set-rate", "Home", j],
    lambda j: ["plan", "set-addressing", "Home", "--ipv6-pool", j],
    lambda j: ["plan", "set-addressing", "Home", "--delegated-ipv6-pool", j],
    lambda j: ["plan", "set-addressing", "Home", "--idle-timeout", j],
    lambda j: ["subscriber", "set-ipv6", "alice", "--prefix", j],
    lambda j: ["subscriber", "set-ipv6", "alice", "--delegated-prefix", j],
    lambda j: ["subscriber", "set-ipv6", "alice", "--pool", j],
    lambda j: ["nas", "create", "edge", "--ip", "10.0.0.9", "--secret", "long-secret-1",
               "--type", j],
    lambda j: ["subscriber", "create", j, "--password", "pw", "--plan", "Home"],
    lambda j: ["subscriber", "create", "bob", "--password", j, "--plan", "Home"],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home", "--mac", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home", "--ip", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--phone", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--email", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--name", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--address", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--tax-id", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--simultaneous-use", j],
    lambda j: ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
               "--activated-on", j],
    lambda j: ["subscriber", "set-mac", "alice", j],
    lambda j: ["subscriber", "promise", "alice", "--until", j],
    lambda j: ["subscriber", "suspend", "alice", "--on", j],
    lambda j: ["subscriber", "set-plan", "alice", j],
    lambda j: ["payment", "record", "alice", j, "--reference", "R-junk"],
    lambda j: ["payment", "record", "alice", "10", "--reference", j],
    lambda j: ["payment", "record", "alice", "10", "--reference", "R-j2", "--method", j],
    lambda j: ["payment", "record", "alice", "10", "--reference", "R-j3", "--on", j],
    lambda j: ["payment", "adjust", "alice", "charge", j, "--reason", "junk"],
    lambda j: ["payment", "adjust", "alice", "credit", "10", "--reason", j],
    lambda j: ["billing", "credit-note", "INV-000001", j, "--reason", "junk"],
    lambda j: ["billing", "run", "--as-of", j],
    lambda j: ["nas", "create", j, "--ip", "10.9.9.9", "--secret", "s3cret-s3cret"],
    lambda j: ["nas", "create", "n1", "--ip", j, "--secret", "s3cret-s3cret"],
    lambda j: ["nas", "create", "n1", "--ip", "10.9.9.9", "--secret", j],
    lambda j: ["nas", "create", "n1", "--ip", "10.9.9.9", "--secret", "s3cret-s3cret",
               "--coa-port", j],
    lambda j: ["isp", "set", "--invoice-prefix", j],
    lambda j: ["isp", "set", "--payment-terms-days", j],
    lambda j: ["isp", "set", "--payment-link-base", j],
    lambda j: ["isp", "set", "--timezone", j],
    lambda j: ["isp", "set", "--guard-percent", j],
    lambda j: ["isp", "set", "--name", j],
    lambda j: ["isp", "set", "--late-fee-min-outstanding", j],
    lambda j: ["isp", "set", "--state-code", j],
    lambda j: ["isp", "holiday", j, "Eid"],
    lambda j: ["user", "create", j, "--role", "noc", "--password", "long-enough-pw"],
    lambda j: ["user", "create", "op1", "--role", "noc", "--password", j],
    # notifications: channels, test messages, retries, preferences
    lambda j: ["notify", "channel", "sms", "--provider", "sslwireless", "--api-token", "t",
               "--sid", j],
    lambda j: ["notify", "channel", "sms", "--provider", "sslwireless", "--api-token", "t",
               "--sid", "S", "--price", j],
    lambda j: ["notify", "channel", "sms", "--provider", "sslwireless", "--api-token", "t",
               "--sid", "S", "--currency", j],
    lambda j: ["notify", "channel", "sms", "--provider", "sslwireless", "--api-token", "t",
               "--sid", "S", "--quiet", j],
    lambda j: ["notify", "channel", "sms", "--provider", "sslwireless", "--api-token", "t",
               "--sid", "S", "--url", j],
    lambda j: ["notify", "channel", "sms", "--provider", "generic-http", "--url", j,
               "--success", "ok"],
    lambda j: ["notify", "channel", "sms", "--provider", "generic-http", "--url",
               "https://sms.example/send", "--body", j, "--success", "ok"],
    lambda j: ["notify", "channel", "sms", "--provider", "generic-http", "--url",
               "https://sms.example/send?to={to}&t={text}", "--success", j],
    lambda j: ["notify", "channel", "email", "--smtp-host", j, "--smtp-port", "25",
               "--from", "billing@isp.example"],
    lambda j: ["notify", "channel", "email", "--smtp-host", "h", "--smtp-port", "25",
               "--from", j],
    lambda j: ["notify", "channel", "telegram", "--token", "1:x", "--noc-chat", j,
               "--finance-chat", "-1"],
    # queued, not sent: a junk number that is a valid one must not reach a provider (an
    # earlier example may have configured the real sslwireless host: no network here)
    lambda j: ["notify", "send-test", "--channel", "sms", "--to", j, "--no-wait"],
    lambda j: ["notify", "retry", j],
    lambda j: ["notify", "preferences", j, "--no-sms"],
    lambda j: ["notify", "preferences", "alice", "--locale", j],
]


def fingerprint(engine: Engine) -> dict[str, int]:
    """How many rows each table has: a refused command must leave every count as it was."""
    with engine.connect() as conn:
        return {table.name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables}


@pytest.fixture
def world(cli: Any, db: Engine) -> Engine:
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/5M")
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "Home",
        "--activated-on", "2026-10-01")
    cli("billing", "run")
    return db


@settings(max_examples=250 if BACKEND == "sqlite" else 120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), junk=JUNK)
def test_junk_in_any_argument_is_one_error_line_and_writes_nothing(
        world: Engine, command: Callable[[str], list[str]], junk: str) -> None:
    args = command(junk)
    before = fingerprint(world)
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, result.exception)
    if result.exit_code == 0:
        return  # junk that happens to be valid (a new plan named "🙂" is fine)
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2), (args, result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    assert fingerprint(world) == before, args
