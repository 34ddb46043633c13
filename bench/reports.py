"""The reconciliation reports at scale, on PostgreSQL.

Builds a throw-away database (``radbill db upgrade``, so migration 0016's indexes are there)
and loads it set-based with ``generate_series`` (no ORM loops): N subscribers on five plans
(prepaid and postpaid; 90% active, 5% suspended, 3% disabled, 2% terminated), 50 NAS, S
accounting sessions over 180 days (the newest session of 60% of the subscribers still open),
one accepted login per subscriber, three monthly invoices each with their ledger charges, and
payments for all but the last month's tenth. Then it times every report (``--runs`` times each,
through :func:`reports.registry.run`, as the CLI, page and API do) and prints the best and the
median next to the baseline measured in the same run: one ``count(*)`` over every session,
what a report that read the whole table would at least cost. Each SQL statement a report ran
is EXPLAINed: ``seq scan`` says whether any of them reads ``radius_sessions`` whole.

    .venv/bin/python bench/reports.py                                  # 100,000 / 10,000,000
    .venv/bin/python bench/reports.py --subscribers 500 --sessions 20000  # smoke check

A benchmark, not a test: it exits 0 unless a report failed (raised).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from _common import cpu_model, create_database, drop_database, log, radbill_db_upgrade

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_SECONDS = 2.0
NAS_COUNT = 50
CHUNK = 1_000_000


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def load(url: str, subscribers: int, sessions: int, now: dt.datetime) -> dict[str, float]:
    """Fill the migrated database at *url*; returns seconds per table."""
    timings: dict[str, float] = {}
    n, s = subscribers, sessions
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")

        def step(name: str, *sql: str, args: dict[str, Any] | None = None) -> None:
            t0 = time.perf_counter()
            for statement in sql:
                conn.execute(statement, args or {})  # type: ignore[arg-type]
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
            log(f"loaded {name} ({timings[name]:.1f} s)")

        a = {"now": now, "n": n, "s": s, "nas": NAS_COUNT}
        step("plans", """
            INSERT INTO plans (id, name, price, currency, download_bps, upload_bps,
                billing_cycle, billing_mode, grace_days, late_fee, cycle_anchor,
                late_fee_percent, tax_percent, setup_fee, reminder_days, auth_version,
                created_at, updated_at)
            SELECT p, 'plan' || p, 500 * p, 'BDT', 10000000 * p, 5000000 * p, 'monthly',
                   CASE WHEN p %% 2 = 0 THEN 'prepaid' ELSE 'postpaid' END, 2, 0, 'anniversary',
                   false, 0, 0, 3, 0, %(now)s, %(now)s
            FROM generate_series(1, 5) p""", args=a)
        step("nas", """
            INSERT INTO nas (id, name, ip_address, secret_enc, nas_type, coa_port,
                require_message_authenticator, enforce_via, api_tls_mode, created_at)
            SELECT k, 'nas' || k, '10.0.' || k || '.1', 'not-a-secret', 'mikrotik', 3799,
                   true, 'coa', 'none', %(now)s
            FROM generate_series(0, %(nas)s::int - 1) k""", args=a)
        step("subscribers", """
            INSERT INTO subscribers (id, username, password_enc, service, status, plan_id,
                simultaneous_use, paid_until, fup_throttled, period_start, period_end,
                suspended_on, suspended_for_nonpayment, dunning_throttled, setup_fee_charged,
                phone, billing_started_on, billing_paused_on, auth_version, created_at,
                updated_at)
            SELECT i, 'u' || i, 'x', 'pppoe',
                   CASE WHEN i %% 100 < 90 THEN 'active' WHEN i %% 100 < 95 THEN 'suspended'
                        WHEN i %% 100 < 98 THEN 'disabled' ELSE 'terminated' END,
                   i %% 5 + 1, 1,
                   CASE WHEN (i %% 5 + 1) %% 2 = 0
                        THEN %(now)s + ((i %% 40) - 5) * interval '1 day' END,
                   false, (%(now)s - interval '20 days')::date,
                   (%(now)s + interval '10 days')::date,
                   CASE WHEN i %% 100 BETWEEN 90 AND 94
                        THEN (%(now)s - interval '5 days')::date END,
                   i %% 100 BETWEEN 90 AND 94, false, false, '+8801700' || lpad(i::text, 6, '0'),
                   (%(now)s - interval '200 days')::date,
                   CASE WHEN i %% 100 >= 95 THEN (%(now)s - interval '3 days')::date END,
                   0, %(now)s - interval '200 days', %(now)s
            FROM generate_series(1, %(n)s::int) i""", args=a)
        # Data caps: plans 1 and 2 (40% of subscribers) cap 100 GiB a period, plan 1 with a
        # fair-usage speed; each of their subscribers has this period's usage state, about
        # 23% of them at or over the cap (some exempt, some already throttled), so over-cap
        # has a real join to answer.
        step("usage_states", """
            UPDATE plans SET data_cap_bytes = 107374182400, cap_counts = 'both',
                fup_download_bps = CASE WHEN id = 1 THEN 1000000 END,
                fup_upload_bps = CASE WHEN id = 1 THEN 1000000 END
            WHERE id IN (1, 2)""", """
            UPDATE subscribers SET cap_throttled = true
            WHERE plan_id = 1 AND id %% 7 = 0 AND (id * 7919) %% 130 >= 100""", """
            INSERT INTO usage_states (subscriber_id, period_start, period_end, download,
                upload, seconds, extra_bytes, notified_80, notified_100, exempt, updated_at)
            SELECT i, (%(now)s - interval '20 days')::date, (%(now)s + interval '10 days')::date,
                   ((i * 7919) %% 130) * 1073741824::bigint * 9 / 10,
                   ((i * 7919) %% 130) * 1073741824::bigint / 10, 3600 * (i %% 200), 0,
                   (i * 7919) %% 130 >= 80, (i * 7919) %% 130 >= 100, i %% 50 = 0, %(now)s
            FROM generate_series(1, %(n)s::int) i WHERE i %% 5 + 1 IN (1, 2)""", args=a)
        # Loading 10 million rows through a dozen indexes takes most of an hour here: the
        # indexes (as the migrations made them) are dropped and built again after the load.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'radius_sessions' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)").fetchall()
        for index_name, _ in indexes:
            conn.execute(f'DROP INDEX "{index_name}"')
        # Sessions: i-th session of subscriber (i % n) + 1, spread over 180 days; the last n
        # rows are each subscriber's newest, open for 60% of them.
        for lo in range(1, s + 1, CHUNK):
            hi = min(s, lo + CHUNK - 1)
            step("radius_sessions", """
                INSERT INTO radius_sessions (nas_ip, acct_session_id, username, subscriber_id,
                    framed_ip, calling_station_id, started_at, updated_at, stopped_at,
                    session_time, input_octets, output_octets, input_packets, output_packets,
                    terminate_cause, state_seq)
                SELECT '10.0.' || (sub %% %(nas)s) || '.1', 's' || i, 'u' || sub, sub,
                       CASE WHEN open THEN '100.64.' || (sub / 250) || '.' || (sub %% 250) END,
                       'AA:BB:' || sub, st,
                       CASE WHEN open THEN %(now)s - (i %% 280) * interval '1 second'
                            ELSE st + interval '1 hour' END,
                       CASE WHEN open THEN NULL ELSE st + interval '1 hour' END,
                       3600, i * 1000, i * 4000, i, i * 3,
                       CASE WHEN open THEN NULL WHEN i %% 5000 = 0 THEN 'NAS-Reboot'
                            ELSE 'User-Request' END, 0
                FROM (SELECT i, (i %% %(n)s) + 1 AS sub,
                             %(now)s - ((%(s)s - i) * (180.0 * 86400 / %(s)s) + 3600)
                                       * interval '1 second' AS st,
                             (i > %(s)s - %(n)s AND i %% 10 < 6) AS open
                      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i) g""",
                 args={**a, "lo": lo, "hi": hi})
        step("session indexes", *(definition for _, definition in indexes))
        step("radius_postauth", """
            INSERT INTO radius_postauth (at, username, nas_ip, decision, reason, rate_limit)
            SELECT %(now)s - (i %% 86400) * interval '1 second', 'u' || i,
                   '10.0.' || (i %% %(nas)s) || '.1', 'accept',
                   CASE WHEN i %% 100 BETWEEN 90 AND 94 THEN 'suspended-walled-garden'
                        ELSE 'active' END, '10M/5M'
            FROM generate_series(1, %(n)s::int) i""", args=a)
        # three monthly invoices per subscriber, the newest issued this month
        step("invoices", """
            INSERT INTO invoices (id, number, kind, subscriber_id, username, plan_name,
                period_start, period_end, issued_on, due_on, currency, subtotal, tax_percent,
                tax, duty, total, status, paid_on, outstanding, created_at)
            SELECT m * %(n)s + i, 'INV-' || lpad((m * %(n)s + i)::text, 9, '0'), 'period', i,
                   'u' || i,
                   'plan' || (i %% 5 + 1), d, (d + interval '1 month')::date, d,
                   (d + interval '7 days')::date, 'BDT', 500 * (i %% 5 + 1), 0, 0, 0,
                   500 * (i %% 5 + 1),
                   CASE WHEN m = 2 AND i %% 10 = 0 THEN 'open' ELSE 'paid' END,
                   CASE WHEN m = 2 AND i %% 10 = 0 THEN NULL ELSE d END,
                   CASE WHEN m = 2 AND i %% 10 = 0 THEN 500 * (i %% 5 + 1) ELSE 0 END,
                   %(now)s
            FROM generate_series(1, %(n)s::int) i, generate_series(0, 2) m,
                 LATERAL (SELECT (date_trunc('month', %(now)s) - (2 - m) * interval '1 month'
                                  )::date AS d) x""", args=a)
        step("payments", """
            INSERT INTO payments (id, subscriber_id, amount, currency, method, reference,
                received_at, actor)
            SELECT id, subscriber_id, total, 'BDT', 'cash', 'p' || id,
                   issued_on + interval '2 days', 'bench'
            FROM invoices WHERE status = 'paid'""")
        step("ledger_entries", """
            INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                currency, invoice_id, description, actor)
            SELECT subscriber_id, %(now)s, issued_on, 'charge', total, 'BDT', id,
                   'Invoice ' || number, 'bench' FROM invoices""",
             """
            INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                currency, payment_id, description, actor)
            SELECT subscriber_id, %(now)s, received_at::date, 'payment', -amount, 'BDT', id,
                   'Payment cash ' || reference, 'bench' FROM payments""", args=a)
        # as autovacuum leaves a table at rest: statistics, and the visibility map that lets
        # the ledger check and the last-NAS probes read their indexes alone
        step("vacuum analyze", "VACUUM ANALYZE")
    return timings


class Statements:
    """The SQL statements a report sends (to EXPLAIN them afterwards)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.on = False

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                 context: Any, executemany: bool) -> None:
        if self.on:
            self.seen.append((statement, parameters))


