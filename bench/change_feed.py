"""Change feed push: how long a billing change takes to reach every RADIUS node's decisions.

One invocation creates a PostgreSQL database with a plan and ``--subscribers`` subscribers and
starts ``--nodes`` node processes whose policy snapshot is woken by ``LISTEN/NOTIFY``
(``SnapshotRefresher(..., listener=ChangeListener(url))``, as ``radius/runtime.py`` starts it
inside FreeRADIUS) and ``--nodes`` node processes whose snapshot only polls every
``--poll-ms`` (the baseline: how every node worked before, and how it still works on SQLite).
Each node is a process of its own (one interpreter, as each FreeRADIUS node has) and reports
the moment each refresh has brought its snapshot to a new change-feed version.

Then it makes ``--changes`` billing changes (suspend / reactivate a random subscriber through
``billing.subscribers.change_status``, a random pause of 0-300 ms between them so that changes
fall anywhere in a poll interval) and, for each, takes the time from just before the commit to
the moment the last node of each group answers from a snapshot that holds the change. The
table gives p50 / p99 / max of that per group.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/change_feed.py                                   # 500 changes
    .venv/bin/python bench/change_feed.py --changes 20 --subscribers 100    # smoke check

This is a benchmark, not a test: it prints a table and exits 0 unless a change was not seen by
every node within 5 s (``NOT VERIFIED``).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time

from _common import cpu_model, create_database, drop_database, log

TIMEOUT_S = 5.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def node(url: str, key: str, poll_ms: int, listen: bool) -> int:
    """One node: a snapshot and its refresher; prints ``<monotonic> <auth version>`` each
    time a refresh brings a new version, until stdin closes."""
    from radbill.crypto import SecretBox
    from radbill.db import ChangeListener, make_engine
    from radius.snapshot import AuthSnapshot, SnapshotRefresher

    engine = make_engine(url, pool_size=1, max_overflow=1)
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, engine, SecretBox(key.encode()), poll_ms / 1000,
                                  listener=ChangeListener(url) if listen else None)
    refresher.refresh_once()
    seen = [snap.auth_version]
    refresh = refresher.refresh_once

    def reporting() -> bool:
        ok = refresh()
        if snap.auth_version != seen[0]:
            seen[0] = snap.auth_version
            print(f"{time.monotonic()} {snap.auth_version}", flush=True)
        return ok

    refresher.refresh_once = reporting  # type: ignore[method-assign]
    refresher.start()
    while not (refresher.listening or not listen):
        time.sleep(0.01)
    print("ready", flush=True)
    sys.stdin.read()
    refresher.stop()
    return 0


class Node:
    """A node process and what it reported: (time, version) pairs."""

    def __init__(self, group: str, url: str, key: str, poll_ms: int) -> None:
        self.group = group
        self.seen: list[tuple[float, int]] = []
        self.ready = threading.Event()
        # --key=VALUE: a Fernet key may start with "-", which argparse takes for an option
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--node", group, "--url", url, f"--key={key}",
             "--poll-ms", str(poll_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "ready":
                self.ready.set()
                continue
            t, v = line.split()
            self.seen.append((float(t), int(v)))

    def reached(self, version: int) -> float | None:
        """When this node first answered from version *version* or later."""
        return next((t for t, v in list(self.seen) if v >= version), None)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
    parser.add_argument("--node", choices=["notify", "poll"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node:
        return node(args.url, args.key, args.poll_ms, args.node == "notify")

    from cryptography.fernet import Fernet

    from billing import plans, subscribers
    from billing.models import SubscriberStatus
    from radbill import migrate
    from radbill.crypto import SecretBox
    from radbill.db import make_engine, session_factory

    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    name = f"radbill_feed_bench_{secrets.token_hex(4)}"
    url = create_database(args.pg_url, name).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = make_engine(url)
    nodes: list[Node] = []
    try:
        log(f"migrating {name} and creating {args.subscribers} subscribers")
        migrate.upgrade(engine)
        key = Fernet.generate_key().decode()
        box = SecretBox(key.encode())
        factory = session_factory(engine)
        with factory() as s, s.begin():
            plans.create_plan(s, name="Home-20", price="1000", currency="BDT", rate="20M/5M")
            for i in range(args.subscribers):
                subscribers.create_subscriber(s, box, username=f"user{i}", plan="Home-20",
                                              password="s3cret-pass")
        nodes = [Node(g, url, key, args.poll_ms) for g in ("notify", "poll")
                 for _ in range(args.nodes)]
        for n in nodes:
            if not n.ready.wait(60):
                log("NOT VERIFIED: a node did not start")
                return 1
        status = {f"user{i}": True for i in range(args.subscribers)}
        latency: dict[str, list[float]] = {"notify": [], "poll": []}
        missed = 0
        log(f"{args.changes} changes, {args.nodes} nodes per group, poll {args.poll_ms} ms")
        for i in range(args.changes):
            time.sleep(rng.uniform(0, 0.3))
            user = f"user{rng.randrange(args.subscribers)}"
            new = SubscriberStatus.SUSPENDED if status[user] else SubscriberStatus.ACTIVE
            status[user] = not status[user]
            with factory() as s:
                s.begin()
                subscribers.change_status(s, user, new, actor="bench")
                version = subscribers.get_subscriber(s, user).auth_version
                before_commit = time.monotonic()
                s.commit()
            deadline = time.monotonic() + TIMEOUT_S
            while any(n.reached(version) is None for n in nodes):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            reached = [n.reached(version) for n in nodes]
            if any(t is None for t in reached):
                missed += 1
                continue
            for group, values in latency.items():
                last = max(t for n, t in zip(nodes, reached, strict=True)
                           if n.group == group and t is not None)
                values.append((last - before_commit) * 1000)
            if (i + 1) % 100 == 0:
                log(f"{i + 1} changes")
        with engine.connect() as conn:
            version_text = conn.exec_driver_sql("SHOW server_version").scalar()
        print(f"# {args.changes} billing changes, {args.nodes} nodes per group, "
              f"{args.subscribers} subscribers, poll {args.poll_ms} ms; PostgreSQL "
              f"{version_text}, Python {platform.python_version()}, {cpu_model()}, load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'group':<8} {'changes':>8} {'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8}")
        for group, values in latency.items():
            if values:
                print(f"{group:<8} {len(values):>8} {statistics.median(values):>8.1f} "
                      f"{percentile(values, 99):>8.1f} {max(values):>8.1f}")
        if missed:
            log(f"NOT VERIFIED: {missed} changes not seen by every node within {TIMEOUT_S} s")
            return 1
        return 0
    finally:
        for n in nodes:
            n.stop()
        engine.dispose()
        if not args.keep:
            drop_database(args.pg_url, name)


if __name__ == "__main__":
    sys.exit(main())
