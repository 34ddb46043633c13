"""Accounting: turning Start / Interim-Update / Stop / Accounting-On / Off into sessions.

The rules are a pure fold (:func:`fold`) of one record into the session's previous state;
:func:`apply` loads and writes the row. Together they guarantee:

* sessions are keyed on (NAS, Acct-Session-Id, User-Name): the stock ``acct_unique`` hash
  changes when a NAS omits NAS-Port-Id in an Interim, this key does not;
* counters are 64-bit (``Gigawords << 32 | Octets``) and never go backwards;
* a duplicate is harmless, an Interim without a Start opens the session, a Stop without a
  Start records a closed one, an Interim after the Stop changes nothing;
* the time of an event is when FreeRADIUS received it minus Acct-Delay-Time, never the
  NAS's own clock (routers without NTP report 1970).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from radbill.db import SESSION_FEED, bump
from radbill.errors import InvalidInput
from radius.models import RadiusSession

START, INTERIM, STOP = "Start", "Interim-Update", "Stop"
ACCOUNTING_ON, ACCOUNTING_OFF = "Accounting-On", "Accounting-Off"
STATUS_TYPES = {START, INTERIM, STOP, ACCOUNTING_ON, ACCOUNTING_OFF}
# Causes radbill itself writes when it closes a session nobody reported closed. A real Stop
# arriving later still brings its final counters and time.
STALE = "Stale-Session"
NAS_RESTART = {ACCOUNTING_ON: "NAS-Reboot", ACCOUNTING_OFF: "NAS-Request"}
# The NAS answered a Disconnect/CoA with Session-Context-Not-Found (RFC 5176 Error-Cause 503).
GONE = "NAS-Session-Gone"
CLOSED_BY_US = {STALE, GONE, *NAS_RESTART.values()}
MAX_U32 = 2**32 - 1


class InvalidRecord(InvalidInput):
    """An accounting record radbill cannot use; it is set aside, never silently dropped."""


@dataclass(frozen=True)
class AcctRecord:
    """One accounting request, as parsed from the RADIUS attributes."""

    status: str
    nas_ip: str
    event_time: dt.datetime
    username: str | None = None
    acct_session_id: str | None = None
    session_time: int = 0
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    framed_ip: str | None = None
    calling_station_id: str | None = None
    nas_port_id: str | None = None
    terminate_cause: str | None = None


@dataclass(frozen=True)
class SessionState:
    """The part of a session the fold reads and writes."""

    started_at: dt.datetime
    updated_at: dt.datetime
    stopped_at: dt.datetime | None
    session_time: int
    input_octets: int
    output_octets: int
    input_packets: int
    output_packets: int
    terminate_cause: str | None
    framed_ip: str | None
    calling_station_id: str | None
    nas_port_id: str | None

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


def _u32(attrs: Mapping[str, str], name: str) -> int:
    raw = attrs.get(name)
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRecord(f"{name}={raw!r} is not a number") from None
    if not 0 <= value <= MAX_U32:
        raise InvalidRecord(f"{name}={value} is outside 0..2^32-1")
    return value


def octets64(attrs: Mapping[str, str], octets: str, gigawords: str) -> int:
    """A 64-bit counter from the 32-bit Octets attribute and its Gigawords high part."""
    return _u32(attrs, gigawords) << 32 | _u32(attrs, octets)


def record_from_attrs(
    attrs: Mapping[str, str], received_at: dt.datetime, nas_ip: str | None = None
) -> AcctRecord:
    """Parse an accounting request's attributes. Raises :class:`InvalidRecord`."""
    status = attrs.get("Acct-Status-Type", "")
    if status not in STATUS_TYPES:
        raise InvalidRecord(f"Acct-Status-Type {status!r} is not handled")
    nas = nas_ip or attrs.get("Packet-Src-IP-Address") or attrs.get("NAS-IP-Address")
    if not nas:
        raise InvalidRecord("no NAS address in the record")
    event_time = received_at - dt.timedelta(seconds=_u32(attrs, "Acct-Delay-Time"))
    if status in (ACCOUNTING_ON, ACCOUNTING_OFF):
        return AcctRecord(status=status, nas_ip=nas, event_time=event_time)
    username = attrs.get("User-Name")
    session_id = attrs.get("Acct-Session-Id")
    if not username or not session_id:
        raise InvalidRecord(f"{status} without User-Name or Acct-Session-Id")
    if len(session_id) > 128 or len(username) > 253:
        raise InvalidRecord(f"{status}: User-Name or Acct-Session-Id too long")
    return AcctRecord(
        status=status,
        nas_ip=nas,
        event_time=event_time,
        username=username,
        acct_session_id=session_id,
        session_time=_u32(attrs, "Acct-Session-Time"),
        input_octets=octets64(attrs, "Acct-Input-Octets", "Acct-Input-Gigawords"),
        output_octets=octets64(attrs, "Acct-Output-Octets", "Acct-Output-Gigawords"),
        input_packets=_u32(attrs, "Acct-Input-Packets"),
        output_packets=_u32(attrs, "Acct-Output-Packets"),
        framed_ip=attrs.get("Framed-IP-Address") or None,
        calling_station_id=(attrs.get("Calling-Station-Id") or None),
        nas_port_id=(attrs.get("NAS-Port-Id") or None),
        terminate_cause=attrs.get("Acct-Terminate-Cause") or None,
    )


