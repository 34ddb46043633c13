"""The OLT benchmark still runs end to end, every suspended ONU is verified blocked and
nothing else is (no timing asserted)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_base_port() -> int:
    """A port whose next three are free too (the four simulated OLTs)."""
    for base in range(27161, 40000, 10):
        socks = []
        try:
            for p in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP ports")


def test_olt_benchmark_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/olt.py", "--onus", "80", "--suspend", "40",
         "--baseline-subset", "4", "--timeout", "120", "--base-port", str(_free_base_port())],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "blocked ONUs read from the OLTs afterwards: 40 (expected 40)" in proc.stdout
