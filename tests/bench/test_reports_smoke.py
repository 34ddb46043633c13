"""The reports benchmark still loads, runs every report and EXPLAINs what it ran (no timing
asserted; at this size PostgreSQL may well prefer a sequential scan, so that column is only
required to be there)."""

import subprocess
import sys
from pathlib import Path

import pytest

from reports import registry

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_reports_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/reports.py", "--subscribers", "300", "--sessions", "5000",
         "--runs", "1", "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == ("reports benchmark: 300 subscribers, 5,000 sessions, best and median "
                        "of 1 runs")
    assert any(line.startswith("baseline: count(*) of 5,000 sessions") for line in lines)
    for name in registry.names():
        row = next(line for line in lines if line.split()[:1] == [name])
        assert row.split()[-1] in ("no", "YES"), row
    # the loaded data has findings: rows counted, not just timings
    counts = {line.split()[0]: int(line.split()[3]) for line in lines
              if line.split()[:1] and line.split()[0] in registry.names()}
    assert counts["suspended-online"] > 0 and counts["revenue-by-nas"] > 0
    assert counts["over-cap"] > 0  # capped plans with usage states over the cap
