"""The usage metering benchmark still runs and verifies (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_usage_ingest_benchmark_smoke(request: pytest.FixtureRequest) -> None:
    args = ["--backend", BACKEND]
    if BACKEND == "postgresql":
        args += ["--pg-url", request.getfixturevalue("pg_admin_url")]
    proc = subprocess.run(
        [sys.executable, "bench/usage_ingest.py", "--sessions", "100", "--rounds", "1", *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# 500 records (100 sessions x 5) of 5000 subscribers")
    assert [line.split()[:2] for line in lines[2:]] == [[BACKEND, "baseline"],
                                                       [BACKEND, "metered"]]
    assert "NOT VERIFIED" not in proc.stderr
