"""The import benchmark still runs end to end: every variant imports and verifies its rows
(no timing figure asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_subscriber_import_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/subscriber_import.py", "--rows", "300", "--baseline-rows", "60",
         "--seed", "1", "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    variants = [line.split("  ")[0] for line in proc.stdout.splitlines()
                if line.startswith(("one-by-one", "import", "floor"))]
    assert variants == ["one-by-one (first N)", "import (first N)", "floor: COPY subscribers",
                        "import"]
    assert proc.stderr.count("ok: ") == 4  # every variant verified
    assert "the goal, < 60 s, is for 100,000 rows" in proc.stdout
