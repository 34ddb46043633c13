"""The benchmark still runs and every request it sends is accepted (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/auth_throughput.py", "--subscribers", "500", "--requests",
         "500", "--rounds", "1", "--warmup", "100", "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every measured request was answered with Access-Accept" in proc.stdout
    assert "ratio radbill/rlm_sql" in proc.stdout
