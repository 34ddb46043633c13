"""The snapshot benchmark still runs end to end: both layouts and a restart from the saved
snapshot answer, every request is accepted (no timing or memory figure asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.own_postgresql]


def test_snapshot_benchmark_smoke(pg_admin_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/snapshot.py", "--sizes", "200,400", "--requests", "200",
         "--rounds", "1", "--seed", "1", "--pg-url", pg_admin_url],
        cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split()[:2] for line in proc.stdout.splitlines()
            if line.strip().startswith(("200 ", "400 "))]
    assert rows == [[n, layout] for n in ("200", "400")
                    for layout in ("baseline", "compact", "restart")]  # 3dd7fca saves none
    assert "every measured request was answered with Access-Accept" in proc.stdout
    # both servers stored their post-auth records (the old tree's ingester too): the same work
    assert "post-auth rows stored" not in proc.stderr, proc.stderr[-3000:]
    assert "FreeRADIUS CPU per request" in proc.stdout
    assert "compact throughput at 400 / at 200" in proc.stdout
    assert "encrypt per password (us)" in proc.stdout


def test_lookup_benchmark_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/snapshot_lookup.py", "--subscribers", "300", "--requests", "200",
         "--rounds", "2"],
        cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    layouts = [line.split()[0] for line in proc.stdout.splitlines()
               if line.startswith(("records ", "compact ", "fernet "))]
    assert layouts == ["records", "compact", "fernet"]
