"""The durable enforcement queue: claiming requests, recording attempts, confirming.

Requests are rows in ``enforcement_requests`` written by billing in the same transaction as
the change they enforce, so they survive any restart. A claimed request holds a lease
(``next_attempt_at`` moved ahead): a worker that dies mid-way leaves it to be claimed again
when the lease runs out. On PostgreSQL, claims use ``FOR UPDATE SKIP LOCKED`` so several
workers can share the queue.

Only the newest request of a subscriber matters (the target is the subscriber's current
state); older open ones are marked ``superseded`` when a newer one is claimed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from billing.models import EnforcementRequest, Subscriber
from coa import rules
from coa.controller import NasRef, Outcome, SessionRef, StepResult
from coa.models import EnforcementAttempt
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.ops import raise_alert
from radius import accounting
from radius.hook import policy_config
from radius.models import Nas, RadiusSession
from radius.policy import AuthRequest, decide
from radius.snapshot import plan_record, subscriber_record_without_password

T = TypeVar("T")
log = logging.getLogger("radbill.enforcement")

OPEN = ("pending", "retry", "working", "confirming")
REQUESTS = cast(Table, EnforcementRequest.__table__)  # Core, for executemany
LEASE = dt.timedelta(seconds=60)
CHUNK = 900  # bound IN (...) lists


def chunks(items: list[T], size: int = CHUNK) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Target:
    """One open session of the subscriber, with how to reach its NAS."""

    session_pk: int
    nas_ip: str
    nas: NasRef | None
    via: str  # coa | api
    ref: SessionRef


@dataclass
class Job:
    """A claimed request with everything the network round needs."""

    request_id: int
    subscriber_id: int
    username: str
    action: str
    attempts: int
    want: rules.Desired
    targets: list[Target] = field(default_factory=list)
    error: str | None = None  # the job could not even be planned (reported as an attempt)


@dataclass
class Done:
    """The final result for one target of a job (after any fallback), and every attempt."""

    target: Target | None
    final: StepResult
    attempts: list[StepResult]


def nas_refs(session: Session, box: SecretBox) -> dict[str, tuple[NasRef, str]]:
    """Every NAS by IP, with decrypted secrets, and its enforcement channel."""
    out = {}
    for nas in session.scalars(select(Nas)):
        out[nas.ip_address] = (NasRef(
            ip=nas.ip_address, secret=box.decrypt(nas.secret_enc), coa_port=nas.coa_port,
            api_port=nas.api_port, api_username=nas.api_username,
            api_password=box.decrypt(nas.api_password_enc) if nas.api_password_enc else None,
            api_tls=nas.api_tls_mode, api_tls_ca=nas.api_tls_ca,
            api_tls_fingerprint=nas.api_tls_fingerprint, nas_type=nas.nas_type),
            nas.enforce_via)
    return out


def desired_for(sub: Subscriber, box: SecretBox, settings: Settings, now: dt.datetime
                ) -> rules.Desired:
    """What a login of *sub* would get right now (simultaneous use and MAC binding aside:
    they decide whether a new login gets in, not what a running session should have)."""
    # The password plays no part in what a running session should have: it is not
    # decrypted here (a Fernet decrypt per subscriber was a fifth of a 10,000-request claim).
    record = subscriber_record_without_password(sub)
    req = AuthRequest(username=sub.username,
                      service_type="Framed-User" if record.service == "pppoe" else "Login-User")
    return rules.desired(decide(req, record, plan_record(sub.plan), 0, policy_config(settings),
                                now))


def _supersede(session: Session, newest: list[EnforcementRequest], now: dt.datetime) -> None:
    """Mark the older open requests of these subscribers superseded, in one statement on
    PostgreSQL (a per-request UPDATE was measured at 3-35 s per 5,000 on a busy table)."""
    if not newest:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(
            "UPDATE enforcement_requests AS r SET status = 'superseded', completed_at = :now, "
            "outcome = 'superseded by #' || t.nid "
            "FROM unnest(CAST(:sids AS bigint[]), CAST(:nids AS bigint[])) AS t(sid, nid) "
            "WHERE r.subscriber_id = t.sid AND r.id < t.nid AND r.acct_session_id IS NULL "
            "AND r.status IN ('pending', 'retry', 'working', 'confirming')"),
            {"now": now, "sids": [r.subscriber_id for r in newest],
             "nids": [r.id for r in newest]})
        return
    table = REQUESTS
    session.connection().execute(
        update(table)
        .where(table.c.subscriber_id == bindparam("sid"), table.c.id < bindparam("nid"),
               table.c.acct_session_id.is_(None),
               or_(*(table.c.status == s for s in OPEN)))  # IN () cannot go in executemany
        .values(status="superseded", completed_at=now, outcome=bindparam("why")),
        [{"sid": r.subscriber_id, "nid": r.id, "why": f"superseded by #{r.id}"}
         for r in newest])


def claim(session: Session, box: SecretBox, settings: Settings, now: dt.datetime,
          limit: int) -> list[Job]:
    """Claim up to *limit* due requests (newest per subscriber) and load their targets."""
    stmt = (select(EnforcementRequest)
            .where(EnforcementRequest.status.in_(("pending", "retry", "working")),
                   EnforcementRequest.next_attempt_at <= now)
            .order_by(EnforcementRequest.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    requests = list(session.scalars(stmt))
    if not requests:
        return []
    newest: dict[tuple[int, int | None], EnforcementRequest] = {}
    for req in requests:
        # ordered by id: the last one wins; a one-session request stands on its own
        newest[(req.subscriber_id, None if req.acct_session_id is None else req.id)] = req
    _supersede(session, [r for r in newest.values() if r.acct_session_id is None], now)
    claimed = [r.id for r in newest.values()]
    for ids in chunks(claimed):
        session.execute(update(EnforcementRequest).where(EnforcementRequest.id.in_(ids))
                        .values(status="working", attempts=EnforcementRequest.attempts + 1,
                                next_attempt_at=now + LEASE)
                        .execution_options(synchronize_session=False))
    return _jobs(session, box, settings, now, list(newest.values()))


def _jobs(session: Session, box: SecretBox, settings: Settings, now: dt.datetime,
          claimed: list[EnforcementRequest]) -> list[Job]:
    """The claimed requests with their subscribers' desired state and open sessions. (The
    rows' attempt counters were raised by one UPDATE: the loaded objects show the old.)"""
    newest = {r.id: r for r in claimed}
    subs = {}
    for ids in chunks(sorted({r.subscriber_id for r in newest.values()})):
        subs.update({s.id: s for s in session.scalars(select(Subscriber).where(
            Subscriber.id.in_(ids)))})
    sessions: dict[str, list[RadiusSession]] = {}
    for names in chunks([s.username for s in subs.values()]):
        for row in accounting.open_sessions_of(session, names):
            sessions.setdefault(row.username, []).append(row)
    nases = nas_refs(session, box)
    jobs = []
    for req in newest.values():
        sub = subs[req.subscriber_id]
        try:
            want = desired_for(sub, box, settings, now)
            error = None
        except Exception as exc:
            log.exception("enforcement request %d (%s): cannot compute the target", req.id,
                          sub.username)
            want, error = rules.Desired(online=False), f"{type(exc).__name__}: {exc}"
        job = Job(req.id, sub.id, sub.username, req.action, req.attempts + 1, want,
                  error=error)
        if error is not None:
            jobs.append(job)
            continue
        for row in sessions.get(sub.username, []):
            if req.acct_session_id is not None and (row.nas_ip, row.acct_session_id) != (
                    req.nas_ip, req.acct_session_id):
                continue
            nas, via = nases.get(row.nas_ip, (None, "coa"))
            job.targets.append(Target(row.id, row.nas_ip, nas, via, SessionRef(
                username=row.username, acct_session_id=row.acct_session_id,
                framed_ip=row.framed_ip, service=str(sub.service))))
        jobs.append(job)
    session.flush()
    return jobs


