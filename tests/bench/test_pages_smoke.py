"""The operator-pages benchmark still runs and verifies its answers (no timing asserted):
every page answers 200 and the dashboard, the API and the command count exactly the
overdue subscribers it made. PostgreSQL only (it fills the database with generate_series)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.own_postgresql
def test_pages_benchmark_smoke(request: pytest.FixtureRequest) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/pages.py", "--subscribers", "500", "--sessions", "3000",
         "--repeat", "1", "--baseline-sample", "10",
         "--pg-url", request.getfixturevalue("pg_admin_url")],
        cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "500 subscribers (50 overdue), 3,000 sessions" in out
    for page in ("dashboard  GET /", "API        GET /api/v1/dashboard", "filter     ?nas=nas3",
                 "command    radbill billing overdue --json"):
        assert page in out
    assert "FAILED" not in out
    assert "50 overdue counted" in out and "50 listed of 50" in out


@pytest.mark.own_postgresql
def test_billing_run_suspension_day_smoke(request: pytest.FixtureRequest) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/billing_run.py", "--subscribers", "200", "--variants", "floor",
         "--suspension-day", "--pg-url", request.getfixturevalue("pg_admin_url")],
        cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.startswith(("set-based ", "per-account ")) and "faster" not in line}
    # both variants suspend the 20 who did not pay and write 20 enforcement requests
    assert rows["set-based"][-2:] == ["20", "20"], proc.stdout
    assert rows["per-account"][-2:] == ["20", "20"], proc.stdout
