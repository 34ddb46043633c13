"""Accounting ingestion throughput: detail spool to database, with and without bad records.

One invocation writes a detail file like FreeRADIUS's (N sessions: a Start, K Interims with
Gigawords and a Stop each, in interleaved order), then, per database and variant, applies it
with ``radius.ingest.Ingester.run_once`` into a freshly migrated database and times it:

* **clean**: every record valid.
* **bad-1%**: the same file with one record in a hundred replaced by a record with bad content
  (a NUL inside the Acct-Session-Id, a Gigawords of 2^31, an unknown Acct-Status-Type, in
  turn), which validation sets aside in the batch's own transaction.

* **metered**: the clean file with its 5,000 users as subscribers on a capped plan, so usage
  metering (usage per day and period, caps; ``usage.service.record_usage``) runs in the same
  transactions, as in production.
* **clean-ahead**, **metered-ahead**: clean and metered with the ingester reading and
  parsing the next batch on a second thread while the database applies this one
  (``Ingester(read_ahead=True)``; off by default), for comparing the two in one run.
* **rlm_sql** (PostgreSQL only): the baseline, the same records stored the way stock
  FreeRADIUS ``rlm_sql`` stores them (stock schema and queries, one autocommitted statement
  per record on 5 connections; ``bench/rlm_sql_acct.py``), timed in the same run.

Every run is checked: the number of sessions and the sum of their counters equal what the
file says (minus the replaced records' sessions), and the number of records set aside. CPU is
reported for this process (parsing, validation, SQLAlchemy, the driver) and, on PostgreSQL,
for the database server's backends of the run (from ``/proc``): the machine is shared, so the
CPU per record says more than the wall-clock rate when it is loaded. The load average is
printed before and after.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/accounting_ingest.py                      # 20,000 sessions, both
    .venv/bin/python bench/accounting_ingest.py --backend postgresql --sessions 10000 \
        --variants rlm_sql,clean,metered                             # issue 14's goal
    .venv/bin/python bench/accounting_ingest.py --sessions 500 --rounds 1   # smoke check

The code measured is whatever ``radius`` the interpreter imports: to compare with another
revision, run this script with ``PYTHONPATH`` pointing at that revision's tree (the script
only uses ``Ingester(factory, spool_dir, batch_size=...)`` and ``radbill.migrate``).
This is a benchmark, not a test: it prints a table and exits 0 unless a run did not verify.
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _common import cpu_model, cpu_seconds, create_database, db_url, drop_database, log
from sqlalchemy import func, select

from bench import rlm_sql_acct
from radbill import migrate
from radbill.db import make_engine, session_factory
from radius.detail import complete_records
from radius.ingest import Ingester
from radius.models import RadiusSession

BASE = 1795551357
G = 2**32


def record(status: str, n: int, sid: str, t: int, inp: int, out: int, extra: str = "") -> str:
    """Session *n*'s record at session time *t* (what a MikroTik sends, as FreeRADIUS logs it)."""
    return (f"Tue Nov 24 20:15:57 2026\n\tPacket-Src-IP-Address = 10.0.{n % 7}.1\n"
            f"\tAcct-Status-Type = {status}\n\tNAS-IP-Address = 10.0.{n % 7}.1\n"
            f'\tUser-Name = "user{n % 5000}"\n\tAcct-Session-Id = "{sid}"\n'
            f'\tNAS-Port-Id = "ether1-vlan{n % 4000} pppoe-server dhaka-residential"\n'
            f'\tCalling-Station-Id = "02:00:00:{n % 256:02X}:{n // 256 % 256:02X}:01"\n'
            f"\tFramed-IP-Address = 10.9.{n // 250 % 250}.{n % 250 + 1}\n"
            f"\tAcct-Input-Octets = {inp & 0xFFFFFFFF}\n\tAcct-Input-Gigawords = {inp >> 32}\n"
            f"\tAcct-Output-Octets = {out & 0xFFFFFFFF}\n"
            f"\tAcct-Output-Gigawords = {out >> 32}\n\tAcct-Session-Time = {t}\n{extra}"
            f"\tTimestamp = {BASE + t}\n\n")


