"""The retention run: each kind pruned in bounded batches, each batch its own transaction.

Idempotent (a second run finds nothing more), safe to stop at any point (a batch either
committed or did nothing), and audited with its counts. Every kind is asked of the part that
owns it (:mod:`radius.retention`, :mod:`notify.retention`, ...): this module only knows the
order and the cut-offs. Invoices, payments, the ledger and every other money row are no kind
here: they are never pruned.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from radbill import audit
from radbill.pruning import Prunable
from retention.policy import Cutoffs, Policy, cutoffs

log = logging.getLogger("radbill.retention")

COUNT_CAP = 1_000_000_000  # a dry run counts up to this many rows per kind


@dataclass
class KindDone:
    """What a run did (or, dry, would do) to one kind."""

    kind: str
    before: str | None  # the cut-off (ISP day), None: kept for ever
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0


@dataclass
class RunReport:
    """A retention run's counts, by kind; with the spool's when it was tidied here."""

    today: str
    dry_run: bool
    kinds: list[KindDone] = field(default_factory=list)
    spool: dict[str, int] | None = None

    def counts(self) -> dict[str, Any]:
        """Flat counts for the job record and the audit row."""
        out: dict[str, Any] = {k.kind: k.rows for k in self.kinds}
        out["batches"] = sum(k.batches for k in self.kinds)
        if self.spool is not None:
            out.update({f"spool_{k}": v for k, v in self.spool.items()})
        return out


def _isp(factory: sessionmaker[Session], now: dt.datetime) -> tuple[dt.date, ZoneInfo]:
    from billing.isp import local_today
    from billing.isp import settings as isp_settings

    with factory() as session:
        isp = isp_settings(session)
        return local_today(isp, now), ZoneInfo(isp.timezone)


def _start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def _batches(factory: sessionmaker[Session], step: Callable[[Session], int], batch: int,
             max_batches: int, done: KindDone) -> None:
    """Run *step* (one batch, its own transaction) until a batch comes back short."""
    started = time.perf_counter()
    try:
        while done.batches < max_batches:
            with factory() as session, session.begin():
                n = step(session)
            done.rows += n
            done.batches += 1 if n else 0
            if n < batch:
                return
    finally:
        done.seconds += time.perf_counter() - started


def _kind(report: RunReport, name: str, day: dt.date | None) -> KindDone | None:
    """The kind's entry in *report*; None when it is kept for ever (nothing to do)."""
    done = KindDone(name, day.isoformat() if day else None)
    report.kinds.append(done)
    return done if day is not None else None


def _postauth(factory: sessionmaker[Session], cut: Cutoffs, tz: ZoneInfo, report: RunReport,
              dry_run: bool, max_batches: int, batch: int) -> None:
    """The post-auth log folded into day summaries, then the old summaries themselves."""
    from radius import retention as radius_retention

    done = _kind(report, "postauth", cut.postauth)
    if done is not None and cut.postauth is not None:
        before = _start(cut.postauth, tz)
        if dry_run:
            with factory() as session:
                done.rows = radius_retention.postauth_to_summarise(session, before, COUNT_CAP)
        else:
            _batches(factory, lambda s: radius_retention.summarise_postauth(s, before, tz,
                                                                            batch),
                     batch, max_batches, done)
    done = _kind(report, "postauth_days", cut.postauth_summary)
    if done is not None and cut.postauth_summary is not None:
        day = cut.postauth_summary
        if dry_run:
            with factory() as session:
                done.rows = radius_retention.postauth_days_to_prune(session, day, COUNT_CAP)
        else:
            step = min(batch, radius_retention.KEY_CHUNK)
            _batches(factory, lambda s: radius_retention.prune_postauth_days(s, day, step),
                     step, max_batches, done)


