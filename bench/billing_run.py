"""The billing run for many subscribers against its set-based floor, on PostgreSQL.

One invocation builds a seed database (``radbill db upgrade``, one postpaid monthly plan at
1000 BDT + 5% tax, N subscribers whose current period 2026-11-01..2026-12-01 ends on the run
date), then measures each variant on its own fresh copy of it (``CREATE DATABASE ... TEMPLATE``),
so every variant starts from identical data:

* **run**: ``billing.run.billing_run(factory, 2026-12-01)``, the real run: batches of
  subscribers, invoices with gapless numbers, lines, ledger charges, outbox events, settlement,
  the dunning ladder and the period advance.
* **run-seq** (only with ``--variants``): the same run with its batches one after the other
  (``billing_run(..., overlap=False)``), without a batch planned while the one before is
  finished; its rows are compared with the run's.
* **floor**: the issue's floor, one ``INSERT INTO invoices ... SELECT ... FROM subscribers JOIN
  plans`` producing the same invoice rows (number, period, dates, amounts, status), plus the
  one-row update of the invoice counter.
* **floor+**: what the run writes, set-based: invoices, invoice lines, ledger charges and outbox
  events in one statement (data-modifying CTEs), then the subscribers' period advance. This is
  a fairer floor for the real run; the issue's goal is stated against ``floor``.

Every copy is checked: N invoices numbered INV-000001..N without gaps, each 1050.00, and the
rows each floor wrote are compared with the run's by fingerprint (every column except ids and
timestamps). The issue's goal: the run within 3x the floor's wall time.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/billing_run.py                       # 100,000 subscribers
    .venv/bin/python bench/billing_run.py --subscribers 2000    # smoke check
    .venv/bin/python bench/billing_run.py --subscribers 5000 --profile   # cProfile the run
    .venv/bin/python bench/billing_run.py --variants run,floor+ --repeat 3
    .venv/bin/python bench/billing_run.py --variants run,run-seq,floor+ --repeat 3

This is a benchmark, not a test: it prints a table and exits 0 unless a variant failed or its
result did not verify.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import os
import platform
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
from _common import (
    backend_pids,
    cpu_model,
    cpu_seconds,
    create_database,
    db_url,
    drop_database,
    log,
    radbill_db_upgrade,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

PLAN_NAME = "bench"
PLAN_PRICE = "1000"
PLAN_TAX = "5"
CURRENCY = "BDT"
EXPECTED_TOTAL = Decimal("1050.00")
PERIOD_START = dt.date(2026, 11, 1)
PERIOD_END = dt.date(2026, 12, 1)
AS_OF = dt.date(2026, 12, 1)
QUIET_DAY = dt.date(2026, 11, 15)
# Subscribers "created" at local midnight of the period start (Asia/Dhaka is UTC+6).
CREATED_AT = dt.datetime(2026, 10, 31, 18, 0, tzinfo=dt.UTC)
TABLES = ("invoices", "invoice_lines", "ledger_entries", "outbox")
VARIANTS = ("run", "run-seq", "floor", "floor+")
DEFAULT_VARIANTS = ("run", "floor", "floor+")


# -- small helpers ----------------------------------------------------------------------------



def sa_url(url: str) -> str:
    """*url* for SQLAlchemy with the psycopg 3 driver."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def machine_info(admin_url: str) -> list[str]:
    cpu = cpu_model()
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        autovacuum = conn.execute("SHOW autovacuum").fetchone()
    pg = row[0] if row else "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}",
        f"software: PostgreSQL {pg} (synchronous_commit {sync[0] if sync else '?'}, "
        f"autovacuum {autovacuum[0] if autovacuum else '?'}), "
        f"Python {platform.python_version()}, {platform.platform()}",
        f"load average at start: {load}",
    ]


# -- the seed database ------------------------------------------------------------------------


