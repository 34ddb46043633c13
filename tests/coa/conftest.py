"""A simulated NAS (no RADIUS server behind it) and a TLS certificate for API-SSL."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from coa.controller import NasRef
from simulators.nas import NasSimulator
from simulators.radius_client import free_udp_port

NAS_SECRET = "coa-test-secret"
API_PASSWORD = "api-test-pass"


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate, as RouterOS API-SSL has."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim-router")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    d: Path = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


@pytest.fixture
def sim(tls_context: ssl.SSLContext) -> Iterator[NasSimulator]:
    """A simulated NAS on 127.0.0.1 with CoA, API and API-SSL; accounting goes nowhere."""
    nas = NasSimulator(nas_ip="127.0.0.1", secret=NAS_SECRET, auth_port=free_udp_port(),
                       acct_port=free_udp_port(), coa_port=0, api_port=0, api_tls_port=0,
                       tls=tls_context, api_password=API_PASSWORD, seed=1).start()
    yield nas
    nas.stop()


def ref_of(sim: NasSimulator, *, tls: bool = False, api: bool = True) -> NasRef:
    return NasRef(ip=sim.nas_ip, secret=NAS_SECRET, coa_port=sim.coa_port,
                  api_port=(sim.api_tls_port if tls else sim.api_port) if api else None,
                  api_username="radbill" if api else None,
                  api_password=API_PASSWORD if api else None, api_tls=tls)
