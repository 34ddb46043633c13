"""`radbill olt ...` and `radbill subscriber set-onu`: the commands of the issue, JSON output,
and one-line errors that write nothing."""

from __future__ import annotations

import json

import pytest

from tests.olt.conftest import V3


def setup(cli, sim) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "P", "--price", "1", "--currency", "BDT", "--rate", "1M")
    for name in ("alice", "bob"):
        cli("subscriber", "create", name, "--password", "pw", "--plan", "P")
    cli("olt", "create", "olt-1", "--vendor", sim.vendor, "--ip", "127.0.0.1", "--port",
        str(sim.port), "--community", "public", "--write-community", "private",
        "--timeout-ms", "500", "--retries", "0")


def test_create_list_discover_onus_and_bind(cli, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("huawei-gpon", onus=4)
    setup(cli, sim)
    cli("olt", "create", "olt-v3", "--vendor", "zte-gpon", "--ip", "127.0.0.1", "--port",
        str(olt_sim("zte-gpon", onus=1).port), "--v3-user", V3["v3_user"], "--v3-auth-key",
        V3["v3_auth_key"], "--v3-priv-key", V3["v3_priv_key"])
    listed = json.loads(cli("olt", "list", "--json").output)
    assert [(o["name"], o["vendor"], o["snmp"], o["onus"]) for o in listed] == [
        ("olt-1", "huawei-gpon", "v2c", 0), ("olt-v3", "zte-gpon", "v3", 0)]
    assert "private" not in cli("olt", "list", "--json").output  # no secrets shown
    found = json.loads(cli("olt", "discover", "olt-1", "--json").output)
    assert (found["seen"], found["new"]) == (4, 4)
    assert sorted(o["ident"] for o in found["onus"]) == sorted(o.ident for o in sim.onus)
    assert {(o["status"], o["rx_dbm"] is not None) for o in found["onus"]} == {("online", True)}
    assert "1 ONUs" in cli("olt", "discover", "olt-v3").output
    serial = sim.onus[2].ident
    out = cli("subscriber", "set-onu", "alice", "--olt", "olt-1", "--serial", serial.lower())
    assert f"alice bound to ONU {serial} on olt-1" in out.output
    onus = json.loads(cli("olt", "onus", "olt-1", "--json").output)
    row = next(o for o in onus if o["ident"] == serial)
    assert (row["subscriber"], row["status"], row["pon"]) == ("alice", "online", "0/0/3")
    assert len(onus) == 4 and "alice" in cli("olt", "onus", "olt-1").output


def test_overrides_are_changed_without_code_and_used_by_the_next_walk(cli, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("huawei-gpon", onus=2)
    setup(cli, sim)
    # a firmware that keeps serials elsewhere: discovery finds nothing, then the override fixes it
    cli("olt", "set", "olt-1", "--overrides",
        '{"ident_oid": "1.3.6.1.4.1.2011.6.128.1.1.2.43.1.99"}')
    assert json.loads(cli("olt", "discover", "olt-1", "--json").output)["seen"] == 0
    out = cli("olt", "set", "olt-1", "--overrides", "{}", "--weak-rx", "-25").output
    assert "overrides none" in out and "weak below -25.0 dBm" in out
    assert json.loads(cli("olt", "discover", "olt-1", "--json").output)["seen"] == 2
    bad = cli("olt", "set", "olt-1", "--overrides", '{"blocked_value": "two"}', ok=False)
    assert bad.exit_code == 1 and bad.output.startswith("error: blocked_value")
    assert json.loads(cli("olt", "list", "--json").output)[0]["overrides"] == []


def test_vendor_without_snmp_block_is_created_with_a_warning(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("olt", "create", "epon", "--vendor", "vsol-epon", "--ip", "10.0.0.9",
              "--community", "public").output
    assert "enforced at the NAS only" in out


@pytest.mark.parametrize(("args", "message"), [
    (["olt", "create", "x", "--vendor", "nokia", "--ip", "10.0.0.2", "--community", "c"],
     "unknown OLT vendor profile 'nokia'"),
    (["olt", "create", "x", "--vendor", "zte-gpon", "--ip", "10.0.0.300", "--community", "c"],
     "invalid IP address"),
    (["olt", "create", "x", "--vendor", "zte-gpon", "--ip", "10.0.0.2"], "--community"),
    (["olt", "create", "x", "--vendor", "zte-gpon", "--ip", "10.0.0.2", "--v3-user", "u"],
     "SNMPv3 needs"),
    (["olt", "create", "x", "--vendor", "zte-gpon", "--ip", "10.0.0.2", "--community", "c",
      "--overrides", '{"block_oid": "ifAdminStatus"}'], "not a numeric OID"),
    (["olt", "create", "olt-1", "--vendor", "zte-gpon", "--ip", "10.0.0.2", "--community",
      "c"], "exists"),
    (["subscriber", "set-onu", "bob", "--olt", "olt-1", "--serial", "HWTC123"],
     "not a GPON serial"),
    (["subscriber", "set-onu", "bob", "--olt", "olt-1", "--mac", "aa:bb:cc:dd:ee:ff"],
     "known by serial"),
    (["subscriber", "set-onu", "bob", "--olt", "olt-1"], "exactly one of --serial or --mac"),
    (["subscriber", "set-onu", "bob", "--olt", "olt-1", "--serial", "HWTC0000000A"],
     "already bound"),
    (["subscriber", "set-onu", "ghost", "--olt", "olt-1", "--serial", "HWTC0000000B"],
     "unknown subscriber"),
    (["subscriber", "set-onu", "bob", "--olt", "nope", "--serial", "HWTC0000000B"],
     "unknown OLT"),
    (["olt", "discover", "nope"], "unknown OLT"),
])
def test_bad_input_one_line_error_nothing_written(cli, olt_sim, args, message  # type: ignore[no-untyped-def]
                                                   ) -> None:
    setup(cli, olt_sim("huawei-gpon", onus=1))
    cli("subscriber", "set-onu", "alice", "--olt", "olt-1", "--serial", "HWTC0000000A")
    before = cli("olt", "list", "--json").output, cli("olt", "onus", "olt-1", "--json").output
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    after = cli("olt", "list", "--json").output, cli("olt", "onus", "olt-1", "--json").output
    assert after == before


def test_bad_mac_on_an_epon_olt(cli) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "P", "--price", "1", "--currency", "BDT", "--rate", "1M")
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "P")
    cli("olt", "create", "epon", "--vendor", "bdcom-epon", "--ip", "10.0.0.9", "--community",
        "c")
    result = cli("subscriber", "set-onu", "alice", "--olt", "epon", "--mac", "aa:bb:cc", ok=False)
    assert result.output.startswith("error: MAC 'aa:bb:cc' is not a MAC address")


def test_discovering_an_unreachable_olt_is_one_line(cli, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("zte-gpon", onus=1)
    setup(cli, sim)
    sim.faults.drop = True
    result = cli("olt", "discover", "olt-1", ok=False)
    assert result.exit_code == 1 and result.output.startswith("error: OLT olt-1:")
    assert "timed out" in result.output and len(result.output.strip().splitlines()) == 1


def test_enforcement_status_shows_the_olt_line(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("enforcement", "status").output
    assert "OLT: pending 0, failed 0, drift 0" in out
    assert json.loads(cli("enforcement", "status", "--json").output)["olt"]["drift"] == 0
