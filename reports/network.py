"""The reports where accounting and billing disagree about who is online.

Open sessions are found through partial indexes on ``stopped_at IS NULL`` (migration 0016),
so each report reads the open sessions (a few per cent of the table), never the history;
``never-online`` and ``revenue-by-nas`` probe a subscriber's sessions through
``(subscriber_id, stopped_at)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from billing.isp import settings as isp_settings
from billing.isp import start_of_day_utc
from billing.models import BillingMode, Plan, Subscriber, SubscriberStatus
from radbill.db import UTCDateTime
from radius.accounting import ACCOUNTING_ON, NAS_RESTART
from radius.models import Nas, PostAuth, RadiusSession
from reports.registry import Params, Row

# a statement a filter hands back with its own type
S = TypeVar("S", bound=Select[*tuple[Any, ...]])
OPEN = RadiusSession.stopped_at.is_(None)
REBOOT = NAS_RESTART[ACCOUNTING_ON]
NOT_ACTIVE = (SubscriberStatus.SUSPENDED, SubscriberStatus.DISABLED, SubscriberStatus.TERMINATED)
STALE_INTERVALS = 3  # what the ingester's stale-session job waits (radius.accounting)
LATE_INTERVALS = 1.25  # an Interim this late is an outlier (not yet stale)
LATE_SHARE = 0.25  # ... in at least this share of a NAS's open sessions
LATE_MIN_SESSIONS = 3
REBOOT_WINDOW = dt.timedelta(hours=24)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def nas_ip_of(session: Session, params: Params) -> str | None:
    """The NAS filter as an address: a registered NAS's name or any address."""
    if params.nas is None:
        return None
    ip = session.scalar(select(Nas.ip_address).where(Nas.name == params.nas))
    return ip or params.nas


def _sessions_filtered(session: Session, stmt: S, params: Params) -> S:
    ip = nas_ip_of(session, params)
    if ip is not None:
        stmt = stmt.where(RadiusSession.nas_ip == ip)
    return stmt


def _plan_filtered(stmt: S, params: Params) -> S:
    if params.plan is not None:
        stmt = stmt.where(Plan.name == params.plan)
    return stmt


def _session_cols() -> tuple[Any, ...]:
    return (RadiusSession.nas_ip, RadiusSession.acct_session_id, RadiusSession.framed_ip,
            RadiusSession.started_at, RadiusSession.updated_at)


# -- suspended-online -------------------------------------------------------------------------


