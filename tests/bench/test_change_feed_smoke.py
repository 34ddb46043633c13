"""The change feed benchmark still runs and every change reaches every node (no timing
asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_change_feed_benchmark_smoke(request: pytest.FixtureRequest) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/change_feed.py", "--changes", "10", "--subscribers", "50",
         "--pg-url", request.getfixturevalue("pg_admin_url")],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# 10 billing changes, 2 nodes per group, 50 subscribers")
    assert [line.split()[:2] for line in lines[2:]] == [["notify", "10"], ["poll", "10"]]
    assert "NOT VERIFIED" not in proc.stderr
