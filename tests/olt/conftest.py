"""Simulated OLTs on loopback UDP, the `cli` fixture, and a worker with the OLT channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulators.olt import SimOlt, demo_onus

SNMP_PROFILES = ["bdcom-epon", "bdcom-gpon", "vsol-gpon", "cdata-gpon", "huawei-gpon",
                 "zte-gpon"]
V3 = {"v3_user": "radbill", "v3_auth_key": "auth-key-123", "v3_priv_key": "priv-key-456"}


@pytest.fixture
def olt_sim() -> Iterator[Callable[..., SimOlt]]:
    """Start simulated OLTs (stopped after the test): ``olt_sim("zte-gpon", onus=6)``."""
    started: list[SimOlt] = []

    def start(vendor: str, onus: int = 6, seed: int = 0, **kw: Any) -> SimOlt:
        sim = SimOlt(vendor, demo_onus(vendor, onus, seed=seed), **{**V3, **kw}).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