def _grow(state: SessionState, rec: AcctRecord) -> SessionState:
    """Counters and times move forward only; missing details are filled in."""
    return replace(
        state,
        updated_at=max(state.updated_at, rec.event_time),
        session_time=max(state.session_time, rec.session_time),
        input_octets=max(state.input_octets, rec.input_octets),
        output_octets=max(state.output_octets, rec.output_octets),
        input_packets=max(state.input_packets, rec.input_packets),
        output_packets=max(state.output_packets, rec.output_packets),
        framed_ip=state.framed_ip or rec.framed_ip,
        calling_station_id=state.calling_station_id or rec.calling_station_id,
        nas_port_id=state.nas_port_id or rec.nas_port_id,
    )


def _new(rec: AcctRecord) -> SessionState:
    started = rec.event_time - dt.timedelta(seconds=rec.session_time)
    return SessionState(
        started_at=started,
        updated_at=rec.event_time,
        stopped_at=rec.event_time if rec.status == STOP else None,
        session_time=rec.session_time,
        input_octets=rec.input_octets,
        output_octets=rec.output_octets,
        input_packets=rec.input_packets,
        output_packets=rec.output_packets,
        terminate_cause=rec.terminate_cause if rec.status == STOP else None,
        framed_ip=rec.framed_ip,
        calling_station_id=rec.calling_station_id,
        nas_port_id=rec.nas_port_id,
    )


def fold(state: SessionState | None, rec: AcctRecord) -> SessionState:
    """The session after *rec*. Returns *state* itself (``is``) when nothing changes."""
    if state is None:
        return _new(rec)
    if state.is_open:
        grown = _grow(state, rec)
        if rec.status == STOP:
            grown = replace(grown, stopped_at=max(rec.event_time, state.started_at),
                            terminate_cause=rec.terminate_cause)
        return state if grown == state else grown
    # Closed. Only a session radbill closed on a guess (stale, NAS restart, NAS said it was
    # gone) may still learn something: its real Stop brings the final counters; a later
    # Interim proves it is in fact alive (a NAS whose sessions survived its Accounting-On is
    # exactly what the enforcement reconciler must catch). A session its NAS reported
    # stopped is final.
    if state.terminate_cause not in CLOSED_BY_US:
        return state
    if rec.status == STOP:
        grown = replace(_grow(state, rec), stopped_at=max(rec.event_time, state.started_at),
                        terminate_cause=rec.terminate_cause)
    elif rec.status == INTERIM and rec.event_time > (state.stopped_at or rec.event_time):
        grown = replace(_grow(state, rec), stopped_at=None, terminate_cause=None)
    else:
        return state
    return state if grown == state else grown


