"""Disk an ISP needs: 30 days of an ISP at compressed time, with and without retention, side
by side in one run.

Two PostgreSQL databases get the same rows, day by day (seeded): every subscriber logs in
``--logins`` times a day (one in ten rejected), has one accounting session a day (closed that
day, with its usage per session-day and per day), and the ISP's month spreads over the days:
one invoice notice (outbox event and SMS delivery) and one audit row per subscriber per month,
enforcement attempts for 1% of subscribers a day, and the scheduler's job runs (about 2,000 a
day whatever the size). The "retention" database runs the retention job every night (then a
plain VACUUM of the pruned tables, what autovacuum does between two nights); the baseline never
prunes. Each day prints the database sizes (``pg_database_size``) and the biggest tables.

Time is compressed, so the run keeps each kind ``--keep-days`` (default 7) to reach the steady
state within the 30 days: post-auth rows (then their day summaries), closed sessions and their
per-session-day usage (the product keeps those by month: ``RADBILL_KEEP_SESSIONS_MONTHS``),
outbox, audit, enforcement attempts, job runs. From the measured bytes per row it then works
out the steady state of the product's default settings per 10,000 subscribers.

The detail spool is measured on a sample: one day of the accounting spool (a Start, an Interim
every 5 minutes, a Stop) and the post-auth spool of ``--spool-sample`` subscribers, raw and
gzipped as retention leaves it, scaled to 10,000 subscribers.

Run from the project root::

    .venv/bin/python bench/retention.py                          # 10,000 subscribers, 30 days
    .venv/bin/python bench/retention.py --subscribers 500 --days 10 --spool-sample 50  # smoke

A benchmark, not a test: it prints tables and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import logging
import os
import random
import resource
import sys
import time
from typing import Any

from _common import cpu_model, create_database, db_url, drop_database, log
from sqlalchemy import Engine, insert, text

from billing.models import EnforcementRequest, Subscriber
from billing.plans import create_plan
from coa.models import EnforcementAttempt
from notify.models import Outbox
from radbill import migrate
from radbill.audit import AuditLog
from radbill.db import make_engine, session_factory
from radbill.ops import JobRun
from radius.models import PostAuth, RadiusSession
from retention import service
from retention.policy import Policy
from usage.models import UsageDay, UsageSessionDay

START = dt.date(2026, 10, 1)
TABLES = ("radius_postauth", "radius_postauth_days", "radius_sessions", "usage_session_days",
          "usage_days", "outbox", "notify_deliveries", "audit_log", "enforcement_attempts",
          "job_runs")
MB = 1024 * 1024


def seed(engine: Engine, subscribers: int) -> None:
    migrate.upgrade(engine)
    with session_factory(engine)() as s, s.begin():
        plan = create_plan(s, name="Home", price="1000", currency="BDT", rate="20M/5M")
        s.execute(insert(Subscriber.__table__), [
            {"username": f"user{i}", "password_enc": "x", "service": "pppoe",
             "plan_id": plan.id, "period_start": START, "period_end": START}
            for i in range(subscribers)])
        s.execute(insert(EnforcementRequest.__table__), [
            {"subscriber_id": 1, "action": "suspend", "reason": "bench", "status": "done"}])


def at(day: dt.date, seconds: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def day_rows(day: dt.date, n: int, subscribers: int, logins: int, seed: int
             ) -> dict[Any, list[dict[str, Any]]]:
    """The rows day *n* (date *day*) writes, the same for both databases."""
    rnd = random.Random(seed * 1000 + n)
    rows: dict[Any, list[dict[str, Any]]] = {}
    rows[PostAuth] = [
        {"at": at(day, rnd.randrange(86_400)), "username": f"user{i}", "nas_ip": f"10.0.{i % 7}.1",
         "calling_station_id": f"02:00:00:{i % 256:02X}:{i // 256 % 256:02X}:01",
         "decision": "reject" if rnd.random() < 0.1 else "accept",
         "reason": "active", "reply_message": None, "auth_method": "MSCHAPv2",
         "rate_limit": "20M/5M"} for i in range(subscribers) for _ in range(logins)]
    for r in rows[PostAuth]:
        if r["decision"] == "reject":
            r["reason"], r["reply_message"] = "bad-password", "Wrong password"
    rows[RadiusSession] = []
    rows[UsageSessionDay] = []
    rows[UsageDay] = []
    for i in range(subscribers):
        start = rnd.randrange(3600)
        inp, out = rnd.randrange(2**31), rnd.randrange(2**34)
        sid = f"{n:04x}{i:08x}"
        rows[RadiusSession].append({
            "nas_ip": f"10.0.{i % 7}.1", "acct_session_id": sid, "username": f"user{i}",
            "subscriber_id": i + 1, "framed_ip": f"10.9.{i // 250 % 250}.{i % 250 + 1}",
            "calling_station_id": f"02:00:00:{i % 256:02X}:{i // 256 % 256:02X}:01",
            "nas_port_id": f"ether1-vlan{i % 4000} pppoe-server dhaka-residential",
            "started_at": at(day, start), "updated_at": at(day, 86_000),
            "stopped_at": at(day, 86_000), "session_time": 86_000 - start,
            "input_octets": inp, "output_octets": out, "input_packets": inp // 900,
            "output_packets": out // 1200, "terminate_cause": "User-Request", "state_seq": 0})
        rows[UsageSessionDay].append({
            "nas_ip": f"10.0.{i % 7}.1", "acct_session_id": sid, "username": f"user{i}",
            "day": day, "subscriber_id": i + 1, "input_octets": inp, "output_octets": out,
            "session_time": 86_000 - start})
        rows[UsageDay].append({"subscriber_id": i + 1, "day": day, "download": out,
                               "upload": inp, "seconds": 86_000 - start})
    # the month's invoice notices and renewals, spread over the days (1/30 of them a day)
    billed = [i for i in range(subscribers) if i % 30 == n % 30]
    rows[Outbox] = [{"kind": "invoice_issued", "subscriber_id": i + 1,
                     "dedupe_key": f"invoice:{n}:{i}", "event_on": day,
                     "payload": {"username": f"user{i}", "invoice": f"INV-{n:03d}{i:06d}",
                                 "amount": "1000.00", "currency": "BDT",
                                 "due_on": str(day), "payment_link": "https://isp.example/p"},
                     "created_at": at(day, 900), "sent_at": at(day, 960)} for i in billed]
    rows[AuditLog] = [{"at": at(day, 900), "actor": "scheduler", "action": "invoice.issue",
                       "entity": "subscriber", "entity_id": str(i + 1), "before": None,
                       "after": {"invoice": f"INV-{n:03d}{i:06d}", "total": "1000.00",
                                 "period": [str(day), str(day + dt.timedelta(days=30))]},
                       "reason": None} for i in billed]
    rows[EnforcementAttempt] = [
        {"request_id": 1, "subscriber_id": i + 1, "nas_ip": f"10.0.{i % 7}.1",
         "acct_session_id": f"{n:04x}{i:08x}", "session_pk": None, "channel": "coa",
         "outcome": "ack", "error_cause": None, "detail": None, "sends": 1,
         "latency_ms": 12.5, "at": at(day, 1000 + i)}
        for i in range(subscribers) if i % 100 == n % 100]
    rows[JobRun] = [{"job": job, "started_at": at(day, k * every), "finished_at":
                     at(day, k * every + 1), "status": "ok", "counts": {"closed": 0},
                     "error": None}
                    for job, every in (("stale-sessions", 300), ("payment-poll", 60),
                                       ("olt-poll", 300))
                    for k in range(86_400 // every)]
    return rows


def deliveries(engine: Engine, day: dt.date, n: int) -> None:
    """One SMS per invoice notice of the day (its outbox ids differ per database)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO notify_deliveries (outbox_id, subscriber_id, kind, channel, recipient,"
            " idempotency_key, provider_id, status, dead_letter, body, encoding, segments, cost,"
            " currency, attempts, created_at, next_attempt_at, sent_at, delivered_at) "
            "SELECT id, subscriber_id, kind, 'sms', '8801700000000', 'd:' || dedupe_key, "
            "substr(md5(dedupe_key), 1, 20), 'delivered', false, "
            "'Your invoice of BDT 1000.00 is due. Pay: https://isp.example/p', 'gsm7', 1, "
            "0.35, 'BDT', 1, created_at, created_at, sent_at, sent_at "
            "FROM outbox WHERE event_on = :day"), {"day": day})


