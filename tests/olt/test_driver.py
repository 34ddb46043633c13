"""The OltDriver contract, for every implementation (the SNMP driver under each vendor
profile) against the simulated OLT over UDP."""

from __future__ import annotations

import pytest

from olt.driver import OltDriver, SnmpOltDriver
from olt.profiles import profile
from olt.snmp import Credentials
from tests.coa.aio import arun
from tests.olt.conftest import SNMP_PROFILES


@pytest.mark.parametrize("vendor", SNMP_PROFILES)
def test_driver_contract(olt_sim, vendor) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim(vendor, onus=5)
    a, b = sim.onus[0].ident, sim.onus[4].ident

    async def main() -> None:
        driver: OltDriver = SnmpOltDriver(profile(vendor), Credentials(
            "127.0.0.1", sim.port, sim.community, sim.write_community, timeout=2, retries=0))
        try:
            assert await driver.uptime() > 40 * 86400 * 100  # centiseconds
            found = {r.ident: r for r in await driver.discover()}
            assert set(found) == {o.ident for o in sim.onus}
            assert all(r.online and r.blocked is False and r.pon for r in found.values())
            results = await driver.apply({a: True, b: True, "ZZZZ00000000": True})
            assert [(r.ident, r.outcome) for r in results] == [
                (a, "ack"), (b, "ack"), ("ZZZZ00000000", "not-found")]
            assert await driver.read_states([a, b, sim.onus[1].ident]) == {
                a: True, b: True, sim.onus[1].ident: False}
            assert [r.outcome for r in await driver.apply({a: False})] == ["ack"]
            assert await driver.read_states([a, b]) == {a: False, b: True}
        finally:
            await driver.aclose()

    arun(main())
    assert [o.blocked for o in sim.onus] == [False, False, False, False, True]


def test_one_refused_row_does_not_fail_the_others_in_its_pdu(olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("zte-gpon", onus=6)
    idents = [o.ident for o in sim.onus]
    sim.faults.refuse.add(idents[2])

    async def main() -> list[tuple[str, str]]:
        async with SnmpOltDriver(profile("zte-gpon"), Credentials(
                "127.0.0.1", sim.port, sim.community, sim.write_community)) as driver:
            return [(r.ident, r.outcome) for r in await driver.apply(dict.fromkeys(idents, True))]

    got = arun(main())
    assert got == [(i, "wrong-value" if i == idents[2] else "ack") for i in idents]
    assert [o.blocked for o in sim.onus] == [o.ident != idents[2] for o in sim.onus]


def test_a_model_without_snmp_block_never_touches_the_network() -> None:
    async def main() -> list[str]:
        driver = SnmpOltDriver(profile("vsol-epon"), Credentials("127.0.0.1", 9, "c"))
        try:
            return [r.outcome for r in await driver.apply({"aa:bb:cc:dd:ee:ff": True})]
        finally:
            await driver.aclose()

    assert arun(main()) == ["unsupported"]