def seed(url: str, data_dir: Path, count: int, own_service_every: int = 0
         ) -> dict[str, float]:
    """Migrate a fresh database and load the plan and *count* subscribers. Returns timings.
    *own_service_every*: one subscriber in this many has a plan change scheduled for this
    renewal (an account the run bills through the per-account path)."""
    from billing.plans import create_plan
    from radbill.config import Settings
    from radbill.crypto import SecretBox, load_key
    from radbill.db import (
        AUTH_FEED,
        bump,
        engine_from_settings,
        session_factory,
        unit_of_work,
        utcnow,
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env.update({"RADBILL_DATABASE_URL": sa_url(url), "RADBILL_DATA_DIR": str(data_dir)})
    timings: dict[str, float] = {}
    timings["migrate"] = radbill_db_upgrade(env, PROJECT_ROOT)

    t0 = time.perf_counter()
    settings = Settings.from_env(env)
    token = SecretBox(load_key(settings, create=False)).encrypt("benchpass")  # one for all
    engine = engine_from_settings(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            plan = create_plan(session, name=PLAN_NAME, price=PLAN_PRICE, currency=CURRENCY,
                               rate="10M/10M", billing_cycle="monthly",
                               billing_mode="postpaid", tax_percent=PLAN_TAX, actor="bench")
            version = bump(session, AUTH_FEED)  # what a subscriber change stamps its row with
            now = utcnow()
            raw = session.connection().connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            columns = ("username, password_enc, service, status, plan_id, simultaneous_use, "
                       "fup_throttled, auth_version, anchor_day, period_start, period_end, "
                       "suspended_for_nonpayment, dunning_throttled, setup_fee_charged, "
                       "created_at, updated_at")
            with raw.cursor() as cur, cur.copy(f"COPY subscribers ({columns}) FROM STDIN") as cp:
                for i in range(count):
                    cp.write_row((f"bench{i:06d}", token, "pppoe", "active", plan.id, 1, False,
                                  version, PERIOD_START.day, PERIOD_START, PERIOD_END, False,
                                  False, False, CREATED_AT, now))
            if own_service_every:
                other = create_plan(session, name=f"{PLAN_NAME}-next", price=PLAN_PRICE,
                                    currency=CURRENCY, rate="20M/20M",
                                    billing_cycle="monthly", billing_mode="postpaid",
                                    tax_percent=PLAN_TAX, actor="bench")
                session.connection().exec_driver_sql(
                    "UPDATE subscribers SET next_plan_id = %s WHERE id %% %s = 0",
                    (other.id, own_service_every))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    timings["plan + subscribers"] = time.perf_counter() - t0
    return timings


# -- the variants -----------------------------------------------------------------------------

# The invoice number exactly as billing.invoices.next_number formats it (:06d, wider if needed).
_NUMBER = ("isp.invoice_prefix || lpad(n::text, greatest(6, length(n::text)), '0')")

# The subscribers the run bills today, numbered in the run's order (by id), with their invoice
# values computed as billing.invoices.issue does (tax rounded half-up to 2 places).
_DUE = f"""
    SELECT {_NUMBER} AS number, s.id AS subscriber_id, p.name AS plan_name,
           s.period_start, s.period_end, %(as_of)s::date AS issued_on,
           %(as_of)s::date + isp.postpaid_due_days AS due_on, p.currency, p.price AS subtotal,
           p.tax_percent, round(p.price * p.tax_percent / 100, 2) AS tax,
           p.price + round(p.price * p.tax_percent / 100, 2) AS total,
           coalesce(s.full_name, s.username) AS buyer_name, s.username,
           coalesce((SELECT sum(e.amount) FROM ledger_entries e
                      WHERE e.subscriber_id = s.id), 0) AS previous_balance
      FROM (SELECT s.*, isp.next_invoice_number - 1
                        + row_number() OVER (ORDER BY s.id) AS n
              FROM subscribers s CROSS JOIN isp_settings isp
             WHERE isp.id = 1 AND s.status IN ('active', 'suspended')
               AND s.period_end <= %(as_of)s) s
      JOIN plans p ON p.id = s.plan_id AND p.billing_mode = 'postpaid'
      CROSS JOIN isp_settings isp
     WHERE isp.id = 1
     ORDER BY s.id
"""  # noqa: S608 - composed from this module's constants only

_INSERT_INVOICES = """
    INSERT INTO invoices (number, subscriber_id, plan_name, period_start, period_end,
                          issued_on, due_on, currency, subtotal, tax_percent, tax, total,
                          status, created_at, duty, tax_breakdown, previous_balance,
                          amount_due, buyer_name, username, outstanding{extra_columns})
    SELECT number, subscriber_id, plan_name, period_start, period_end, issued_on, due_on,
           currency, subtotal, tax_percent, tax, total, 'open', now(), 0,
           CASE WHEN tax_percent > 0 THEN json_build_array(json_build_object(
               'name', 'VAT', 'rate', tax_percent::text, 'amount', tax::text)) ELSE '[]' END,
           previous_balance, greatest(previous_balance + total, 0),
           buyer_name, username, total{extra_values}
      FROM ({due}) due
"""

# Everything billing.invoices.issue writes, set-based, in one statement.
_ISSUE_ALL = """
    WITH inv AS ({insert}
        RETURNING id, number, subscriber_id, plan_name, period_start, period_end, issued_on,
                  due_on, currency, subtotal, tax, total, previous_balance, amount_due),
    lines AS (
        INSERT INTO invoice_lines (invoice_id, position, description, quantity, unit_price,
                                   amount, duty, tax)
        SELECT id, 1, plan_name || ' ' || to_char(period_start, 'DD Mon YYYY') || ' - '
                      || to_char(period_end - 1, 'DD Mon YYYY'), 1, subtotal, subtotal, 0, tax
          FROM inv),
    ledger AS (
        INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                                    currency, invoice_id, description, actor)
        SELECT subscriber_id, now(), issued_on, 'charge', total, currency, id,
               'Invoice ' || number, 'system'
          FROM inv WHERE total > 0)
    INSERT INTO outbox (kind, subscriber_id, dedupe_key, payload, created_at, event_on)
    SELECT 'invoice_issued', inv.subscriber_id, 'invoice:' || inv.id,
           json_build_object('username', s.username, 'name', s.full_name, 'phone', s.phone,
                             'email', s.email, 'invoice', inv.number, 'document', 'period',
                             'total', inv.total::text, 'currency', inv.currency,
                             'due_on', inv.due_on::text,
                             'period', inv.period_start || '..' || inv.period_end,
                             'previous_balance', inv.previous_balance::text,
                             'amount_due', inv.amount_due::text, 'payment_link', NULL),
           now(), inv.issued_on
      FROM inv JOIN subscribers s ON s.id = inv.subscriber_id
"""

# Invoice columns added by later schema versions that have no default: the value a period
# invoice gets. Any other such column stops the floor with an error.
EXTRA_INVOICE_COLUMNS = {"kind": "'period'"}
FLOOR_INVOICE_COLUMNS = {"id", "number", "subscriber_id", "plan_name", "period_start",
                         "period_end", "issued_on", "due_on", "currency", "subtotal",
                         "tax_percent", "tax", "total", "status", "created_at", "duty"}


def floor_sql(conn: psycopg.Connection, plus: bool) -> str:
    """The floor statement for this database's invoices table (see ``EXTRA_INVOICE_COLUMNS``)."""
    required = {str(r[0]) for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'invoices' "
        "AND is_nullable = 'NO' AND column_default IS NULL").fetchall()}
    extra = sorted(required - FLOOR_INVOICE_COLUMNS)
    unknown = [c for c in extra if c not in EXTRA_INVOICE_COLUMNS]
    if unknown:
        raise RuntimeError(f"invoices has required columns the floor does not fill: {unknown}")
    insert = _INSERT_INVOICES.format(
        due=_DUE, extra_columns="".join(f", {c}" for c in extra),
        extra_values="".join(f", {EXTRA_INVOICE_COLUMNS[c]}" for c in extra))
    return _ISSUE_ALL.format(insert=insert) if plus else insert


# The period advance (monthly, anniversary day 1 in this benchmark: one calendar month).
ADVANCE_SQL = """
    UPDATE subscribers SET period_start = period_end,
                           period_end = (period_end + interval '1 month')::date,
                           updated_at = now()
     WHERE status IN ('active', 'suspended') AND period_end <= %(as_of)s
"""

COUNTER_SQL = """
    UPDATE isp_settings SET next_invoice_number = next_invoice_number + %(n)s WHERE id = 1
"""


@dataclass
class Measurement:
    """One variant on one fresh copy."""

    variant: str
    wall: float
    proc_cpu: float
    db_cpu: float
    rows: dict[str, int]
    fingerprints: dict[str, str]
    checks: list[str]  # problems; empty if the copy verified
    events: dict[str, int] = field(default_factory=dict)


class Watch:
    """A thread beside the real run: logs committed invoices every *progress* seconds and,
    every *analyze* seconds, runs ``ANALYZE`` on the tables the run writes, which is what
    autovacuum would do on a server that has it on (0: neither)."""

    def __init__(self, url: str, total: int, progress: float, analyze: float) -> None:
        self.total, self.progress, self.analyze = total, progress, analyze
        self.stop = threading.Event()
        self.analyzed = 0
        self.conn = psycopg.connect(url, autocommit=True)
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        self.pid = int(row[0]) if row else 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        next_log = self.progress or float("inf")
        next_analyze = self.analyze or float("inf")
        while not self.stop.wait(max(0.1, min(next_log, next_analyze) - (time.monotonic() - t0))):
            secs = time.monotonic() - t0
            if secs >= next_analyze:
                self.conn.execute("ANALYZE " + ", ".join((*TABLES, "subscribers")))
                self.analyzed += 1
                next_analyze += self.analyze
            if secs >= next_log:
                row = self.conn.execute("SELECT count(*) FROM invoices").fetchone()
                done = int(row[0]) if row else 0
                rate = done / secs
                eta = (self.total - done) / rate if rate else float("inf")
                log(f"  run: {done}/{self.total} invoices after {secs:.0f} s ({rate:.0f}/s, "
                    f"about {eta:.0f} s to go)")
                next_log += self.progress

    def __enter__(self) -> Watch:
        if self.progress > 0 or self.analyze > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self.conn.close()


def measure_run(admin: str, dbname: str, args: argparse.Namespace, as_of: dt.date = AS_OF,
                *, overlap: bool = True) -> tuple[float, float, float, dict[str, int]]:
    """The real billing run on *dbname*: wall, process CPU, backend CPU, event counts.
    *overlap* False: its batches one after the other (``run-seq``)."""
    from billing.run import billing_run
    from radbill.db import make_engine, session_factory

    url = db_url(admin, dbname)
    engine = make_engine(sa_url(url))
    try:
        # the pool's connections exist before the clock starts (two: a batch is planned in
        # one while the batch before is finished in the other)
        with engine.connect() as conn, engine.connect() as other:
            conn.exec_driver_sql("SELECT 1")
            other.exec_driver_sql("SELECT 1")
        with Watch(url, args.subscribers, args.progress, args.analyze_every) as watch:
            pids = backend_pids(admin, dbname, exclude=[watch.pid])
            db0 = cpu_seconds(pids)
            cpu0, t0 = time.process_time(), time.perf_counter()
            report = billing_run(session_factory(engine), as_of, batch_size=args.batch_size,
                                 overlap=overlap)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            pids = backend_pids(admin, dbname, exclude=[watch.pid])
            db1 = cpu_seconds(pids)
    finally:
        engine.dispose()
    db_cpu = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())
    return wall, cpu, db_cpu, report.counts


