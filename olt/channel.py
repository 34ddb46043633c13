"""The OLT channel of the enforcement queue.

When the worker claims enforcement requests, :func:`plan` adds one ``olt_tasks`` row per
request whose subscriber is bound to an ONU (in the claim's transaction): block unless the
subscriber is active. :class:`OltChannel` then works those tasks beside the NAS rounds: per
OLT one asyncio task (so one slow or unreachable OLT never holds up another), indexes
resolved right before the SETs, every SET read back, the configuration saved where the
profile can. Each try is an ``enforcement_attempts`` row (channel ``olt``); failures back
off, and after the last attempt the task fails with an alert, as NAS enforcement does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from coa.models import EnforcementAttempt
from coa.rules import backoff
from olt.driver import BlockResult, OltDriver, SnmpOltDriver
from olt.inventory import credentials, profile_of
from olt.models import Olt, OltTask, Onu, OnuBinding
from olt.profiles import Profile
from olt.snmp import Credentials
from radbill.crypto import SecretBox
from radbill.db import utcnow
from radbill.ops import raise_alert

T = TypeVar("T")
log = logging.getLogger("radbill.enforcement.olt")
CHUNK = 900
OPEN = ("pending", "retry", "working")
LEASE = dt.timedelta(seconds=120)  # longer than a round may take: see ROUND_BUDGET
ROUND_BUDGET = 90.0  # seconds one OLT's round may take before it counts as a timeout


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def wants_block(status: str) -> bool:
    """Whether billing wants the subscriber's ONU blocked: every state but active."""
    return str(status) != "active"


def plan(session: Session, claimed: Sequence[tuple[int, int]], now: dt.datetime) -> int:
    """OLT tasks for claimed (request id, subscriber id) pairs of bound subscribers; older
    open tasks of those subscribers are superseded. Returns how many were added."""
    from billing.models import Subscriber

    newest = {sid: rid for rid, sid in sorted(claimed)}
    rows: list[dict[str, Any]] = []
    for ids in chunks(sorted(newest)):
        for sid, olt_id, ident, status in session.execute(
                select(OnuBinding.subscriber_id, OnuBinding.olt_id, OnuBinding.ident,
                       Subscriber.status)
                .join(Subscriber, Subscriber.id == OnuBinding.subscriber_id)
                .where(OnuBinding.subscriber_id.in_(ids))):
            rows.append({"request_id": newest[sid], "subscriber_id": sid, "olt_id": olt_id,
                         "ident": ident, "block": wants_block(status), "status": "pending",
                         "attempts": 0, "next_attempt_at": now, "created_at": now})
    if not rows:
        return 0
    for ids in chunks([r["subscriber_id"] for r in rows]):
        session.execute(update(OltTask)
                        .where(OltTask.subscriber_id.in_(ids), OltTask.status.in_(OPEN))
                        .values(status="superseded", completed_at=now)
                        .execution_options(synchronize_session=False))
    session.execute(insert(OltTask), rows)
    return len(rows)


@dataclass
class OltRound:
    """One OLT's claimed tasks and how to reach it (the driver is built on the event loop)."""

    olt_id: int
    name: str
    host: str
    profile: Profile
    creds: Credentials
    tasks: list[tuple[int, int, int, str, bool, int]]  # id, request, subscriber, ident,
    #                                                     block, attempts (after this one)


