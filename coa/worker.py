"""`radbill enforcement run`: the process that makes the network follow billing.

Each round: confirm what is waiting for Accounting-Stops, claim due requests, send every
Disconnect/CoA of the round at once (thousands in flight), fall back to the RouterOS API
where CoA was refused or unanswered, and record every attempt. Database work runs in a
thread so the event loop keeps answering sockets while it commits. Every few minutes the
reconciler compares billing with what the NAS report and queues repairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from coa import queue, rules
from coa.controller import EnforcementError, Outcome, SessionController, StepResult
from coa.queue import Done, Job, Target
from coa.routeros import RouterOsController
from olt.channel import OltChannel
from olt.channel import plan as plan_olt_tasks
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import utcnow

log = logging.getLogger("radbill.enforcement")

def _log_failure(task: asyncio.Task[dict[str, int]]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("enforcement task failed: %s", task.exception())


# Enforcement actions that disable (True) or enable (False) a router's local /ppp/secret.
LOCAL_USER = {"suspend": True, "disable": True, "terminate": True, "reconnect": False}


@dataclass(frozen=True)
class WorkerConfig:
    """How hard the worker tries."""

    batch: int = 5000
    max_attempts: int = 6
    confirm_seconds: float = 20.0
    poll_seconds: float = 0.1
    suspend_by: str = "disconnect"  # or "coa"
    reconcile_seconds: float = 60.0
    olt_watch_seconds: float = 10.0  # sysUpTime of every OLT: a reboot is repaired at once
    rounds_in_flight: int = 2


class EnforcementWorker:
    """Consumes the enforcement queue. One per deployment is enough; more share the queue on
    PostgreSQL (SKIP LOCKED)."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox, settings: Settings,
                 coa: SessionController, api: RouterOsController,
                 config: WorkerConfig | None = None,
                 probe: sessionmaker[Session] | None = None,
                 olt: OltChannel | None = None) -> None:
        self.factory, self.box, self.settings = factory, box, settings
        # the OLT channel: its own tasks, attempts and rounds (one per OLT), beside the NAS
        self.olt = olt
        self.probe = probe or factory  # read-only sessions (SQLite: BEGIN DEFERRED)
        self.coa, self.api = coa, api
        self.config = config or WorkerConfig()

    # -- database side (runs in a thread) -----------------------------------------------

    def _claim(self) -> tuple[list[Job], dict[str, int]]:
        # The idle poll only reads (on SQLite a write transaction every 100 ms would starve
        # the ingester and everybody else of the write lock); it writes when there is work.
        with self.probe() as session:
            now = utcnow()
            done, late = queue.confirm_scan(session, now)
            due = queue.due(session, now)
        if not (done or late or due):
            return [], {}
        with self.factory() as session, session.begin():
            now = utcnow()
            confirmed = queue.confirm_apply(session, done, late, now, self.config.max_attempts)
            # late confirmations were just made due again: claim them in this round too
            jobs = (queue.claim(session, self.box, self.settings, now, self.config.batch)
                    if due or late else [])
            if self.olt is not None and jobs:
                plan_olt_tasks(session, [(j.request_id, j.subscriber_id) for j in jobs], now)
        return jobs, confirmed

    def _record(self, results: list[tuple[Job, list[Done]]]) -> dict[str, int]:
        with self.factory() as session, session.begin():
            return queue.record(session, results, utcnow(),
                                max_attempts=self.config.max_attempts,
                                confirm_seconds=self.config.confirm_seconds)

    # -- network side -------------------------------------------------------------------

    async def _target(self, job: Job, target: Target) -> Done:
        try:
            return await self._target_steps(job, target)
        except Exception as exc:
            log.exception("enforcement %s %s: unexpected error", job.username,
                          target.ref.acct_session_id)
            result = StepResult(Outcome.ERROR, "none", detail=f"{type(exc).__name__}: {exc}")
            return Done(target, result, [result])

    async def _target_steps(self, job: Job, target: Target) -> Done:
        step = rules.step_for(job.action, job.want, target.ref.service, self.config.suspend_by)
        nas = target.nas
        if nas is None:
            result = StepResult(Outcome.ERROR, "none",
                                detail=f"NAS {target.nas_ip} is not registered")
            return Done(target, result, [result])
        attempts: list[StepResult] = []
        if target.via != "api":
            if step.kind is rules.Kind.DISCONNECT:
                attempts.append(await self.coa.disconnect(nas, target.ref))
            else:
                assert step.change is not None
                attempts.append(await self.coa.change(nas, target.ref, step.change))
                if attempts[-1].outcome is Outcome.ACK and nas.has_api:
                    # a CoA-ACK says the router accepted it; the API shows whether it took
                    attempts.append(await self.api.read_back(nas, target.ref, step.change))
                    if attempts[-1].outcome is Outcome.ACK:
                        return Done(target, attempts[0], attempts)
            # "Session not found" is checked through the API where there is one: a NAS that
            # mis-identifies a live session would otherwise be believed forever.
            gone = attempts[-1].outcome is Outcome.GONE
            if not (rules.needs_fallback(attempts[-1]) or gone) or not nas.has_api:
                return Done(target, attempts[-1], attempts)
        try:
            if target.via == "api" and job.action in LOCAL_USER:
                # routers enforced by API may keep users locally (/ppp/secret), which
                # RouterOS checks before RADIUS: keep the secret in step with billing
                attempts.append(await self.api.set_local_user(nas, job.username,
                                                              LOCAL_USER[job.action]))
            if step.kind is rules.Kind.DISCONNECT:
                attempts.append(await self.api.disconnect(nas, target.ref))
            else:
                assert step.change is not None
                attempts.append(await self.api.change(nas, target.ref, step.change))
        except EnforcementError as exc:
            attempts.append(StepResult(Outcome.ERROR, "api", detail=str(exc)))
        final = attempts[-1]
        return Done(target, final, attempts)

    async def _job(self, job: Job) -> tuple[Job, list[Done]]:
        if job.error is not None:
            result = StepResult(Outcome.ERROR, "none", detail=job.error)
            return job, [Done(None, result, [result])]
        dones = await asyncio.gather(*(self._target(job, t) for t in job.targets))
        return job, list(dones)

    async def _deliver(self, jobs: list[Job]) -> dict[str, int]:
        """The network part of a round, then its record."""
        started = time.monotonic()
        results = await asyncio.gather(*(self._job(j) for j in jobs))
        sent = time.monotonic() - started
        counts = await asyncio.to_thread(self._record, list(results))
        counts["claimed"] = len(jobs)
        log.info("enforcement round: %d requests, %d sessions, network %.2f s: %s",
                 len(jobs), sum(len(j.targets) for j in jobs), sent,
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return counts

    async def tick(self) -> dict[str, int]:
        """One round, start to end. Returns counts (claimed, by new status, confirmed)."""
        jobs, confirmed = await asyncio.to_thread(self._claim)
        counts = dict(confirmed)
        if jobs:
            counts.update(await self._deliver(jobs))
        if self.olt is not None:
            counts.update(await self.olt.tick())
        if not jobs and confirmed:
            log.info("enforcement: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return counts

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until *stop* is set; a failing round is logged and retried.

        Up to ``rounds_in_flight`` rounds overlap: the next batch is claimed and planned
        (database work, in a thread) while the previous one is on the wire, so a burst of
        thousands keeps the NAS busy instead of waiting for the database between batches.
        A claimed request is ``working`` and is not claimed again meanwhile."""
        from coa.reconciler import reconcile

        last_reconcile = last_watch = last_olt = time.monotonic()
        watching: asyncio.Task[dict[str, int]] | None = None
        reconciling: asyncio.Task[dict[str, int]] | None = None
        inflight: set[asyncio.Task[dict[str, int]]] = set()
        while not stop.is_set():
            busy = False
            try:
                if len(inflight) < self.config.rounds_in_flight:
                    jobs, confirmed = await asyncio.to_thread(self._claim)
                    if confirmed:
                        log.info("enforcement: %s",
                                 ", ".join(f"{k} {v}" for k, v in sorted(confirmed.items())))
                    if jobs:
                        busy = True
                        task = asyncio.create_task(self._deliver(jobs))
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                        task.add_done_callback(_log_failure)
                else:
                    await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    busy = True
                if self.olt is not None and (busy or time.monotonic() - last_olt >= 0.25):
                    # background rounds, one per OLT: a slow OLT holds up nothing here.
                    # Checked every 250 ms when idle (and after every NAS round: a claim
                    # just planned OLT tasks), not on every 100 ms poll.
                    last_olt = time.monotonic()
                    busy = bool(await self.olt.spawn()) or busy
                if (self.olt is not None and (watching is None or watching.done())
                        and time.monotonic() - last_watch >= self.config.olt_watch_seconds):
                    from olt.poller import watch

                    last_watch = time.monotonic()
                    watching = asyncio.create_task(watch(self.factory, self.box))
                    watching.add_done_callback(_log_failure)
                due = time.monotonic() - last_reconcile >= self.config.reconcile_seconds
                if due and (reconciling is None or reconciling.done()):
                    # beside the rounds, not inside one: a slow router must not hold them up
                    last_reconcile = time.monotonic()
                    reconciling = asyncio.create_task(reconcile(
                        self.factory, self.box, self.settings, self.api, self.probe,
                        olts=self.olt is not None))
                    reconciling.add_done_callback(_log_failure)
            except Exception:
                log.exception("enforcement round failed; retrying")
                await asyncio.sleep(1)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_seconds)
        if inflight:
            await asyncio.wait(inflight)
        if self.olt is not None:
            await self.olt.close()
