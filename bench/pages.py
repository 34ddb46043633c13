"""The operator's pages at a million subscribers, on PostgreSQL.

One invocation builds a database (``radbill db upgrade``, three postpaid monthly plans, ten
NAS) and fills it set-based (``INSERT ... SELECT FROM generate_series``, no ORM loop):

* N subscribers (97% active, 2% suspended, 0.5% disabled, 0.5% terminated), names and phones;
* for each, last month's invoice (issued 32 days ago, due 25 days ago) with its ledger charge,
  paid 28 days ago (a payment and its ledger credit) except for one in ten (``--overdue``):
  those are overdue; and this month's invoice (issued 2 days ago, due in 5 days), open;
* M accounting sessions (``--sessions``) spread over the subscribers, the ten NAS and the last
  60 days; the newest ones, one per subscriber for 60% of them, still open.

Then it times each page the operator opens, through the admin app (Flask's test client: the
whole request, template included, no network), logged in as an admin (the API with a token),
and ``radbill billing overdue --json`` in-process (click's runner, the interpreter's start
excluded). Each is asked once to warm up, then ``--repeat`` times; the table prints the median
and the fastest (the machine is shared, the median is the figure). Every answer is checked: HTTP
200, and the dashboard, the API and the command count exactly the overdue subscribers made.

Baselines measured in the same run: the NAS filter as it was (every username the NAS has
seen fetched, then IN lists of 500), the overdue report as it was first (each overdue
subscriber settled one by one: ``billing.ledger.settle``) over ``--baseline-sample`` of them,
with the time it takes per subscriber, the dashboard's overdue figures as they were until
migration 0023 (recomputed set-based from the whole ledger, as a past day still is), and the
search as it was (``lower(column) LIKE '%...%'``, no trigram index usable).
``radbill billing overdue-check`` (every document's kept amount against the ledger) is
timed once.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/pages.py                                  # 1,000,000 / 10,000,000
    .venv/bin/python bench/pages.py --subscribers 2000 --sessions 20000 --repeat 2  # smoke

A benchmark, not a test: it prints a table and exits 0 unless an answer did not verify.
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
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import (
    cpu_model,
    create_database,
    db_url,
    drop_database,
    log,
    radbill_db_upgrade,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PLANS = (("Home10", "800"), ("Home20", "1000"), ("Biz50", "3000"))
NAS_COUNT = 10
GOAL_MS = 500.0


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def nas_ip(i: int) -> str:
    return f"10.0.{i}.1"


def seed(conn: Any, count: int, sessions: int, overdue_every: int) -> None:
    """Fill the migrated database (plans and NAS already made) set-based."""
    today = conn.execute("SELECT (now() AT TIME ZONE 'Asia/Dhaka')::date").fetchone()[0]
    plans = [r[0] for r in conn.execute("SELECT id FROM plans ORDER BY id")]
    token = "bench-not-a-real-ciphertext"
    t0 = time.perf_counter()
    conn.execute(f"""
        INSERT INTO subscribers (username, password_enc, service, status, plan_id,
            simultaneous_use, fup_throttled, auth_version, anchor_day, period_start,
            period_end, suspended_for_nonpayment, dunning_throttled, setup_fee_charged,
            created_at, updated_at, full_name, phone)
        SELECT 'u' || lpad(i::text, 7, '0'), %(token)s, 'pppoe',
               (CASE WHEN i %% 200 = 7 THEN 'disabled' WHEN i %% 200 = 9 THEN 'terminated'
                     WHEN i %% 50 = 3 THEN 'suspended' ELSE 'active' END),
               (ARRAY{plans})[1 + i %% {len(plans)}], 1, false, 0, 1,
               %(today)s::date - 2, %(today)s::date + 28, false, false, true,
               now() - interval '400 days', now(),
               'Subscriber ' || md5(i::text), '01' || lpad(i::text, 9, '0')
          FROM generate_series(1, %(count)s) i""",  # noqa: S608 - ids from this database
                 {"token": token, "today": today, "count": count})
    log(f"subscribers: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    # last month's invoice for everybody, this month's for everybody
    conn.execute("ALTER TABLE invoices DISABLE TRIGGER USER")
    conn.execute(f"""
        INSERT INTO invoices (number, kind, subscriber_id, username, plan_name, period_start,
            period_end, issued_on, due_on, currency, subtotal, tax_percent, tax, duty, total,
            status, paid_on, outstanding, created_at, previous_balance, amount_due, buyer_name)
        SELECT 'INV-' || lpad((s.id * 2 - m)::text, 8, '0'), 'period', s.id, s.username,
               p.name,
               %(today)s::date - 32 + 30 * m, %(today)s::date - 2 + 30 * m,
               %(today)s::date - 32 + 30 * m, %(today)s::date - 25 + 30 * m, 'BDT',
               p.price, 0, 0, 0, p.price,
               (CASE WHEN m = 0 AND s.id %% {overdue_every} <> 0 THEN 'paid'
                     ELSE 'open' END),
               CASE WHEN m = 0 AND s.id %% {overdue_every} <> 0
                    THEN %(today)s::date - 28 END,
               (CASE WHEN m = 0 AND s.id %% {overdue_every} <> 0 THEN 0 ELSE p.price END),
               now(), 0, p.price, s.full_name
          FROM subscribers s JOIN plans p ON p.id = s.plan_id
          CROSS JOIN generate_series(0, 1) m""",  # noqa: S608
                 {"today": today})
    # the kept overdue figures (0029) filled once, as the upgrade does, not by the invoices'
    # triggers (disabled for the bulk load, as the sessions' indexes are)
    conn.execute("ALTER TABLE invoices ENABLE TRIGGER USER")
    fill_overdue_figures(conn)
    conn.execute("""
        INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                                    currency, invoice_id, description, actor)
        SELECT subscriber_id, now(), issued_on, 'charge', total, currency, id,
               'Invoice ' || number, 'system' FROM invoices""")
    conn.execute("""
        INSERT INTO payments (subscriber_id, amount, currency, method, reference, received_at,
                              actor)
        SELECT subscriber_id, total, currency, 'cash', 'R' || id,
               (paid_on::timestamp + interval '10 hours') AT TIME ZONE 'UTC', 'bench'
          FROM invoices WHERE status = 'paid'""")
    conn.execute("""
        INSERT INTO ledger_entries (subscriber_id, posted_at, effective_on, kind, amount,
                                    currency, payment_id, description, actor)
        SELECT subscriber_id, received_at, (received_at AT TIME ZONE 'UTC')::date, 'payment',
               -amount, currency, id, 'Payment ' || reference, 'bench' FROM payments""")
    # what recording each payment keeps (0027): the day's total per currency and method
    conn.execute("""
        INSERT INTO payment_day_totals (day, currency, method, amount, payments)
        SELECT (received_at AT TIME ZONE 'Asia/Dhaka')::date, currency, method, sum(amount),
               count(*) FROM payments GROUP BY 1, 2, 3""")
    conn.execute("SELECT setval(pg_get_serial_sequence('invoices', 'id'), "
                 "(SELECT max(id) FROM invoices))")
    conn.execute("UPDATE isp_settings SET next_invoice_number = %s", (count * 2 + 1,))
    log(f"invoices, ledger, payments: {time.perf_counter() - t0:.1f} s")
    seed_sessions(conn, count, sessions)
    t0 = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    log(f"vacuum analyze: {time.perf_counter() - t0:.1f} s")


def fill_overdue_figures(conn: Any) -> None:
    """billing.owed.fill on the psycopg connection (the same statements)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from billing import owed

    engine = create_engine("postgresql+psycopg://", creator=lambda: conn,
                           poolclass=StaticPool)
    with engine.connect() as sa_conn:
        owed.fill(sa_conn)