def scans_sessions(plan: Any) -> bool:
    """Whether an EXPLAIN (FORMAT JSON) plan reads radius_sessions sequentially."""
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "radius_sessions":
            return True
        return any(scans_sessions(v) for v in plan.values())
    if isinstance(plan, list):
        return any(scans_sessions(v) for v in plan)
    return False


def measure(url: str, runs: int, now: dt.datetime) -> list[tuple[str, Any, Any, int, str]]:
    """Each report's (name, best s, median s, rows, seq scan) on the database at *url*."""
    from sqlalchemy import create_engine, event

    from billing.isp import local_today
    from billing.isp import settings as isp_settings
    from radbill.db import session_factory
    from reports import registry
    from reports.registry import Params

    engine = create_engine(sa_url(url))
    statements = Statements()
    event.listen(engine, "before_cursor_execute", statements)
    out: list[tuple[str, Any, Any, int, str]] = []
    with session_factory(engine)() as session:
        today = local_today(isp_settings(session), now)
        params = Params(now=now, today=today, interim_interval=300, limit=1000)
        t0 = time.perf_counter()
        total = session.connection().exec_driver_sql(
            "SELECT count(*) FROM radius_sessions").scalar()
        out.append((f"baseline: count(*) of {total:,} sessions", time.perf_counter() - t0,
                    None, 1, "yes (by design)"))
        for name in registry.names():
            times: list[float] = []
            rows: list[dict[str, Any]] = []
            for k in range(runs):
                statements.seen.clear()
                statements.on = k == 0
                t0 = time.perf_counter()
                rows = registry.run(session, name, params)
                times.append(time.perf_counter() - t0)
                statements.on = False
                if k == 0:
                    captured = list(statements.seen)
                session.rollback()
            scan = False
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:
                for statement, parameters in captured:
                    if not statement.lstrip().upper().startswith("SELECT"):
                        cur.execute(statement, parameters)  # the report's SET LOCALs
                        continue
                    cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
                    plan = cur.fetchone()[0]
                    scan = scan or scans_sessions(plan if not isinstance(plan, str)
                                                  else json.loads(plan))
            session.rollback()
            out.append((name, min(times), statistics.median(times), len(rows),
                        "YES" if scan else "no"))
    engine.dispose()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--sessions", type=int, default=10_000_000)
    p.add_argument("--runs", type=int, default=3, help="Times each report is run.")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="A PostgreSQL admin URL.")
    p.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    p.add_argument("--reuse", metavar="DBNAME",
                   help="Measure a database an earlier --keep run loaded (no load).")
    args = p.parse_args(argv)
    if args.subscribers < 10 or args.sessions < args.subscribers:
        p.error("at least 10 subscribers and as many sessions as subscribers")
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.reuse:
        url = args.pg_url.rsplit("/", 1)[0] + f"/{args.reuse}"
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT max(updated_at) FROM radius_sessions "
                               "WHERE stopped_at IS NULL").fetchone()
        now = (row[0] if row and row[0] else dt.datetime.now(dt.UTC)).replace(microsecond=0)
        results = measure(url, args.runs, now)
        _print(args, load_avg, {}, results)
        return 0
    name = f"radbill_bench_reports_{secrets.token_hex(4)}"
    url = create_database(args.pg_url, name)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
            env.update({"RADBILL_DATABASE_URL": sa_url(url), "RADBILL_DATA_DIR": data_dir})
            migrate = radbill_db_upgrade(env, PROJECT_ROOT)
            log(f"migrated in {migrate:.1f} s")
            loaded = load(url, args.subscribers, args.sessions, now)
            results = measure(url, args.runs, now)
    finally:
        if not args.keep:
            drop_database(args.pg_url, name)
        else:
            log(f"kept database {name} (measure it again with --reuse {name})")
    _print(args, load_avg, loaded, results)
    return 0


def _print(args: argparse.Namespace, load_avg: str, loaded: dict[str, float],
           results: list[tuple[str, Any, Any, int, str]]) -> None:
    print(f"reports benchmark: {args.subscribers:,} subscribers, {args.sessions:,} sessions, "
          f"best and median of {args.runs} runs")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load average at start {load_avg}")
    if loaded:
        print("load: " + ", ".join(f"{k} {v:.1f} s" for k, v in loaded.items()))
    print(f"{'report':44} {'best s':>8} {'median s':>9} {'rows':>6}  goal<{GOAL_SECONDS:g}s  "
          "seq scan of sessions")
    for report, best, median, rows, scan in results:
        if best is None:
            print(f"{report:44} {'-':>8} {'-':>9} {'-':>6}  {'-':8}  {scan}")
            continue
        goal = "-" if median is None else ("met" if median < GOAL_SECONDS else "NOT MET")
        med = "-" if median is None else f"{median:.3f}"
        print(f"{report:44} {best:8.3f} {med:>9} {rows:6}  {goal:8}  {scan}")


if __name__ == "__main__":
    sys.exit(main())
