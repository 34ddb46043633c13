"""`radbill scheduler`: the periodic jobs (billing run, invoice PDFs, stale sessions,
retention).

Every job run is recorded (:mod:`radbill.jobs`) and holds a job lock while it runs: on
PostgreSQL a session-level advisory lock, so two scheduler processes (say on two servers, for
redundancy) never run the same job at once; on SQLite, which lives on one host, a file lock.
A scheduler that finds the lock taken skips that run and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from radbill.config import Settings
from radbill.db import session_factory, utcnow
from radbill.jobs import recorded

log = logging.getLogger("radbill.scheduler")

OLT_POLL_SECONDS = 300  # ONU status/Rx history and OLT drift: every five minutes


def _lock_key(job: str) -> int:
    # A stable signed 64-bit key per job name (PostgreSQL advisory locks take a bigint).
    return int.from_bytes(hashlib.sha256(f"radbill:{job}".encode()).digest()[:8], "big",
                          signed=True)


@contextmanager
def job_lock(engine: Engine, job: str, lock_dir: Path) -> Iterator[bool]:
    """Yield True while this process holds *job*'s lock, False if another one does."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": _lock_key(job)}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(job)})
                    conn.commit()
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{job}.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_job(engine: Engine, settings: Settings, job: str,
            work: Callable[[sessionmaker[Session], dict[str, Any]], None]) -> str:
    """Run *work* under the job's lock and record it. Returns ok, skipped or failed."""
    factory = session_factory(engine)
    with job_lock(engine, job, settings.data_dir / "locks") as got:
        if not got:
            log.warning("job %s is already running elsewhere; skipping this run", job)
            return "skipped"
        try:
            with recorded(factory, job) as counts:
                work(factory, counts)
        except Exception:  # recorded with its error; the scheduler goes on
            log.exception("job %s failed", job)
            return "failed"
    return "ok"


def billing_job(settings: Settings) -> Callable[[sessionmaker[Session], dict[str, Any]], None]:
    """Today's billing run, then the invoice PDFs."""

    def work(factory: sessionmaker[Session], counts: dict[str, Any]) -> None:
        from billing.archive import render_pending
        from billing.isp import local_today
        from billing.isp import settings as isp_settings
        from billing.run import billing_run
        from payments.intents import holds

        with factory() as session:
            today = local_today(isp_settings(session), utcnow())
        report = billing_run(factory, today, actor="scheduler", holds=holds)
        counts.update(report.counts)
        counts["as_of"] = str(today)
        counts["suspensions_held"] = report.suspensions_blocked
        counts["errors"] = len(report.errors)
        counts["pdfs"] = render_pending(factory, settings.data_dir / "invoices")
        counts["usage_renewed"] = renew_usage(factory, today)

    return work


def renew_usage(factory: sessionmaker[Session], today: Any) -> int:
    """After billing moved periods on: the cap resets and full speed returns live for the
    subscribers it throttled, and Hotspot quotas are whole again."""
    from usage.service import renew_periods

    total = 0
    while True:
        with factory() as session, session.begin():
            n = renew_periods(session, today)
        total += n
        if n < 500:
            return total


def stale_sessions_job(settings: Settings) -> Callable[[sessionmaker[Session], dict[str, Any]],
                                                        None]:
    """Close accounting sessions silent for three interim intervals."""

    def work(factory: sessionmaker[Session], counts: dict[str, Any]) -> None:
        from radius.accounting import close_stale_sessions

        with factory() as session, session.begin():
            counts["closed"] = close_stale_sessions(session, utcnow(), settings.interim_interval)

    return work


def payment_poll_job(settings: Settings) -> Callable[[sessionmaker[Session], dict[str, Any]],
                                                       None]:
    """Query the gateways about payments unconfirmed after a few minutes."""

    built: dict[str, Any] = {}  # one set of adapters per scheduler process (tokens, pools)

    def work(factory: sessionmaker[Session], counts: dict[str, Any]) -> None:
        from payments.config import adapters
        from payments.polling import poll

        if not built:
            built.update(adapters(settings))
        counts.update(poll(factory, built))

    return work


def olt_poll_job(settings: Settings) -> Callable[[sessionmaker[Session], dict[str, Any]],
                                                   None]:
    """Poll every OLT: ONU status and Rx power (kept as history), reboots (sysUpTime went
    backwards), and drift of bound ONUs from billing, queued for the enforcement worker."""

    def work(factory: sessionmaker[Session], counts: dict[str, Any]) -> None:
        import asyncio

        from olt.poller import poll
        from radbill.crypto import secret_box

        counts.update(asyncio.run(poll(factory, secret_box(settings))))

    return work


def retention_job(settings: Settings) -> Callable[[sessionmaker[Session], dict[str, Any]],
                                                    None]:
    """Prune what is older than the retention settings, in bounded batches (retention/).
    The detail spools are each RADIUS node's own: their housekeeping tidies them."""

    def work(factory: sessionmaker[Session], counts: dict[str, Any]) -> None:
        from retention.policy import Policy
        from retention.service import run

        counts.update(run(factory, Policy.from_settings(settings), utcnow(),
                          actor="scheduler").counts())

    return work


def build(engine: Engine, settings: Settings, billing_time: str = "00:15",
          retention_time: str = "03:30") -> Any:
    """An APScheduler BlockingScheduler with radbill's jobs."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from billing.isp import settings as isp_settings

    with session_factory(engine)() as session:
        tz = isp_settings(session).timezone
    hour, minute = (int(x) for x in billing_time.split(":"))
    scheduler = BlockingScheduler(timezone=tz)
    scheduler.add_job(run_job, CronTrigger(hour=hour, minute=minute, timezone=tz),
                      args=(engine, settings, "billing-run", billing_job(settings)),
                      id="billing-run", max_instances=1, coalesce=True,
                      misfire_grace_time=6 * 3600)
    scheduler.add_job(run_job, IntervalTrigger(seconds=settings.interim_interval),
                      args=(engine, settings, "stale-sessions", stale_sessions_job(settings)),
                      id="stale-sessions", max_instances=1, coalesce=True)
    scheduler.add_job(run_job, IntervalTrigger(seconds=60),
                      args=(engine, settings, "payment-poll", payment_poll_job(settings)),
                      id="payment-poll", max_instances=1, coalesce=True)
    scheduler.add_job(run_job, IntervalTrigger(seconds=OLT_POLL_SECONDS),
                      args=(engine, settings, "olt-poll", olt_poll_job(settings)),
                      id="olt-poll", max_instances=1, coalesce=True)
    r_hour, r_minute = (int(x) for x in retention_time.split(":"))
    scheduler.add_job(run_job, CronTrigger(hour=r_hour, minute=r_minute, timezone=tz),
                      args=(engine, settings, "retention", retention_job(settings)),
                      id="retention", max_instances=1, coalesce=True,
                      misfire_grace_time=6 * 3600)
    return scheduler