def seed_sessions(conn: Any, count: int, sessions: int) -> None:
    """The accounting sessions, loaded without their indexes, which are then built again
    (how a bulk load is done: far faster than maintaining ten indexes row by row)."""
    t0 = time.perf_counter()
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
        "'radius_sessions'::regclass AND contype = 'u'").fetchall()
    for name, _ in constraints:
        conn.execute(f'ALTER TABLE radius_sessions DROP CONSTRAINT "{name}"')
    indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
                           "'radius_sessions' AND indexname NOT LIKE 'pk_%'").fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    online = int(count * 0.6)
    conn.execute(f"""
        INSERT INTO radius_sessions (nas_ip, acct_session_id, username, subscriber_id,
            started_at, updated_at, stopped_at, session_time, input_octets, output_octets,
            input_packets, output_packets, terminate_cause, state_seq)
        SELECT '10.0.' || (k %% {NAS_COUNT}) || '.1', to_hex(k), 'u' || lpad(u::text, 7, '0'), u,
               at, at + interval '1 hour',
               CASE WHEN k > %(sessions)s - %(online)s THEN NULL
                    ELSE at + interval '1 hour' END,
               3600, k * 1000 %% 1000000007, k * 7919 %% 1000000007, k %% 100000, k %% 300000,
               CASE WHEN k > %(sessions)s - %(online)s THEN NULL ELSE 'User-Request' END, 0
          FROM (SELECT k, 1 + (k * 7) %% %(count)s AS u,
                       now() - (interval '60 days') * (1 - k::float8 / %(sessions)s) AS at
                  FROM generate_series(1::bigint, %(sessions)s) k) g""",  # noqa: S608
                 {"sessions": sessions, "online": online, "count": count})
    log(f"sessions: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    for _, definition in indexes:
        # radius_sessions is partitioned (0028): pg_indexes says "ON ONLY", which would make
        # an invalid index of the parent alone, none on the partitions
        conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
    for name, definition in constraints:
        conn.execute(f'ALTER TABLE radius_sessions ADD CONSTRAINT "{name}" {definition}')
    log(f"session indexes: {time.perf_counter() - t0:.1f} s")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    fn()  # warm-up (and the answer checked by the caller)
    out, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out, result


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915 - one script, top to bottom
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, default=10_000_000)
    ap.add_argument("--overdue-every", type=int, default=10,
                    help="one subscriber in this many owes last month's invoice")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--baseline-sample", type=int, default=1000)
    ap.add_argument("--pg-url", default=os.environ.get("RADBILL_BENCH_PG", DEFAULT_PG_URL))
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--reuse", metavar="DATABASE",
                    help="measure again on a database an earlier --keep run made (its data "
                         "dir with --data-dir), migrated to the head first")
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)

    import psycopg
    from click.testing import CliRunner
    from cryptography.fernet import Fernet

    if args.reuse:
        name, url = args.reuse, db_url(args.pg_url, args.reuse)
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-pages-"))
    else:
        name = f"bench_pages_{secrets.token_hex(4)}"
        url = create_database(args.pg_url, name)
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env.update({"RADBILL_DATABASE_URL": sa_url(url), "RADBILL_DATA_DIR": str(data_dir),
                "RADBILL_SECRET_KEY": Fernet.generate_key().decode()})
    failed = False
    try:
        log(f"database {name}: migrating")
        radbill_db_upgrade(env, PROJECT_ROOT)
        os.environ.update({k: v for k, v in env.items() if k.startswith("RADBILL_")})
        from admin import create_app, users
        from billing import ledger, plans, subscribers
        from billing.models import Subscriber
        from radbill.config import Settings
        from radbill.crypto import SecretBox, load_key
        from radbill.db import engine_from_settings, session_factory, unit_of_work
        from radius import nas

        settings = Settings.from_env(env)
        box = SecretBox(load_key(settings, create=True))
        engine = engine_from_settings(settings)
        factory = session_factory(engine)
        bench_user = f"bench{secrets.token_hex(3)}"
        with unit_of_work(factory) as s:
            users.create_user(s, bench_user, "bench-password-1", "admin", actor="bench")
            token = users.create_token(s, bench_user, "bench", actor="bench")
        with unit_of_work(factory) as s:
            for plan_name, price in ([] if args.reuse else PLANS):
                plans.create_plan(s, name=plan_name, price=price, currency="BDT",
                                  rate="20M/20M", billing_cycle="monthly",
                                  billing_mode="postpaid", actor="bench")
            for i in range(0 if args.reuse else NAS_COUNT):
                nas.create_nas(s, box, name=f"nas{i}", ip=nas_ip(i), secret="s3cret-bench",
                               actor="bench")
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            if args.reuse:
                args.subscribers = conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]
                if not conn.execute("SELECT 1 FROM radius_sessions LIMIT 1").fetchone():
                    log(f"seeding {args.sessions:,} sessions")  # an interrupted seed
                    seed_sessions(conn, args.subscribers, args.sessions)
                    conn.execute("VACUUM ANALYZE")
                args.sessions = conn.execute("SELECT count(*) FROM radius_sessions"
                                             ).fetchone()[0]
                # what autovacuum does after an upgrade's bulk update (0023 rewrites every
                # open invoice): the visibility map that lets the overdue figures be read
                # from their index alone
                t1 = time.perf_counter()
                conn.execute("VACUUM ANALYZE")
                log(f"vacuum analyze: {time.perf_counter() - t1:.1f} s")
            else:
                log(f"seeding {args.subscribers:,} subscribers, {args.sessions:,} sessions")
                seed(conn, args.subscribers, args.sessions, args.overdue_every)
        seeded = time.perf_counter() - t0
        want_overdue = args.subscribers // args.overdue_every

        app = create_app(settings, engine=engine)
        app.config["TESTING"] = True
        client = app.test_client()
        base = "https://localhost"
        page = client.get("/login", base_url=base).get_data(as_text=True)
        csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        resp = client.post("/login", base_url=base, data={
            "username": bench_user, "password": "bench-password-1", "csrf_token": csrf})
        assert resp.status_code == 302, resp.status_code
        auth = {"Authorization": f"Bearer {token}"}
        overdue_user = f"u{args.overdue_every * 7:07d}"
        results: list[tuple[str, list[float], str]] = []

        def get(path: str, headers: dict[str, str] | None = None) -> Any:
            r = client.get(path, base_url=base, headers=headers or {})
            if r.status_code != 200:
                raise AssertionError(f"{path}: HTTP {r.status_code}")
            return r

        def page_check(label: str, path: str, check: Callable[[Any], str],
                       headers: dict[str, str] | None = None) -> None:
            nonlocal failed
            try:
                times, resp = timed(lambda: get(path, headers), args.repeat)
                note = check(resp)
            except AssertionError as exc:
                failed = True
                results.append((label, [], f"FAILED: {exc}"))
                return
            results.append((label, times, note))
            log(f"{label}: median {statistics.median(times):.1f} ms ({note})")

        def dashboard_html(r: Any) -> str:
            text = r.get_data(as_text=True)
            assert f"overdue ({want_overdue} subscribers)" in text, "overdue count"
            return f"{want_overdue:,} overdue counted"

        def dashboard_api(r: Any) -> str:
            d = r.get_json()
            assert d["overdue_subscribers"] == want_overdue, d["overdue_subscribers"]
            return f"online {d['online']:,}"

        def rows(r: Any) -> str:
            return f"{r.get_data(as_text=True).count('/subscribers/u')} rows"

        page_check("dashboard  GET /", "/", dashboard_html)
        page_check("API        GET /api/v1/dashboard", "/api/v1/dashboard", dashboard_api, auth)
        page_check("search     ?q=<a phone number>",
                   f"/subscribers/?q=01{args.subscribers // 2:09d}", rows)
        page_check("search     ?q=u00012 (many match)", "/subscribers/?q=u00012", rows)
        page_check("filter     ?status=suspended", "/subscribers/?status=suspended", rows)
        page_check("filter     ?status=terminated", "/subscribers/?status=terminated", rows)
        page_check("filter     ?plan=Biz50", "/subscribers/?plan=Biz50", rows)
        page_check("filter     ?nas=nas3", "/subscribers/?nas=nas3", rows)
        page_check("filter     ?nas=nas3&status=disabled",
                   "/subscribers/?nas=nas3&status=disabled", rows)
        page_check(f"subscriber /subscribers/{overdue_user}", f"/subscribers/{overdue_user}",
                   lambda r: "overdue shown" if "is overdue" in r.get_data(as_text=True)
                   else "no overdue line")

        from radbill.cli import main as cli_main

        runner = CliRunner()

        def overdue_cli(*extra: str) -> Any:
            res = runner.invoke(cli_main, ["billing", "overdue", "--json", *extra], env=env)
            if res.exit_code != 0:
                raise AssertionError(res.output[-500:])
            return json.loads(res.output)

        overdue_totals: Any = None
        for label, extra in (("command    radbill billing overdue --json", []),
                             ("command    ... --json --limit 10000 (the old page)",
                              ["--limit", "10000"])):
            try:
                times, data = timed(lambda extra=extra: overdue_cli(*extra), args.repeat)
                assert data["count"] == want_overdue, data["count"]
                overdue_totals = overdue_totals or data["totals"]
                assert data["totals"] == overdue_totals, (data["totals"], overdue_totals)
                results.append((label, times, f"{len(data['subscribers']):,} listed of "
                                              f"{data['count']:,}, totals {data['totals']}"))
            except AssertionError as exc:
                failed = True
                results.append((label, [], f"FAILED: {exc}"))

        # baselines, as the code was
        def old_nas_filter() -> int:
            with factory() as s:
                names = set(s.scalars(select_usernames(nas_ip(3))))
                return len(subscribers.list_subscribers(s, usernames=names, limit=200))

        from sqlalchemy import select

        from radius.models import RadiusSession

        def select_usernames(ip: str) -> Any:
            return select(RadiusSession.username).where(RadiusSession.nas_ip == ip).distinct()

        base_nas, _ = timed(old_nas_filter, max(1, args.repeat // 3))
        with factory() as s:
            sample = list(s.scalars(select(Subscriber.id).where(
                Subscriber.id % args.overdue_every == 0).order_by(Subscriber.id)
                .limit(args.baseline_sample)))

        def settle_each() -> int:
            n = 0
            with factory() as s:
                day = s.execute(select_today()).scalar_one()
                for sub_id in sample:
                    n += ledger.settle(s, sub_id, day).overdue(day) > 0
                s.rollback()
            return n

        def select_today() -> Any:
            from sqlalchemy import text
            return select(text("(now() AT TIME ZONE 'Asia/Dhaka')::date"))

        base_settle, n_over = timed(settle_each, max(1, args.repeat // 3))
        per_sub = statistics.median(base_settle) / max(len(sample), 1)

        from sqlalchemy import func, or_

        from billing import reports

        def recomputed() -> int:
            with factory() as s:
                day = s.execute(select_today()).scalar_one()
                return reports.overdue_summary(s, day)[0]  # no as_of: from the ledger

        base_recomputed, n_recomputed = timed(recomputed, 1)
        if n_recomputed != want_overdue:
            failed = True
            log(f"recomputed overdue count {n_recomputed} != {want_overdue}")

        from billing import owed
        from billing.models import Invoice, InvoiceKind, InvoiceStatus

        def overdue_figures(kept: bool) -> Any:
            """Today's overdue count and total: kept by the invoices' triggers (0029), or as
            0023-0027 read them (summed per subscriber over every open document past due,
            from their partial index)."""
            with factory() as s:
                day = s.execute(select_today()).scalar_one()
                if kept:
                    return owed.summary(s, day)
                reports._tuned(s)  # the old reader's settings
                past_due = (select(func.sum(Invoice.outstanding).label("overdue"))
                            .where(Invoice.status == InvoiceStatus.OPEN,
                                   Invoice.kind != InvoiceKind.CREDIT_NOTE,
                                   Invoice.due_on < day)
                            .group_by(Invoice.subscriber_id).subquery())
                n, total = s.execute(select(func.count(), func.sum(past_due.c.overdue))
                                     .where(past_due.c.overdue > 0)).one()
                return int(n), {"BDT": Decimal(total)}

        kept_overdue, kept_overdue_figures = timed(lambda: overdue_figures(True), args.repeat)
        base_overdue, summed_overdue_figures = timed(lambda: overdue_figures(False),
                                                     args.repeat)
        if kept_overdue_figures != summed_overdue_figures:
            failed = True
            log(f"kept overdue {kept_overdue_figures} != summed {summed_overdue_figures}")

        def old_search(term: str) -> int:
            like = f"%{term.lower()}%"
            with factory() as s:
                return len(s.scalars(select(Subscriber).where(or_(
                    func.lower(Subscriber.username).like(like),
                    func.lower(Subscriber.full_name).like(like),
                    Subscriber.phone.like(f"%{term}%"))).order_by(Subscriber.username)
                    .limit(1000)).unique().all())

        from admin.views.dashboard import CHART_DAYS
        from billing import totals
        from billing.isp import settings as isp_settings
        from billing.isp import start_of_day_utc

        def revenue_figures(kept: bool) -> Any:
            """The dashboard's revenue this month and 30-day chart: from the kept day
            totals, or (before 0027) the month's payments summed between UTC bounds."""
            with factory() as s:
                day = s.execute(select_today()).scalar_one()
                isp = isp_settings(s)
                days = [day - dt.timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
                if kept:
                    return (totals.revenue(s, day.replace(day=1), day),
                            totals.revenue_by_day(s, days))
                bounds = [(d, start_of_day_utc(isp, d),
                           start_of_day_utc(isp, d + dt.timedelta(days=1))) for d in days]
                return (reports.revenue(s, start_of_day_utc(isp, day.replace(day=1)),
                                        start_of_day_utc(isp, day + dt.timedelta(days=1))),
                        reports.revenue_by_day(s, bounds))

        kept_revenue, kept_figures = timed(lambda: revenue_figures(True), args.repeat)
        base_revenue, summed_figures = timed(lambda: revenue_figures(False),
                                             max(1, args.repeat // 3))
        if kept_figures != summed_figures:
            failed = True
            log(f"kept revenue {kept_figures} != summed {summed_figures}")

        def check_once(command: str) -> tuple[float, Any]:
            """Run `radbill billing COMMAND --json` once: (seconds, result); logs a failure."""
            nonlocal failed
            t0 = time.perf_counter()
            result = runner.invoke(cli_main, ["billing", command, "--json"], env=env)
            took = time.perf_counter() - t0
            if result.exit_code != 0:
                failed = True
                log(f"{command}: {result.output[-500:]}")
            return took, result

        totals_check_s, totals_check = check_once("totals-check")

        phone = f"01{args.subscribers // 2:09d}"
        base_search, _ = timed(lambda: old_search(phone), max(1, args.repeat // 3))
        check_s, check = check_once("overdue-check")

        print(f"radbill operator pages: {args.subscribers:,} subscribers "
              f"({want_overdue:,} overdue), {args.sessions:,} sessions, PostgreSQL")
        print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; data made in {seeded:.0f} s")
        print(f"each asked once to warm up, then {args.repeat} times; goal < {GOAL_MS:.0f} ms")
        print()
        print(f"{'page':<48} {'median ms':>10} {'min ms':>8}  goal  note")
        for label, times, note in results:
            if not times:
                print(f"{label:<48} {'-':>10} {'-':>8}  ----  {note}")
                continue
            med = statistics.median(times)
            ok = "ok" if med < GOAL_MS else "MISS"
            print(f"{label:<48} {med:>10.1f} {min(times):>8.1f}  {ok:<4}  {note}")
        print()
        print("baselines (the code as it was, same run):")
        print(f"{'NAS filter: every username seen, IN lists of 500':<48} "
              f"{statistics.median(base_nas):>10.1f} {min(base_nas):>8.1f}")
        print(f"{f'overdue: settle {len(sample):,} subscribers one by one':<48} "
              f"{statistics.median(base_settle):>10.1f} {min(base_settle):>8.1f}  "
              f"      {per_sub:.2f} ms each ({n_over} overdue), x{want_overdue:,} = "
              f"{per_sub * want_overdue / 1000:.0f} s for the dashboard")
        print(f"{'overdue recomputed from the ledger (before 0023)':<48} "
              f"{statistics.median(base_recomputed):>10.1f} {min(base_recomputed):>8.1f}  "
              f"      the dashboard's figures ({n_recomputed:,} overdue)")
        print(f"{'revenue month + 30-day chart, kept (0027)':<48} "
              f"{statistics.median(kept_revenue):>10.1f} {min(kept_revenue):>8.1f}  "
              f"      equal to the payments summed: {kept_figures == summed_figures}")
        print(f"{'the same summed from payments (before 0027)':<48} "
              f"{statistics.median(base_revenue):>10.1f} {min(base_revenue):>8.1f}")
        print(f"{'overdue count + total, kept (0029)':<48} "
              f"{statistics.median(kept_overdue):>10.1f} {min(kept_overdue):>8.1f}  "
              f"      equal to the documents summed: "
              f"{kept_overdue_figures == summed_overdue_figures} {kept_overdue_figures}")
        print(f"{'the same summed per subscriber (0023-0027)':<48} "
              f"{statistics.median(base_overdue):>10.1f} {min(base_overdue):>8.1f}")
        print(f"{'radbill billing totals-check (once)':<48} {totals_check_s * 1000:>10.1f} "
              f"{'':>8}  exit {totals_check.exit_code}: every kept day total equals "
              "the payments'")
        print(f"{'search ?q=<a phone>: lower() LIKE (before 0023)':<48} "
              f"{statistics.median(base_search):>10.1f} {min(base_search):>8.1f}")
        print(f"{'radbill billing overdue-check (once)':<48} {check_s * 1000:>10.1f} "
              f"{'':>8}  exit {check.exit_code}: every kept amount equals the ledger's")
        engine.dispose()
    finally:
        if args.keep or args.reuse:  # a database reused is kept (it took long to make)
            log(f"kept database {name}")
        else:
            drop_database(args.pg_url, name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
