"""The NAS simulator's RouterOS API, driven by an independent client: ``RouterOS-api``
(PyPI ``RouterOS-api``, routeros_api, Social WiFi; MIT), not librouteros which radbill uses.

What it proves: the simulator's wire protocol (word lengths, sentences, ``!re``/``!done``/
``!trap``, ``.tag``, ``?`` queries, post-6.43 login) is understood by a client written
against real routers, and the values it prints are RouterOS's (``session-id=0x...`` upper
case, ``max-limit`` in bits per second), in both API-SSL modes (no certificate: anonymous
Diffie-Hellman; certificate: TLS the client can verify)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import routeros_api
from routeros_api.exceptions import RouterOsApiCommunicationError, RouterOsApiError

from simulators.nas import NasSimulator
from tests.coa.conftest import API_PASSWORD
from tests.coa.pki import RouterCert


def connect(port: int, *, password: str = API_PASSWORD,
            ssl_context: ssl.SSLContext | None = None) -> routeros_api.RouterOsApiPool:
    pool = routeros_api.RouterOsApiPool("127.0.0.1", username="radbill", password=password,
                                        port=port, plaintext_login=True,
                                        ssl_context=ssl_context)
    pool.set_timeout(5)
    return pool


@pytest.fixture
def api(sim: NasSimulator) -> Iterator[routeros_api.api.RouterOsApi]:
    pool = connect(sim.api_port or 0)
    yield pool.get_api()
    pool.disconnect()


def test_ppp_active_prints_session_ids_as_routeros_does(sim: NasSimulator, api) -> None:  # type: ignore[no-untyped-def]
    sessions = [sim.attach(f"user{i}") for i in range(11)]
    rows = api.get_resource("/ppp/active").get()
    assert len(rows) == 11
    row = api.get_resource("/ppp/active").get(name="user10")
    assert len(row) == 1
    assert row[0]["session-id"] == "0x8100000B"  # RADIUS carried 8100000b
    assert sessions[10].session_id == "8100000b"
    assert row[0]["address"] == sessions[10].framed_ip and row[0]["id"].startswith("*")


def test_queue_max_limit_is_printed_in_bits_per_second(sim: NasSimulator, api) -> None:  # type: ignore[no-untyped-def]
    sim.attach("alice", rate_limit="5M/20M 10M/40M 4M/16M 8/8")
    queues = api.get_resource("/queue/simple")
    row = queues.get(name="<pppoe-alice>")[0]
    assert row["max-limit"] == "5000000/20000000"
    queues.set(id=row["id"], **{"max-limit": "512k/1M"})  # written as an operator would
    assert queues.get(name="<pppoe-alice>")[0]["max-limit"] == "512000/1000000"
    with pytest.raises(RouterOsApiCommunicationError, match="max-limit"):
        queues.set(id=row["id"], **{"max-limit": "fast"})


def test_remove_from_ppp_active_ends_the_session(sim: NasSimulator, api) -> None:  # type: ignore[no-untyped-def]
    alice, bob = sim.attach("alice"), sim.attach("bob")
    active = api.get_resource("/ppp/active")
    active.remove(id=active.get(name="alice")[0]["id"])
    assert sim.online() == [bob] and alice not in sim.online()
    with pytest.raises(RouterOsApiCommunicationError, match="no such item"):
        active.remove(id="*FFFF")


def test_address_list_add_and_print(sim: NasSimulator, api) -> None:  # type: ignore[no-untyped-def]
    lists = api.get_resource("/ip/firewall/address-list")
    lists.add(list="radbill-suspended", address="100.64.0.9", comment="radbill x")
    rows = lists.get(list="radbill-suspended")
    assert [(r["address"], r["comment"]) for r in rows] == [("100.64.0.9", "radbill x")]


def test_a_wrong_password_is_refused(sim: NasSimulator) -> None:
    with pytest.raises(RouterOsApiError, match="invalid user name or password"):
        connect(sim.api_port or 0, password="wrong").get_api()


def _anon_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ADH:@SECLEVEL=0")
    return ctx


def test_api_ssl_without_certificate_takes_anonymous_dh_only(sim: NasSimulator) -> None:
    sim.attach("alice")
    pool = connect(sim.api_tls_port or 0, ssl_context=_anon_client())
    try:
        rows = pool.get_api().get_resource("/ppp/active").get()
        assert [r["name"] for r in rows] == ["alice"]
        assert pool.socket.socket.cipher()[0].startswith("ADH-")  # what the router negotiated
    finally:
        pool.disconnect()
    # the client's everyday setting (a certificate, even unchecked) finds none: as a router
    # with no certificate on api-ssl, the handshake fails
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, RouterOsApiError)):
        connect(sim.api_tls_port or 0, ssl_context=unchecked).get_api()


def test_api_ssl_with_a_certificate_is_verified_by_the_client(
        cert_sim: NasSimulator, router_cert: RouterCert) -> None:
    cert_sim.attach("alice")
    verifying = ssl.create_default_context(cadata=router_cert.ca_pem)  # hostname checked too
    pool = connect(cert_sim.api_tls_port or 0, ssl_context=verifying)
    try:
        assert [r["name"] for r in pool.get_api().get_resource("/ppp/active").get()] == ["alice"]
    finally:
        pool.disconnect()
