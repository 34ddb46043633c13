"""The values the hardening review found accepted (or answered with a traceback), each refused
with one ``error:`` line and a non-zero exit, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.radbill.test_junk_input import fingerprint

HOME = ["--currency", "BDT", "--rate", "5M"]
BOB = ["subscriber", "create", "bob", "--password", "pw", "--plan", "Home"]
NAS = ["nas", "create", "n1", "--ip", "10.9.9.9"]

CASES = [
    # money and sizes have upper bounds
    (["plan", "create", "P1", "--price", "1e400", *HOME], "amount '1e400' is above"),
    (["plan", "create", "P1", "--price", "99999999999999999999", *HOME], "is above"),
    (["plan", "create", "P1", "--price", "5", *HOME, "--data-cap", "99999999999999999999G"],
     "malformed size"),
    (["plan", "create", "P1", "--price", "5", *HOME, "--data-cap", "5000T"], "above 1000T"),
    (["payment", "record", "alice", "100000000000000000000000000", "--reference", "R9"],
     "is above"),
    (["payment", "adjust", "alice", "charge", "1e400", "--reason", "x"], "is above"),
    # a value ending in a newline is not the value
    (["plan", "create", "Home2\n", "--price", "5", *HOME], "invalid plan name"),
    (["subscriber", "create", "bob\n", "--password", "pw", "--plan", "Home"],
     "invalid username"),
    ([*NAS, "--secret", "s3cret-s3cret\n"], "RADIUS secret must be"),
    ([*BOB, "--mac", "AA:BB:CC:DD:EE:FF\n"], "invalid MAC"),
    ([*BOB, "--phone", "+8801711000000\n"], "invalid phone"),
    ([*BOB, "--email", "bob@example.com\n"], "invalid e-mail"),
    (["isp", "set", "--invoice-prefix", "INV-\n"], "invoice prefix"),
    # ISP settings are validated
    (["isp", "set", "--invoice-prefix", "INV 2026 "], "invoice prefix"),
    (["isp", "set", "--invoice-prefix", "ABCDEFGHIJK"], "up to 10"),
    (["isp", "set", "--payment-terms-days", "-1"], "between 0 and 90"),
    (["isp", "set", "--payment-link-base", "ftp://pay.example"], "must be an http(s) URL"),
    (["isp", "set", "--payment-link-base", "javascript:alert(1)"], "must be an http(s) URL"),
    (["isp", "set", "--guard-percent", "0"], "between 1 and 100"),
    # negative numbers
    (["plan", "create", "P1", "--price", "-5", *HOME], "must be zero or more"),
    (["plan", "create", "P1", "--price", "5", *HOME, "--grace-days", "-1"], "between 0 and 365"),
    ([*BOB, "--simultaneous-use", "-5"], "between 1 and 100"),
    ([*NAS, "--secret", "s3cret-s3cret", "--coa-port", "-1"], "outside 1-65535"),
    (["payment", "record", "alice", "-5", "--reference", "R8"], "No such option '-5'"),
    (["payment", "record", "alice", "--reference", "R8", "--", "-5"], "must be zero or more"),
    # impossible dates
    ([*BOB, "--activated-on", "2026-02-30"], "is not a date"),
    (["subscriber", "promise", "alice", "--until", "2026-13-01"], "is not a date"),
    (["payment", "record", "alice", "5", "--reference", "R7", "--on", "2026-02-29"],
     "is not a date"),
    (["billing", "run", "--as-of", "20261130"], "is not a date"),
]


@pytest.fixture
def world(cli: Any, db: Engine) -> Engine:
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/5M")
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "Home",
        "--activated-on", "2026-10-01")
    return db


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_out_of_bounds_values_are_refused_in_one_line(cli: Any, world: Engine,
                                                      args: list[str], message: str) -> None:
    before = fingerprint(world)
    result = cli(*args, ok=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2), result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0], lines[0]
    assert fingerprint(world) == before
