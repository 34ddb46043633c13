"""`radbill notify run`: the process that delivers the outbox.

Each round: plan deliveries for new outbox events and operator alerts, then per channel claim
due deliveries (SKIP LOCKED on PostgreSQL, so several workers share the queue), send them
(SMS in the provider's batches, several requests in flight, under the gateway's token
bucket), and record every answer. Database work runs in a thread so the event loop keeps the
connections busy while it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing.notices import PdfNotReady
from notify import delivery
from notify.channels.base import (
    Attachment,
    ChatMessage,
    ChatSender,
    Mail,
    Mailer,
    Outcome,
    Result,
    SmsGateway,
    SmsMessage,
)
from notify.config import build, sms_policy
from notify.models import Channel
from notify.rules import TokenBucket
from radbill.crypto import SecretBox
from radbill.db import utcnow

log = logging.getLogger("radbill.notify")
CHANNEL_ORDER = ("sms", "email", "telegram")


@dataclass(frozen=True)
class WorkerConfig:
    """How much the worker takes on."""

    batch: int = 2000  # deliveries claimed per channel and round
    in_flight: int = 8  # provider requests at once per channel
    poll_seconds: float = 0.5
    max_attempts: int = delivery.MAX_ATTEMPTS
    alerts_every: float = 10.0


class _Channel:
    """A built adapter and its limits."""

    def __init__(self, row: Channel, adapter: Any) -> None:
        self.name, self.provider, self.adapter = row.name, row.provider, adapter
        self.signature = (row.provider, row.updated_at)
        self.idempotent = bool(getattr(adapter, "idempotent", False))
        self.bucket: TokenBucket | None = None
        if row.name == "sms":
            policy = sms_policy(row)
            self.bucket = TokenBucket(policy.rate, policy.burst, time.monotonic())


class NotifyWorker:
    """Delivers the outbox. *clock* gives "now" (tests freeze it)."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox,
                 config: WorkerConfig | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.factory, self.box = factory, box
        self.config = config or WorkerConfig()
        self.clock = clock
        self.channels: dict[str, _Channel] = {}
        self._last_alerts = 0.0

    # -- database side (in a thread) ----------------------------------------------------

    def _refresh(self) -> list[Channel]:
        with self.factory() as session:
            rows = list(session.scalars(select(Channel)))
            session.expunge_all()
        return rows

    def _plan(self, alerts: bool) -> int:
        with self.factory() as session, session.begin():
            n = delivery.plan(session, self.clock(), limit=self.config.batch)
            delivery.sweep_reports(session, self.clock())
            if alerts:
                from notify.alerts import forward
                from notify.summary import maybe_queue

                n += forward(session, self.clock())
                n += maybe_queue(session, self.clock())
        return n

    def _claim(self, ch: _Channel) -> list[delivery.Job]:
        with self.factory() as session, session.begin():
            return delivery.claim(session, ch.name, self.clock(), self.config.batch,
                                  ch.idempotent)

    def _record(self, ch: _Channel, results: list[Result]) -> dict[str, int]:
        with self.factory() as session, session.begin():
            return delivery.record(session, ch.name, results, self.clock(), ch.idempotent,
                                   self.config.max_attempts)

    def _attachment(self, job: delivery.Job) -> Attachment | None:
        from billing.notices import archived_pdf

        if job.kind != "invoice_issued" or not job.invoice:
            return None
        with self.factory() as session:
            found = archived_pdf(session, job.invoice)
        return Attachment(f"{job.invoice}.pdf", found[0]) if found else None

    # -- network side -------------------------------------------------------------------

    async def _sync_channels(self) -> None:
        rows = await asyncio.to_thread(self._refresh)
        seen = set()
        for row in rows:
            seen.add(row.name)
            current = self.channels.get(row.name)
            if current is not None and current.signature == (row.provider, row.updated_at):
                continue
            if current is not None:
                await current.adapter.close()
            try:
                self.channels[row.name] = _Channel(row, build(row, self.box))
            except Exception:
                log.exception("notify: %s channel cannot be built", row.name)
                self.channels.pop(row.name, None)
        for name in set(self.channels) - seen:
            await self.channels.pop(name).adapter.close()

    async def _send_sms(self, ch: _Channel, jobs: Sequence[delivery.Job]) -> list[Result]:
        gateway: SmsGateway = ch.adapter
        size = max(1, gateway.max_batch)
        if ch.bucket is not None:  # a batch never holds more than the bucket can grant
            size = max(1, min(size, int(ch.bucket.burst)))
        batches = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        gate = asyncio.Semaphore(self.config.in_flight)

        async def one(batch: Sequence[delivery.Job]) -> list[Result]:
            async with gate:
                if ch.bucket is not None:
                    while not ch.bucket.take_exactly(len(batch), time.monotonic()):
                        await asyncio.sleep(max(0.001, ch.bucket.wait(time.monotonic())))
                messages = [SmsMessage(j.provider_id, j.recipient, j.body, j.dlt_template_id,
                                       j.variables) for j in batch]
                return await _guard(gateway.send(messages), messages)

        out: list[Result] = []
        for results in await asyncio.gather(*(one(b) for b in batches)):
            out.extend(results)
        return out

    async def _send_email(self, ch: _Channel, jobs: Sequence[delivery.Job]) -> list[Result]:
        mailer: Mailer = ch.adapter
        gate = asyncio.Semaphore(self.config.in_flight)

        async def one(job: delivery.Job) -> Result:
            async with gate:
                try:
                    attachment = await asyncio.to_thread(self._attachment, job)
                except (PdfNotReady, OSError, ValueError) as exc:  # not yet, or not matching
                    return Result(job.provider_id, Outcome.TRANSIENT,
                                  f"invoice PDF not available: {type(exc).__name__} {exc}")
                mail = Mail(job.provider_id, job.recipient, job.subject or "", job.body,
                            _html(job.body), [attachment] if attachment else [])
                return (await _guard_one(mailer.send(mail), job.provider_id))

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    async def _send_chat(self, ch: _Channel, jobs: Sequence[delivery.Job]) -> list[Result]:
        sender: ChatSender = ch.adapter
        out = []
        for job in jobs:  # one chat at a time: Telegram allows about one message a second
            out.append(await _guard_one(sender.send(
                ChatMessage(job.provider_id, job.recipient, job.body)), job.provider_id))
        return out

    async def _channel_round(self, ch: _Channel) -> dict[str, int]:
        jobs = await asyncio.to_thread(self._claim, ch)
        if not jobs:
            return {}
        started = time.monotonic()
        if ch.name == "sms":
            results = await self._send_sms(ch, jobs)
        elif ch.name == "email":
            results = await self._send_email(ch, jobs)
        else:
            results = await self._send_chat(ch, jobs)
        counts = await asyncio.to_thread(self._record, ch, results)
        log.info("notify %s: %d messages in %.2f s: %s", ch.name, len(jobs),
                 time.monotonic() - started,
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return {f"{ch.name}_{k}": v for k, v in counts.items()}

    async def tick(self) -> dict[str, int]:
        """One round. Counts: events planned, and per channel deliveries by new status."""
        await self._sync_channels()
        alerts = time.monotonic() - self._last_alerts >= self.config.alerts_every
        if alerts:
            self._last_alerts = time.monotonic()
        counts: dict[str, int] = {"planned": await asyncio.to_thread(self._plan, alerts)}
        rounds = await asyncio.gather(*(self._channel_round(self.channels[n])
                                        for n in CHANNEL_ORDER if n in self.channels))
        for r in rounds:
            counts.update(r)
        return counts

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until *stop* is set; a failing round is logged and retried."""
        try:
            while not stop.is_set():
                busy = False
                try:
                    counts = await self.tick()
                    busy = any(v for k, v in counts.items() if k != "planned") \
                        or counts.get("planned", 0) > 0
                except Exception:
                    log.exception("notify round failed; retrying")
                    await asyncio.sleep(1)
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.poll_seconds)
        finally:
            await self.close()

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.adapter.close()
        self.channels.clear()


def _html(text: str) -> str:
    from markupsafe import escape

    paragraphs = "".join(f"<p>{escape(p)}</p>".replace("\n", "<br>")
                         for p in text.split("\n\n"))
    return f"<!DOCTYPE html><html><body>{paragraphs}</body></html>"


async def _guard(call: Any, messages: Sequence[SmsMessage]) -> list[Result]:
    try:
        results: list[Result] = await call
    except Exception as exc:  # an adapter bug: the request may have gone
        log.exception("notify: adapter failed")
        return [Result(m.provider_id, Outcome.UNKNOWN, f"adapter error {type(exc).__name__}")
                for m in messages]
    return results


async def _guard_one(call: Any, provider_id: str) -> Result:
    try:
        result: Result = await call
    except Exception as exc:
        log.exception("notify: adapter failed")
        return Result(provider_id, Outcome.UNKNOWN, f"adapter error {type(exc).__name__}")
    return result