def measure_floor(admin: str, dbname: str, plus: bool) -> tuple[float, float, float]:
    """The set-based floor on *dbname* in one transaction: wall, process CPU, backend CPU."""
    with psycopg.connect(db_url(admin, dbname)) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        pid = int(row[0]) if row else 0
        sql = floor_sql(conn, plus)
        conn.commit()
        db0 = cpu_seconds([pid]).get(pid, 0.0)
        cpu0, t0 = time.process_time(), time.perf_counter()
        with conn.transaction():
            conn.execute("SELECT 1 FROM isp_settings WHERE id = 1 FOR UPDATE")  # numbering lock
            n = conn.execute(sql, {"as_of": AS_OF}).rowcount
            conn.execute(COUNTER_SQL, {"n": n})
            if plus:
                conn.execute(ADVANCE_SQL, {"as_of": AS_OF})
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        db1 = cpu_seconds([pid]).get(pid, db0)
    return wall, cpu, db1 - db0


# -- verification -----------------------------------------------------------------------------

FINGERPRINTS = {  # every column but ids, timestamps and random keys, whatever the schema version
    "invoices": """
        SELECT md5(string_agg((to_jsonb(i) - 'id' - 'created_at' - 'pay_token')::text, ','
                              ORDER BY number))
          FROM invoices i""",
    "invoice_lines": """
        SELECT md5(string_agg((to_jsonb(l) - 'id' - 'invoice_id')::text || i.number, ','
                              ORDER BY i.number, l.position))
          FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id""",
    "ledger_entries": """
        SELECT md5(string_agg((to_jsonb(e) - 'id' - 'posted_at' - 'invoice_id')::text
                              || coalesce(i.number, '-'), ',' ORDER BY i.number, e.kind))
          FROM ledger_entries e LEFT JOIN invoices i ON i.id = e.invoice_id""",
    "outbox": """
        SELECT md5(string_agg((to_jsonb(o) - 'id' - 'created_at' - 'dedupe_key' - 'payload')::text
                              || coalesce(i.number, o.dedupe_key)
                              || o.payload::jsonb::text, ',' ORDER BY o.subscriber_id, o.kind))
          FROM outbox o LEFT JOIN invoices i ON o.dedupe_key = 'invoice:' || i.id""",
    "subscribers": """
        SELECT md5(string_agg((to_jsonb(s) - 'updated_at')::text, ',' ORDER BY id))
          FROM subscribers s""",
}


