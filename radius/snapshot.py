"""The authorization snapshot: billing state held in memory for the RADIUS hot path.

rlm_python3 runs one Python call at a time for the whole server, so ``authorize`` must never
wait on I/O. :class:`AuthSnapshot` holds every subscriber and plan as frozen records plus the
open-session count per user; :class:`SnapshotRefresher` keeps it current from a background
thread: on PostgreSQL it is woken by ``NOTIFY`` when a change commits
(:class:`radbill.db.ChangeListener`), and it polls the change feeds (see
:func:`radbill.db.bump`) a few times a second anyway, the only way on SQLite.

When the database is unreachable the snapshot keeps serving the last state it had, the
refresher logs loudly and retries with back-off, and recovers by itself. A database error is
never turned into "unknown user" or "unpaid": before the first successful load the policy
answers ``unavailable`` (no reply at all), so the NAS retries or fails over.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import subscribers as subscriber_service
from billing.isp import billed_until
from billing.models import Plan, Subscriber
from billing.plans import plan_burst, plan_fup_rate, plan_rate
from radbill.crypto import SecretBox, SecretError
from radbill.db import AUTH_FEED, ChangeCounter, ChangeListener
from radius import accounting
from radius.liveness import SessionRef
from radius.models import Nas
from radius.policy import PlanRecord, SubscriberRecord

log = logging.getLogger("radbill.snapshot")


def username_key(username: str) -> str:
    """The snapshot key of a username: without surrounding spaces, in lower case (the
    database keeps usernames unique in lower case)."""
    return username.strip().lower()


def plan_record(plan: Plan) -> PlanRecord:
    """The policy's view of a plan."""
    return PlanRecord(
        id=plan.id,
        name=plan.name,
        rate=plan_rate(plan),
        burst=plan_burst(plan),
        fup_rate=plan_fup_rate(plan),
        ip_pool=plan.ip_pool,
        ipv6_pool=plan.ipv6_pool,
        delegated_ipv6_pool=plan.delegated_ipv6_pool,
        idle_timeout=plan.idle_timeout,
        data_quota=plan.data_cap_bytes if plan.fup_download_bps is None else None,
        time_quota=plan.time_quota_s,
    )


def subscriber_record(sub: Subscriber, box: SecretBox) -> SubscriberRecord:
    """The policy's view of a subscriber, with the password decrypted."""
    try:
        password: str | None = box.decrypt(sub.password_enc)
    except SecretError:
        log.error("subscriber %r: password cannot be decrypted with this key; rejecting "
                  "its logins until it is reset", sub.username)
        password = None
    return SubscriberRecord(
        username=sub.username,
        password=password,
        service=str(sub.service),
        status=str(sub.status),
        plan_id=sub.plan_id,
        static_ip=sub.static_ip,
        ip_pool=sub.ip_pool,
        mac_address=sub.mac_address,
        simultaneous_use=sub.simultaneous_use,
        paid_until=sub.paid_until,
        fup_throttled=sub.fup_throttled,
        framed_ipv6_prefix=sub.framed_ipv6_prefix,
        delegated_ipv6_prefix=sub.delegated_ipv6_prefix,
        ipv6_pool=sub.ipv6_pool,
        cap_throttled=sub.cap_throttled,
        quota_left_bytes=sub.quota_left_bytes,
        quota_left_seconds=sub.quota_left_seconds,
    )


def subscriber_record_without_password(sub: Subscriber) -> SubscriberRecord:
    """The policy's view of a subscriber for deciding what a running session should have
    (enforcement): everything but the password, which is replaced by a placeholder."""
    return SubscriberRecord(
        username=sub.username,
        password="",
        service=str(sub.service),
        status=str(sub.status),
        plan_id=sub.plan_id,
        static_ip=sub.static_ip,
        ip_pool=sub.ip_pool,
        mac_address=None,
        simultaneous_use=sub.simultaneous_use,
        paid_until=sub.paid_until,
        fup_throttled=sub.fup_throttled,
        framed_ipv6_prefix=sub.framed_ipv6_prefix,
        delegated_ipv6_prefix=sub.delegated_ipv6_prefix,
        ipv6_pool=sub.ipv6_pool,
        cap_throttled=sub.cap_throttled,
        quota_left_bytes=sub.quota_left_bytes,
        quota_left_seconds=sub.quota_left_seconds,
    )


