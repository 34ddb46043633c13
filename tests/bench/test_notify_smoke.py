"""The notify benchmark still runs end to end: every reminder reaches the SSL Wireless
simulator, for the baseline and for the worker (no timing asserted: that is the benchmark's
job)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/notify.py", "--messages", "300", "--subscribers", "30",
         "--baseline", "50", "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert re.search(r"radbill notify worker +300 ", proc.stdout), (
        proc.stdout[-3000:] + proc.stderr[-3000:])
    assert "'sms_sent': 300" in proc.stdout
