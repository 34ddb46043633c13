"""The reconciler: does the network match billing? Finds drift and repairs it.

Two views, because either can be wrong on its own:

* **Accounting** (every NAS): an open session that started before the subscriber's latest
  enforcement request, and was not changed live since, still runs under an old policy; a
  session of a subscriber who may not be online at all (disabled, terminated, suspended in
  reject mode) must end; a login answered from a policy snapshot that had not caught up with
  a change the enforcement request could not reach (its Start was not stored yet) runs
  under the old policy too. Each finding queues a ``resync`` request (a Disconnect); a
  finding that is only the wrong speed (fair-usage against full) queues an ``unthrottle``
  or ``throttle`` (a CoA on PPPoE: the session stays up).
* **RouterOS API** (NAS with API credentials): who the router says is online, and which
  addresses sit in the walled-garden address list. A subscriber who should be in the garden
  but is online outside it is disconnected (the next login lands in the garden); an active
  subscriber stuck in the list is taken out of it and disconnected so the next login gets
  the plan's speed; someone online who may not be is disconnected. Sessions the router has
  and accounting does not know of are counted as ``unaccounted``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing.models import EnforcementRequest, Plan, Subscriber, SubscriberStatus
from coa import queue
from coa.controller import EnforcementError, NasRef, Outcome, SessionRef, StepResult
from coa.models import EnforcementAttempt
from coa.routeros import RouterOsController, RouterView
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import utcnow
from radbill.jobs import recorded
from radius import postauth
from radius.models import RadiusSession
from radius.policy import Reason

log = logging.getLogger("radbill.reconciler")

# Session start times come from the NAS's accounting (event time minus session time) and
# request times from our clock: allow for the difference.
SKEW = dt.timedelta(seconds=2)
# How far back a billing change can leave a session stale (sessions older are stale anyway
# after the stale-session job): bounds the drift query as the request history grows.
HISTORY = dt.timedelta(days=30)


def _aware(value: dt.datetime | str) -> dt.datetime:
    # An aggregate (max) comes back untyped on SQLite: an ISO string.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def accounting_drift(session: Session, settings: Settings) -> list[tuple[int, str, str]]:
    """(subscriber id, username, why) for each subscriber whose open sessions do not match
    billing, leaving out subscribers with a request still being worked on."""
    latest = (select(EnforcementRequest.subscriber_id,
                     func.max(EnforcementRequest.created_at).label("at"))
              .where(EnforcementRequest.status != "superseded",
                     EnforcementRequest.created_at >= utcnow() - HISTORY)
              .group_by(EnforcementRequest.subscriber_id).subquery())
    busy = set(session.scalars(select(EnforcementRequest.subscriber_id).distinct().where(
        EnforcementRequest.status.in_(queue.OPEN))))
    found: dict[int, tuple[int, str, str]] = {}
    stale = session.execute(
        select(Subscriber.id, Subscriber.username, RadiusSession.acct_session_id,
               RadiusSession.nas_ip, RadiusSession.started_at, latest.c.at)
        .join(RadiusSession, RadiusSession.username == Subscriber.username)
        .join(latest, latest.c.subscriber_id == Subscriber.id)
        .where(RadiusSession.stopped_at.is_(None),
               RadiusSession.started_at < latest.c.at,
               (RadiusSession.enforced_at.is_(None)) | (RadiusSession.enforced_at < latest.c.at)))
    for sub_id, name, sid, nas_ip, started, at in stale:
        # (the skew is applied here: interval arithmetic is not portable to SQLite)
        if sub_id not in busy and started < _aware(at) - SKEW:
            found.setdefault(sub_id, (sub_id, name, f"session {sid} at {nas_ip} predates the "
                                      "latest billing change"))
    barred = [SubscriberStatus.DISABLED, SubscriberStatus.TERMINATED]
    if settings.suspended_mode == "reject":
        barred.append(SubscriberStatus.SUSPENDED)
    online = session.execute(
        select(Subscriber.id, Subscriber.username, Subscriber.status).distinct()
        .join(RadiusSession, RadiusSession.username == Subscriber.username)
        .where(RadiusSession.stopped_at.is_(None), Subscriber.status.in_(barred)))
    for sub_id, name, status in online:
        if sub_id not in busy:
            found.setdefault(sub_id, (sub_id, name, f"online while {status}"))
    for sub_id, name, why in _logged_in_under_the_old_policy(session, settings, busy):
        found.setdefault(sub_id, (sub_id, name, why))
    return list(found.values())


GARDEN_REASONS = ("suspended-walled-garden", "expired-walled-garden")
FULL_REASONS = ("active", "fair-usage-throttled")
RECENT = dt.timedelta(hours=1)
FUP_LOGIN_NOT_THROTTLED = "not throttled, but logged in at the fair-usage speed"
FULL_LOGIN_THROTTLED = "throttled, but logged in at full speed"
# Drift that is only a wrong speed: repaired live (a CoA on PPPoE) rather than by a resync's
# Disconnect; every other finding is a resync.
REPAIR_ACTION = {FUP_LOGIN_NOT_THROTTLED: "unthrottle", FULL_LOGIN_THROTTLED: "throttle"}


def _logged_in_under_the_old_policy(session: Session, settings: Settings, busy: set[int]
                                    ) -> list[tuple[int, str, str]]:
    """Subscribers changed in the last hour who are online under the policy from before the
    change: the session started after the change (so the rule above does not see it), but
    the login was answered from a snapshot that had not caught up yet (on PostgreSQL it is
    woken when the change commits, tens of milliseconds, see bench/change_feed.py; it polls
    every RADBILL_SNAPSHOT_POLL_MS, 250 ms, on SQLite or when the listener is lost; a router
    that re-dials at once can beat it). The post-auth log says what the login
    got: a walled-garden login of an active subscriber, or a full-speed login of a suspended
    one (walled-garden mode), is drift."""
    changed = (select(EnforcementRequest.subscriber_id).distinct()
               .where(EnforcementRequest.created_at >= utcnow() - RECENT))
    rows = session.execute(
        select(Subscriber.id, Subscriber.username, Subscriber.status,
               (Subscriber.fup_throttled | Subscriber.cap_throttled)
               & Plan.fup_download_bps.is_not(None))
        .join(Plan, Plan.id == Subscriber.plan_id)
        .where(Subscriber.id.in_(changed))
        .where(select(RadiusSession.id).where(RadiusSession.username == Subscriber.username,
                                              RadiusSession.stopped_at.is_(None)).exists()))
    out = []
    for sub_id, name, status, throttled in rows:
        if sub_id in busy:
            continue
        # the log, or its day summaries once retention folded it (a session open for months)
        row = postauth.last_accept(session, name)
        if row is None:
            continue
        last, at = row
        enforced = session.scalar(select(func.max(RadiusSession.enforced_at)).where(
            RadiusSession.username == name, RadiusSession.stopped_at.is_(None)))
        if enforced is not None and _aware(enforced) >= at:
            continue  # changed live (CoA) after that login: the login's policy is history
        if status == SubscriberStatus.ACTIVE and last in GARDEN_REASONS:
            out.append((sub_id, name, "active, but logged in to the walled garden"))
        elif (status == SubscriberStatus.SUSPENDED and settings.suspended_mode != "reject"
              and last in FULL_REASONS):
            out.append((sub_id, name, "suspended, but logged in at full speed"))
        # A throttle lifted (period renewal, top-up, payment) or set while the login was
        # answered: the enforcement request found no open session (the Start was not stored
        # yet), so nothing else would ever change this session's speed.
        elif status == SubscriberStatus.ACTIVE and last == Reason.THROTTLED and not throttled:
            out.append((sub_id, name, FUP_LOGIN_NOT_THROTTLED))
        elif status == SubscriberStatus.ACTIVE and last == Reason.ACTIVE and throttled:
            out.append((sub_id, name, FULL_LOGIN_THROTTLED))
    return out


def _queue_accounting_repairs(factory: sessionmaker[Session], settings: Settings) -> int:
    with factory() as session, session.begin():
        drift = accounting_drift(session, settings)
        for sub_id, name, why in drift:
            log.warning("drift: %s: %s; queued a resync", name, why)
            queue.request(session, sub_id, REPAIR_ACTION.get(why, "resync"),
                          f"reconciler: {why}")
        return len(drift)


def _api_routers(probe: sessionmaker[Session], box: SecretBox) -> list[NasRef]:
    with probe() as session:
        return [ref for ref, _ in queue.nas_refs(session, box).values() if ref.has_api]


def _router_inputs(probe: sessionmaker[Session], box: SecretBox, settings: Settings,
                   nas_ip: str, usernames: set[str]
                   ) -> tuple[dict[str, tuple[int, Any]], set[tuple[str, str]]]:
    """What billing wants for the users one router reports (only those: a router lists its
    online users, not all 100,000 subscribers), and the sessions accounting has there.
    Reads only (on SQLite, a deferred transaction that never blocks the writers)."""
    now = utcnow()
    subs: dict[str, tuple[int, Any]] = {}
    with probe() as session:
        for names in queue.chunks(sorted(usernames)):
            for s in session.scalars(select(Subscriber).where(Subscriber.username.in_(names))):
                try:
                    subs[s.username] = (s.id, queue.desired_for(s, box, settings, now))
                except Exception:
                    log.exception("reconciler: cannot compute what %s should have", s.username)
        # lower case: the router prints 0x81B0000A, accounting has 81b0000a
        known = {(ip, sid.lower()) for ip, sid in session.execute(
            select(RadiusSession.nas_ip, RadiusSession.acct_session_id)
            .where(RadiusSession.stopped_at.is_(None), RadiusSession.nas_ip == nas_ip))}
    return subs, known


async def _repair_router(nas: NasRef, view: RouterView, subs: dict[str, tuple[int, Any]],
                         known: set[tuple[str, str]], api: RouterOsController,
                         counts: dict[str, int]) -> list[tuple[int, str, list[StepResult]]]:
    repairs = []
    for entry in view.active:
        if entry.session_id and (nas.ip, entry.session_id) not in known:
            counts["unaccounted"] = counts.get("unaccounted", 0) + 1
        if entry.username not in subs:
            # not a radbill subscriber: a site-to-site tunnel, a staff VPN, a local user.
            # Counted, never disconnected by the reconciler.
            counts["unknown_online"] = counts.get("unknown_online", 0) + 1
            continue
        sub_id, want = subs[entry.username]
        ref = SessionRef(entry.username, entry.session_id or "", entry.address, entry.service)
        listed = entry.address in view.listed if entry.address else False
        steps: list[StepResult] = []
        if not want.online:
            why = "online-not-allowed"
            steps.append(await api.disconnect(nas, ref))
        elif want.address_list and not listed:
            why = "outside-walled-garden"
            steps.append(await api.disconnect(nas, ref))
        elif not want.address_list and listed:
            why = "stuck-in-walled-garden"
            assert entry.address is not None
            steps.append(await api.remove_listed(nas, view.listed[entry.address]))
            steps.append(await api.disconnect(nas, ref))
        else:
            continue
        counts[why] = counts.get(why, 0) + 1
        log.warning("drift at %s: %s %s; repaired by API: %s", nas.ip, entry.username, why,
                    ", ".join(str(s.outcome) for s in steps))
        repairs.append((sub_id, f"reconciler (API {nas.ip}): {why}", steps))
    return repairs


def _close_not_listed(factory: sessionmaker[Session], nas_ip: str, view: RouterView,
                      read_at: dt.datetime) -> int:
    from radius.sessioncheck import close_sessions_not_listed

    with factory() as session, session.begin():
        gone, _ = close_sessions_not_listed(session, nas_ip, view, read_at)
    if gone:
        log.warning("reconciler: %s no longer lists %d sessions accounting had open; closed",
                    nas_ip, len(gone))
    return len(gone)


def _record_repairs(factory: sessionmaker[Session], nas_ip: str,
                    repairs: list[tuple[int, str, list[StepResult]]]) -> None:
    if not repairs:
        return
    with factory() as session, session.begin():
        now = utcnow()
        for sub_id, why, steps in repairs:
            req = queue.request(session, sub_id, "resync", why)
            ok = all(s.outcome in (Outcome.ACK, Outcome.GONE) for s in steps)
            req.status = "done" if ok else "retry"
            req.attempts = 1
            req.completed_at = now if ok else None
            req.outcome = "api-repair" if ok else None
            req.last_error = None if ok else "; ".join(s.detail for s in steps if s.detail)
            for s in steps:
                session.add(EnforcementAttempt(
                    request_id=req.id, subscriber_id=sub_id, nas_ip=nas_ip, channel=s.channel,
                    outcome=str(s.outcome), detail=s.detail or None, sends=s.sends,
                    latency_ms=round(s.latency * 1000, 3), at=now))


async def reconcile(factory: sessionmaker[Session], box: SecretBox, settings: Settings,
                    api: RouterOsController, probe: sessionmaker[Session] | None = None,
                    *, olts: bool = False) -> dict[str, int]:
    """One reconciliation pass, recorded as the job ``reconcile``. Returns its counts.
    *probe* gives read-only sessions (SQLite: BEGIN DEFERRED) for the large reads."""
    import asyncio

    probe = probe or factory
    with recorded(factory, "reconcile") as counts:
        counts["accounting_drift"] = await asyncio.to_thread(
            _queue_accounting_repairs, factory, settings)
        nases = await asyncio.to_thread(_api_routers, probe, box)
        counts["routers"] = len(nases)
        for nas in nases:
            read_at = utcnow()
            try:
                view = await api.view(nas)
            except EnforcementError as exc:
                log.error("reconciler: cannot read %s: %s", nas.ip, exc)
                counts["router_errors"] = counts.get("router_errors", 0) + 1
                continue
            subs, known = await asyncio.to_thread(
                _router_inputs, probe, box, settings, nas.ip,
                {e.username for e in view.active})
            # accounting sessions this router no longer lists (it lost them without a Stop):
            # closed, so they neither block a redial nor count as online
            gone = await asyncio.to_thread(_close_not_listed, factory, nas.ip, view, read_at)
            if gone:
                counts["closed_not_on_router"] = counts.get("closed_not_on_router", 0) + gone
            repairs = await _repair_router(nas, view, subs, known, api, counts)
            await asyncio.to_thread(_record_repairs, factory, nas.ip, repairs)
        if olts:
            from olt.poller import poll

            # every bound ONU's admin state against billing; drift queued as resync requests
            for k, v in (await poll(factory, box, sample=False)).items():
                counts[f"olt_{k}"] = v
        counts["drift"] = sum(v for k, v in counts.items() if k in (
            "olt_drift",
            "accounting_drift", "online-not-allowed", "outside-walled-garden",
            "stuck-in-walled-garden"))
    return dict(counts)
