"""``radbill subscriber import`` at scale, on PostgreSQL: the set-based write against the
services row by row and against the bare ``COPY`` of the subscriber rows, in one run.

One invocation builds a seed database (``radbill db upgrade``, the ISP, three plans), writes a
CSV of ``--rows`` subscribers with a realistic mix (see :func:`make_csv`: some suspended or
disabled, some opening balances owed or in credit, static IPs and pools, phones, e-mails,
MACs, renewal dates), then measures each variant on its own fresh copy of the seed database
(``CREATE DATABASE ... TEMPLATE``), so every variant starts from identical data:

* **import**: :func:`billing.imports.import_csv` on the whole file in one transaction, as
  ``radbill subscriber import FILE.csv`` runs it (read, check every row, write, commit).
* **import (first N)** and **one-by-one (first N)**: the first ``--baseline-rows`` rows of
  the same file, set-based and with ``one_by_one=True`` (statuses and opening balances through
  their services row by row, the path before this benchmark), side by side.
* **floor**: ``COPY`` of the same subscriber rows (passwords encrypted, nothing checked, no
  audit, no ledger): what writing the subscribers alone costs.

Every import is checked afterwards: the subscribers, invoices, ledger entries, enforcement
requests and audit rows it must have written are counted. The issue's goal: 100,000 rows in
under 60 s.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/subscriber_import.py                  # 100,000 rows (a few minutes)
    .venv/bin/python bench/subscriber_import.py --rows 2000 --baseline-rows 500   # smoke check

A benchmark, not a test: it prints a table and exits 0 unless a variant failed or did not
verify.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import ipaddress
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from _common import cpu_model, create_database, drop_database, log, radbill_db_upgrade

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PLANS = (("Home-10", "800", "10M/10M"), ("Home-30", "1200", "30M/30M"),
         ("Biz-100", "5000", "100M/100M"))
TIMEZONE = "Asia/Dhaka"
HEADER = ("username", "password", "plan", "service", "name", "phone", "email", "mac", "ip",
          "pool", "status", "opening_balance", "next_renewal")


def radbill_env(db_url: str, data_dir: Path) -> dict[str, str]:
    """The environment for radbill's CLI: this run's database and data directory only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env.update({"RADBILL_DATABASE_URL": db_url.replace("postgresql://",
                                                       "postgresql+psycopg://", 1),
                "RADBILL_DATA_DIR": str(data_dir)})
    return env


def radbill(env: dict[str, str], *args: str) -> None:
    """Run ``radbill ARGS`` with *env*; raise on failure."""
    proc = subprocess.run([sys.executable, "-m", "radbill.cli", *args], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"radbill {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")


def make_csv(path: Path, rows: int, rng: random.Random, today: dt.date) -> Counter[str]:
    """A file of *rows* subscribers as an ISP moving from another system has them: 85%
    active, 10% suspended, 5% disabled; 20% owing an opening balance, 5% in credit; 20% a
    static IP, 50% a pool, the rest the plan's; most with a phone, some an e-mail or a MAC;
    a third renewing on a day of the next month. Returns what it holds, by kind."""
    kinds: Counter[str] = Counter()
    base_ip = int(ipaddress.IPv4Address("10.128.0.1"))
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(rows):
            roll = rng.random()
            status = "active" if roll < 0.85 else "suspended" if roll < 0.95 else "disabled"
            roll = rng.random()
            balance = (f"{rng.randrange(100, 500_000) / 100:.2f}" if roll < 0.20 else
                       f"-{rng.randrange(1, 100_000) / 100:.2f}" if roll < 0.25 else "")
            roll = rng.random()
            ip = str(ipaddress.IPv4Address(base_ip + i)) if roll < 0.20 else ""
            pool = rng.choice(("pool-north", "pool-south")) if 0.20 <= roll < 0.70 else ""
            renew = (str(today + dt.timedelta(days=rng.randrange(1, 31)))
                     if rng.random() < 0.33 else "")
            mac = (":".join(f"{rng.randrange(256):02X}" for _ in range(6))
                   if rng.random() < 0.30 else "")
            out.writerow([
                f"sub{i:07d}", secrets.token_urlsafe(9), rng.choice(PLANS)[0],
                "hotspot" if rng.random() < 0.1 else "pppoe", f"Subscriber {i}",
                f"+8801{rng.randrange(10**8, 10**9)}" if rng.random() < 0.9 else "",
                f"sub{i}@example.com" if rng.random() < 0.4 else "", mac, ip, pool, status,
                balance, renew])
            kinds[status] += 1
            kinds["owed"] += balance != "" and not balance.startswith("-")
            kinds["credit"] += balance.startswith("-")
    return kinds