def record(  # noqa: PLR0912 - one branch per verdict and outcome
    session: Session, results: list[tuple[Job, list[Done]]], now: dt.datetime, *,
           max_attempts: int, confirm_seconds: float) -> dict[str, int]:
    """Write every attempt and move each request on. Returns counts by new status."""
    counts: dict[str, int] = {}
    failed: list[str] = []
    rows: list[dict[str, Any]] = []
    enforced_by: list[tuple[int, int]] = []  # (session pk, request id)
    updates: list[dict[str, Any]] = []
    for job, dones in results:
        for done in dones:
            t = done.target
            for a in done.attempts:
                rows.append({
                    "request_id": job.request_id, "subscriber_id": job.subscriber_id,
                    "nas_ip": t.nas_ip if t else "", "session_pk": t.session_pk if t else None,
                    "acct_session_id": t.ref.acct_session_id if t else None,
                    "channel": a.channel, "outcome": str(a.outcome), "error_cause": a.error_cause,
                    "detail": a.detail[:500] or None, "sends": a.sends,
                    "latency_ms": round(a.latency * 1000, 3), "at": now})
            if t is None:
                continue
            if done.final.outcome is Outcome.GONE:
                accounting.close_gone_session(session, t.session_pk, now)
            elif done.final.outcome is Outcome.ACK and done.final.channel in ("coa", "api-change"):
                enforced_by.append((t.session_pk, job.request_id))
        finals = [d.final for d in dones]
        verdict = rules.verdict(finals, job.attempts, max_attempts)
        errors = "; ".join(sorted({f.detail for f in finals if f.detail
                                   and f.outcome not in (Outcome.ACK, Outcome.GONE)}))[:1000]
        # Every row gets the same keys, so the whole round is one executemany.
        values: dict[str, Any] = {"rid": job.request_id, "status": str(verdict),
                                  "completed_at": None, "outcome": None, "last_error": None,
                                  "confirm_by": None, "next_attempt_at": now}
        if verdict is rules.Verdict.DONE:
            values.update(completed_at=now, outcome=_outcome(finals))
        elif verdict is rules.Verdict.CONFIRMING:
            values.update(confirm_by=now + dt.timedelta(seconds=confirm_seconds))
        elif verdict is rules.Verdict.RETRY:
            values.update(next_attempt_at=now + dt.timedelta(seconds=rules.backoff(job.attempts)),
                          last_error=errors)
        else:
            values.update(completed_at=now, outcome="failed", last_error=errors)
            failed.append(job.username)
        updates.append(values)
        counts[str(verdict)] = counts.get(str(verdict), 0) + 1
    if updates:
        table = REQUESTS
        # A request superseded while it was on the wire (another worker claimed a newer one)
        # keeps that status: its late result must not overwrite the newer state.
        session.connection().execute(
            update(table).where(table.c.id == bindparam("rid"), table.c.status == "working")
            .values({k: bindparam(k) for k in updates[0] if k != "rid"}), updates)
    if rows:
        session.execute(insert(EnforcementAttempt), rows)
    stale: set[int] = set()
    for ids in chunks([j.request_id for j, _ in results]):
        stale.update(session.scalars(select(EnforcementRequest.id).where(
            EnforcementRequest.id.in_(ids), EnforcementRequest.status == "superseded")))
    enforced = [pk for pk, rid in enforced_by if rid not in stale]
    for ids in chunks(enforced):
        accounting.mark_enforced(session, ids, now)
    if failed:
        raise_alert(session, "enforcement-failed",
                    f"{len(failed)} subscriber(s) could not be brought in line with billing "
                    f"after {max_attempts} attempts: {', '.join(failed[:20])}"
                    f"{' ...' if len(failed) > 20 else ''}",
                    {"usernames": failed[:200]})
    return counts