def verify(admin: str, dbname: str, total: int) -> tuple[dict[str, int], dict[str, str],
                                                            list[str]]:
    """Row counts, fingerprints and the checks every variant must pass."""
    problems: list[str] = []
    with psycopg.connect(db_url(admin, dbname)) as conn:
        rows: dict[str, int] = {}
        for table in TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            rows[table] = int(row[0]) if row else 0
        row = conn.execute("SELECT count(*) FROM subscribers WHERE period_start = %s",
                           (AS_OF,)).fetchone()
        rows["subscribers advanced"] = int(row[0]) if row else 0
        fingerprints = {}
        for name, sql in FINGERPRINTS.items():
            row = conn.execute(sql).fetchone()
            fingerprints[name] = str(row[0]) if row else ""
        check = conn.execute("""
            SELECT count(*), count(DISTINCT number),
                   min(substr(number, 5)::bigint), max(substr(number, 5)::bigint),
                   count(*) FILTER (WHERE number !~ '^INV-[0-9]{6,}$'),
                   count(*) FILTER (WHERE total <> %s), count(DISTINCT subscriber_id),
                   (SELECT next_invoice_number FROM isp_settings WHERE id = 1)
              FROM invoices""", (EXPECTED_TOTAL,)).fetchone()
    assert check is not None
    count, distinct, low, high, malformed, wrong_total, subs, next_number = check
    if count != total:
        problems.append(f"{count} invoices, expected {total}")
    if malformed:
        problems.append(f"{malformed} invoice numbers not INV-nnnnnn")
    elif count and (distinct != count or low != 1 or high != count):
        problems.append(f"numbers not gapless: {distinct} distinct, INV-{low}..INV-{high}")
    if wrong_total:
        problems.append(f"{wrong_total} invoices not {EXPECTED_TOTAL}")
    if subs != count:
        problems.append(f"{count} invoices for {subs} subscribers")
    if next_number != count + 1:
        problems.append(f"next_invoice_number {next_number}, expected {count + 1}")
    return rows, fingerprints, problems


