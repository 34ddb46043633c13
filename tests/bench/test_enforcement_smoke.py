"""The enforcement benchmark still runs end to end and converges (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_enforcement_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/enforcement.py", "--sessions", "200", "--rounds", "1",
         "--loss", "0.01", "--baseline-subset", "50", "--timeout", "60",
         "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "NOT CONVERGED" not in proc.stdout
    assert "disconnect-ack 200" in proc.stdout
    assert "goal: 200 sessions converged in under 10 s at 1% loss" in proc.stdout