def first_rows(src: Path, dest: Path, rows: int) -> Counter[str]:
    """The header and the first *rows* rows of *src* into *dest*; what they hold, by kind."""
    kinds: Counter[str] = Counter()
    with src.open(encoding="utf-8", newline="") as fin, \
            dest.open("w", encoding="utf-8", newline="") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        writer.writerow(next(reader))
        for _, row in zip(range(rows), reader, strict=False):
            writer.writerow(row)
            kinds[row[10]] += 1
            kinds["owed"] += row[11] != "" and not row[11].startswith("-")
            kinds["credit"] += row[11].startswith("-")
    return kinds


@dataclass
class Result:
    """One variant."""

    name: str
    rows: int
    wall: float
    cpu: float  # this process (parsing, checks, encryption, statement building)
    backend_cpu: float  # the PostgreSQL backend of the import's connection
    verified: str


def backend_cpu(conn: psycopg.Connection) -> float:
    """CPU seconds used so far by *conn*'s PostgreSQL backend (read from ``/proc``)."""
    from _common import cpu_seconds

    pid = conn.info.backend_pid
    return cpu_seconds([pid]).get(pid, 0.0)


def run_import(url: str, data_dir: Path, path: Path, kinds: Counter[str], *,
               one_by_one: bool) -> tuple[float, float, float, str]:
    """Import *path* into the database at *url* in one transaction; wall, CPU and backend CPU
    seconds, and what the check found."""
    from sqlalchemy import func, select

    from billing import imports
    from billing.models import EnforcementRequest, Invoice, LedgerEntry, Subscriber
    from radbill.audit import AuditLog
    from radbill.config import Settings
    from radbill.crypto import secret_box
    from radbill.db import engine_from_settings, session_factory

    settings = Settings.from_env(radbill_env(url, data_dir))
    box = secret_box(settings, create=False)
    engine = engine_from_settings(settings)
    try:
        with session_factory(engine)() as session:
            raw = session.connection().connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            b0, c0, t0 = backend_cpu(raw), time.process_time(), time.perf_counter()
            with path.open(encoding="utf-8-sig", newline="") as fh:
                report = imports.import_csv(session, box, fh, actor="bench",
                                            one_by_one=one_by_one)
            if report.errors:
                raise RuntimeError(f"{path}: {report.errors[:5]}")
            session.commit()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            bcpu = backend_cpu(raw) - b0
        with session_factory(engine)() as session:
            def count(model: type, *where: object) -> int:
                return int(session.scalar(select(func.count()).select_from(model)
                                          .where(*where)) or 0)
            rows = sum(kinds[s] for s in ("active", "suspended", "disabled"))
            found = {
                "subscribers": count(Subscriber),
                "invoices": count(Invoice),
                "ledger entries": count(LedgerEntry),
                "enforcement requests": count(EnforcementRequest),
                "import audit rows": count(AuditLog, AuditLog.actor == "bench"),
            }
    finally:
        engine.dispose()
    changed = kinds["suspended"] + kinds["disabled"]
    expected = {
        "subscribers": rows, "invoices": kinds["owed"],
        "ledger entries": kinds["owed"] + kinds["credit"], "enforcement requests": changed,
        # create, status, billing pause (disabled always; suspended: the ISP's default
        # bills while suspended), the import itself
        "import audit rows": rows + changed + kinds["disabled"] + 1,
    }
    wrong = [f"{k} {found[k]} (expected {v})" for k, v in expected.items() if found[k] != v]
    if wrong:
        raise RuntimeError(f"{path}: " + "; ".join(wrong))
    return wall, cpu, bcpu, "ok: " + ", ".join(f"{v:,} {k}" for k, v in found.items())