def measure(variant: str, admin: str, template: str, copy: str, args: argparse.Namespace,
            keep: bool) -> Measurement:
    """*variant* on a fresh copy of *template*, verified, the copy dropped unless *keep*."""
    create_database(admin, copy, template=template)
    try:
        events: dict[str, int] = {}
        time.sleep(1.0)  # let the copy's checkpoint and the last variant's leftovers settle
        log(f"{variant}: {args.subscribers} subscribers in {copy}")
        if variant in ("run", "run-seq"):
            wall, cpu, db_cpu, events = measure_run(admin, copy, args,
                                                    overlap=variant == "run")
        else:
            wall, cpu, db_cpu = measure_floor(admin, copy, plus=variant == "floor+")
        rows, prints, problems = verify(admin, copy, args.subscribers)
        log(f"  {variant}: {wall:.2f} s wall, {rows['invoices']} invoices"
            + (f"; PROBLEMS: {'; '.join(problems)}" if problems else ""))
        return Measurement(variant, wall, cpu, db_cpu, rows, prints, problems, events)
    finally:
        if not keep:
            drop_database(admin, copy)


# -- suspension day ---------------------------------------------------------------------------


def _pay_all_but(url: str, every: int) -> int:
    """Pay, set-based, every open invoice but one subscriber's in *every* (as the payment
    service would: a payment, its ledger credit, the invoice settled). Returns the unpaid."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"""
            INSERT INTO payments (subscriber_id, amount, currency, method, reference,
                                  received_at, actor)
            SELECT subscriber_id, total, currency, 'cash', 'B' || id, now(), 'bench'
              FROM invoices WHERE status = 'open' AND subscriber_id % {every} <> 0""")  # noqa: S608
        conn.execute("""
            INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                                        currency, payment_id, description, actor)
            SELECT subscriber_id, now(), %s, 'payment', -amount, currency, id,
                   'Payment ' || reference, 'bench' FROM payments""", (AS_OF,))
        conn.execute("""
            INSERT INTO payment_day_totals (day, currency, method, amount, payments)
            SELECT (received_at AT TIME ZONE (SELECT timezone FROM isp_settings
                                               ORDER BY id LIMIT 1))::date,
                   currency, method, sum(amount), count(*)
              FROM payments WHERE reference LIKE 'B%%' GROUP BY 1, 2, 3
            ON CONFLICT (day, currency, method) DO UPDATE
               SET amount = payment_day_totals.amount + excluded.amount,
                   payments = payment_day_totals.payments + excluded.payments""")
        conn.execute(f"""
            UPDATE invoices SET status = 'paid', paid_on = %s
             WHERE status = 'open' AND subscriber_id %% {every} <> 0""", (AS_OF,))  # noqa: S608
        conn.execute("ANALYZE")
        row = conn.execute("SELECT count(*) FROM invoices WHERE status = 'open'").fetchone()
    return int(row[0]) if row else 0


def _suspension_day(url: str) -> dt.date:
    """The day the ladder suspends an unpaid subscriber (the lowest id that owes)."""
    from sqlalchemy import select

    from billing import standing
    from billing.dunning import service_ends
    from billing.isp import calendar, settings
    from billing.models import Invoice, Subscriber
    from radbill.db import make_engine, session_factory

    engine = make_engine(sa_url(url))
    try:
        with session_factory(engine)() as s:
            sub_id = s.scalar(select(Invoice.subscriber_id).where(Invoice.status == "open")
                              .order_by(Invoice.subscriber_id).limit(1))
            sub = s.get(Subscriber, sub_id)
            assert sub is not None
            isp = settings(s)
            account, _ = standing.account_state(s, isp, sub, sub.plan, AS_OF)
            day = service_ends(account, AS_OF, standing.ladder_of(sub.plan, isp), calendar(s))
            assert day is not None
            return day
    finally:
        engine.dispose()


class FirstRequest(threading.Thread):
    """Another connection (as the enforcement worker) polling for the first committed
    suspension request; ``seen`` is when it appeared (``time.perf_counter``)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen = url, 0.0
        self.stop, self.ready = threading.Event(), threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            self.ready.set()
            while not self.stop.is_set():
                row = conn.execute("SELECT 1 FROM enforcement_requests "
                                   "WHERE action = 'suspend' LIMIT 1").fetchone()
                if row:
                    self.seen = time.perf_counter()
                    return
                time.sleep(0.02)


def measure_suspension_day(admin: str, template: str, copy: str, day: dt.date,
                           per_account: bool, keep: bool
                           ) -> tuple[float, float, float, int, int]:
    """The billing run of *day* on a copy of *template*: the suspension phase's wall time,
    when the first enforcement request became visible to another connection (seconds after
    the phase began), the CPU it took (this process and its database backends: on a machine
    shared with other work, the wall time is mostly waiting for a core), the suspensions
    reported and the requests written."""
    from billing import run as billing
    from radbill.db import make_engine, session_factory

    create_database(admin, copy, template=template)
    url = db_url(admin, copy)
    engine = make_engine(sa_url(url))
    phase: dict[str, float] = {}
    real = billing._suspend_phase

    def timed_phase(*a: object, **kw: object) -> None:
        pids = backend_pids(admin, copy)
        db0 = cpu_seconds(pids)
        cpu0 = time.process_time()
        phase["start"] = time.perf_counter()
        real(*a, **kw)  # type: ignore[arg-type]
        phase["end"] = time.perf_counter()
        phase["cpu"] = time.process_time() - cpu0
        db1 = cpu_seconds(backend_pids(admin, copy))
        phase["db_cpu"] = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())

    watcher = FirstRequest(url)
    try:
        time.sleep(1.0)
        billing._suspend_phase = timed_phase  # type: ignore[assignment]
        watcher.start()
        watcher.ready.wait(30)
        report = billing.billing_run(session_factory(engine), day, per_account=per_account)
        watcher.stop.set()
        watcher.join(5)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM enforcement_requests "
                               "WHERE action = 'suspend'").fetchone()
        requests = int(row[0]) if row else 0
    finally:
        billing._suspend_phase = real  # type: ignore[assignment]
        engine.dispose()
        if not keep:
            drop_database(admin, copy)
    wall = phase["end"] - phase["start"]
    first = watcher.seen - phase["start"] if watcher.seen else float("nan")
    return (wall, first, phase["cpu"] + phase["db_cpu"], report.counts.get("suspend", 0),
            requests)


