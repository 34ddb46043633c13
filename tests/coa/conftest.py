"""Simulated NASes (no RADIUS server behind them): one whose API-SSL has no certificate
(RouterOS's default: anonymous Diffie-Hellman only) and one with a CA-signed certificate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coa.controller import NasRef
from simulators.nas import NasSimulator
from simulators.radius_client import free_udp_port
from tests.coa.pki import RouterCert, make_router_cert

NAS_SECRET = "coa-test-secret"
API_PASSWORD = "api-test-pass"


@pytest.fixture(scope="session")
def router_cert(tmp_path_factory: pytest.TempPathFactory) -> RouterCert:
    """A router certificate for 127.0.0.1 and the CA that signed it."""
    return make_router_cert(tmp_path_factory.mktemp("router-tls"))


@pytest.fixture(scope="session")
def foreign_cert(tmp_path_factory: pytest.TempPathFactory) -> RouterCert:
    """A certificate for the same address from a CA radbill was never told about."""
    return make_router_cert(tmp_path_factory.mktemp("foreign-tls"), ca_name="other-ca")


def _sim(**kw: object) -> NasSimulator:
    return NasSimulator(nas_ip="127.0.0.1", secret=NAS_SECRET, auth_port=free_udp_port(),
                        acct_port=free_udp_port(), coa_port=0, api_port=0, api_tls_port=0,
                        api_password=API_PASSWORD, seed=1, **kw).start()  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Iterator[NasSimulator]:
    """A simulated NAS on 127.0.0.1 with CoA, API and certificate-less API-SSL; accounting
    goes nowhere."""
    nas = _sim()
    yield nas
    nas.stop()


@pytest.fixture
def cert_sim(router_cert: RouterCert) -> Iterator[NasSimulator]:
    """The same, with a CA-signed certificate on API-SSL."""
    nas = _sim(tls=router_cert.server_context())
    yield nas
    nas.stop()


def ref_of(sim: NasSimulator, *, tls: str = "none", api: bool = True, **tls_kw: str) -> NasRef:
    return NasRef(ip=sim.nas_ip, secret=NAS_SECRET, coa_port=sim.coa_port,
                  api_port=(sim.api_tls_port if tls != "none" else sim.api_port) if api else None,
                  api_username="radbill" if api else None,
                  api_password=API_PASSWORD if api else None, api_tls=tls, **tls_kw)
