"""The SessionController contract, for every implementation, against the simulated NAS over
real sockets: RFC 5176 over UDP, the RouterOS API over TCP and over TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coa.controller import NasRef, Outcome, PolicyChange, SessionController, SessionRef
from coa.radius import CoaController
from coa.routeros import RouterOsController
from coa.transport import RadiusTransport
from simulators.nas import NasSimulator
from tests.coa.aio import arun
from tests.coa.conftest import ref_of

Scenario = Callable[[SessionController, NasRef], Awaitable[Any]]


def run(kind: str, sim: NasSimulator, scenario: Scenario) -> Any:
    async def main() -> Any:
        if kind == "coa":
            transport = await RadiusTransport(sockets=2).start()
            try:
                return await scenario(CoaController(transport, timeout=0.2, retries=1),
                                      ref_of(sim))
            finally:
                transport.close()
        api = RouterOsController(timeout=2)
        try:
            return await scenario(api, ref_of(sim, tls="anon" if kind == "api-ssl" else "none"))
        finally:
            await api.close()

    return arun(main())


KINDS = ["coa", "api", "api-ssl"]


def ref(s: Any) -> SessionRef:
    return SessionRef(s.username, s.session_id, s.framed_ip, s.service)


@pytest.mark.parametrize("kind", KINDS)
def test_disconnect_ends_exactly_that_session(kind: str, sim: NasSimulator) -> None:
    alice, bob = sim.attach("alice"), sim.attach("bob")
    result = run(kind, sim, lambda c, n: c.disconnect(n, ref(alice)))
    assert result.outcome is Outcome.ACK
    assert [s.username for s in sim.online()] == ["bob"]
    assert sim.online("bob")[0] is bob


@pytest.mark.parametrize("kind", KINDS)
def test_hotspot_session_is_found_too(kind: str, sim: NasSimulator) -> None:
    guest = sim.attach("guest", service="hotspot")
    assert run(kind, sim, lambda c, n: c.disconnect(n, ref(guest))).outcome is Outcome.ACK
    assert sim.online() == []


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_session_is_gone_not_an_error(kind: str, sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    wrong = SessionRef("alice", "ffffffff", alice.framed_ip)
    result = run(kind, sim, lambda c, n: c.disconnect(n, wrong))
    assert result.outcome is Outcome.GONE
    assert sim.online("alice")
    if kind == "coa":
        assert result.error_cause == 503 and "Session-Context-Not-Found" in result.detail


@pytest.mark.parametrize("kind", KINDS)
def test_change_sets_rate_and_takes_the_address_out_of_the_garden(kind: str,
                                                                   sim: NasSimulator) -> None:
    alice = sim.attach("alice", rate_limit="256k/256k", address_list="radbill-suspended")
    change = PolicyChange(rate_limit="5M/20M", address_list="")
    assert run(kind, sim, lambda c, n: c.change(n, ref(alice), change)).outcome is Outcome.ACK
    # RADIUS cannot carry "no address list" (no zero-length values): a CoA changes the rate
    # alone, which is why leaving the garden is a Disconnect (coa.rules.step_for); the API
    # removes the list entry
    listed = "radbill-suspended" if kind == "coa" else None
    assert (alice.rate_limit, alice.address_list) == ("5M/20M", listed)
    assert sim.online("alice")  # changed live, not disconnected


@pytest.mark.parametrize("kind", ["coa", "api"])
def test_change_puts_the_address_into_the_garden(kind: str, sim: NasSimulator) -> None:
    alice = sim.attach("alice", rate_limit="5M/20M")
    change = PolicyChange(rate_limit="256k/256k", address_list="radbill-suspended")
    assert run(kind, sim, lambda c, n: c.change(n, ref(alice), change)).outcome is Outcome.ACK
    listed = {r["address"] for r in sim.api_print("/ip/firewall/address-list")
              if r["list"] == "radbill-suspended"}
    assert alice.framed_ip in listed
    assert alice.rate_limit.startswith("256k/256k")


@pytest.mark.parametrize("kind", KINDS)
def test_silent_nas_times_out_or_errors_quickly(kind: str, sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    sim.faults.silent = True
    sim.api_silent = True
    result = run(kind, sim, lambda c, n: c.disconnect(n, ref(alice)))
    assert result.outcome is (Outcome.TIMEOUT if kind == "coa" else Outcome.ERROR)
    assert result.latency < 3
    assert sim.online("alice")


def test_coa_nak_carries_the_error_cause(sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    sim.faults.nak = 501
    result = run("coa", sim, lambda c, n: c.disconnect(n, ref(alice)))
    assert (result.outcome, result.error_cause) == (Outcome.NAK, 501)
    assert "Administratively-Prohibited" in result.detail


def test_coa_retransmits_through_loss(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}") for i in range(200)]
    sim.faults.drop = 0.2

    async def scenario(c: SessionController, n: NasRef) -> list[Any]:
        return list(await asyncio.gather(*(c.disconnect(n, ref(s)) for s in sessions)))

    async def main() -> list[Any]:
        transport = await RadiusTransport(sockets=2).start()
        try:
            return await scenario(CoaController(transport, timeout=0.2, retries=4),
                                  ref_of(sim))
        finally:
            transport.close()

    results = arun(main())
    assert all(r.outcome is Outcome.ACK for r in results)
    assert sum(r.sends > 1 for r in results) > 10  # the losses were retransmitted
    assert sim.online() == []


def test_wrong_secret_is_silently_discarded(sim: NasSimulator) -> None:
    alice = sim.attach("alice")

    async def main() -> Any:
        transport = await RadiusTransport(sockets=1).start()
        try:
            bad = NasRef(ip=sim.nas_ip, secret="not-the-secret", coa_port=sim.coa_port)
            return await CoaController(transport, timeout=0.1, retries=1).disconnect(
                bad, ref(alice))
        finally:
            transport.close()

    assert arun(main()).outcome is Outcome.TIMEOUT
    assert sim.counters.discarded == 2  # both sends failed the authenticator check
    assert sim.online("alice")


def test_api_login_failure_is_a_clear_error(sim: NasSimulator) -> None:
    alice = sim.attach("alice")

    async def main() -> Any:
        api = RouterOsController(timeout=2)
        try:
            bad = NasRef(ip=sim.nas_ip, secret="x", api_port=sim.api_port,
                         api_username="radbill", api_password="wrong")
            return await api.disconnect(bad, ref(alice))
        finally:
            await api.close()

    result = arun(main())
    assert result.outcome is Outcome.ERROR and "invalid user name or password" in result.detail


def test_api_reuses_one_connection_per_router(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}") for i in range(5)]

    async def main() -> RouterOsController:
        api = RouterOsController(timeout=2)
        await asyncio.gather(*(api.disconnect(ref_of(sim), ref(s)) for s in sessions))
        return api

    api = arun(main())
    assert len(api._conns) == 1  # the connection cache is the point here
    assert sim.online() == []


def test_local_ppp_secret_is_disabled_and_enabled(sim: NasSimulator) -> None:
    item = sim.api_add("/ppp/secret", {"name": "local1", "password": "x", "disabled": "no"})

    async def main(disabled: bool) -> Any:
        api = RouterOsController(timeout=2)
        try:
            return await api.set_local_user(ref_of(sim), "local1", disabled)
        finally:
            await api.close()

    assert arun(main(True)).outcome is Outcome.ACK
    assert sim.secrets[item]["disabled"] == "yes"
    assert arun(main(False)).outcome is Outcome.ACK
    assert sim.secrets[item]["disabled"] == "no"


def test_a_dead_router_is_skipped_after_one_failure(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}") for i in range(6)]
    sim.api_silent = True  # accepts the connection, never answers

    async def main() -> tuple[list[Any], float]:
        api = RouterOsController(timeout=0.5, down_for=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await asyncio.gather(*(api.disconnect(ref_of(sim), ref(s))
                                              for s in sessions))
            return list(results), loop.time() - started
        finally:
            await api.close()

    results, took = arun(main())
    assert all(r.outcome is Outcome.ERROR for r in results)
    assert sum("skipped" in r.detail for r in results) == 5
    assert took < 2.0  # one timeout, not six in a row
