"""The RouterOS API adapter against a simulated router that answers as RouterOS does:
``max-limit`` printed in bits per second, ``session-id`` as upper-case ``0x...``, API-SSL
with anonymous Diffie-Hellman when the router has no certificate and ordinary TLS when it
has one."""

from __future__ import annotations

from typing import Any

import pytest

from coa.controller import NasRef, Outcome, PolicyChange, SessionRef
from coa.routeros import RouterOsController, max_limit_bps, session_id
from radius.nas import fingerprint_of
from simulators.nas import NasSimulator
from tests.coa.aio import arun
from tests.coa.conftest import ref_of
from tests.coa.pki import RouterCert


def api_call(nas: NasRef, fn: Any) -> Any:
    async def main() -> Any:
        api = RouterOsController(timeout=2)
        try:
            return await fn(api, nas)
        finally:
            await api.close()

    return arun(main())


def ref(s: Any) -> SessionRef:
    return SessionRef(s.username, s.session_id, s.framed_ip, s.service)


@pytest.mark.parametrize(("printed", "bps"), [
    ("5000000/20000000", (5_000_000, 20_000_000)),  # what RouterOS prints
    ("5M/20M", (5_000_000, 20_000_000)),  # what radbill writes
    ("5M/20M 10M/40M 4M/16M 8/8", (5_000_000, 20_000_000)),  # a whole Rate-Limit
    ("512k/1M", (512_000, 1_000_000)),
    ("1.5M/2G", (1_500_000, 2_000_000_000)),
    ("10M", (10_000_000, 10_000_000)),
    ("0/0", (0, 0)),
    ("", None), ("fast/slow", None), ("1/2/3", None), (None, None),
])
def test_max_limit_is_compared_as_numbers(printed: Any, bps: Any) -> None:
    assert max_limit_bps(printed) == bps


@pytest.mark.parametrize(("seen", "normal"), [
    ("0x81B0000A", "81b0000a"), ("0x8100000a", "8100000a"), ("81B0000A", "81b0000a"),
    ("8050005a", "8050005a"), ("", None), (None, None),
])
def test_session_ids_compare_without_0x_and_case(seen: Any, normal: Any) -> None:
    assert session_id(seen) == normal


def test_the_simulator_prints_as_routeros_does(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}", rate_limit="5M/20M 10M/40M") for i in range(11)]
    last = sessions[-1]
    assert last.session_id == "8100000b"  # Acct-Session-Id, lower case
    active = {r["name"]: r for r in sim.api_print("/ppp/active")}
    assert active["user10"]["session-id"] == "0x8100000B"
    queues = {r["name"]: r for r in sim.api_print("/queue/simple")}
    assert queues["<pppoe-user10>"]["max-limit"] == "5000000/20000000"


def test_read_back_of_a_rate_the_router_prints_in_bps_is_ack(sim: NasSimulator) -> None:
    alice = sim.attach("alice", rate_limit="5M/20M 10M/40M 4M/16M 8/8")
    same = PolicyChange(rate_limit="5M/20M 10M/40M 4M/16M 8/8")
    other = PolicyChange(rate_limit="512k/1M")
    assert api_call(ref_of(sim), lambda c, n: c.read_back(n, ref(alice), same)).outcome \
        is Outcome.ACK
    result = api_call(ref_of(sim), lambda c, n: c.read_back(n, ref(alice), other))
    assert (result.outcome, result.detail) == (Outcome.NAK,
                                               "the router does not show the new rate")


def test_a_session_id_with_hex_letters_is_found_and_disconnected(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}") for i in range(12)]
    target = sessions[10]  # Acct-Session-Id 8100000b, the router prints 0x8100000B
    assert any(c in "abcdef" for c in target.session_id)
    result = api_call(ref_of(sim), lambda c, n: c.disconnect(n, ref(target)))
    assert result.outcome is Outcome.ACK
    assert not sim.online(target.username) and len(sim.online()) == 11


def test_view_reports_session_ids_as_accounting_does(sim: NasSimulator) -> None:
    sessions = [sim.attach(f"user{i}") for i in range(12)]
    view = api_call(ref_of(sim), lambda c, n: c.view(n))
    assert sorted(e.session_id for e in view.active) == sorted(s.session_id for s in sessions)


def test_anon_reaches_a_router_without_certificate(sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    result = api_call(ref_of(sim, tls="anon"), lambda c, n: c.disconnect(n, ref(alice)))
    assert result.outcome is Outcome.ACK, result.detail
    assert sim.online() == []


def test_anon_also_reaches_a_router_with_a_certificate(cert_sim: NasSimulator) -> None:
    alice = cert_sim.attach("alice")
    result = api_call(ref_of(cert_sim, tls="anon"), lambda c, n: c.disconnect(n, ref(alice)))
    assert result.outcome is Outcome.ACK, result.detail


def test_verify_with_the_ca_reaches_the_router(cert_sim: NasSimulator,
                                               router_cert: RouterCert) -> None:
    alice = cert_sim.attach("alice")
    nas = ref_of(cert_sim, tls="verify", api_tls_ca=router_cert.ca_pem)
    assert api_call(nas, lambda c, n: c.disconnect(n, ref(alice))).outcome is Outcome.ACK


def test_verify_with_the_pinned_fingerprint_reaches_the_router(
        cert_sim: NasSimulator, router_cert: RouterCert) -> None:
    alice = cert_sim.attach("alice")
    nas = ref_of(cert_sim, tls="verify", api_tls_fingerprint=fingerprint_of(router_cert.pem))
    assert api_call(nas, lambda c, n: c.disconnect(n, ref(alice))).outcome is Outcome.ACK


@pytest.mark.parametrize("case", ["foreign-ca", "wrong-pin", "no-certificate"])
def test_verify_refuses_a_router_it_cannot_authenticate_before_sending_the_password(
        case: str, sim: NasSimulator, cert_sim: NasSimulator, router_cert: RouterCert,
        foreign_cert: RouterCert) -> None:
    router = sim if case == "no-certificate" else cert_sim
    alice = router.attach("alice")
    kw = {"foreign-ca": {"api_tls_ca": foreign_cert.ca_pem},
          "wrong-pin": {"api_tls_fingerprint": fingerprint_of(foreign_cert.pem)},
          "no-certificate": {"api_tls_ca": router_cert.ca_pem}}[case]
    result = api_call(ref_of(router, tls="verify", **kw),
                      lambda c, n: c.disconnect(n, ref(alice)))
    assert result.outcome is Outcome.ERROR
    assert router.api.commands == 0  # not even /login: the password never left radbill
    assert router.online("alice")