_STATE_FIELDS = tuple(SessionState.__dataclass_fields__)


def _state_of(row: RadiusSession) -> SessionState:
    return SessionState(**{name: getattr(row, name) for name in _STATE_FIELDS})


def apply(session: Session, rec: AcctRecord, subscriber_id: int | None = None) -> str:
    """Apply one record to the database in the caller's transaction.

    Returns what happened: ``opened``, ``closed``, ``updated``, ``unchanged`` or, for
    Accounting-On/Off, ``closed:N``.
    """
    if rec.status in (ACCOUNTING_ON, ACCOUNTING_OFF):
        closed = close_nas_sessions(session, rec.nas_ip, rec.event_time, NAS_RESTART[rec.status])
        return f"closed:{closed}"
    row = session.scalars(
        select(RadiusSession)
        .where(
            RadiusSession.nas_ip == rec.nas_ip,
            RadiusSession.acct_session_id == rec.acct_session_id,
            RadiusSession.username == rec.username,
        )
        .with_for_update()
        # Bulk closes (Accounting-On/Off, stale) bypass the ORM: read the row as stored.
        .execution_options(populate_existing=True)
    ).one_or_none()
    before = _state_of(row) if row is not None else None
    after = fold(before, rec)
    if after is before:
        return "unchanged"
    if row is None:
        assert rec.username is not None  # record_from_attrs guarantees both for sessions
        assert rec.acct_session_id is not None
        row = RadiusSession(
            nas_ip=rec.nas_ip,
            acct_session_id=rec.acct_session_id,
            username=rec.username,
            subscriber_id=subscriber_id,
        )
        session.add(row)
    for name in _STATE_FIELDS:
        setattr(row, name, getattr(after, name))
    was_open = before is not None and before.is_open
    if before is None or was_open != after.is_open:
        row.state_seq = bump(session, SESSION_FEED)
    session.flush()
    if before is None:
        return "opened" if after.is_open else "closed"
    if was_open and not after.is_open:
        return "closed"
    return "reopened" if after.is_open and not was_open else "updated"


def apply_many(session: Session, recs: list[AcctRecord], subscriber_ids: dict[str, int]
               ) -> list[str]:
    """Apply records in order, as :func:`apply` one by one would, with a few statements per
    batch: the sessions are loaded (and locked) together, folded in memory, written together,
    and the session feed is bumped once. A burst of 10,000 Accounting-Stops after a bulk
    suspension is what the enforcement worker waits for to confirm it."""
    out: list[str] = []
    segment: list[AcctRecord] = []
    for rec in recs:
        if rec.status in (ACCOUNTING_ON, ACCOUNTING_OFF):  # closes what came before it
            out += _apply_segment(session, segment, subscriber_ids)
            segment = []
            out.append(apply(session, rec))
        else:
            segment.append(rec)
    return out + _apply_segment(session, segment, subscriber_ids)


Key = tuple[str, str, str]


def _key(rec: AcctRecord) -> Key:
    assert rec.acct_session_id is not None
    assert rec.username is not None  # record_from_attrs guarantees both for sessions
    return (rec.nas_ip, rec.acct_session_id, rec.username)


def _fold_into(states: dict[Key, SessionState], rec: AcctRecord) -> str:
    """Fold *rec* into *states* (in memory); the outcome :func:`apply` would report."""
    key = _key(rec)
    before = states.get(key)
    after = fold(before, rec)
    if after is before:
        return "unchanged"
    states[key] = after
    if before is None:
        return "opened" if after.is_open else "closed"
    if before.is_open and not after.is_open:
        return "closed"
    return "reopened" if after.is_open and not before.is_open else "updated"