def run(factory: sessionmaker[Session], policy: Policy, now: dt.datetime, *,
        dry_run: bool = False, actor: str = "retention", max_batches: int = 100_000,
        spool_dir: Path | None = None, node: str = "") -> RunReport:
    """Prune every kind past its cut-off (see :func:`retention.policy.cutoffs`) on the ISP's
    day of *now*. With *dry_run*, count what would go and change nothing. With *spool_dir*,
    also compress and delete this node's applied detail files."""
    from coa import retention as coa_retention
    from notify import retention as notify_retention
    from radbill import ops
    from radius import retention as radius_retention
    from usage import retention as usage_retention

    today, tz = _isp(factory, now)
    cut: Cutoffs = cutoffs(policy, today)
    report = RunReport(today=today.isoformat(), dry_run=dry_run)
    batch = policy.batch

    _postauth(factory, cut, tz, report, dry_run, max_batches, batch)

    def prune(prunable: Prunable, day: dt.date | None, before: Any,
              first: Callable[[KindDone], None] | None = None) -> None:
        done = _kind(report, prunable.name, day)
        if done is None:
            return
        if first is not None and not dry_run:
            first(done)
        if dry_run:
            with factory() as session:
                done.rows = prunable.count(session, before, COUNT_CAP)
            return
        _batches(factory, lambda s: prunable.delete(s, before, batch), batch, max_batches,
                 done)

    def at(day: dt.date | None) -> dt.datetime | None:
        return _start(day, tz) if day else None

    prune(coa_retention.ATTEMPTS, cut.enforcement, at(cut.enforcement))
    # deliveries before the events they belong to (they point at them)
    prune(notify_retention.DELIVERIES, cut.outbox, at(cut.outbox))
    prune(notify_retention.OUTBOX, cut.outbox, at(cut.outbox))
    with factory() as session:
        engine = session.get_bind()
    if not dry_run:
        radius_retention.session_months_ahead(engine, now)

    def session_months(done: KindDone) -> None:
        # PostgreSQL: whole months of closed sessions dropped before the batched deletes
        started = time.perf_counter()
        before = at(cut.sessions)
        assert before is not None  # prune calls it only for a kind with a cut-off
        done.rows += radius_retention.drop_session_months(engine, before, batch).rows
        done.seconds += time.perf_counter() - started

    prune(radius_retention.CLOSED_SESSIONS, cut.sessions, at(cut.sessions), session_months)
    prune(usage_retention.SESSION_DAYS, cut.sessions, cut.sessions)
    prune(audit.PRUNABLE, cut.audit, at(cut.audit))
    prune(ops.JOB_RUNS, cut.job_runs, at(cut.job_runs))

    if spool_dir is not None and not dry_run:
        from radius.ingest import tidy_spool

        tidied = tidy_spool(spool_dir, factory, policy.spool_days, node)
        report.spool = asdict(tidied)
    counts = report.counts()
    log.info("retention %s on %s: %s", "dry run" if dry_run else "run", today,
             ", ".join(f"{k}={v}" for k, v in counts.items()))
    if not dry_run:
        with factory() as session, session.begin():
            audit.record(session, actor=actor, action="retention.run", entity="retention",
                         entity_id=today.isoformat(), after=counts,
                         reason="rows older than the retention settings")
    return report


def oldest(factory: sessionmaker[Session]) -> dict[str, str | None]:
    """The oldest row of each kind (through its index): how far back each table reaches."""
    from sqlalchemy import func, select

    from coa.models import EnforcementAttempt
    from notify.models import Delivery, Outbox
    from radbill.audit import AuditLog
    from radbill.ops import JobRun
    from radius.models import PostAuth, PostAuthDay, RadiusSession
    from usage.models import UsageSessionDay

    columns = {"postauth": PostAuth.at, "postauth_days": PostAuthDay.day,
               "enforcement_attempts": EnforcementAttempt.at,
               "notify_deliveries": Delivery.created_at, "outbox": Outbox.created_at,
               "sessions": RadiusSession.stopped_at, "usage_session_days": UsageSessionDay.day,
               "audit_log": AuditLog.at, "job_runs": JobRun.started_at}
    out: dict[str, str | None] = {}
    with factory() as session:
        for name, column in columns.items():
            value = session.scalar(select(func.min(column)))
            out[name] = value.isoformat() if value is not None else None
    return out
