"""Checking a NAS for sessions accounting still believes open, after a Simultaneous-Use reject.

A router that loses power without Accounting-Stop or Accounting-On leaves its sessions open
in accounting; every redial of those subscribers is then "already logged in" until the
stale-session job gives up on them (three interim intervals). A redial from the same device
replaces its session in the policy itself; for the rest, every Simultaneous-Use reject the
post-auth spool brings in asks :class:`SessionCheck` to look at the NAS: where the NAS has
RouterOS API credentials, its ``/ppp/active`` and ``/ip/hotspot/active`` are read and every
open session of that NAS the router no longer lists is closed (``NAS-Session-Gone``), so the
next redial gets in.

This runs beside the ingester in `radbill radius run`, in its own thread: the policy inside
FreeRADIUS never waits for it, and a slow or unreachable router only delays its own check.
At most one check per NAS per :attr:`SessionCheck.min_interval` seconds, so a reject storm
does not become an API storm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coa.controller import EnforcementError, NasRef
from coa.queue import nas_refs
from coa.routeros import RouterOsController, RouterView
from radbill.crypto import SecretBox
from radbill.db import utcnow
from radius import accounting
from radius.models import RadiusSession

log = logging.getLogger("radbill.sessioncheck")

# Sessions that started this close to the moment the router was read may not be listed yet.
# started_at is our receive time less the session time (radius.accounting), not the NAS's
# clock, so only the network and the spool stand between the two.
SKEW = dt.timedelta(seconds=2)
MAX_PENDING = 10_000  # usernames waiting for a check; more are dropped (the next reject asks)
SIMULTANEOUS_USE = "simultaneous-use"

Handler = Callable[[Session, Sequence[Mapping[str, str]]], dict[int, str]]


def close_sessions_not_listed(session: Session, nas_ip: str, view: RouterView,
                              read_at: dt.datetime) -> tuple[list[str], int]:
    """Close the open sessions of *nas_ip* that the router's *view* (read at *read_at*) does
    not list. Returns the usernames of the sessions closed, and how many unlisted sessions
    were spared because they started too close to the read (a later check decides)."""
    ids = {e.session_id for e in view.active if e.session_id}
    users = {e.username.lower() for e in view.active if not e.session_id}
    return accounting.close_unlisted_sessions(session, nas_ip, ids, users, read_at - SKEW,
                                              utcnow())


class SessionCheck:
    """Checks NAS with API credentials for sessions they no longer have, on request."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox,
                 api: Callable[[], RouterOsController] = RouterOsController,
                 min_interval: float = 5.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.factory = factory
        self.box = box
        self.api = api
        self.min_interval = min_interval
        self.clock = clock
        self.closed = 0
        self.checks = 0
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last: dict[str, float] = {}  # NAS IP -> when it was last checked

    def request(self, usernames: Iterable[str]) -> None:
        """Ask for a check of the NAS where these users have open sessions. Never blocks."""
        with self._lock:
            for name in usernames:
                if len(self._pending) >= MAX_PENDING:
                    break
                self._pending.add(name.strip().lower()[:253])
        self._wake.set()

    def watch(self, handler: Handler) -> Handler:
        """A post-auth handler that also asks for a check after Simultaneous-Use rejects."""
        def apply(session: Session, records: Sequence[Mapping[str, str]]) -> dict[int, str]:
            refused = handler(session, records)
            names = [r.get("Radbill-User-Name") or "" for r in records
                     if r.get("Radbill-Reason") == SIMULTANEOUS_USE
                     and r.get("Radbill-Decision") == "reject"]
            if any(names):
                self.request(n for n in names if n)
            return refused

        return apply

    def _nas_of(self, session: Session, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), accounting.IN_CHUNK):
            found.update(session.scalars(
                select(RadiusSession.nas_ip).distinct().where(
                    RadiusSession.stopped_at.is_(None),
                    func.lower(RadiusSession.username).in_(keys[i:i + accounting.IN_CHUNK]))))
        return found

    def check_once(self) -> int:
        """Check the NAS of every pending user now. Returns how many sessions it closed."""
        with self._lock:
            keys, self._pending = sorted(self._pending), set()
        if not keys:
            return 0
        with self.factory() as session:
            nas_ips = self._nas_of(session, keys)
            refs = {ip: ref for ip, (ref, _) in nas_refs(session, self.box).items()
                    if ip in nas_ips and ref.has_api}
        now = self.clock()
        due = [ref for ip, ref in refs.items()
               if now - self._last.get(ip, -self.min_interval) >= self.min_interval]
        closed, again = 0, len(due) < len(refs)
        for ref in due:
            self._last[ref.ip] = now
            gone, spared = self._check(ref)
            closed += gone
            again = again or spared > 0
        if again:
            # a NAS checked too recently, or sessions too young to judge: look again later
            # (run_forever wakes every second)
            self.request(keys)
        return closed

    def _check(self, nas: NasRef) -> tuple[int, int]:
        self.checks += 1
        api = self.api()

        async def read() -> RouterView:
            try:
                return await api.view(nas)
            finally:
                await api.close()

        read_at = utcnow()
        try:
            view = asyncio.run(read())
        except EnforcementError as exc:
            log.warning("session check: cannot read %s: %s", nas.ip, exc)
            return 0, 0
        with self.factory() as session, session.begin():
            gone, spared = close_sessions_not_listed(session, nas.ip, view, read_at)
        if gone:
            self.closed += len(gone)
            log.warning("session check: %s no longer has %d sessions accounting had open "
                        "(closed: %s)", nas.ip, len(gone), ", ".join(sorted(set(gone))[:20]))
        return len(gone), spared

    def run_forever(self) -> None:
        """Check whenever asked, until :meth:`stop`. Never raises."""
        while not self._stop.is_set():
            self._wake.wait(1.0)  # also every second: requests put back until due
            self._wake.clear()
            try:
                self.check_once()
            except Exception as exc:  # noqa: BLE001 - the next request tries again
                log.error("session check failed: %s", str(exc).splitlines()[0] if str(exc)
                          else type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