def suspension_day(args: argparse.Namespace, admin: str, seed_db: str,
                   cleanup: contextlib.ExitStack) -> list[str]:
    """Suspension day: the seed billed (the real run), all but one subscriber in
    ``--unpaid-every`` paid, the daily runs up to the day the ladder suspends the rest, then
    that day's run on two copies: the set-based suspension phase and the per-account one."""
    base = f"{seed_db}_susp"
    create_database(admin, base, template=seed_db)
    if not args.keep:
        cleanup.callback(drop_database, admin, base)
    url = db_url(admin, base)
    from billing.run import billing_run
    from radbill.db import make_engine, session_factory

    engine = make_engine(sa_url(url))
    try:
        log(f"suspension day: billing {args.subscribers} subscribers on {AS_OF}")
        billing_run(session_factory(engine), AS_OF)
        unpaid = _pay_all_but(url, args.unpaid_every)
        day = _suspension_day(url)
        log(f"suspension day: {unpaid} unpaid, suspended on {day}; runs until then")
        d = AS_OF + dt.timedelta(days=1)
        while d < day:
            billing_run(session_factory(engine), d)
            d += dt.timedelta(days=1)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    out = [f"suspension day {day}: {unpaid} of {args.subscribers} subscribers unpaid; the "
           "run's suspension phase (billing.run._suspend_phase), each variant on its own copy",
           f"{'variant':<28} {'phase s':>8} {'CPU s':>7} {'first request visible s':>24} "
           f"{'suspended':>10} {'requests':>9}"]
    results: dict[str, float] = {}
    for per_account in [v == "per-account" for v in args.suspension_variants]:
        name = "per-account (as it was)" if per_account else "set-based"
        log(f"suspension day: {name}")
        wall, first, cpu, n, req = measure_suspension_day(
            admin, base, f"{base}_{'acct' if per_account else 'set'}", day, per_account,
            args.keep)
        results[name] = wall
        out.append(f"{name:<28} {wall:>8.2f} {cpu:>7.2f} {first:>24.2f} {n:>10} {req:>9}")
    if results.get("set-based") and results.get("per-account (as it was)"):
        out.append(f"set-based is {results['per-account (as it was)'] / results['set-based']:.1f}x "
                   "faster; goal: 10,000 of 100,000 in < 10 s")
    return out


# -- profile ----------------------------------------------------------------------------------