def _outcome(finals: list[StepResult]) -> str:
    if not finals:
        return "no-session"
    kinds = sorted({f"{f.channel}-{f.outcome}" for f in finals})
    return ",".join(kinds)[:32]


def due(session: Session, now: dt.datetime) -> int:
    """How many requests are due for a round (a cheap read for the idle poll)."""
    return int(session.scalar(
        select(func.count()).select_from(EnforcementRequest)
        .where(EnforcementRequest.status.in_(("pending", "retry", "working")),
               EnforcementRequest.next_attempt_at <= now)) or 0)


def confirm_scan(session: Session, now: dt.datetime) -> tuple[list[int], list[int]]:
    """Requests waiting for Accounting-Stops: (confirmed: every disconnected session is now
    closed; late: the deadline passed with sessions still open). Reads only."""
    waiting = list(session.execute(
        select(EnforcementRequest.id, EnforcementRequest.confirm_by)
        .where(EnforcementRequest.status == "confirming")))
    if not waiting:
        return [], []
    still_open: set[int] = set()
    for ids in chunks([w.id for w in waiting]):
        still_open.update(session.scalars(
            select(EnforcementAttempt.request_id).distinct()
            .join(RadiusSession, RadiusSession.id == EnforcementAttempt.session_pk)
            .where(EnforcementAttempt.request_id.in_(ids),
                   EnforcementAttempt.outcome == "ack",
                   EnforcementAttempt.channel.in_(("disconnect", "api-disconnect")),
                   RadiusSession.stopped_at.is_(None))))
    done = [w.id for w in waiting if w.id not in still_open]
    late = [w.id for w in waiting if w.id in still_open and w.confirm_by is not None
            and w.confirm_by <= now]
    return done, late