def run_floor(url: str, data_dir: Path, path: Path) -> tuple[float, float, float, str]:
    """``COPY`` the file's subscribers (passwords encrypted) and nothing else."""
    from radbill.config import Settings
    from radbill.crypto import secret_box
    from radbill.db import utcnow

    settings = Settings.from_env(radbill_env(url, data_dir))
    box = secret_box(settings, create=False)
    with psycopg.connect(url) as conn:
        plans = dict(conn.execute("SELECT name, id FROM plans").fetchall())
        b0, c0, t0 = backend_cpu(conn), time.process_time(), time.perf_counter()
        now = utcnow()
        columns = ("username, password_enc, service, status, plan_id, simultaneous_use, "
                   "fup_throttled, static_ip, ip_pool, mac_address, full_name, phone, email, "
                   "auth_version, created_at, updated_at")
        with path.open(encoding="utf-8", newline="") as fh, conn.cursor() as cur, \
                cur.copy(f"COPY subscribers ({columns}) FROM STDIN") as cp:
            reader = csv.reader(fh)
            next(reader)
            n = 0
            for r in reader:
                cp.write_row((r[0], box.encrypt(r[1]), r[3], r[10], plans[r[2]], 1, False,
                              r[8] or None, r[9] or None, r[7] or None, r[4] or None,
                              r[5] or None, r[6] or None, 1, now, now))
                n += 1
        conn.commit()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return wall, cpu, backend_cpu(conn) - b0, f"ok: {n:,} rows copied"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=100_000, help="rows in the file (<= 1,000,000)")
    p.add_argument("--baseline-rows", type=int, default=10_000,
                   help="rows imported both ways, side by side (<= --rows)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the databases and the files")
    args = p.parse_args(argv)
    if not 1 <= args.rows <= 1_000_000:
        p.error("--rows: between 1 and 1,000,000")
    if not 1 <= args.baseline_rows <= args.rows:
        p.error("--baseline-rows: between 1 and --rows")
    return args


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="radbill-importbench-"))
    suffix = secrets.token_hex(4)
    seed_db = f"radbill_import_seed_{suffix}"
    dbs: list[str] = []
    results: list[Result] = []
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"work directory {work}; seed {seed}")
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(subprocess.run, ["rm", "-rf", str(work)], check=False)
        try:
            url = create_database(args.pg_url, seed_db)
            dbs.append(seed_db)
            data_dir = work / "data"
            env = radbill_env(url, data_dir)
            radbill_db_upgrade(env, PROJECT_ROOT)
            radbill(env, "isp", "set", "--name", "Bench Fiber", "--timezone", TIMEZONE)
            for name, price, rate in PLANS:
                radbill(env, "plan", "create", name, "--price", price, "--currency", "BDT",
                        "--rate", rate)
            today = dt.datetime.now(ZoneInfo(TIMEZONE)).date()  # the import's "today"
            full = work / "subscribers.csv"
            t0 = time.perf_counter()
            kinds = make_csv(full, args.rows, rng, today)
            log(f"wrote {full} ({args.rows:,} rows, {time.perf_counter() - t0:.1f} s): "
                + ", ".join(f"{v:,} {k}" for k, v in sorted(kinds.items())))
            part = work / "first.csv"
            part_kinds = first_rows(full, part, args.baseline_rows)

            def fresh(label: str) -> str:
                name = f"radbill_import_{label}_{suffix}"
                dbs.append(name)
                return create_database(args.pg_url, name, seed_db)

            variants = [
                ("one-by-one (first N)", args.baseline_rows, lambda u: run_import(
                    u, data_dir, part, part_kinds, one_by_one=True)),
                ("import (first N)", args.baseline_rows, lambda u: run_import(
                    u, data_dir, part, part_kinds, one_by_one=False)),
                ("floor: COPY subscribers", args.rows, lambda u: run_floor(u, data_dir, full)),
                ("import", args.rows, lambda u: run_import(
                    u, data_dir, full, kinds, one_by_one=False)),
            ]
            for i, (name, rows, fn) in enumerate(variants):
                db = fresh(str(i))
                log(f"{name}: {rows:,} rows")
                wall, cpu, bcpu, verified = fn(db)
                results.append(Result(name, rows, wall, cpu, bcpu, verified))
                log(f"  {wall:.1f} s wall, {cpu:.1f} s CPU here, {bcpu:.1f} s backend CPU; "
                    f"{verified}")
        except (RuntimeError, psycopg.Error) as exc:
            log(f"error: {exc}")
            return 1
        finally:
            if not args.keep:
                for name in dbs:
                    drop_database(args.pg_url, name)
    with psycopg.connect(args.pg_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    out = ["", f"Subscriber import on PostgreSQL {row[0] if row else '?'}: {args.rows:,} rows, "
           f"first N = {args.baseline_rows:,}; each variant on a fresh copy of the same "
           "database", "",
           f"{'variant':<26} {'rows':>9} {'wall s':>8} {'rows/s':>9} {'CPU s':>7} "
           f"{'backend CPU s':>13}"]
    for r in results:
        out.append(f"{r.name:<26} {r.rows:>9,} {r.wall:>8.2f} {r.rows / r.wall:>9,.0f} "
                   f"{r.cpu:>7.2f} {r.backend_cpu:>13.2f}")
    by = {r.name: r for r in results}
    one, setb = by["one-by-one (first N)"], by["import (first N)"]
    whole, floor = by["import"], by["floor: COPY subscribers"]
    out += ["",
            f"first {args.baseline_rows:,} rows: set-based {setb.wall:.2f} s against one by one "
            f"{one.wall:.2f} s ({one.wall / setb.wall:.1f}x faster)",
            f"{args.rows:,} rows: {whole.wall:.1f} s"
            + (f" (goal < 60 s: {'met' if whole.wall < 60 else 'NOT met'}), "
               if args.rows == 100_000 else " (the goal, < 60 s, is for 100,000 rows), ")
            +
            f"{whole.wall / floor.wall:.1f}x the bare COPY of the subscribers ({floor.wall:.1f} s)",
            "", f"machine: {os.cpu_count()} CPUs, {cpu_model()}",
            f"load average at start: {load_start}; at the end: "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()),
            f"seed {seed}"]
    print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