def suspended_online(session: Session, params: Params) -> list[Row]:
    """Suspended, disabled or terminated subscribers with an open session, or whose last
    login (since the day they were suspended or billing paused) was given full speed."""
    stmt = (select(Subscriber.username, Subscriber.status, Plan.name, *_session_cols())
            .join(Subscriber, Subscriber.id == RadiusSession.subscriber_id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(OPEN, Subscriber.status.in_(NOT_ACTIVE))
            .order_by(Subscriber.username, RadiusSession.started_at, RadiusSession.id)
            .limit(params.limit))
    stmt = _plan_filtered(_sessions_filtered(session, stmt, params), params)
    rows: list[Row] = []
    for user, status, plan, nas_ip, sid, framed, started, _upd in session.execute(stmt):
        rows.append({"username": user, "status": str(status), "plan": plan,
                     "finding": "online while " + str(status), "nas_ip": nas_ip,
                     "acct_session_id": sid, "framed_ip": framed, "since": _iso(started),
                     "action": "disconnect the session; the NAS did not follow the "
                               f"{status} status (check its CoA/API with 'radbill "
                               "enforcement status')"})
    # The last accepted login of each such subscriber, through (username, at).
    last = (select(PostAuth.at).where(PostAuth.username == Subscriber.username,
                                      PostAuth.decision == "accept")
            .order_by(PostAuth.at.desc()).limit(1).correlate(Subscriber).scalar_subquery())
    last_reason = (select(PostAuth.reason).where(PostAuth.username == Subscriber.username,
                                                 PostAuth.decision == "accept")
                   .order_by(PostAuth.at.desc()).limit(1).correlate(Subscriber)
                   .scalar_subquery())
    # since the start (in the ISP's time zone) of the day of the suspension, or of the pause
    # of billing (disabled, terminated): full speed before it was right. The few distinct
    # days become their UTC instants in a CASE, so the comparison is exact on both databases.
    since = func.coalesce(Subscriber.suspended_on, Subscriber.billing_paused_on)
    days = session.scalars(select(since).where(Subscriber.status.in_(NOT_ACTIVE),
                                               since.is_not(None)).distinct()).all()
    if not days:
        return rows
    isp = isp_settings(session)
    since_at = case({day: literal(start_of_day_utc(isp, day), UTCDateTime()) for day in days},
                    value=since)
    logins = (select(Subscriber.username, Subscriber.status, Plan.name, last)
              .join(Plan, Plan.id == Subscriber.plan_id)
              .where(Subscriber.status.in_(NOT_ACTIVE), since.is_not(None),
                     last_reason == "active", last >= since_at)
              .order_by(Subscriber.username).limit(params.limit))
    logins = _plan_filtered(logins, params)
    for user, status, plan, at in session.execute(logins):
        rows.append({"username": user, "status": str(status), "plan": plan,
                     "finding": f"last login got full speed while {status}",
                     "nas_ip": None, "acct_session_id": None, "framed_ip": None,
                     "since": _iso(at),
                     "action": "check 'radbill radius run' is running (its snapshot "
                               "follows status changes); disconnect the subscriber so the "
                               "next login is answered again"})
    rows.sort(key=lambda r: (r["username"], r["since"] or ""))
    return rows


# -- never-online ----------------------------------------------------------------------------


def never_online(session: Session, params: Params) -> list[Row]:
    """Active subscribers whose billing runs, created over N days ago, with no session
    open or ended in the last N days: they pay and do not use the line."""
    cutoff = params.now - dt.timedelta(days=params.days)
    mine = RadiusSession.subscriber_id == Subscriber.id
    open_now = exists().where(mine, OPEN)
    recent = exists().where(mine, RadiusSession.stopped_at >= cutoff)
    last_seen = (select(func.max(RadiusSession.stopped_at)).where(mine)
                 .correlate(Subscriber).scalar_subquery())
    stmt = (select(Subscriber.username, Plan.name, Subscriber.phone, Subscriber.created_at,
                   last_seen)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(Subscriber.status == SubscriberStatus.ACTIVE,
                   Subscriber.billing_paused_on.is_(None),
                   Subscriber.created_at <= cutoff, ~open_now, ~recent)
            .order_by(Subscriber.username).limit(params.limit))
    stmt = _plan_filtered(stmt, params)
    ip = nas_ip_of(session, params)
    if ip is not None:  # subscribers last seen on this NAS
        last_nas = (select(RadiusSession.nas_ip).where(mine)
                    .order_by(RadiusSession.stopped_at.desc().nulls_first()).limit(1)
                    .correlate(Subscriber).scalar_subquery())
        stmt = stmt.where(last_nas == ip)
    rows: list[Row] = []
    for user, plan, phone, _created, seen in session.execute(stmt):
        rows.append({"username": user, "plan": plan, "phone": phone,
                     "last_seen": _iso(seen), "days": params.days,
                     "finding": (f"not online for {params.days} days" if seen
                                 else "never online"),
                     "action": "call the subscriber: paying without using the line (router "
                               "not set up, wrong password, moved away?)"})
    return rows


# -- unknown-sessions ------------------------------------------------------------------------


def unknown_sessions(session: Session, params: Params) -> list[Row]:
    """Open sessions of a User-Name no subscriber has, or from a NAS that is not
    registered."""
    registered = select(Nas.ip_address)
    known_user = exists().where(func.lower(Subscriber.username)
                                == func.lower(RadiusSession.username))
    stmt = (select(RadiusSession.username, RadiusSession.subscriber_id, *_session_cols(),
                   RadiusSession.calling_station_id,
                   RadiusSession.nas_ip.in_(registered).label("nas_known"))
            .where(OPEN, or_(and_(RadiusSession.subscriber_id.is_(None), ~known_user),
                             RadiusSession.nas_ip.not_in(registered)))
            .order_by(RadiusSession.nas_ip, RadiusSession.username, RadiusSession.id)
            .limit(params.limit))
    stmt = _sessions_filtered(session, stmt, params)
    found = session.execute(stmt).all()
    ids = {r.subscriber_id for r in found if r.subscriber_id is not None}
    names = _usernames(session, ids)
    rows: list[Row] = []
    for r in found:
        user = names.get(r.subscriber_id) if r.subscriber_id is not None else None
        unknown_nas = not r.nas_known
        finding = ("NAS not registered" if unknown_nas and user is not None
                   else "unknown user on an unregistered NAS" if unknown_nas
                   else "unknown user")
        rows.append({"username": user, "user_name": r.username, "finding": finding,
                     "nas_ip": r.nas_ip, "acct_session_id": r.acct_session_id,
                     "framed_ip": r.framed_ip, "calling_station_id": r.calling_station_id,
                     "since": _iso(r.started_at),
                     "action": ("register the NAS ('radbill nas create') or find who runs "
                                "it: it is not answered by radbill" if unknown_nas else
                                "disconnect it and check the NAS's local users: radbill "
                                "never accepted this name")})
    return rows


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):  # bounded IN lists
        out.update((i, n) for i, n in session.execute(select(Subscriber.id, Subscriber.username)
                                   .where(Subscriber.id.in_(ordered[i:i + 500]))).all())
    return out