def confirm_apply(session: Session, done: list[int], late: list[int], now: dt.datetime,
                  max_attempts: int = 6) -> dict[str, int]:
    """Mark confirmed requests done, and late ones for another attempt now (or failed, with
    an alert, once they have used every attempt: an ACK never followed by a Stop)."""
    exhausted: list[int] = []
    for ids in chunks(late):
        exhausted += session.scalars(select(EnforcementRequest.id).where(
            EnforcementRequest.id.in_(ids), EnforcementRequest.attempts >= max_attempts))
    if exhausted:
        late = [i for i in late if i not in set(exhausted)]
        for ids in chunks(exhausted):
            session.execute(update(EnforcementRequest)
                            .where(EnforcementRequest.id.in_(ids),
                                   EnforcementRequest.status == "confirming")
                            .values(status="failed", completed_at=now, outcome="failed",
                                    last_error="acknowledged every time, but the session "
                                               "never stopped (no Accounting-Stop)")
                            .execution_options(synchronize_session=False))
        raise_alert(session, "enforcement-failed",
                    f"{len(exhausted)} disconnect(s) acknowledged by the NAS but never "
                    f"followed by an Accounting-Stop after {max_attempts} attempts",
                    {"requests": exhausted[:200]})
    for ids in chunks(done):
        session.execute(update(EnforcementRequest)
                        .where(EnforcementRequest.id.in_(ids),
                               EnforcementRequest.status == "confirming")
                        .values(status="done", completed_at=now, outcome="confirmed-stop")
                        .execution_options(synchronize_session=False))
    for ids in chunks(late):
        session.execute(update(EnforcementRequest)
                        .where(EnforcementRequest.id.in_(ids),
                               EnforcementRequest.status == "confirming")
                        .values(status="retry", next_attempt_at=now,
                                last_error="acknowledged, but no Accounting-Stop in time")
                        .execution_options(synchronize_session=False))
    return {k: v for k, v in (("confirmed", len(done)), ("unconfirmed", len(late)),
                              ("failed", len(exhausted))) if v}


def request(session: Session, subscriber_id: int, action: str, reason: str) -> EnforcementRequest:
    """Queue an enforcement request (for actions that do not come from billing)."""
    if action not in rules.ACTIONS:
        raise ValueError(f"unknown enforcement action {action!r}")
    req = EnforcementRequest(subscriber_id=subscriber_id, action=action, reason=reason)
    session.add(req)
    session.flush()
    return req


def status_counts(session: Session) -> dict[str, int]:
    """Requests by status (superseded and done left out: they are history)."""
    rows = session.execute(select(EnforcementRequest.status, func.count())
                           .where(EnforcementRequest.status.not_in(("done", "superseded")))
                           .group_by(EnforcementRequest.status))
    return {status: int(n) for status, n in rows}


def latest_failures(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest failed requests."""
    rows = session.execute(
        select(EnforcementRequest, Subscriber.username)
        .join(Subscriber, Subscriber.id == EnforcementRequest.subscriber_id)
        .where(EnforcementRequest.status == "failed")
        .order_by(EnforcementRequest.id.desc()).limit(limit))
    return [{"id": r.id, "username": name, "action": r.action, "attempts": r.attempts,
             "error": r.last_error, "at": r.completed_at.isoformat() if r.completed_at else None}
            for r, name in rows]
