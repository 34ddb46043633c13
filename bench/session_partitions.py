"""What monthly partitions of ``radius_sessions`` (by ``started_at``) would cost and save on
PostgreSQL, measured on a scratch copy of the table's shape, side by side with the plain
table in one run. Not the product's schema: a probe for the design in README ("Retention and
disk"), which is not built yet.

Two tables get the same seeded rows (``--months`` months of ``--per-month`` sessions each, 3%
of them still open, spread over every month): ``plain`` (primary key id, unique session key,
as today) and ``part`` (range partitions by month of ``started_at`` plus a DEFAULT partition;
primary key (id, started_at), unique (nas_ip, acct_session_id, username, started_at): the
partition key must be in both). It prints the medians of ``--rounds`` rounds of:

- the ingester's locked load of 5,000 session keys (``radius/accounting.py``
  ``_load_states``: a join to three unnested arrays, ``FOR UPDATE``), by key only (every
  partition probed) and, for the partitioned table, by key and ``started_at``;
- the ingester's ``UPDATE .. FROM unnest`` of those 5,000 rows by id (and by id and
  ``started_at`` on the partitioned table);
- on the partitioned table, the load and UPDATE by key and ``started_at`` again with hash and
  merge joins off (one index probe per key, runtime pruning to its partition): the cost of
  the partitions apart from the cost of the plan PostgreSQL picks by itself;
- pruning the oldest month: batched deletes of 5,000 rows (today's retention) against
  ``DETACH PARTITION`` + ``DROP TABLE``;
- copying the plain table into the partitioned one (what a converting migration does while
  writers wait), per 100,000 rows.

With ``--real``, the same questions on the product's schema (migration 0028: the partitioned
``radius_sessions`` and ``radius_session_keys``) through the product's code: the ingester's
locked load (``radius.accounting._load_states``: the key table, then each row in its
partition) and UPDATE (``_write_states``: by id in each partition) of 5,000 sessions spread
over every month, with the shape of the load's plan; then the oldest month
pruned by ``radius.partitions.drop_old_months`` (keys in batches, locked check, DETACH + DROP)
against the next month's closed sessions by retention's batched deletes (``CLOSED_SESSIONS``,
with their keys). Open sessions are in the last three months only, so the oldest months can go.

Run from the project root::

    .venv/bin/python bench/session_partitions.py                 # 8 months of 100,000
    .venv/bin/python bench/session_partitions.py --per-month 5000 --rounds 1   # smoke
    .venv/bin/python bench/session_partitions.py --real          # the product's schema
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import statistics
import sys
import time

import psycopg
from _common import cpu_model, create_database, db_url, drop_database, log

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
COLS = ("id bigint NOT NULL, nas_ip varchar(45) NOT NULL, acct_session_id varchar(253) NOT "
        "NULL, username varchar(253) NOT NULL, started_at timestamptz NOT NULL, updated_at "
        "timestamptz NOT NULL, stopped_at timestamptz, input_octets bigint NOT NULL, "
        "output_octets bigint NOT NULL, session_time bigint NOT NULL")


def month(n: int) -> dt.datetime:
    return START.replace(year=START.year + n // 12, month=n % 12 + 1)


def build(conn: psycopg.Connection, months: int, per_month: int, seed: int) -> None:
    conn.execute(f"CREATE TABLE plain ({COLS}, PRIMARY KEY (id), "
                 "UNIQUE (nas_ip, acct_session_id, username))")
    conn.execute(f"CREATE TABLE part ({COLS}, PRIMARY KEY (id, started_at), "
                 "UNIQUE (nas_ip, acct_session_id, username, started_at)) "
                 "PARTITION BY RANGE (started_at)")
    for m in range(months + 2):  # and two ahead
        conn.execute(f"CREATE TABLE part_{m} PARTITION OF part FOR VALUES FROM "
                     f"('{month(m).isoformat()}') TO ('{month(m + 1).isoformat()}')")
    conn.execute("CREATE TABLE part_default PARTITION OF part DEFAULT")
    for t in ("plain", "part"):
        conn.execute(f"CREATE INDEX ON {t} (username, stopped_at)")
        conn.execute(f"CREATE INDEX ON {t} (nas_ip) WHERE stopped_at IS NULL")
    rng = random.Random(seed)
    rows = []
    for i in range(months * per_month):
        started = month(i // per_month) + dt.timedelta(seconds=rng.randrange(27 * 86400))
        stopped = None if rng.random() < 0.03 else started + dt.timedelta(hours=8)
        rows.append((i + 1, f"10.0.{i % 50}.1", f"{i:08x}", f"user{rng.randrange(10**6)}",
                     started, stopped, stopped or started, i, i, 3600))
    for t in ("plain", "part"):
        with conn.cursor().copy(f"COPY {t} (id, nas_ip, acct_session_id, username, "
                                "started_at, stopped_at, updated_at, input_octets, "
                                "output_octets, session_time) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        conn.execute(f"ANALYZE {t}")


LOAD = ("SELECT t.id, t.started_at FROM {t} AS t JOIN unnest(%s::varchar[], %s::varchar[], "
        "%s::varchar[]{extra_arr}) AS k(nas_ip, acct_session_id, username{extra_col}) "
        "ON t.nas_ip = k.nas_ip AND t.acct_session_id = k.acct_session_id "
        "AND t.username = k.username{extra_on} FOR UPDATE OF t")
UPDATE = ("UPDATE {t} AS t SET input_octets = t.input_octets + 1 FROM unnest(%s::bigint[]"
          "{extra_arr}) AS u(id{extra_col}) WHERE t.id = u.id{extra_on}")


def timed(conn: psycopg.Connection, sql: str, params: list[list[object]]) -> float:
    """Wall seconds of one statement (its rows fetched), rolled back after."""
    start = time.perf_counter()
    cur = conn.execute(sql, params)  # type: ignore[arg-type] - statements built above
    if cur.description is not None:
        cur.fetchall()
    elapsed = time.perf_counter() - start
    conn.rollback()
    return elapsed


def real(pg_url: str, months: int, per_month: int, rounds: int, seed: int) -> None:  # noqa: PLR0915 - one report
    """The ``--real`` report: the product's schema and code (see the module's text)."""
    from sqlalchemy.orm import Session

    from radbill import migrate
    from radbill.db import make_engine
    from radius import accounting, partitions
    from radius.retention import CLOSED_SESSIONS

    name = f"bench_session_partitions_real_{os.getpid()}"
    url = create_database(pg_url, name)
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        migrate.upgrade(engine)
        for m in range(months):
            partitions.ensure_months(engine, month(m), ahead=0)
        log(f"loading {months * per_month:,} sessions and their keys")
        rng = random.Random(seed)
        raw = engine.raw_connection()
        cur = raw.cursor()
        rows = []
        for i in range(months * per_month):
            m = i // per_month
            started = month(m) + dt.timedelta(seconds=rng.randrange(27 * 86400))
            is_open = m >= months - 3 and rng.random() < 0.03
            stopped = None if is_open else started + dt.timedelta(hours=8)
            rows.append((i + 1, f"10.0.{i % 50}.1", f"{i:08x}", f"user{rng.randrange(10**6)}",
                         started, stopped or started, stopped, 3600, i, i, 1, 1, 1))
        with cur.copy("COPY radius_sessions (id, nas_ip, acct_session_id, username, "  # type: ignore[attr-defined]
                      "started_at, updated_at, stopped_at, session_time, input_octets, "
                      "output_octets, input_packets, output_packets, state_seq) "
                      "FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        with cur.copy("COPY radius_session_keys (nas_ip, acct_session_id, username, "  # type: ignore[attr-defined]
                      "session_id, started_at) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r[1], r[2], r[3], r[0], r[4]))
        cur.execute("SELECT setval('radius_sessions_id_seq', %s)", (len(rows),))
        raw.commit()
        cur.execute("ANALYZE radius_sessions")
        cur.execute("ANALYZE radius_session_keys")
        raw.commit()
        raw.close()
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
        with engine.connect() as conn:
            made = len(partitions.months(conn))
        print(f"# real schema: {months} months of {per_month:,} sessions (3% of the last 3 "
              f"months open), {made} month partitions (this month and two ahead too) + "
              f"DEFAULT; {cpu_model()}, load {load}")
        times: dict[str, list[float]] = {"load (the ingester: key table, then partition)": [],
                                         "update (the ingester: by id, in each partition)": []}
        plan = ""
        for _ in range(rounds):
            picked = rng.sample(rows, 5000)
            keys = [(r[1], r[2], r[3]) for r in picked]
            with Session(engine) as s:
                start = time.perf_counter()
                stored = accounting._load_states(s, keys)
                times["load (the ingester: key table, then partition)"].append(
                    time.perf_counter() - start)
                assert len(stored) == len(keys)
                updates = [(rid, dataclasses.replace(st, input_octets=st.input_octets + 1),
                            None, table) for rid, st, table in stored.values()]
                start = time.perf_counter()
                accounting._write_states(s, updates, [], {})
                times["update (the ingester: by id, in each partition)"].append(
                    time.perf_counter() - start)
                if not plan:
                    conn = s.connection()
                    conn.exec_driver_sql(accounting._NO_SEQSCAN)
                    lines = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, COSTS OFF) " + accounting._PG_LOAD,
                        tuple([k[i] for k in keys] for i in range(3))).scalars().all()
                    plan = _shape(lines)
                    if os.environ.get("PLAN"):
                        print("\n".join(lines))
                s.rollback()
        print(f"{'5,000 sessions spread over every month':<50} {'median ms':>10}")
        for label, got in times.items():
            print(f"{label:<50} {statistics.median(got) * 1000:>10.1f}")
        print(f"# the load's plan: {plan}")
        closed_1 = sum(1 for r in rows if month(1) <= r[4] < month(2))
        start = time.perf_counter()
        dropped = partitions.drop_old_months(engine, month(1), batch=5000)
        drop_s = time.perf_counter() - start
        start = time.perf_counter()
        deleted = 0
        while True:
            with Session(engine) as s, s.begin():
                n = CLOSED_SESSIONS.delete(s, month(2), 5000)
            deleted += n
            if n < 5000:
                break
        batched_s = time.perf_counter() - start
        print("\n# pruning one month on the real schema (keys included)")
        print(f"{'drop_old_months (DETACH + DROP)':<40} {drop_s * 1000:>10.1f} ms for "
              f"{dropped.rows:,} sessions ({', '.join(dropped.months)})")
        print(f"{'batched deletes (5,000 a batch)':<40} {batched_s * 1000:>10.1f} ms for "
              f"{deleted:,} sessions (of {closed_1:,} in the next month)")
        with open("/proc/loadavg") as fh:
            print(f"load {' '.join(fh.read().split()[:3])} at the end")
    finally:
        engine.dispose()
        drop_database(pg_url, name)


def _shape(plan: list[str]) -> str:
    """How a plan reaches the partitions: its join kinds and scans, counted."""
    text = "\n".join(plan)
    parts = [f"{word} x{text.count(word)}" for word in (
        "Hash Join", "Merge Join", "Nested Loop", "Seq Scan", "Index Scan",
        "Subplans Removed") if word in text]
    parts += [line.strip() for line in plan if "Subplans Removed" in line][:1]
    return ", ".join(parts) or "?"


def main() -> int:  # noqa: PLR0915 - one report
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--months", type=int, default=8)
    ap.add_argument("--per-month", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--real", action="store_true",
                    help="the product's schema and code (migration 0028) instead")
    ap.add_argument("--pg-url", default=os.environ.get(
        "RADBILL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    if args.real:
        real(args.pg_url, args.months, args.per_month, args.rounds, args.seed)
        return 0
    name = f"bench_session_partitions_{os.getpid()}"
    create_database(args.pg_url, name)
    try:
        with psycopg.connect(db_url(args.pg_url, name)) as conn:
            log("building both tables")
            build(conn, args.months, args.per_month, args.seed)
            conn.commit()
            with open("/proc/loadavg") as fh:
                load = " ".join(fh.read().split()[:3])
            print(f"# sessions: {args.months} months of {args.per_month:,}, 3% open; "
                  f"{cpu_model()}, load {load}")
            rng = random.Random(args.seed + 1)
            total = args.months * args.per_month
            keys: dict[str, list[float]] = {"load by key": [], "load by key (part)": [],
                    "load by key+started_at (part)": [], "update by id": [],
                    "update by id (part)": [], "update by id+started_at (part)": [],
                    "load by key+started_at (part, nested loop)": [],
                    "update by id+started_at (part, nested loop)": []}
            for _ in range(args.rounds):
                ids = sorted(rng.sample(range(1, total + 1), 5000))
                got = conn.execute("SELECT nas_ip, acct_session_id, username, started_at "
                                   "FROM plain WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
                conn.rollback()
                arrs = [[r[i] for r in got] for i in range(4)]
                plain_load = LOAD.format(t="plain", extra_arr="", extra_col="", extra_on="")
                part_load = LOAD.format(t="part", extra_arr="", extra_col="", extra_on="")
                pruned_load = LOAD.format(t="part", extra_arr=", %s::timestamptz[]",
                                          extra_col=", started_at",
                                          extra_on=" AND t.started_at = k.started_at")
                runs = (("load by key", plain_load, arrs[:3]), ("load by key (part)", part_load,
                                                                   arrs[:3]),
                        ("load by key+started_at (part)", pruned_load, arrs),
                        ("update by id", UPDATE.format(t="plain", extra_arr="", extra_col="",
                                                       extra_on=""), [ids]),
                        ("update by id (part)", UPDATE.format(
                            t="part", extra_arr="", extra_col="", extra_on=""), [ids]),
                        ("update by id+started_at (part)", UPDATE.format(
                            t="part", extra_arr=", %s::timestamptz[]", extra_col=", started_at",
                            extra_on=" AND t.started_at = u.started_at"), [ids, arrs[3]]))
                for label, sql, params in runs:
                    keys[label].append(timed(conn, sql, params))
                # the same with per-key index probes forced (runtime pruning: one partition
                # per key): is the cost the partitions' or the plan's?
                for label, sql, params in runs[2:3] + runs[5:6]:
                    conn.execute("SET LOCAL enable_hashjoin = off")
                    conn.execute("SET LOCAL enable_mergejoin = off")
                    keys[f"{label[:-1]}, nested loop)"].append(timed(conn, sql, params))
            print(f"{'5,000 sessions':<44} {'median ms':>10}")
            for label, times in keys.items():
                print(f"{label:<44} {statistics.median(times) * 1000:>10.1f}")
            # prune the oldest month: batched deletes (today) against DETACH + DROP
            cut = month(1)
            start = time.perf_counter()
            deleted = 0
            while True:
                n = conn.execute("DELETE FROM plain WHERE id IN (SELECT id FROM plain WHERE "
                                 "stopped_at < %s ORDER BY stopped_at LIMIT 5000)",
                                 (cut,)).rowcount
                conn.commit()
                deleted += n
                if n == 0:
                    break
            batched = time.perf_counter() - start
            start = time.perf_counter()
            conn.execute("ALTER TABLE part DETACH PARTITION part_0")
            conn.execute("DROP TABLE part_0")
            conn.commit()
            dropped = time.perf_counter() - start
            print(f"\n# the oldest month ({deleted:,} closed rows; its open ones kept by the "
                  "plain table's delete, dropped with the partition: see README)")
            print(f"{'batched DELETE (5,000 a batch)':<32} {batched * 1000:>10.1f} ms")
            print(f"{'DETACH + DROP partition':<32} {dropped * 1000:>10.1f} ms")
            conn.execute("CREATE TABLE part2 (LIKE part INCLUDING ALL) "
                         "PARTITION BY RANGE (started_at)")
            conn.execute("CREATE TABLE part2_default PARTITION OF part2 DEFAULT")
            for m in range(args.months + 2):
                conn.execute(f"CREATE TABLE part2_{m} PARTITION OF part2 FOR VALUES FROM "
                             f"('{month(m).isoformat()}') TO ('{month(m + 1).isoformat()}')")
            conn.commit()
            rows = conn.execute("SELECT count(*) FROM plain").fetchone()[0]  # type: ignore[index]
            start = time.perf_counter()
            conn.execute("INSERT INTO part2 SELECT * FROM plain")
            conn.commit()
            copy = time.perf_counter() - start
            print(f"{'copy into partitions':<32} {copy * 1000:>10.1f} ms for {rows:,} rows "
                  f"({copy / rows * 100_000:.2f} s per 100,000)")
            with open("/proc/loadavg") as fh:
                print(f"load {' '.join(fh.read().split()[:3])} at the end")
    finally:
        drop_database(args.pg_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