class OltChannel:
    """Works the OLT tasks. ``make_driver(olt)`` builds a driver (a test may swap it)."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox, *,
                 probe: sessionmaker[Session] | None = None, max_attempts: int = 6,
                 batch: int = 5000) -> None:
        self.factory, self.box = factory, box
        self.probe = probe or factory
        self.max_attempts, self.batch = max_attempts, batch
        self.busy: set[int] = set()  # OLTs with a round on the wire
        self.inflight: set[asyncio.Task[dict[str, int]]] = set()

    def make_driver(self, profile: Profile, creds: Credentials) -> OltDriver:
        return SnmpOltDriver(profile, creds)

    # -- database side (threads) -----------------------------------------------------------

    def _due(self, now: dt.datetime, busy: set[int]) -> bool:
        with self.probe() as session:
            stmt = select(OltTask.id).where(OltTask.status.in_(OPEN),
                                            OltTask.next_attempt_at <= now)
            if busy:
                stmt = stmt.where(OltTask.olt_id.not_in(sorted(busy)))
            return session.scalar(stmt.limit(1)) is not None

    def _claim(self, busy: set[int]) -> list[OltRound]:
        now = utcnow()
        if not self._due(now, busy):
            return []
        with self.factory() as session, session.begin():
            # "working" past its lease: the worker that claimed it died mid-round
            stmt = (select(OltTask).where(OltTask.status.in_(OPEN),
                                          OltTask.next_attempt_at <= now)
                    .order_by(OltTask.id).limit(self.batch))
            if busy:
                stmt = stmt.where(OltTask.olt_id.not_in(sorted(busy)))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            tasks = list(session.scalars(stmt))
            if not tasks:
                return []
            for ids in chunks([t.id for t in tasks]):
                session.execute(update(OltTask).where(OltTask.id.in_(ids))
                                .values(status="working", attempts=OltTask.attempts + 1,
                                        next_attempt_at=now + LEASE)
                                .execution_options(synchronize_session=False))
            olts = {o.id: o for o in session.scalars(
                select(Olt).where(Olt.id.in_(sorted({t.olt_id for t in tasks}))))}
            rounds: dict[int, OltRound] = {}
            for t in tasks:
                o = olts[t.olt_id]
                if o.id not in rounds:
                    rounds[o.id] = OltRound(o.id, o.name, o.host, profile_of(o),
                                            credentials(o, self.box), [])
                rounds[o.id].tasks.append((t.id, t.request_id, t.subscriber_id, t.ident,
                                           t.block, t.attempts + 1))
            return list(rounds.values())

    def _record(self, rnd: OltRound, results: dict[str, BlockResult], seconds: float
                ) -> dict[str, int]:
        now = utcnow()
        counts: dict[str, int] = {}
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        failed: list[str] = []
        acked: list[tuple[str, bool]] = []
        for tid, rid, sid, ident, block, tries in rnd.tasks:
            r = results.get(ident) or BlockResult(ident, block, "error", detail="no result")
            if r.block != block:  # an older task of the same ONU in the round lost
                r = BlockResult(ident, block, "superseded", detail="newer task in the round")
            detail = r.detail or ("blocked" if block else "unblocked") + (
                f" at index {r.index}" if r.index else "") + (
                "; saved" if r.saved else "; save failed" if r.saved is False else "")
            attempts.append({
                "request_id": rid, "subscriber_id": sid, "nas_ip": rnd.host,
                "session_pk": None, "acct_session_id": None, "channel": "olt",
                "outcome": r.outcome[:16], "error_cause": None, "detail": detail[:500],
                "sends": 1, "latency_ms": round((r.latency or seconds) * 1000, 3), "at": now})
            values: dict[str, Any] = {"tid": tid, "status": "done", "outcome": r.outcome[:32],
                                      "last_error": None, "completed_at": now,
                                      "next_attempt_at": now}
            if r.outcome == "ack":
                acked.append((ident, block))
            elif r.outcome in ("unsupported", "superseded"):
                values.update(status="failed" if r.outcome == "unsupported" else "superseded",
                              last_error=r.detail[:1000])
            elif tries >= self.max_attempts:
                values.update(status="failed", outcome="failed", last_error=r.detail[:1000])
                failed.append(f"{ident} on {rnd.name}")
            else:
                values.update(status="retry", completed_at=None, last_error=r.detail[:1000],
                              next_attempt_at=now + dt.timedelta(seconds=backoff(tries)))
            counts[values["status"]] = counts.get(values["status"], 0) + 1
            updates.append(values)
        with self.factory() as session, session.begin():
            table = cast(Table, OltTask.__table__)
            session.connection().execute(
                update(table).where(table.c.id == bindparam("tid"),
                                    table.c.status == "working")
                .values({k: bindparam(k) for k in updates[0] if k != "tid"}), updates)
            session.execute(insert(EnforcementAttempt), attempts)
            for block in (True, False):
                idents = [i for i, b in acked if b is block]
                for part in chunks(idents):
                    session.execute(update(Onu).where(Onu.olt_id == rnd.olt_id,
                                                      Onu.ident.in_(part))
                                    .values(blocked=block)
                                    .execution_options(synchronize_session=False))
            if failed:
                raise_alert(session, "olt-enforcement-failed",
                            f"{len(failed)} ONU(s) could not be brought in line with billing "
                            f"after {self.max_attempts} attempts: {', '.join(failed[:20])}"
                            f"{' ...' if len(failed) > 20 else ''}", {"onus": failed[:200]})
        return counts

    # -- network side ----------------------------------------------------------------------

    async def _round(self, rnd: OltRound) -> dict[str, int]:
        started = time.monotonic()
        wants: dict[str, bool] = {}
        for _, _, _, ident, block, _ in rnd.tasks:  # claimed in id order: the newest wins
            wants[ident] = block
        driver = self.make_driver(rnd.profile, rnd.creds)
        try:
            try:
                got = await asyncio.wait_for(driver.apply(wants), ROUND_BUDGET)
                results = {r.ident: r for r in got}
            except TimeoutError:
                results = {i: BlockResult(i, b, "timeout", detail=f"OLT {rnd.name}: round "
                                          f"over {ROUND_BUDGET:.0f} s") for i, b in wants.items()}
            except Exception as exc:
                log.exception("OLT %s: unexpected error", rnd.name)
                results = {i: BlockResult(i, b, "error", detail=f"{type(exc).__name__}: {exc}")
                           for i, b in wants.items()}
        finally:
            await driver.aclose()
        seconds = time.monotonic() - started
        counts = await asyncio.to_thread(self._record, rnd, results, seconds)
        log.info("OLT %s: %d ONU(s) in %.2f s: %s", rnd.name, len(wants), seconds,
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return counts

    async def spawn(self) -> int:
        """Claim due tasks of OLTs without a round on the wire and start one round per OLT
        in the background. Returns how many rounds started."""
        rounds = await asyncio.to_thread(self._claim, set(self.busy))
        for rnd in rounds:
            self.busy.add(rnd.olt_id)
            task = asyncio.create_task(self._round(rnd))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
            task.add_done_callback(self._release(rnd.olt_id))
        return len(rounds)

    def _release(self, olt_id: int) -> Any:
        def done(_task: asyncio.Task[dict[str, int]]) -> None:
            self.busy.discard(olt_id)

        return done

    async def tick(self) -> dict[str, int]:
        """Start what is due and wait for every round in flight (``--once``, tests)."""
        await self.spawn()
        totals: dict[str, int] = {}
        while self.inflight:
            for counts in await asyncio.gather(*list(self.inflight)):
                for k, v in counts.items():
                    totals[f"olt_{k}"] = totals.get(f"olt_{k}", 0) + v
        return totals

    async def close(self) -> None:
        if self.inflight:
            await asyncio.wait(self.inflight)


def status_counts(session: Session) -> dict[str, int]:
    """OLT tasks pending and failed, ONUs that drifted from billing, bound ONUs (and those
    on models without an SNMP block, enforced at the NAS only)."""
    from sqlalchemy import func

    from olt.profiles import profile

    by_status = dict(session.execute(select(OltTask.status, func.count())
                                     .where(OltTask.status.in_((*OPEN, "failed")))
                                     .group_by(OltTask.status)).all())
    nas_only = 0
    bound = 0
    for vendor, overrides, n in session.execute(
            select(Olt.vendor, Olt.overrides, func.count(OnuBinding.id))
            .join(OnuBinding, OnuBinding.olt_id == Olt.id).group_by(Olt.id)):
        bound += n
        if not profile(vendor, overrides).snmp_block:
            nas_only += n
    return {"pending": sum(int(by_status.get(s, 0)) for s in OPEN),
            "failed": int(by_status.get("failed", 0)), "drift": len(drift(session)),
            "bound": bound, "nas_only": nas_only}


def drift(session: Session) -> list[tuple[int, str, bool]]:
    """Bound ONUs whose last read-back state differs from billing's wish and that have no
    open OLT task: (subscriber id, ident, wanted block)."""
    from billing.models import Subscriber

    open_subs = set(session.scalars(select(OltTask.subscriber_id).where(
        OltTask.status.in_(OPEN))))
    out = []
    for sid, ident, status, blocked in session.execute(
            select(OnuBinding.subscriber_id, OnuBinding.ident, Subscriber.status, Onu.blocked)
            .join(Subscriber, Subscriber.id == OnuBinding.subscriber_id)
            .join(Onu, (Onu.olt_id == OnuBinding.olt_id) & (Onu.ident == OnuBinding.ident))
            .where(Onu.blocked.is_not(None))):
        want = wants_block(status)
        if blocked != want and sid not in open_subs:
            out.append((sid, ident, want))
    return out