BAD = [
    lambda n, sid: record("Interim-Update", n, sid + "\\000x", 300, 0, 0),
    lambda n, sid: record("Interim-Update", n, sid, 300, 2**31 * G, 0),
    lambda n, sid: record("Interim-Update", n, sid, 300, 0, 0).replace(
        "Interim-Update", "Modem-Start"),
]


def spool_text(sessions: int, interims: int, bad_every: int, seed: int
               ) -> tuple[str, int, int, int, int]:
    """The file, and what it must produce: sessions, input and output sums, set aside."""
    rnd = random.Random(seed)
    # per session: its records in order; interleave sessions like a NAS would
    per: list[list[str]] = []
    totals: dict[int, tuple[int, int]] = {}
    for n in range(sessions):
        sid = f"{n:08x}"
        inp = out = 0
        recs = [record("Start", n, sid, 0, 0, 0)]
        for k in range(1, interims + 1):
            inp += rnd.randint(0, 3 * G)
            out += rnd.randint(0, 9 * G)
            recs.append(record("Interim-Update", n, sid, 300 * k, inp, out))
        recs.append(record("Stop", n, sid, 300 * interims + 30, inp, out,
                           "\tAcct-Terminate-Cause = User-Request\n"))
        per.append(recs)
        totals[n] = (inp, out)
    order = [n for n in range(sessions) for _ in per[n]]
    rnd.shuffle(order)
    cursor = [0] * sessions
    out_text: list[str] = []
    replaced = 0
    for i, n in enumerate(order):
        rec = per[n][cursor[n]]
        cursor[n] += 1
        if bad_every and i % bad_every == bad_every - 1:
            rec = BAD[replaced % len(BAD)](n, f"{n:08x}")
            replaced += 1
        out_text.append(rec)
    return "".join(out_text), len(totals), sum(v[0] for v in totals.values()), sum(
        v[1] for v in totals.values()), replaced


def backend_cpu(admin_url: str | None, dbname: str | None) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to *dbname* (empty for SQLite)."""
    if not admin_url or not dbname:
        return {}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]
    return cpu_seconds(pids)


def server_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """The CPU the backends spent between two readings (a new backend: all of it)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def run_once(url: str, text: str, batch: int, *, metered: bool = False,
             admin_url: str | None = None, dbname: str | None = None,
             read_ahead: bool = False) -> tuple[float, float, float, int, int, int, int]:
    """Ingest *text* into a fresh database at *url*: wall, process CPU and database server
    CPU seconds, sessions, sums, set aside."""
    if metered:
        from bench.usage_ingest import seed  # that module imports this one

        seed(url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp)
        (spool / "acct").mkdir()
        (spool / "acct" / "detail-20261124-20").write_text(text)
        # read_ahead only when asked: an older tree's Ingester has no such argument
        ing = Ingester(session_factory(engine), spool, batch_size=batch,
                       **({"read_ahead": True} if read_ahead else {}))
        with engine.connect():  # the pool's connection exists before the first reading
            pass
        server = backend_cpu(admin_url, dbname)
        started, cpu = time.perf_counter(), time.process_time()
        ing.run_once()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_s = server_cpu(server, backend_cpu(admin_url, dbname))
    with session_factory(engine)() as s:
        n, inp, out = s.execute(select(func.count(), func.sum(RadiusSession.input_octets),
                                       func.sum(RadiusSession.output_octets))).one()
    engine.dispose()
    return seconds, cpu, server_s, int(n), int(inp or 0), int(out or 0), ing.rejected


def run_rlm_sql(url: str, text: str, threads: int
                ) -> tuple[float, float, float, int, int, int, int]:
    """Store *text*'s records as stock rlm_sql would (the baseline), timed like
    :func:`run_once`; sums read from ``radacct``."""
    rlm_sql_acct.setup(url)
    records = [r.attrs for r in complete_records(text.encode())]
    started, cpu = time.perf_counter(), time.process_time()
    server_s = rlm_sql_acct.replay(url, records, threads)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with psycopg.connect(url) as conn:
        n, inp, out = conn.execute("SELECT count(*), sum(acctinputoctets), "
                                   "sum(acctoutputoctets) FROM radacct").fetchone() or (0, 0, 0)
    return seconds, cpu, server_s, int(n), int(inp or 0), int(out or 0), 0


