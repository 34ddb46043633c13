"""The reconnection benchmark still runs end to end, from the landing page and from the
webhook: every payment is posted, every payer is disconnected out of the walled garden and
logs in again at full speed (no timing asserted: that is the benchmark's job)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


@pytest.mark.parametrize(("start", "origin"), [
    ("landing", "click on pay in the landing page"), ("webhook", "payment notification")])
def test_benchmark_smoke(pg_admin_url: str, start: str, origin: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/payment_reconnect.py", "--subscribers", "40", "--payments",
         "20", "--from", start, "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert f"{origin} -> NAS Disconnect-ACK, 20 payments" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-3000:])
    assert f"{origin} -> new full-speed login: p50" in proc.stdout
    assert "every payer then re-dialled and got the plan's full speed" in proc.stdout
