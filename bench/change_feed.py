"""Change feed push: how long a billing change takes to reach every RADIUS node's decisions.

One invocation creates a PostgreSQL database with a plan and ``--subscribers`` subscribers and
starts, in this process, ``--nodes`` policy snapshots woken by ``LISTEN/NOTIFY``
(``SnapshotRefresher(..., listener=ChangeListener(url))``, as ``radius/runtime.py`` starts
them inside FreeRADIUS) and ``--nodes`` snapshots that only poll every ``--poll-ms`` (the
baseline: how every node worked before, and how it still works on SQLite). Then it makes
``--changes`` billing changes (suspend / reactivate a random subscriber through
``billing.subscribers.change_status``, a random pause of 0-300 ms between them so that changes
fall anywhere in a poll interval) and, for each, measures the time from the commit to the
moment the last node of each group answers from the new state (``AuthSnapshot.lookup``: what
the policy decides from). The table gives p50 / p99 / max of that per group.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/change_feed.py                                   # 500 changes
    .venv/bin/python bench/change_feed.py --changes 20 --subscribers 100    # smoke check

This is a benchmark, not a test: it prints a table and exits 0 unless a change was not seen by
every node within 5 s (``NOT VERIFIED``). All snapshots live in one process (one interpreter,
threads), as each FreeRADIUS node has one interpreter with its refresher thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import secrets
import statistics
import sys
import time

from _common import cpu_model, create_database, drop_database, log

from billing import plans, subscribers
from billing.models import SubscriberStatus
from radbill import migrate
from radbill.crypto import SecretBox
from radbill.db import ChangeListener, make_engine, session_factory
from radius.snapshot import AuthSnapshot, SnapshotRefresher

TIMEOUT_S = 5.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:  # noqa: PLR0912, PLR0915 - one straight script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--poll-ms", type=int, default=250,
                        help="The polling interval of both groups (the fallback of the "
                             "notified ones).")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the database.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    name = f"radbill_feed_bench_{secrets.token_hex(4)}"
    url = create_database(args.pg_url, name).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = make_engine(url, pool_size=4 * args.nodes + 2)
    refreshers: list[SnapshotRefresher] = []
    try:
        log(f"migrating {name} and creating {args.subscribers} subscribers")
        migrate.upgrade(engine)
        from cryptography.fernet import Fernet

        box = SecretBox(Fernet.generate_key())
        factory = session_factory(engine)
        with factory() as s, s.begin():
            plans.create_plan(s, name="Home-20", price="1000", currency="BDT", rate="20M/5M")
            for i in range(args.subscribers):
                subscribers.create_subscriber(s, box, username=f"user{i}", plan="Home-20",
                                              password="s3cret-pass")
        groups: dict[str, list[AuthSnapshot]] = {"notify": [], "poll": []}
        for group, snaps in groups.items():
            for _ in range(args.nodes):
                snap = AuthSnapshot()
                listener = ChangeListener(url) if group == "notify" else None
                r = SnapshotRefresher(snap, engine, box, args.poll_ms / 1000, listener=listener)
                r.refresh_once()
                r.start()
                refreshers.append(r)
                snaps.append(snap)
        deadline = time.monotonic() + 10
        while not all(r.listening for r in refreshers if r.listener is not None):
            if time.monotonic() > deadline:
                log("NOT VERIFIED: the notified nodes never listened")
                return 1
            time.sleep(0.01)
        status = {f"user{i}": "active" for i in range(args.subscribers)}
        latency: dict[str, list[float]] = {g: [] for g in groups}
        missed = 0
        log(f"{args.changes} changes, {args.nodes} nodes per group, poll {args.poll_ms} ms")
        for n in range(args.changes):
            time.sleep(rng.uniform(0, 0.3))
            user = f"user{rng.randrange(args.subscribers)}"
            new = SubscriberStatus.SUSPENDED if status[user] == "active" else (
                SubscriberStatus.ACTIVE)
            with factory() as s, s.begin():
                subscribers.change_status(s, user, new, actor="bench")
            committed = time.perf_counter()
            status[user] = str(new)
            pending = {(g, i) for g, snaps in groups.items() for i in range(len(snaps))}
            seen: dict[str, float] = {}
            while pending and time.perf_counter() - committed < TIMEOUT_S:
                for g, i in list(pending):
                    rec = groups[g][i].lookup(user)[0]
                    if rec is not None and rec.status == status[user]:
                        pending.discard((g, i))
                        seen[g] = time.perf_counter() - committed  # the last node of g
                time.sleep(0.001)
            if pending:
                missed += 1
                continue
            for g, t in seen.items():
                latency[g].append(t * 1000)
            if (n + 1) % 100 == 0:
                log(f"{n + 1} changes")
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        print(f"# {args.changes} billing changes, {args.nodes} nodes per group, "
              f"{args.subscribers} subscribers, poll {args.poll_ms} ms; PostgreSQL {version}, "
              f"Python {platform.python_version()}, {cpu_model()}, load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'group':<8} {'changes':>8} {'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8}")
        for g, values in latency.items():
            if values:
                print(f"{g:<8} {len(values):>8} {statistics.median(values):>8.1f} "
                      f"{percentile(values, 99):>8.1f} {max(values):>8.1f}")
        if missed:
            log(f"NOT VERIFIED: {missed} changes not seen by every node within {TIMEOUT_S} s")
            return 1
        return 0
    finally:
        for r in refreshers:
            r.stop()
        engine.dispose()
        if not args.keep:
            drop_database(args.pg_url, name)


if __name__ == "__main__":
    sys.exit(main())