class AuthSnapshot:
    """In-memory authorization state. Reads are lock-free dictionary look-ups; the refresher
    replaces whole records, which is atomic under the GIL. Subscribers and sessions are
    keyed by :func:`username_key`."""

    def __init__(self) -> None:
        self.subscribers: dict[str, SubscriberRecord] = {}
        self.plans: dict[int, PlanRecord] = {}
        self.online: dict[str, int] = {}
        # the open sessions of each user (which NAS, which device): a redial from the same
        # device replaces its stale session instead of counting against Simultaneous-Use
        self.sessions: dict[str, tuple[SessionRef, ...]] = {}
        self.nas_types: dict[str, str] = {}  # NAS IP -> type (profile name)
        # how many sessions of each user have been seen open since the start: a Start that
        # ends a provisional session (radius.liveness) shows as this growing
        self.opened: dict[str, int] = {}
        self.auth_version = 0
        # the end of the last day billing ran for (billing.isp.billed_until): prepaid
        # cut-offs beyond it are held (radius.policy.cut_off)
        self.billed_until: dt.datetime | None = None
        self.session_version = 0
        self.loaded = False
        self.healthy = False
        self.last_refresh_ok: float | None = None
        self.last_error: str | None = None

    def lookup(self, username: str) -> tuple[SubscriberRecord | None, PlanRecord | None, int]:
        """The subscriber, its plan and its open-session count."""
        key = username_key(username)
        sub = self.subscribers.get(key)
        if sub is None:
            return None, None, 0
        return sub, self.plans.get(sub.plan_id), self.online.get(key, 0)

    def refresh(self, session: Session, box: SecretBox) -> int:
        """Apply every change since the last refresh. Returns how many records changed."""
        feed = session.scalar(select(ChangeCounter.value).where(ChangeCounter.name == AUTH_FEED))
        changed = 0
        if feed is None or feed > self.auth_version or not self.loaded:
            subs, plans = subscriber_service.changed_since(session, self.auth_version)
            newest = self.auth_version
            for plan in plans:
                self.plans[plan.id] = plan_record(plan)
                newest = max(newest, plan.auth_version)
            for sub in subs:
                self.subscribers[username_key(sub.username)] = subscriber_record(sub, box)
                newest = max(newest, sub.auth_version)
            self.auth_version = newest
            changed += len(subs) + len(plans)
            self.billed_until = billed_until(session)
            self.nas_types = {str(ip): str(t) for ip, t in session.execute(
                select(Nas.ip_address, Nas.nas_type))}
        refs, seq, touched = accounting.open_session_refs(session, self.session_version)
        if self.session_version == 0:
            self.sessions, self.online = {}, {}
        for name, user_refs in refs.items():
            key = username_key(name)
            before = {r.acct_session_id for r in self.sessions.get(key, ())}
            # sessions opened since the last read, including any already closed again
            new = len(touched.get(key, set()) - before)
            if new:
                self.opened[key] = self.opened.get(key, 0) + new
            if user_refs:
                self.sessions[key] = user_refs
                self.online[key] = len(user_refs)
            else:
                self.sessions.pop(key, None)
                self.online.pop(key, None)
        counts = refs
        self.session_version = seq
        self.loaded = True
        return changed + len(counts)


class SnapshotRefresher(threading.Thread):
    """Keeps an :class:`AuthSnapshot` current. Never raises; logs and backs off instead."""

    def __init__(
        self,
        snapshot: AuthSnapshot,
        engine: Engine,
        box: SecretBox,
        poll_seconds: float = 0.25,
        max_backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        listener: ChangeListener | None = None,
    ) -> None:
        super().__init__(name="radbill-snapshot", daemon=True)
        self.snapshot = snapshot
        self.engine = engine
        self.box = box
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.clock = clock
        # PostgreSQL: woken by NOTIFY at every change (see radbill.db.bump); polling stays
        # the fallback when there is no listener or it fails
        self.listener = listener
        self.listening = False
        self._listen_retry_at = 0.0
        self._stop_event = threading.Event()
        self._failures = 0

    def refresh_once(self) -> bool:
        """One refresh; True on success."""
        try:
            with Session(self.engine) as session, session.begin():
                changed = self.snapshot.refresh(session, self.box)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last snapshot
            self._failures += 1
            self.snapshot.healthy = False
            self.snapshot.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            # Loud at the first failure and every ~30 s after, not at every poll.
            if self._failures == 1 or self._failures % max(1, int(30 / self.poll_seconds)) == 0:
                age = (
                    f"{self.clock() - self.snapshot.last_refresh_ok:.0f}s old"
                    if self.snapshot.last_refresh_ok is not None
                    else "never loaded: not answering Access-Requests"
                )
                log.error("DATABASE UNREACHABLE: authorizing from the last snapshot (%s, %d "
                          "subscribers); retrying. %s", age, len(self.snapshot.subscribers),
                          self.snapshot.last_error)
            self.engine.dispose()
            return False
        if self._failures:
            log.warning("database reachable again after %d failed refreshes; snapshot current",
                        self._failures)
        elif changed and not self.snapshot.healthy:
            log.info("snapshot loaded: %d subscribers, %d plans, %d users online",
                     len(self.snapshot.subscribers), len(self.snapshot.plans),
                     len(self.snapshot.online))
        self._failures = 0
        self.snapshot.healthy = True
        self.snapshot.last_refresh_ok = self.clock()
        return True

    def run(self) -> None:
        while not self._stop_event.is_set():
            ok = self.refresh_once()
            delay = self.poll_seconds if ok else min(
                self.max_backoff, self.poll_seconds * 2 ** min(self._failures, 6)
            )
            self.wait_for_change(delay)

    LISTEN_RETRY_S = 30.0
    STOP_SLICE_S = 0.25

    def wait_for_change(self, delay: float) -> bool:
        """Wait until the next refresh: *delay* seconds, or less when the database notifies
        a change. True if a notification woke it. A listener that fails is dropped for
        :attr:`LISTEN_RETRY_S` (polling meanwhile), with one log line each way."""
        listener = self.listener
        if listener is None or self.clock() < self._listen_retry_at:
            self._stop_event.wait(delay)
            return False
        try:
            listener.connect()
            if not self.listening:
                log.info("listening for changes: a change is applied when it commits")
                self.listening = True
            # in slices, so that stop() is not held up by a long poll interval
            end = time.monotonic() + delay
            while not self._stop_event.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                if listener.wait(min(left, self.STOP_SLICE_S)):
                    return True
            return False
        except Exception as exc:  # noqa: BLE001 - polling goes on; retried later
            if self.listening or not self._listen_retry_at:
                log.warning("change notifications unavailable (%s): polling every %d ms",
                            f"{type(exc).__name__}: {exc}".splitlines()[0],
                            round(self.poll_seconds * 1000))
            self.listening = False
            self._listen_retry_at = self.clock() + self.LISTEN_RETRY_S
            self._stop_event.wait(delay)
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        if self.listener is not None and not self.is_alive():
            self.listener.close()
