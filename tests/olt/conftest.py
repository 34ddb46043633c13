"""Simulated OLTs on loopback UDP, the `cli` fixture, and a worker with the OLT channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

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


@pytest.fixture
def cli(db, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Run `radbill ARGS`; asserts exit 0 unless ``ok=False``."""
    from radbill.cli import main

    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    return run
