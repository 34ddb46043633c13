"""Helpers the benchmarks share: throw-away PostgreSQL databases and CPU from ``/proc``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

# A script run as `python bench/x.py` has bench/ first on sys.path, where olt.py and notify.py
# (the benchmarks of those parts) would shadow the olt and notify packages: every benchmark
# imports this module first, which puts the project root there instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress on stderr, timestamped; the result table goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process in *pids*."""
    out: dict[int, float] = {}
    for pid in pids:
        f = stat_fields(pid)
        if f is not None:
            out[pid] = (int(f[11]) + int(f[12])) / CLOCK_TICKS  # utime, stime
    return out


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def db_url(admin_url: str, name: str) -> str:
    """The URL of database *name* on the server of *admin_url*."""
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database *name* (a copy of *template* if given); returns its URL."""
    sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)
    return db_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database *name*, disconnecting whoever is still on it."""
    for attempt in range(10):
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.Error as exc:
            if attempt == 9:
                log(f"could not drop database {name}: {exc}")
            time.sleep(0.5)


def backend_pids(admin_url: str, dbname: str, exclude: Sequence[int] = ()) -> list[int]:
    """PostgreSQL backends connected to *dbname* (their CPU is the database's share)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                            (dbname,)).fetchall()
    return [int(r[0]) for r in rows if int(r[0]) not in exclude]


def radbill_db_upgrade(env: dict[str, str], project_root: Path) -> float:
    """``radbill db upgrade`` with *env*; returns the seconds it took."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "radbill.cli", "db", "upgrade"], env=env,
                          cwd=project_root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"radbill db upgrade failed:\n{proc.stdout}{proc.stderr}")
    return time.perf_counter() - t0