def insert_day(engine: Engine, rows: dict[Any, list[dict[str, Any]]], day: dt.date,
               n: int) -> None:
    with engine.begin() as conn:
        for model, values in rows.items():
            for i in range(0, len(values), 5000):
                conn.execute(insert(model.__table__), values[i:i + 5000])
    deliveries(engine, day, n)


def sizes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        out = {t: int(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t})
                      .scalar_one()) for t in TABLES}
        out["database"] = int(conn.execute(
            text("SELECT pg_database_size(current_database())")).scalar_one())
        counts = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608 - our table names
                  for t in TABLES}
    return out | {f"rows:{t}": c for t, c in counts.items()}


def prune(engine: Engine, policy: Policy, day: dt.date, keep_days: int) -> tuple[float, float]:
    """The nightly job (sessions by day here: compressed time), then what autovacuum does."""
    from radius.retention import CLOSED_SESSIONS
    from usage.retention import SESSION_DAYS

    factory = session_factory(engine)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    now = at(day, 86_399) - dt.timedelta(hours=6)  # 23:59:59 in Dhaka
    report = service.run(factory, policy, now)
    slow = sorted(report.kinds, key=lambda k: -k.seconds)[:3]
    log("pruned " + ", ".join(f"{k.kind} {k.rows} rows {k.seconds:.1f} s" for k in slow))
    cutoff = day - dt.timedelta(days=keep_days - 1)
    for kind, before in ((CLOSED_SESSIONS, at(cutoff, 0) - dt.timedelta(hours=6)),
                         (SESSION_DAYS, cutoff)):
        while True:
            with factory() as s, s.begin():
                if kind.delete(s, before, policy.batch) < policy.batch:
                    break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for t in TABLES:
            conn.execute(text(f"VACUUM {t}"))
    return wall, cpu