def profile_run(admin: str, dbname: str, args: argparse.Namespace) -> list[str]:
    """cProfile the real run on *dbname* and count its SQL statements by shape."""
    from sqlalchemy import event

    from billing.run import billing_run
    from radbill.db import make_engine, session_factory

    engine = make_engine(sa_url(db_url(admin, dbname)))
    statements: Counter[str] = Counter()

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements[" ".join(statement.split())[:150]] += 1

    event.listen(engine, "before_cursor_execute", count)
    # CPU time: the machine is shared, wall time under the profiler says little
    profiler = cProfile.Profile(time.process_time)
    try:
        with Watch(db_url(admin, dbname), args.subscribers, 0, args.analyze_every) as watch:
            t0 = time.perf_counter()
            profiler.enable()
            billing_run(session_factory(engine), AS_OF, batch_size=args.batch_size,
                        overlap=False)  # the profiler sees the main thread only
            profiler.disable()
            wall = time.perf_counter() - t0
    finally:
        engine.dispose()
    out = [f"cProfile (CPU timer) of billing_run, {args.subscribers} "
           f"subscribers: {wall:.1f} s wall (under the profiler; {watch.analyzed} ANALYZE(s) "
           "during the run)", ""]
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.profile_top)
        text = buf.getvalue()
        out.append(f"top {args.profile_top} by {key}:")
        out.extend(text[text.index("   ncalls"):].rstrip().splitlines())
        out.append("")
    n = max(args.subscribers, 1)
    out.append(f"SQL statements: {sum(statements.values())} "
               f"({sum(statements.values()) / n:.1f} per subscriber); by shape:")
    out.extend(f"  {c:8d} {c / n:6.2f}/sub  {s}" for s, c in statements.most_common(25))
    return out


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1,
                   help="measurements of each variant, order alternating (default 1)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="billing_run's batch size (default: the run's own, "
                        "billing.run.BATCH_SIZE)")
    p.add_argument("--quiet-day", action="store_true",
                   help=f"also time a run on {QUIET_DAY}, when nothing is due")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--progress", type=float, default=30.0,
                   help="seconds between progress lines during the real run (0: none)")
    p.add_argument("--analyze-every", type=float, default=None,
                   help="seconds between ANALYZEs of the written tables during the run "
                        "(default: 60 if the server's autovacuum is off, else 0: none)")
    p.add_argument("--profile", action="store_true",
                   help="instead of measuring, cProfile one real run and count its SQL")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="a database URL that may create and drop databases")
    p.add_argument("--keep", action="store_true", help="keep the databases")
    p.add_argument("--suspension-day", action="store_true",
                   help="also time a suspension day (set-based against per-account)")
    p.add_argument("--suspension-variants", default="set,per-account",
                   help="suspension day variants: set (set-based), per-account (as it was)")
    p.add_argument("--unpaid-every", type=int, default=10,
                   help="on the suspension day, one subscriber in this many has not paid")
    p.add_argument("--own-service-every", type=int, default=0, metavar="N",
                   help="one subscriber in N has a plan change scheduled for this renewal, "
                        "which the run bills through the per-account path (a mixed day; "
                        "run and run-seq only)")
    args = p.parse_args(argv)
    if args.batch_size is None:
        from billing.run import BATCH_SIZE

        args.batch_size = BATCH_SIZE
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.suspension_variants = [v.strip() for v in args.suspension_variants.split(",")
                                if v.strip()]
    if any(v not in ("set", "per-account") for v in args.suspension_variants):
        p.error("--suspension-variants: choose from set,per-account")
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        p.error(f"--variants: choose from {','.join(VARIANTS)}")
    if args.own_service_every and set(args.variants) - {"run", "run-seq"}:
        p.error("--own-service-every: with --variants run,run-seq only (the floors bill no "
                "plan change)")
    if args.subscribers < 1 or args.repeat < 1:
        p.error("--subscribers and --repeat must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:  # noqa: PLR0912, PLR0915 - one linear script
    t_start = time.monotonic()
    admin = args.pg_url
    suffix = secrets.token_hex(4)
    seed_db = f"billing_bench_{suffix}"
    work = Path(tempfile.mkdtemp(prefix="radbill-billing-bench-"))
    info = machine_info(admin)
    if args.analyze_every is None:
        with psycopg.connect(admin) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        args.analyze_every = 60.0 if row and row[0] == "off" else 0.0
    phases: dict[str, float] = {}
    results: list[Measurement] = []
    profile: list[str] = []
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            cleanup.callback(log, f"kept {work} and database {seed_db} (copies: {seed_db}_*)")
        else:
            cleanup.callback(shutil.rmtree, work, True)
            cleanup.callback(drop_database, admin, seed_db)
        log(f"seeding {args.subscribers} subscribers into {seed_db}")
        t0 = time.monotonic()
        url = create_database(admin, seed_db)
        for name, secs in seed(url, work / "radbill-data", args.subscribers,
                               args.own_service_every).items():
            phases[f"seed: {name}"] = secs
        phases["seed"] = time.monotonic() - t0

        if args.profile:
            copy = f"{seed_db}_profile"
            create_database(admin, copy, template=seed_db)
            if not args.keep:
                cleanup.callback(drop_database, admin, copy)
            t0 = time.monotonic()
            profile = profile_run(admin, copy, args)
            phases["profiled run"] = time.monotonic() - t0
        else:
            for i in range(args.repeat):
                order = args.variants if i % 2 == 0 else list(reversed(args.variants))
                for variant in order:
                    copy = f"{seed_db}_{i + 1}_{variant.replace('+', 'plus')}"
                    t0 = time.monotonic()
                    results.append(measure(variant, admin, seed_db, copy, args, args.keep))
                    phases[f"round {i + 1} {variant} (copy, measure, verify, drop)"] = (
                        time.monotonic() - t0)
        quiet: tuple[float, dict[str, int]] | None = None
        if args.quiet_day and not args.profile:
            # A day with nothing due (mid-period, no invoices yet): what most nights cost.
            copy = f"{seed_db}_quiet"
            create_database(admin, copy, template=seed_db)
            if not args.keep:
                cleanup.callback(drop_database, admin, copy)
            wall, _cpu, _db, events = measure_run(admin, copy, args, QUIET_DAY)
            quiet = (wall, events)
            phases["quiet day run"] = wall
        suspension: list[str] = []
        if args.suspension_day and not args.profile:
            t0 = time.monotonic()
            suspension = suspension_day(args, admin, seed_db, cleanup)
            phases["suspension day"] = time.monotonic() - t0
    phases["total"] = time.monotonic() - t_start
    if args.profile:
        print("\n".join(profile), flush=True)
        print("\n".join(["", *info, "", "phases (s):",
                         *(f"  {k:<50} {v:8.1f}" for k, v in phases.items())]), flush=True)
        return 0
    report(args, results, info, phases)
    if quiet is not None:
        print(f"quiet day ({QUIET_DAY}, nothing due): billing_run over {args.subscribers} "
              f"subscribers took {quiet[0]:.2f} s, events {quiet[1] or 'none'}", flush=True)
    if suspension:
        print("\n".join(["", *suspension]), flush=True)
    return 0 if all(not m.checks for m in results) else 1


def report(args: argparse.Namespace, results: list[Measurement], info: list[str],
           phases: dict[str, float]) -> None:
    """The per-measurement table, the summary with ratios, the checks and the context."""
    out = ["", f"Billing run for {args.subscribers} subscribers on PostgreSQL, as of {AS_OF} "
           f"(one postpaid monthly invoice each, {CURRENCY} {PLAN_PRICE} + {PLAN_TAX}% tax); "
           f"batch size {args.batch_size}, {args.repeat} measurement(s) per variant, each on "
           "a fresh copy of the same seed database; during the run, "
           + (f"ANALYZE of the written tables every {args.analyze_every:.0f} s (a stand-in for "
              "autovacuum, which is off)" if args.analyze_every else "no extra ANALYZE"), ""]
    cols = (f"{'variant':<8} {'wall s':>9} {'py CPU s':>9} {'db CPU s':>9} "
            + " ".join(f"{t:>14}" for t in (*TABLES, "subs advanced")))

    def rows_of(m: Measurement) -> str:
        return " ".join(f"{m.rows[t]:14d}" for t in (*TABLES, "subscribers advanced"))

    out.append("measurements (py CPU: this process; db CPU: its PostgreSQL backends; "
               "row counts after the variant):")
    out.append(cols)
    out.extend(f"{m.variant:<8} {m.wall:9.2f} {m.proc_cpu:9.2f} {m.db_cpu:9.2f} {rows_of(m)}"
               for m in results)

    by: dict[str, list[Measurement]] = {}
    for m in results:
        by.setdefault(m.variant, []).append(m)
    med = {v: (statistics.median(m.wall for m in ms),
               statistics.median(m.proc_cpu + m.db_cpu for m in ms)) for v, ms in by.items()}
    out.append("")
    out.append(f"{'variant':<8} {'wall s':>9} {'CPU s':>9} {'invoices':>9} "
               f"{'inv/s':>9} {'x floor':>8} {'x floor+':>9} {'CPU x floor':>12}")
    floor = med.get("floor")
    floor_plus = med.get("floor+")

    def ratio(a: float, b: float | None) -> str:
        return f"{a / b:.1f}x" if b else "-"

    for v, (wall, cpu) in med.items():
        inv = by[v][0].rows["invoices"]
        out.append(f"{v:<8} {wall:9.2f} {cpu:9.2f} {inv:9d} {inv / wall:9.0f} "
                   f"{ratio(wall, floor[0] if floor else None):>8} "
                   f"{ratio(wall, floor_plus[0] if floor_plus else None):>9} "
                   f"{ratio(cpu, floor[1] if floor else None):>12}")
    out.append("(wall, CPU: median over the measurements; CPU = this process + its backends)")
    out.append("")
    if "run" in med and floor:
        r = med["run"][0] / floor[0]
        out.append(f"real run / floor (wall): {r:.1f}x; issue goal within 3x: "
                   f"{'met' if r <= 3 else 'NOT met'}")
        if floor_plus:
            out.append(f"real run / floor+ (wall, everything the run writes, set-based): "
                       f"{med['run'][0] / floor_plus[0]:.1f}x")
    events = [m.events for m in results if m.variant == "run"]
    if events:
        out.append(f"run events: {events[0]}")
    out.extend(_comparisons(results))
    problems = [f"{m.variant}: {p}" for m in results for p in m.checks]
    out.append("WARNING: " + "; ".join(problems) if problems else
               f"every copy verified: {args.subscribers} invoices INV-000001.. without gaps, "
               f"each {EXPECTED_TOTAL}, next number {args.subscribers + 1}")
    out.append("")
    out.extend(info)
    out.append("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    out.append("")
    out.append("phases (s):")
    out.extend(f"  {name:<50} {secs:8.1f}" for name, secs in phases.items())
    print("\n".join(out), flush=True)


def _comparisons(results: list[Measurement]) -> list[str]:
    """Whether each floor wrote the same rows as the real run (by fingerprint)."""
    runs = [m for m in results if m.variant == "run"]
    if not runs:
        return []
    ref = runs[0].fingerprints
    scope: dict[str, tuple[str, ...]] = {
        "floor": ("invoices",),
        "floor+": ("invoices", "invoice_lines", "ledger_entries", "outbox", "subscribers"),
        "run-seq": ("invoices", "invoice_lines", "ledger_entries", "outbox", "subscribers"),
    }
    out: list[str] = []
    for m in results:
        if m.variant == "run":
            if m.fingerprints != ref:
                out.append("WARNING: the real runs' rows differ between measurements")
            continue
        same = [t for t in scope[m.variant] if m.fingerprints[t] == ref[t]]
        differ = [t for t in scope[m.variant] if m.fingerprints[t] != ref[t]]
        out.append(f"{m.variant} rows vs the run's: identical {', '.join(same) or '-'}"
                   + (f"; DIFFERENT {', '.join(differ)}" if differ else ""))
    return list(dict.fromkeys(out))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (RuntimeError, psycopg.Error) as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
