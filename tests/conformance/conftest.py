"""Conformance tests: radbill's simulators and adapters against implementations radbill did
not write (other client libraries, vendor SDKs, FreeRADIUS, radclient). The simulated NAS
fixtures are the enforcement tests' own."""

from tests.coa.conftest import cert_sim, router_cert, sim  # noqa: F401 - shared fixtures
