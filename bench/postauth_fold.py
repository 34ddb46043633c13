"""The post-auth fold of the retention job: row by row in Python (the reference) against the
set-based fold (``INSERT .. SELECT .. GROUP BY .. ON CONFLICT``), side by side in one run.

One PostgreSQL database gets ``--rows`` post-auth decisions (seeded: ``--users`` users over
three days, one in three rejected) with fixed ids; each round deletes the summaries, puts the
same rows back and folds them all in batches of ``--batch`` (the retention default, 5,000),
one transaction per batch as the job does. The two folds alternate for ``--rounds`` rounds;
the table prints each fold's median wall time, rows per second, and CPU seconds of this
process and of the PostgreSQL backend serving it (from ``/proc``, same machine), then checks
that both left the same summaries.

Run from the project root::

    .venv/bin/python bench/postauth_fold.py                      # 100,000 rows, 3 rounds
    .venv/bin/python bench/postauth_fold.py --rows 5000 --rounds 1   # smoke

A benchmark, not a test: it prints a table and exits 0 (1 if the summaries differ).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from _common import cpu_model, cpu_seconds, create_database, db_url, drop_database, log
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from radbill import migrate
from radbill.db import make_engine, session_factory
from radius import retention as radius_retention
from radius.models import PostAuth, PostAuthDay

DHAKA = ZoneInfo("Asia/Dhaka")
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
BEFORE = START + dt.timedelta(days=10)
Fold = Callable[[Session, dt.datetime, ZoneInfo, int], int]


def rows(n: int, users: int, seed: int) -> list[dict[str, Any]]:
    """*n* post-auth rows with ids 1..n, seeded."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        accept = rng.random() >= 1 / 3
        out.append({
            "id": i + 1, "at": START + dt.timedelta(seconds=rng.randrange(3 * 86400)),
            "username": f"user{rng.randrange(users)}",
            "decision": "accept" if accept else "reject",
            "reason": "active" if accept else rng.choice(("bad-password", "simultaneous-use")),
            "nas_ip": f"10.0.{rng.randrange(4)}.1", "calling_station_id": "AA:BB:CC:00:00:01",
            "reply_message": None if accept else "Wrong password", "auth_method": "PAP",
            "rate_limit": None})
    return out


def fold_all(engine: Engine, data: list[dict[str, Any]], fold: Fold,
             batch: int) -> tuple[float, float, float]:
    """Put *data* back and fold it all: (wall s, this process's CPU s, the backend's CPU s)."""
    with session_factory(engine)() as s, s.begin():
        s.execute(PostAuthDay.__table__.delete())
        s.execute(PostAuth.__table__.delete())
        for i in range(0, len(data), 10_000):
            s.execute(insert(PostAuth.__table__), data[i:i + 10_000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE radius_postauth"))
    with engine.connect() as conn:  # the pool's one connection: its backend does the work
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    backend0 = cpu_seconds([pid]).get(pid, 0.0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while True:
        with session_factory(engine)() as s, s.begin():
            if not fold(s, BEFORE, DHAKA, batch):
                break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, cpu_seconds([pid]).get(pid, 0.0) - backend0


def summaries(engine: Engine) -> list[tuple[Any, ...]]:
    with session_factory(engine)() as s:
        return [tuple(r) for r in s.execute(select(*PostAuthDay.__table__.columns).order_by(
            PostAuthDay.username, PostAuthDay.day))]


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--pg-url", default=os.environ.get(
        "RADBILL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    name = f"bench_postauth_fold_{os.getpid()}"
    create_database(args.pg_url, name)
    engine = make_engine(db_url(args.pg_url, name).replace(
        "postgresql://", "postgresql+psycopg://", 1), pool_size=1, max_overflow=0)
    try:
        migrate.upgrade(engine)
        data = rows(args.rows, args.users, args.seed)
        folds: dict[str, Fold] = {"row by row": radius_retention.summarise_postauth_by_row,
                                  "set-based": radius_retention.summarise_postauth}
        runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in folds}
        kept: dict[str, list[tuple[Any, ...]]] = {}
        print(f"# post-auth fold: {args.rows:,} rows, {args.users:,} users, batches of "
              f"{args.batch:,}, {args.rounds} rounds; {cpu_model()}, load {loadavg()}")
        for r in range(args.rounds):
            for label, fold in folds.items():
                log(f"round {r + 1}: {label}")
                runs[label].append(fold_all(engine, data, fold, args.batch))
                kept[label] = summaries(engine)
        print(f"{'fold':<12} {'wall s':>8} {'rows/s':>9} {'cpu s':>7} {'pg cpu s':>9}")
        medians = {}
        for label, got in runs.items():
            wall, cpu, pg = (statistics.median(x[i] for x in got) for i in range(3))
            medians[label] = wall
            print(f"{label:<12} {wall:>8.2f} {args.rows / wall:>9,.0f} {cpu:>7.2f} {pg:>9.2f}")
        print(f"set-based is {medians['row by row'] / medians['set-based']:.1f}x faster "
              f"(median wall); load {loadavg()} at the end")
        same = kept["row by row"] == kept["set-based"]
        print(f"summaries: {len(kept['set-based']):,} days, "
              f"{'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    finally:
        engine.dispose()
        drop_database(args.pg_url, name)


if __name__ == "__main__":
    sys.exit(main())