# -- stale-sessions --------------------------------------------------------------------------


def stale_sessions(session: Session, params: Params) -> list[Row]:
    """Open sessions silent for more than three interim intervals: the stale-session job
    should have closed them at their last update."""
    cutoff = params.now - dt.timedelta(seconds=STALE_INTERVALS * params.interim_interval)
    stmt = (select(RadiusSession.username, RadiusSession.subscriber_id, *_session_cols())
            .where(OPEN, RadiusSession.updated_at < cutoff)
            .order_by(RadiusSession.updated_at, RadiusSession.id).limit(params.limit))
    stmt = _sessions_filtered(session, stmt, params)
    found = session.execute(stmt).all()
    names = _usernames(session, {r.subscriber_id for r in found if r.subscriber_id})
    return [{"username": names.get(r.subscriber_id) if r.subscriber_id else None,
             "user_name": r.username, "nas_ip": r.nas_ip,
             "acct_session_id": r.acct_session_id, "since": _iso(r.started_at),
             "last_update": _iso(r.updated_at),
             "silent_minutes": int((params.now - r.updated_at).total_seconds() // 60),
             "action": "the scheduler's stale-session job is not closing sessions: 'radbill "
                       "accounting close-stale' closes them; check the job runs and the NAS "
                       "sends Interims"}
            for r in found]


# -- past-paid-period ------------------------------------------------------------------------


def past_paid_period(session: Session, params: Params) -> list[Row]:
    """Prepaid subscribers online past the end of their paid period (``paid_until``)."""
    stmt = (select(Subscriber.username, Plan.name, Subscriber.paid_until, *_session_cols())
            .join(Subscriber, Subscriber.id == RadiusSession.subscriber_id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(OPEN, Plan.billing_mode == BillingMode.PREPAID,
                   Subscriber.paid_until.is_not(None), Subscriber.paid_until < params.now)
            .order_by(Subscriber.paid_until, Subscriber.username, RadiusSession.id)
            .limit(params.limit))
    stmt = _plan_filtered(_sessions_filtered(session, stmt, params), params)
    return [{"username": user, "plan": plan, "paid_until": _iso(until), "nas_ip": nas_ip,
             "acct_session_id": sid, "framed_ip": framed, "since": _iso(started),
             "hours_past": int((params.now - until).total_seconds() // 3600),
             "action": "disconnect the session: the NAS did not end it at Session-Timeout "
                       "(then collect the renewal)"}
            for user, plan, until, nas_ip, sid, framed, started, _upd in session.execute(stmt)]


# -- nas-gaps --------------------------------------------------------------------------------


def nas_gaps(session: Session, params: Params) -> list[Row]:
    """Per NAS: silent beyond three interim intervals while sessions are open; Accounting-On
    bursts (more than one reboot in 24 hours); Interim interval outliers (a quarter or more
    of its open sessions an Interim late, at least three sessions)."""
    interval = params.interim_interval
    silent_cut = params.now - dt.timedelta(seconds=STALE_INTERVALS * interval)
    late_cut = params.now - dt.timedelta(seconds=LATE_INTERVALS * interval)
    late = func.sum(case((RadiusSession.updated_at < late_cut, 1), else_=0))
    per_nas = (select(RadiusSession.nas_ip, func.count(), func.max(RadiusSession.updated_at),
                      late)
               .where(OPEN).group_by(RadiusSession.nas_ip).order_by(RadiusSession.nas_ip))
    per_nas = _sessions_filtered(session, per_nas, params)
    names = {ip: n for ip, n in session.execute(select(Nas.ip_address, Nas.name))}  # noqa: C416 - Row tuples, not pairs, to mypy
    rows: list[Row] = []
    for nas_ip, count, newest, n_late in session.execute(per_nas):
        base = {"username": None, "nas": names.get(nas_ip), "nas_ip": nas_ip,
                "open_sessions": int(count), "last_update": _iso(newest)}
        if newest < silent_cut:
            minutes = int((params.now - newest).total_seconds() // 60)
            rows.append({**base, "finding": "silent",
                         "detail": f"no accounting for {minutes} min with {count} sessions open",
                         "action": "check the NAS is up and reaches RADIUS accounting "
                                   "(firewall, secret, route)"})
        elif count >= LATE_MIN_SESSIONS and int(n_late or 0) >= LATE_SHARE * count:
            rows.append({**base, "finding": "interim-outlier",
                         "detail": f"{int(n_late)} of {count} open sessions sent no Interim "
                                   f"for over {LATE_INTERVALS:g} x {interval} s",
                         "action": f"set the NAS's interim interval to {interval} s "
                                   "(RADIUS Acct-Interim-Interval or /ppp aaa)"})
    since = params.now - REBOOT_WINDOW
    reboots = (select(RadiusSession.nas_ip,
                      func.count(func.distinct(RadiusSession.stopped_at)),
                      func.max(RadiusSession.stopped_at))
               .where(RadiusSession.terminate_cause == REBOOT,
                      RadiusSession.stopped_at >= since)
               .group_by(RadiusSession.nas_ip).order_by(RadiusSession.nas_ip))
    reboots = _sessions_filtered(session, reboots, params)
    for nas_ip, times, last in session.execute(reboots):
        if times < 2:
            continue
        rows.append({"username": None, "nas": names.get(nas_ip), "nas_ip": nas_ip,
                     "open_sessions": None, "last_update": _iso(last),
                     "finding": "accounting-on-burst",
                     "detail": f"{times} Accounting-On in 24 h (each closed every session)",
                     "action": "the NAS is rebooting or flapping: check its power, "
                               "uptime and logs"})
    rows.sort(key=lambda r: (r["nas_ip"], r["finding"]))
    return rows[: params.limit]


# -- duplicate-sessions ----------------------------------------------------------------------


def duplicate_sessions(session: Session, params: Params) -> list[Row]:
    """More open sessions than the simultaneous-use limit; one Framed-IP-Address on more
    than one open session."""
    per_sub = (select(RadiusSession.subscriber_id.label("sid"), func.count().label("n"))
               .where(OPEN, RadiusSession.subscriber_id.is_not(None))
               .group_by(RadiusSession.subscriber_id).having(func.count() > 1))
    counts = _sessions_filtered(session, per_sub, params).subquery()
    stmt = (select(Subscriber.username, Plan.name, counts.c.n, Subscriber.simultaneous_use)
            .join(counts, counts.c.sid == Subscriber.id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(counts.c.n > Subscriber.simultaneous_use)
            .order_by(Subscriber.username).limit(params.limit))
    stmt = _plan_filtered(stmt, params)
    rows: list[Row] = []
    for user, plan, n, allowed in session.execute(stmt):
        rows.append({"username": user, "plan": plan, "finding": "over simultaneous-use",
                     "detail": f"{n} open sessions, {allowed} allowed", "framed_ip": None,
                     "nas_ip": None, "acct_session_id": None,
                     "action": "disconnect the older sessions; if they are gone at the NAS, "
                               "its Stops were lost (see nas-gaps)"})
    ips = (select(RadiusSession.framed_ip).where(OPEN, RadiusSession.framed_ip.is_not(None))
           .group_by(RadiusSession.framed_ip).having(func.count() > 1))
    ips = _sessions_filtered(session, ips, params)
    clash = (select(RadiusSession.framed_ip, RadiusSession.subscriber_id,
                    RadiusSession.username, RadiusSession.nas_ip,
                    RadiusSession.acct_session_id)
             .where(OPEN, RadiusSession.framed_ip.in_(ips.scalar_subquery()))
             .order_by(RadiusSession.framed_ip, RadiusSession.started_at, RadiusSession.id)
             .limit(params.limit))
    found = session.execute(clash).all()
    names = _usernames(session, {r.subscriber_id for r in found if r.subscriber_id})
    for r in found:
        rows.append({"username": names.get(r.subscriber_id) if r.subscriber_id else None,
                     "plan": None, "finding": "framed-ip conflict",
                     "detail": f"{r.framed_ip} is on more than one open session (as "
                               f"{r.username})",
                     "framed_ip": r.framed_ip, "nas_ip": r.nas_ip,
                     "acct_session_id": r.acct_session_id,
                     "action": "check the static IPs and the NAS pools: one address is "
                               "given twice (or a Stop was lost)"})
    return rows


def over_cap(session: Session, p: Params) -> list[Row]:
    """Over their cap this period and not throttled (operator exemptions left out): the
    usage part's period totals (kept by the ingester), read in keyset pages."""
    from usage import service as usage

    rows: list[Row] = []
    after = 0
    while len(rows) < p.limit:
        page = usage.over_cap(session, p.today, after_id=after, limit=1000)
        if not page:
            break
        after = page[-1].subscriber_id
        for r in page:
            if r.throttled or r.exempt or (p.plan is not None and r.plan != p.plan):
                continue
            rows.append({
                "username": r.username, "plan": r.plan, "cap_bytes": r.cap_bytes,
                "used_bytes": r.counted_bytes, "has_fup": r.has_fup,
                "action": ("throttle missing: run 'radbill enforcement reconcile' and check "
                           "the accounting ingester" if r.has_fup else
                           "the plan has no fair-usage speed: set one ('radbill plan set "
                           "--fup-rate') or exempt the subscriber")})
    return rows