def _apply_segment(session: Session, recs: list[AcctRecord], subscriber_ids: dict[str, int]
                   ) -> list[str]:
    if not recs:
        return []
    keys = list(dict.fromkeys(_key(r) for r in recs))
    rows: dict[Key, RadiusSession] = {}
    for i in range(0, len(keys), 300):
        stmt = (select(RadiusSession)
                .where(tuple_(RadiusSession.nas_ip, RadiusSession.acct_session_id,
                              RadiusSession.username).in_(keys[i : i + 300]))
                .with_for_update()
                # An Accounting-On earlier in the batch closed sessions with a bulk UPDATE
                # the ORM does not see: a row object still held from before must be
                # refreshed, or the fold starts from its stale open state.
                .execution_options(populate_existing=True))
        for row in session.scalars(stmt):
            rows[(row.nas_ip, row.acct_session_id, row.username)] = row
    first = {k: _state_of(r) for k, r in rows.items()}
    states: dict[Key, SessionState] = dict(first)
    outcomes = [_fold_into(states, rec) for rec in recs]
    changed = [k for k, st in states.items() if st is not first.get(k)]
    moved = {k for k in changed if k not in first or first[k].is_open != states[k].is_open}
    seq = bump(session, SESSION_FEED) if moved else 0
    for key in changed:
        if key in rows:
            row = rows[key]
        else:
            row = RadiusSession(nas_ip=key[0], acct_session_id=key[1], username=key[2],
                                subscriber_id=subscriber_ids.get(key[2]))
            session.add(row)
        for name in _STATE_FIELDS:
            setattr(row, name, getattr(states[key], name))
        if key in moved:
            row.state_seq = seq
    session.flush()
    return outcomes


