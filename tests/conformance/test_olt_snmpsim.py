"""radbill's OLT driver against snmpsim, an SNMP agent radbill did not write, serving a
Huawei-shaped table: discovery by GETBULK, a block SET on a writable record verified by
reading back, and a SET on a read-only record (snmpsim answers it without an error and changes
nothing) caught by the read-back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from olt.driver import SnmpOltDriver
from olt.profiles import profile
from olt.snmp import Credentials, SnmpClient
from tests.coa.aio import arun

# snmpsim is a dev dependency (pyproject.toml): `make test` installs it beside this Python; a
# missing one fails here rather than skipping the only agent radbill did not write
RESPONDER = str(Path(sys.executable).parent / "snmpsim-command-responder")
E = "1.3.6.1.4.1.2011.6.128.1.1.2"
PON = 4194304000 + 0 * 8192 + 1 * 256  # Huawei ponIfIndex of 0/0/1
WRITABLE, STUCK = "HWTC1A2B3C4D", "HWTC0000BEEF"


def _snmprec(path: Path) -> None:
    rows = {"1.3.6.1.2.1.1.3.0": "67|12345"}
    for n, serial in ((1, WRITABLE), (2, STUCK)):
        rows[f"{E}.43.1.3.{PON}.{n}"] = "4x|" + serial[:4].encode().hex() + serial[4:].lower()
        rows[f"{E}.51.1.4.{PON}.{n}"] = "2|-2150"
        rows[f"{E}.46.1.15.{PON}.{n}"] = "2|1"
    # ONU 1: writable 1..2 (snmpsim's writecache variation); ONU 2: a plain, read-only record
    rows[f"{E}.46.1.1.{PON}.1"] = "2:writecache|value=1,vlist=lt:1:wrongvalue:gt:2:wrongvalue"
    rows[f"{E}.46.1.1.{PON}.2"] = "2|1"

    def key(oid: str) -> tuple[int, ...]:
        return tuple(int(x) for x in oid.split("."))

    path.write_text("".join(f"{oid}|{rows[oid]}\n" for oid in sorted(rows, key=key)))


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[int]:
    data = tmp_path / "data"
    data.mkdir()
    _snmprec(data / "olt-huawei.snmprec")  # the community is the file's name
    port = _port()
    proc = subprocess.Popen(
        [RESPONDER, f"--data-dir={data}", f"--agent-udpv4-endpoint=127.0.0.1:{port}",
         f"--variation-module-options=writecache:file:{tmp_path / 'wc.db'}",
         f"--cache-dir={tmp_path / 'cache'}"],
        env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # snmpsim indexes the data file before answering
            async def probe() -> bool:
                async with SnmpClient(Credentials("127.0.0.1", port, "olt-huawei",
                                                  timeout=0.5, retries=0)) as c:
                    try:
                        await c.get(["1.3.6.1.2.1.1.3.0"])
                    except Exception:  # noqa: BLE001 - not up yet
                        return False
                    return True

            if arun(probe()):
                break
        else:
            pytest.fail("snmpsim did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_driver_discovers_blocks_with_read_back_and_catches_a_quiet_no_op(agent: int) -> None:
    async def main() -> tuple[list, list]:  # type: ignore[type-arg]
        async with SnmpOltDriver(profile("huawei-gpon", {"save_oid": None}),
                                 Credentials("127.0.0.1", agent, "olt-huawei")) as d:
            found = await d.discover()
            results = await d.apply({WRITABLE: True, STUCK: True})
        return found, results

    found, results = arun(main())
    assert sorted((o.ident, o.pon, o.onu_no, o.rx_dbm, o.online, o.blocked) for o in found) == [
        (STUCK, "0/0/1", 2, -21.5, True, False), (WRITABLE, "0/0/1", 1, -21.5, True, False)]
    by = {r.ident: r for r in results}
    assert (by[WRITABLE].outcome, by[WRITABLE].index) == ("ack", f"{PON}.1")
    assert by[STUCK].outcome == "not-applied" and "reads back unblocked" in by[STUCK].detail
