"""What usage metering costs the accounting ingester: the same detail spool applied with
metering switched off (baseline: sessions only, as before the usage part) and on (usage per
day and period, caps, in the same transactions), side by side in one run.

Every record belongs to one of 5,000 subscribers on a capped plan (the spool of
``bench/accounting_ingest.py``: a Start, K Interims with Gigawords and a Stop per session,
interleaved). The metered run is checked: the download and upload on the subscribers' days
equal the sessions' counters.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/usage_ingest.py                          # 20,000 sessions
    .venv/bin/python bench/usage_ingest.py --sessions 300 --rounds 1   # smoke check

This is a benchmark, not a test: it prints a table and exits 0 unless a run did not verify.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_model, create_database, db_url, drop_database, log
from sqlalchemy import func, insert, select

import radius.ingest
from bench.accounting_ingest import spool_text
from billing.models import Subscriber
from billing.plans import create_plan
from radbill import migrate
from radbill.db import make_engine, session_factory
from radius.ingest import Ingester
from radius.models import RadiusSession
from usage.models import UsageDay

USERS = 5000


def seed(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with session_factory(engine)() as s, s.begin():
        plan = create_plan(s, name="Capped", price="1000", currency="BDT", rate="20M/5M",
                           data_cap="1000T", fup_rate="1M/512k")
        s.execute(insert(Subscriber.__table__), [
            {"username": f"user{i}", "password_enc": "x", "service": "pppoe",
             "plan_id": plan.id, "period_start": dt.date(2026, 11, 1),
             "period_end": dt.date(2026, 12, 1)} for i in range(USERS)])
    engine.dispose()


def run_once(url: str, text: str, batch: int, metered: bool
             ) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """Ingest *text*: wall seconds, the sessions' (input, output) sums and the days'
    (upload, download) sums."""
    seed(url)
    engine = make_engine(url)
    saved = radius.ingest.usage.record_usage
    if not metered:
        radius.ingest.usage.record_usage = lambda *a, **k: set()  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spool = Path(tmp)
            (spool / "acct").mkdir()
            (spool / "acct" / "detail-20261124-20").write_text(text)
            ing = Ingester(session_factory(engine), spool, batch_size=batch)
            started = time.perf_counter()
            ing.run_once()
            seconds = time.perf_counter() - started
    finally:
        radius.ingest.usage.record_usage = saved  # type: ignore[assignment]
    with session_factory(engine)() as s:
        sess = s.execute(select(func.sum(RadiusSession.input_octets),
                                func.sum(RadiusSession.output_octets))).one()
        days = s.execute(select(func.sum(UsageDay.upload), func.sum(UsageDay.download))).one()
    engine.dispose()
    return (seconds, (int(sess[0] or 0), int(sess[1] or 0)),
            (int(days[0] or 0), int(days[1] or 0)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--interims", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("radbill").setLevel(logging.CRITICAL)
    text = spool_text(args.sessions, args.interims, 0, args.seed)[0]
    records = args.sessions * (args.interims + 2)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"# {records} records ({args.sessions} sessions x {args.interims + 2}) of {USERS} "
          f"subscribers, batch {args.batch}, {args.rounds} round(s); {cpu_model()}, Python "
          f"{platform.python_version()}")
    print(f"{'backend':<11} {'variant':<9} {'median s':>9} {'records/s':>10} {'vs base':>8}")
    ok = True
    for backend in backends:
        base = None
        for variant in ("baseline", "metered"):
            times = []
            for _ in range(args.rounds):
                if backend == "sqlite":
                    url, dbname = f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
                else:
                    dbname = f"radbill_usage_bench_{secrets.token_hex(4)}"
                    url = db_url(args.pg_url, dbname).replace("postgresql://",
                                                               "postgresql+psycopg://", 1)
                    create_database(args.pg_url, dbname)
                try:
                    seconds, sess, days = run_once(url, text, args.batch,
                                                   variant == "metered")
                finally:
                    if dbname:
                        drop_database(args.pg_url, dbname)
                times.append(seconds)
                log(f"{backend} {variant}: {seconds:.2f} s; sessions {sess}, days {days}")
                if variant == "metered" and days != sess:
                    log(f"NOT VERIFIED: days {days} != sessions {sess}")
                    ok = False
                if variant == "baseline" and days != (0, 0):
                    log("NOT VERIFIED: the baseline metered usage")
                    ok = False
            med = statistics.median(times)
            base = base or med
            print(f"{backend:<11} {variant:<9} {med:>9.2f} {records / med:>10.0f} "
                  f"{med / base:>7.2f}x", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
