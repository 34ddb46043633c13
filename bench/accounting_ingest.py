"""Accounting ingestion throughput: detail spool to database, with and without bad records.

One invocation writes a detail file like FreeRADIUS's (N sessions: a Start, K Interims with
Gigawords and a Stop each, in interleaved order), then, per database and variant, applies it
with ``radius.ingest.Ingester.run_once`` into a freshly migrated database and times it:

* **clean**: every record valid.
* **bad-1%**: the same file with one record in a hundred replaced by a record with bad content
  (a NUL inside the Acct-Session-Id, a Gigawords of 2^31, an unknown Acct-Status-Type, in
  turn), which validation sets aside in the batch's own transaction.

Every run is checked: the number of sessions and the sum of their counters equal what the
file says (minus the replaced records' sessions), and the number of records set aside.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/accounting_ingest.py                      # 20,000 sessions, both
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

from _common import cpu_model, create_database, db_url, drop_database, log
from sqlalchemy import func, select

from radbill import migrate
from radbill.db import make_engine, session_factory
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


def run_once(url: str, text: str, batch: int) -> tuple[float, float, int, int, int, int]:
    """Ingest *text* into a fresh database at *url*: wall and CPU seconds (this process:
    parsing, validation, the ORM; not the PostgreSQL server), sessions, sums, set aside."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp)
        (spool / "acct").mkdir()
        (spool / "acct" / "detail-20261124-20").write_text(text)
        ing = Ingester(session_factory(engine), spool, batch_size=batch)
        started, cpu = time.perf_counter(), time.process_time()
        ing.run_once()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with session_factory(engine)() as s:
        n, inp, out = s.execute(select(func.count(), func.sum(RadiusSession.input_octets),
                                       func.sum(RadiusSession.output_octets))).one()
    engine.dispose()
    return seconds, cpu, int(n), int(inp or 0), int(out or 0), ing.rejected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--interims", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variants", default="clean,bad-1%",
                        help="Comma-separated: clean, bad-1%% (default both).")
    args = parser.parse_args()
    # one error line per set-aside record would measure the terminal, not the ingester
    logging.getLogger("radbill.ingest").setLevel(logging.CRITICAL)

    variants = {k: v for k, v in {"clean": 0, "bad-1%": 100}.items()
                if k in args.variants.split(",")}
    files = {name: spool_text(args.sessions, args.interims, every, args.seed)
             for name, every in variants.items()}
    records = args.sessions * (args.interims + 2)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"# {records} records ({args.sessions} sessions x {args.interims + 2}), batch "
          f"{args.batch}, {args.rounds} round(s); {cpu_model()}, Python "
          f"{platform.python_version()}")
    print(f"{'backend':<11} {'variant':<7} {'median s':>9} {'records/s':>10} {'cpu s':>7} "
          f"{'cpu us/rec':>10} {'set aside':>9}")
    ok = True
    for backend in backends:
        for name, (text, sessions, inp, out, replaced) in files.items():
            times, cpus = [], []
            for _ in range(args.rounds):
                if backend == "sqlite":
                    tmp = tempfile.mkdtemp()
                    url, dbname = f"sqlite:///{tmp}/bench.db", None
                else:
                    dbname = f"radbill_ingest_bench_{secrets.token_hex(4)}"
                    url = db_url(args.pg_url, dbname).replace("postgresql://",
                                                               "postgresql+psycopg://", 1)
                    create_database(args.pg_url, dbname)
                try:
                    seconds, cpu, n, got_in, got_out, rejected = run_once(url, text,
                                                                          args.batch)
                finally:
                    if dbname:
                        drop_database(args.pg_url, dbname)
                times.append(seconds)
                cpus.append(cpu)
                log(f"{backend} {name}: {seconds:.2f} s ({cpu:.2f} s CPU), {n} sessions, "
                    f"{rejected} set aside")
                if name == "clean" and (n, got_in, got_out, rejected) != (sessions, inp, out, 0):
                    log(f"NOT VERIFIED: {(n, got_in, got_out, rejected)} != "
                        f"{(sessions, inp, out, 0)}")
                    ok = False
                if name != "clean" and (rejected != replaced or n > sessions):
                    log(f"NOT VERIFIED: set aside {rejected}, expected {replaced}")
                    ok = False
            med, cpu_med = statistics.median(times), statistics.median(cpus)
            print(f"{backend:<11} {name:<7} {med:>9.2f} {records / med:>10.0f} "
                  f"{cpu_med:>7.2f} {cpu_med / records * 1e6:>10.0f} "
                  f"{replaced if name != 'clean' else 0:>9}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