def close_nas_sessions(session: Session, nas_ip: str, at: dt.datetime, cause: str) -> int:
    """Close every open session of a NAS that started before *at* (Accounting-On/Off)."""
    seq = bump(session, SESSION_FEED)
    result = session.execute(
        update(RadiusSession)
        .where(
            RadiusSession.nas_ip == nas_ip,
            RadiusSession.stopped_at.is_(None),
            RadiusSession.started_at <= at,
        )
        .values(stopped_at=at, terminate_cause=cause, state_seq=seq)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def close_stale_sessions(session: Session, now: dt.datetime, interim_interval: int) -> int:
    """Close sessions silent for three interim intervals. They end at their last update, so
    no usage is invented; a late Stop still brings the real end and counters."""
    cutoff = now - dt.timedelta(seconds=3 * interim_interval)
    seq = bump(session, SESSION_FEED)
    result = session.execute(
        update(RadiusSession)
        .where(RadiusSession.stopped_at.is_(None), RadiusSession.updated_at < cutoff)
        .values(stopped_at=RadiusSession.updated_at, terminate_cause=STALE, state_seq=seq)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def close_gone_session(session: Session, session_id: int, at: dt.datetime) -> bool:
    """Close one session its NAS says it does not have (Error-Cause 503). Like the other
    closes radbill makes on its own, a later Interim reopens it and a late Stop finalises it."""
    result = session.execute(
        update(RadiusSession)
        .where(RadiusSession.id == session_id, RadiusSession.stopped_at.is_(None))
        .values(stopped_at=at, terminate_cause=GONE, state_seq=bump(session, SESSION_FEED))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_enforced(session: Session, session_ids: list[int], at: dt.datetime) -> None:
    """Record that these open sessions got their current policy live (CoA-ACK, API)."""
    if session_ids:
        session.execute(
            update(RadiusSession).where(RadiusSession.id.in_(session_ids))
            .values(enforced_at=at).execution_options(synchronize_session=False)
        )


def open_sessions_of(session: Session, usernames: list[str]) -> list[RadiusSession]:
    """The open sessions of these users."""
    if not usernames:
        return []
    return list(session.scalars(
        select(RadiusSession).where(RadiusSession.username.in_(usernames),
                                    RadiusSession.stopped_at.is_(None))
    ))


def open_session_counts(session: Session, since_seq: int) -> tuple[dict[str, int], int]:
    """Open-session counts for every user whose sessions opened or closed after *since_seq*
    (every user with an open session for 0), and the feed value they are current to."""
    feed = session.execute(
        select(func.max(RadiusSession.state_seq))
    ).scalar_one_or_none() or 0
    if since_seq == 0:
        users = None
    else:
        users = set(
            session.scalars(
                select(RadiusSession.username).where(RadiusSession.state_seq > since_seq).distinct()
            )
        )
        if not users:
            return {}, max(feed, since_seq)
    stmt = (
        select(RadiusSession.username, func.count())
        .where(RadiusSession.stopped_at.is_(None))
        .group_by(RadiusSession.username)
    )
    if users is not None:
        stmt = stmt.where(RadiusSession.username.in_(users))
    counts = {name: int(n) for name, n in session.execute(stmt).all()}
    if users is not None:
        for name in users:
            counts.setdefault(name, 0)
    return counts, feed


def sessions_for(session: Session, username: str, limit: int = 20) -> list[RadiusSession]:
    """The subscriber's open sessions first, then the most recent closed ones."""
    return list(
        session.scalars(
            select(RadiusSession)
            .where(RadiusSession.username == username)
            .order_by(RadiusSession.stopped_at.is_not(None), RadiusSession.started_at.desc())
            .limit(limit)
        )
    )


def session_summary(row: RadiusSession) -> dict[str, object]:
    """A plain dictionary of a session for JSON output."""
    return {
        "nas_ip": row.nas_ip,
        "acct_session_id": row.acct_session_id,
        "framed_ip": row.framed_ip,
        "calling_station_id": row.calling_station_id,
        "started_at": row.started_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "stopped_at": row.stopped_at.isoformat() if row.stopped_at else None,
        "open": row.stopped_at is None,
        "session_time": row.session_time,
        "input_bytes": row.input_octets,
        "output_bytes": row.output_octets,
        "terminate_cause": row.terminate_cause,
    }


def open_sessions(session: Session, *, nas_ip: str | None = None, username: str | None = None,
                  limit: int = 500) -> list[RadiusSession]:
    """Sessions still open, newest first, optionally on one NAS or of one user."""
    stmt = (select(RadiusSession).where(RadiusSession.stopped_at.is_(None))
            .order_by(RadiusSession.started_at.desc()).limit(limit))
    if nas_ip:
        stmt = stmt.where(RadiusSession.nas_ip == nas_ip)
    if username:
        stmt = stmt.where(RadiusSession.username == username)
    return list(session.scalars(stmt))


def count_open_sessions(session: Session) -> int:
    """How many sessions are open (subscribers online)."""
    return int(session.scalar(select(func.count()).select_from(RadiusSession)
                              .where(RadiusSession.stopped_at.is_(None))) or 0)


def get_session(session: Session, session_id: int) -> RadiusSession | None:
    """One accounting session by its row id (None for an id no BIGINT can hold)."""
    if not 0 < session_id < 2**63:
        return None
    return session.get(RadiusSession, session_id)


def usernames_on_nas(session: Session, nas_ip: str) -> set[str]:
    """Users who have (or had) a session on the NAS at *nas_ip*."""
    return set(session.scalars(select(RadiusSession.username)
                               .where(RadiusSession.nas_ip == nas_ip).distinct()))


def usage_by_day(session: Session, username: str, since: dt.datetime
                 ) -> list[tuple[dt.date, int, int]]:
    """(UTC day the session started, download bytes, upload bytes) for the user's sessions
    started since *since*, per day. A session's whole usage counts on its start day: the
    accounting keeps totals per session, not per day."""
    rows = session.execute(select(RadiusSession.started_at, RadiusSession.input_octets,
                                  RadiusSession.output_octets)
                           .where(RadiusSession.username == username,
                                  RadiusSession.started_at >= since)).all()
    days: dict[dt.date, list[int]] = {}
    for started, upload, download in rows:
        # input is what the NAS received from the user (upload), output what it sent (download)
        day = days.setdefault(started.astimezone(dt.UTC).date(), [0, 0])
        day[0] += download
        day[1] += upload
    return [(d, v[0], v[1]) for d, v in sorted(days.items())]
