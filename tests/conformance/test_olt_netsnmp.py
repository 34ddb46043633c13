"""The simulated OLT against net-snmp's command-line tools (snmpget, snmpbulkwalk, snmpset),
an SNMP implementation radbill did not write: v2c read and write communities, GETBULK walks
of a profile's columns, SETs that change the admin state, the read-only community refused,
SNMPv3 authPriv SHA/AES with the right and a wrong key."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from simulators.olt import SYS_UPTIME, SimOlt, demo_onus

# net-snmp's tools come with Debian's snmp package (scripts/setup-debian.sh): a missing one
# fails here rather than skipping the only SNMP client radbill did not write
AUTH, PRIV = "auth-key-123", "priv-key-456"


@pytest.fixture
def olt() -> Iterator[SimOlt]:
    sim = SimOlt("huawei-gpon", demo_onus("huawei-gpon", 5), v3_user="radbill",
                 v3_auth_key=AUTH, v3_priv_key=PRIV).start()
    yield sim
    sim.stop()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, timeout=20, check=False)


def target(sim: SimOlt) -> str:
    return f"127.0.0.1:{sim.port}"


def test_bulk_walk_of_the_serial_column_and_get(olt: SimOlt) -> None:
    p = olt.layout
    assert p.ident_oid
    out = run("snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr10", "-t", "3", "-r", "3",
              target(olt), p.ident_oid)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("." + p.ident_oid + ".") for line in lines)
    assert "Hex-STRING: 53 49 4D 55" in lines[0]  # "SIMU" + 4 bytes, Huawei's 8-byte serial
    up = run("snmpget", "-v2c", "-c", "public", "-On", target(olt), SYS_UPTIME)
    assert "Timeticks" in up.stdout


def test_set_with_the_write_community_changes_the_admin_state(olt: SimOlt) -> None:
    p = olt.layout
    onu = olt.onus[3]
    oid = f"{p.block_oid}.{olt.index_of(onu)}"
    out = run("snmpset", "-v2c", "-c", "private", "-On", target(olt), oid, "i", "2")
    assert out.returncode == 0, out.stderr
    assert olt.by_ident(onu.ident).blocked
    back = run("snmpget", "-v2c", "-c", "public", "-On", target(olt), oid)
    assert back.stdout.strip().endswith("INTEGER: 2")
    wrong = run("snmpset", "-v2c", "-c", "private", target(olt), oid, "i", "7")
    assert wrong.returncode != 0 and "wrongValue" in wrong.stderr


def test_set_with_the_read_community_is_refused(olt: SimOlt) -> None:
    oid = f"{olt.layout.block_oid}.{olt.index_of(olt.onus[0])}"
    out = run("snmpset", "-v2c", "-c", "public", target(olt), oid, "i", "2")
    assert out.returncode != 0 and "noAccess" in out.stderr
    assert not olt.onus[0].blocked


def test_v3_authpriv_sha_aes(olt: SimOlt) -> None:
    base = ["snmpget", "-v3", "-l", "authPriv", "-u", "radbill", "-a", "SHA", "-x", "AES",
            "-X", PRIV, "-On", "-t", "3", "-r", "3"]
    good = run(*base, "-A", AUTH, target(olt), SYS_UPTIME)
    assert good.returncode == 0 and "Timeticks" in good.stdout, good.stderr
    bad = run(*base, "-A", "wrong-key-999", target(olt), SYS_UPTIME)
    assert bad.returncode != 0 and "Authentication failure" in bad.stderr