def spool_sample(subscribers: int, logins: int) -> tuple[int, int, int, int]:
    """One day of the accounting and post-auth detail files of *subscribers*: raw and gzip
    bytes of each."""
    from bench.accounting_ingest import spool_text

    acct = spool_text(subscribers, 287, 0, 1)[0].encode()
    rnd = random.Random(2)
    post = "".join(
        f"Tue Nov 24 20:15:57 2026\n\tPacket-Src-IP-Address = 10.0.{i % 7}.1\n"
        f'\tReply-Message = "Welcome"\n\tMikrotik-Rate-Limit = "20M/5M"\n'
        f'\tRadbill-User-Name = "user{i}"\n\tRadbill-NAS-Address = 10.0.{i % 7}.1\n'
        f'\tRadbill-Calling-Station = "02:00:00:{i % 256:02X}:{i // 256 % 256:02X}:01"\n'
        f'\tRadbill-Decision = "accept"\n\tRadbill-Reason = "active"\n'
        f'\tRadbill-Auth-Method = "MSCHAPv2"\n\tTimestamp = {1795551357 + rnd.randrange(86_400)}'
        "\n\n" for i in range(subscribers) for _ in range(logins)).encode()
    return len(acct), len(gzip.compress(acct, 6)), len(post), len(gzip.compress(post, 6))


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> int:  # noqa: PLR0915 - one report
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--logins", type=int, default=4, help="post-auth rows per subscriber-day")
    ap.add_argument("--keep-days", type=int, default=7)
    ap.add_argument("--spool-sample", type=int, default=500)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--pg-url", default=os.environ.get(
        "RADBILL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    keep = args.keep_days
    policy = Policy(postauth_days=keep, postauth_summary_days=3 * keep, sessions_months=0,
                    outbox_days=keep, audit_days=keep, enforcement_days=keep,
                    job_runs_days=keep, batch=5000)
    tag = f"bench_retention_{os.getpid()}"
    names = {"baseline": f"{tag}_base", "retention": f"{tag}_kept"}
    engines: dict[str, Engine] = {}
    try:
        for key, name in names.items():
            create_database(args.pg_url, name)
            engines[key] = make_engine(db_url(args.pg_url, name).replace(
                "postgresql://", "postgresql+psycopg://", 1))
            seed(engines[key], args.subscribers)
        print(f"# radbill retention: {args.subscribers:,} subscribers, {args.days} days, "
              f"{args.logins} logins per subscriber-day, kept {keep} days (compressed time); "
              f"{cpu_model()}, load {loadavg()}")
        print(f"{'day':>4} {'baseline MB':>12} {'retention MB':>13} {'postauth':>9} "
              f"{'sessions':>9} {'audit':>7} {'job runs':>9} {'prune s':>8} {'cpu s':>6}")
        per_day: list[dict[str, Any]] = []
        for n in range(args.days):
            day = START + dt.timedelta(days=n)
            rows = day_rows(day, n, args.subscribers, args.logins, args.seed)
            for engine in engines.values():
                insert_day(engine, rows, day, n)
            wall, cpu = prune(engines["retention"], policy, day, keep)
            with engines["baseline"].connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                for t in TABLES:  # the same housekeeping (nothing to reclaim there)
                    conn.execute(text(f"VACUUM {t}"))
            base, kept = sizes(engines["baseline"]), sizes(engines["retention"])
            per_day.append({"base": base, "kept": kept, "wall": wall, "cpu": cpu})
            print(f"{n + 1:>4} {base['database'] / MB:>12.1f} {kept['database'] / MB:>13.1f} "
                  f"{kept['rows:radius_postauth']:>9,} {kept['rows:radius_sessions']:>9,} "
                  f"{kept['rows:audit_log']:>7,} {kept['rows:job_runs']:>9,} {wall:>8.1f} "
                  f"{cpu:>6.1f}", flush=True)
        last = per_day[-1]
        print("\n# per table on the last day (MB): baseline, retention")
        for t in TABLES:
            print(f"{t:<22} {last['base'][t] / MB:>9.1f} {last['kept'][t] / MB:>9.1f}")
        # bytes per row, from the baseline's last day (nothing deleted there)
        per_row = {t: last["base"][t] / max(1, last["base"][f"rows:{t}"]) for t in TABLES}
        scale = 10_000 / args.subscribers
        rows_day = {t: last["base"][f"rows:{t}"] / args.days * scale for t in TABLES}
        rows_day["job_runs"] = last["base"]["rows:job_runs"] / args.days  # whatever the size
        days_kept = last["kept"]["rows:radius_postauth_days"]
        per_row["radius_postauth_days"] = last["kept"]["radius_postauth_days"] / max(1, days_kept)
        print("\n# per 10,000 subscribers: rows a day, bytes a row (with indexes), MB a day")
        for t in TABLES:
            if rows_day[t]:
                print(f"{t:<22} {rows_day[t]:>9,.0f} {per_row[t]:>7,.0f} "
                      f"{rows_day[t] * per_row[t] / MB:>8.1f}")
        growth = sum(rows_day[t] * per_row[t] for t in TABLES) / MB
        print(f"{'no retention: grows':<22} {growth:,.0f} MB a day, "
              f"{growth * 365 / 1024:,.1f} GB a year")
        # the product's defaults at steady state (30 days of post-auth, 6 months of sessions,
        # 180 of outbox, 730 of audit, 90 of attempts and job runs, 400 of day summaries)
        defaults = {"radius_postauth": 30, "radius_sessions": 183, "usage_session_days": 183,
                    "outbox": 180, "notify_deliveries": 180, "audit_log": 730,
                    "enforcement_attempts": 90, "job_runs": 90}
        summary_row = per_row["radius_postauth_days"]
        steady = {t: rows_day[t] * per_row[t] * d for t, d in defaults.items()}
        # one summary per subscriber who logged in that day (here: every one, every day)
        steady["radius_postauth_days"] = 10_000 * 400 * summary_row
        steady_growth = rows_day["usage_days"] * per_row["usage_days"]
        print("\n# steady state with the default settings, per 10,000 subscribers (MB)")
        for t, v in sorted(steady.items(), key=lambda kv: -kv[1]):
            print(f"{t:<22} {v / MB:>9,.0f}")
        print(f"{'total':<22} {sum(steady.values()) / MB:>9,.0f}   plus usage_days (kept): "
              f"{steady_growth * 365 / MB:,.0f} MB a year")
        a_raw, a_gz, p_raw, p_gz = spool_sample(args.spool_sample, args.logins)
        k = 10_000 / args.spool_sample
        print(f"\n# detail spool per 10,000 subscribers a day (sample of {args.spool_sample}, "
              "an Interim every 5 minutes)")
        print(f"accounting {a_raw * k / MB:,.0f} MB raw, {a_gz * k / MB:,.0f} MB gzipped "
              f"({a_raw / a_gz:.1f}x); post-auth {p_raw * k / MB:,.1f} MB raw, "
              f"{p_gz * k / MB:,.1f} MB gzipped")
        print(f"spool kept 7 days: before {7 * (a_raw + p_raw) * k / MB / 1024:,.1f} GB "
              f"(raw), now {7 * (a_gz + p_gz) * k / MB / 1024:,.2f} GB (gzipped once applied)")
        print(f"\n# load average at the end: {loadavg()}; "
              f"bench CPU {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f} s user")
    finally:
        for engine in engines.values():
            engine.dispose()
        if not args.keep:
            for name in names.values():
                drop_database(args.pg_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
