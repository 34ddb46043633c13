"""The accounting ingestion benchmark still runs and verifies (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_accounting_ingest_benchmark_smoke(request: pytest.FixtureRequest) -> None:
    args = ["--backend", BACKEND]
    if BACKEND == "postgresql":
        args += ["--pg-url", request.getfixturevalue("pg_admin_url")]
    proc = subprocess.run(
        [sys.executable, "bench/accounting_ingest.py", "--sessions", "200", "--rounds", "1",
         *args], cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# 1000 records (200 sessions x 5)")
    rows = [line.split() for line in lines[2:] if not line.startswith("#")]
    expected = [[BACKEND, "clean", "0"], [BACKEND, "metered", "0"], [BACKEND, "bad-1%", "10"]]
    if BACKEND == "postgresql":  # the stock rlm_sql baseline, and the ratio to it
        expected.insert(0, [BACKEND, "rlm_sql", "0"])
        assert rows[0][4] == "1.00x"
    assert [r[:2] + r[-1:] for r in rows] == expected
    assert "NOT VERIFIED" not in proc.stderr