VARIANTS = {"rlm_sql": 0, "clean": 0, "metered": 0, "bad-1%": 100,  # name: bad record every
            "clean-ahead": 0, "metered-ahead": 0}


def main() -> int:  # noqa: PLR0915 - one table, verified row by row
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--interims", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variants", default="rlm_sql,clean,metered,bad-1%",
                        help="Comma-separated: rlm_sql, clean, metered, bad-1%%, clean-ahead, "
                             "metered-ahead (default the first four; rlm_sql on "
                             "PostgreSQL only).")
    parser.add_argument("--rlm-threads", type=int, default=5,
                        help="rlm_sql's connections (its pool starts with 5).")
    args = parser.parse_args()
    # one error line per set-aside record would measure the terminal, not the ingester
    logging.getLogger("radbill").setLevel(logging.CRITICAL)

    wanted = args.variants.split(",")
    variants = {k: v for k, v in VARIANTS.items() if k in wanted}
    files = {every: spool_text(args.sessions, args.interims, every, args.seed)
             for every in set(variants.values())}
    records = args.sessions * (args.interims + 2)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"# {records} records ({args.sessions} sessions x {args.interims + 2}), batch "
          f"{args.batch}, {args.rounds} round(s), variants interleaved round by round; "
          f"{cpu_model()}, Python {platform.python_version()}; load average before: "
          f"{Path('/proc/loadavg').read_text().split()[0]}")
    print(f"{'backend':<11} {'variant':<14} {'median s':>9} {'records/s':>10} "
          f"{'vs rlm_sql':>10} {'cpu us/rec':>10} {'db us/rec':>9} {'set aside':>9}")
    ok = True
    for backend in backends:
        names = [n for n in variants if backend == "postgresql" or n != "rlm_sql"]
        runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:
                text, sessions, inp, out, replaced = files[variants[name]]
                if backend == "sqlite":
                    url, dbname = f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
                else:
                    dbname = f"radbill_ingest_bench_{secrets.token_hex(4)}"
                    url = db_url(args.pg_url, dbname).replace("postgresql://",
                                                               "postgresql+psycopg://", 1)
                    create_database(args.pg_url, dbname)
                try:
                    if name == "rlm_sql":
                        result = run_rlm_sql(db_url(args.pg_url, dbname), text,
                                             args.rlm_threads)
                    else:
                        result = run_once(url, text, args.batch,
                                          metered=name.startswith("metered"),
                                          admin_url=args.pg_url if dbname else None,
                                          dbname=dbname, read_ahead=name.endswith("-ahead"))
                finally:
                    if dbname:
                        drop_database(args.pg_url, dbname)
                seconds, cpu, server_s, n, got_in, got_out, rejected = result
                runs[name].append((seconds, cpu, server_s))
                log(f"{backend} {name}: {seconds:.2f} s ({cpu:.2f} s CPU, database "
                    f"{server_s:.2f} s), {n} sessions, {rejected} set aside; load "
                    f"{Path('/proc/loadavg').read_text().split()[0]}")
                if not replaced and (n, got_in, got_out, rejected) != (sessions, inp, out, 0):
                    log(f"NOT VERIFIED: {(n, got_in, got_out, rejected)} != "
                        f"{(sessions, inp, out, 0)}")
                    ok = False
                if replaced and (rejected != replaced or n > sessions):
                    log(f"NOT VERIFIED: set aside {rejected}, expected {replaced}")
                    ok = False
        base = statistics.median(r[0] for r in runs["rlm_sql"]) if runs.get("rlm_sql") else None
        for name in names:
            med = statistics.median(r[0] for r in runs[name])
            cpu_med = statistics.median(r[1] for r in runs[name])
            db_med = statistics.median(r[2] for r in runs[name])
            ratio = f"{base / med:.2f}x" if base else "-"
            db = f"{db_med / records * 1e6:.0f}" if backend == "postgresql" else "-"
            print(f"{backend:<11} {name:<14} {med:>9.2f} {records / med:>10.0f} {ratio:>10} "
                  f"{cpu_med / records * 1e6:>10.0f} {db:>9} "
                  f"{files[variants[name]][4]:>9}", flush=True)
    print(f"# load average after: {Path('/proc/loadavg').read_text().split()[0]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
