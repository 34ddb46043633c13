"""Accounting: turning Start / Interim-Update / Stop / Accounting-On / Off into sessions.

The rules are a pure fold (:func:`fold`) of one record into the session's previous state;
:func:`apply` loads and writes the row. Together they guarantee:

* sessions are keyed on (NAS, Acct-Session-Id, User-Name): the stock ``acct_unique`` hash
  changes when a NAS omits NAS-Port-Id in an Interim, this key does not;
* counters are 64-bit (``Gigawords << 32 | Octets``, at most 2^63-1) and never go backwards;
  a record whose counters jump further than any line could carry since the session's last
  record is refused (:class:`ImplausibleRecord`, set aside by the ingester) and the session
  keeps its counters;
* every field is bounded before it reaches the database (:mod:`radius.bounds`);
* a duplicate is harmless, an Interim without a Start opens the session, a Stop without a
  Start records a closed one, an Interim after the Stop changes nothing;
* the time of an event is when FreeRADIUS received it minus Acct-Delay-Time, never the
  NAS's own clock (routers without NTP report 1970).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from radbill.config import Settings
from radbill.db import SESSION_FEED, bump, expire_held
from radbill.pgarrays import column
from radius.bounds import (
    MAX_I64,
    MAX_TEXT,
    InvalidRecord,
    display_text,
    ip_address,
    key_text,
    unsigned,
)
from radius.models import RadiusSession, RadiusSessionKey
from radius.partitions import is_partition

START, INTERIM, STOP = "Start", "Interim-Update", "Stop"
ACCOUNTING_ON, ACCOUNTING_OFF = "Accounting-On", "Accounting-Off"
STATUS_TYPES = {START, INTERIM, STOP, ACCOUNTING_ON, ACCOUNTING_OFF}
# Causes radbill itself writes when it closes a session nobody reported closed. A real Stop
# arriving later still brings its final counters and time.
STALE = "Stale-Session"
NAS_RESTART = {ACCOUNTING_ON: "NAS-Reboot", ACCOUNTING_OFF: "NAS-Request"}
# The NAS answered a Disconnect/CoA with Session-Context-Not-Found (RFC 5176 Error-Cause 503).
GONE = "NAS-Session-Gone"
# A login from the same NAS and device (Calling-Station-Id or NAS-Port-Id) took its place:
# the router lost it without a Stop (power cut, reboot without Accounting-On).
REPLACED = "Replaced-By-Redial"
CLOSED_BY_US = {STALE, GONE, REPLACED, *NAS_RESTART.values()}
IN_CHUNK = 500  # bound on the values of one IN list
MAX_REPLACED = 16  # sessions one login may replace (one device rarely has more than one)


@dataclass(frozen=True)
class Limits:
    """How much traffic a session can plausibly carry, for telling a real counter from a
    NAS's garbage (a Gigawords of 2^31-1 in one Interim is eight exbibytes).

    A counter may grow by at most ``max_bits_per_second`` (each direction) over the time
    between two records of the session plus ``slack_seconds``, which absorbs clock jitter and
    Interims that arrive together after the NAS was cut off. The NAS's own Acct-Session-Time
    counts as elapsed time only as far as ``max_claimed_seconds`` and, for a known session,
    not beyond the session's age, so a garbage Acct-Session-Time cannot excuse a garbage
    counter. The default ceiling, 100 Gbit/s, is a hundred times any subscriber line.
    """

    max_bits_per_second: int = 100 * 10**9
    slack_seconds: int = 60
    max_claimed_seconds: int = 366 * 86400

    @property
    def bytes_per_second(self) -> int:
        return self.max_bits_per_second // 8

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured with ``RADBILL_ACCT_MAX_MBPS``."""
        return cls(max_bits_per_second=settings.acct_max_mbps * 10**6)


DEFAULT_LIMITS = Limits()


class ImplausibleRecord(InvalidRecord):
    """A record whose counters jump further than any line could carry in the time since the
    session's last record. It is set aside; the session keeps its previous counters."""


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


def octets64(attrs: Mapping[str, str], octets: str, gigawords: str) -> int:
    """A 64-bit counter from the 32-bit Octets attribute and its Gigawords high part.

    RFC 2869 lets Gigawords reach 2^32-1, but a total above 2^63-1 fits no signed 64-bit
    column and no line ever carried it: such a record is :class:`InvalidRecord`."""
    high = unsigned(attrs, gigawords)
    total = high << 32 | unsigned(attrs, octets)
    if total > MAX_I64:
        raise InvalidRecord(f"{gigawords}={high} makes a counter of {total} bytes "
                            "(at most 2^63-1)")
    return total


def record_from_attrs(
    attrs: Mapping[str, str], received_at: dt.datetime, nas_ip: str | None = None
) -> AcctRecord:
    """Parse and bound an accounting request's attributes (see :mod:`radius.bounds` for the
    rule per field). Raises :class:`InvalidRecord`."""
    status = attrs.get("Acct-Status-Type", "")
    if status not in STATUS_TYPES:
        raise InvalidRecord(f"Acct-Status-Type {status[:40]!r} is not handled")
    raw_nas = nas_ip or attrs.get("Packet-Src-IP-Address") or attrs.get("NAS-IP-Address")
    if not raw_nas:
        raise InvalidRecord("no NAS address in the record")
    nas = ip_address(raw_nas)
    if nas is None:
        raise InvalidRecord(f"NAS address {raw_nas[:45]!r} is not an IP address")
    event_time = received_at - dt.timedelta(seconds=unsigned(attrs, "Acct-Delay-Time"))
    if status in (ACCOUNTING_ON, ACCOUNTING_OFF):
        return AcctRecord(status=status, nas_ip=nas, event_time=event_time)
    username = key_text(attrs, "User-Name")
    session_id = key_text(attrs, "Acct-Session-Id")
    if not username or not session_id:
        raise InvalidRecord(f"{status} without User-Name or Acct-Session-Id")
    return AcctRecord(
        status=status,
        nas_ip=nas,
        event_time=event_time,
        username=username,
        acct_session_id=session_id,
        session_time=unsigned(attrs, "Acct-Session-Time"),
        input_octets=octets64(attrs, "Acct-Input-Octets", "Acct-Input-Gigawords"),
        output_octets=octets64(attrs, "Acct-Output-Octets", "Acct-Output-Gigawords"),
        input_packets=unsigned(attrs, "Acct-Input-Packets"),
        output_packets=unsigned(attrs, "Acct-Output-Packets"),
        framed_ip=ip_address(attrs.get("Framed-IP-Address")),
        calling_station_id=display_text(attrs.get("Calling-Station-Id"), MAX_TEXT),
        nas_port_id=display_text(attrs.get("NAS-Port-Id"), MAX_TEXT),
        terminate_cause=display_text(attrs.get("Acct-Terminate-Cause"), 32),
    )


def implausible_jump(before: SessionState | None, after: SessionState, rec: AcctRecord,
                     limits: Limits) -> str | None:
    """Why *rec* (which turned *before* into *after*) cannot be true, or None.

    A counter's growth must fit ``limits`` over the time since the session's last record:
    the wall-clock time between the two records, or the NAS's Acct-Session-Time difference
    if that is larger (Interims held back by the NAS arrive together), but no more than the
    session has existed. A session seen for the first time is measured over its own
    Acct-Session-Time."""
    grown_in = after.input_octets - (before.input_octets if before else 0)
    grown_out = after.output_octets - (before.output_octets if before else 0)
    grown = max(grown_in, grown_out)
    # Fast path: below the slack allowance no interval can make it implausible.
    if grown <= limits.bytes_per_second * limits.slack_seconds:
        return None
    claimed = rec.session_time - (before.session_time if before else 0)
    claimed = min(claimed, limits.max_claimed_seconds)
    if before is None:
        elapsed = claimed
    else:
        wall = int((rec.event_time - before.updated_at).total_seconds())
        age = int((rec.event_time - before.started_at).total_seconds())
        elapsed = max(wall, min(claimed, age))
    allowed = limits.bytes_per_second * (max(elapsed, 0) + limits.slack_seconds)
    if grown <= allowed:
        return None
    direction = "input" if grown_in >= grown_out else "output"
    return (f"{direction} counter jumps by {grown} bytes in {max(elapsed, 0)} s "
            f"(more than {limits.max_bits_per_second} bit/s); the session keeps its previous "
            "counters")


def _grow(state: SessionState, rec: AcctRecord) -> SessionState:
    """Counters and times move forward only; missing details are filled in."""
    # built directly, not with dataclasses.replace: this runs for every record ingested
    return SessionState(
        started_at=state.started_at,
        stopped_at=state.stopped_at,
        terminate_cause=state.terminate_cause,
        updated_at=max(state.updated_at, rec.event_time),
        session_time=max(state.session_time, rec.session_time),
        input_octets=max(state.input_octets, rec.input_octets),
        output_octets=max(state.output_octets, rec.output_octets),
        input_packets=max(state.input_packets, rec.input_packets),
        output_packets=max(state.output_packets, rec.output_packets),
        # The latest address wins (a NAS may re-address a session and say so in a later
        # Start or Interim; CoA and Disconnect identify the session by it); a record older
        # than what the session already knows (a replay, a late retransmission) does not.
        framed_ip=(rec.framed_ip if rec.framed_ip and rec.event_time >= state.updated_at
                   else state.framed_ip or rec.framed_ip),
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


def checked_fold(state: SessionState | None, rec: AcctRecord, limits: Limits) -> SessionState:
    """:func:`fold`, refusing a record whose counters jump implausibly
    (:class:`ImplausibleRecord`; see :func:`implausible_jump`)."""
    after = fold(state, rec)
    if after is not state:
        why = implausible_jump(state, after, rec, limits)
        if why is not None:
            raise ImplausibleRecord(why)
    return after


def apply(session: Session, rec: AcctRecord, subscriber_id: int | None = None,
          limits: Limits = DEFAULT_LIMITS) -> str:
    """Apply one record to the database in the caller's transaction.

    Returns what happened: ``opened``, ``closed``, ``updated``, ``unchanged`` or, for
    Accounting-On/Off, ``closed:N``. Raises :class:`ImplausibleRecord` (and changes
    nothing) for a counter jump no line could carry.
    """
    if rec.status in (ACCOUNTING_ON, ACCOUNTING_OFF):
        closed = close_nas_sessions(session, rec.nas_ip, rec.event_time, NAS_RESTART[rec.status])
        return f"closed:{closed}"
    # through the key table: (id, started_at) finds the row in its own month's partition
    k = RadiusSessionKey
    row = session.scalars(
        select(RadiusSession)
        .join(k, and_(k.session_id == RadiusSession.id,
                      k.started_at == RadiusSession.started_at))
        .where(k.nas_ip == rec.nas_ip, k.acct_session_id == rec.acct_session_id,
               k.username == rec.username)
        .with_for_update(of=RadiusSession)
        # Bulk closes (Accounting-On/Off, stale) bypass the ORM: read the row as stored.
        .execution_options(populate_existing=True)
    ).one_or_none()
    before = _state_of(row) if row is not None else None
    after = checked_fold(before, rec, limits)
    if after is before:
        return "unchanged"
    new = row is None
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
    if new:
        # claims the key: a second ingester creating it too gets the unique-key conflict
        session.execute(insert(RadiusSessionKey).values(
            nas_ip=row.nas_ip, acct_session_id=row.acct_session_id, username=row.username,
            session_id=row.id, started_at=row.started_at))
    if before is None:
        return "opened" if after.is_open else "closed"
    if was_open and not after.is_open:
        return "closed"
    return "reopened" if after.is_open and not was_open else "updated"


Outcome = str | InvalidRecord


def apply_many(session: Session, recs: list[AcctRecord], subscriber_ids: dict[str, int],
               limits: Limits = DEFAULT_LIMITS) -> list[Outcome]:
    """Apply records in order, as :func:`apply` one by one would, with a few statements per
    batch: the sessions are loaded (and locked) together, folded in memory, written together,
    and the session feed is bumped once. A burst of 10,000 Accounting-Stops after a bulk
    suspension is what the enforcement worker waits for to confirm it.

    The outcome of a record :func:`apply` would refuse is its :class:`ImplausibleRecord`
    (the caller sets the record aside); the others are applied."""
    outcomes, write = fold_many(session, recs, subscriber_ids, limits)
    write()
    return outcomes


def fold_many(session: Session, recs: list[AcctRecord], subscriber_ids: dict[str, int],
              limits: Limits = DEFAULT_LIMITS) -> tuple[list[Outcome], Callable[[], None]]:
    """:func:`apply_many` in two steps: the outcomes, with everything read and folded, and
    the write of the batch's last run of session records (the sessions after the last
    Accounting-On/Off; those before it are written here, as it needs them). The caller must
    call the write in this transaction before anything else reads or writes the sessions;
    until then it may use the time for work of its own, even on another thread while the
    write runs (the ingester computes usage meanwhile). Calling it twice writes once."""
    out: list[Outcome] = []
    segment: list[AcctRecord] = []
    for rec in recs:
        if rec.status in (ACCOUNTING_ON, ACCOUNTING_OFF):  # closes what came before it
            outcomes, write = _fold_segment(session, segment, subscriber_ids, limits)
            write()
            out += outcomes
            segment = []
            out.append(apply(session, rec))
        else:
            segment.append(rec)
    outcomes, write = _fold_segment(session, segment, subscriber_ids, limits)
    return out + outcomes, write


Key = tuple[str, str, str]


def _key(rec: AcctRecord) -> Key:
    assert rec.acct_session_id is not None
    assert rec.username is not None  # record_from_attrs guarantees both for sessions
    return (rec.nas_ip, rec.acct_session_id, rec.username)


def _fold_into(states: dict[Key, SessionState], rec: AcctRecord, limits: Limits) -> Outcome:
    """Fold *rec* into *states* (in memory); the outcome :func:`apply` would report."""
    key = _key(rec)
    before = states.get(key)
    after = fold(before, rec)
    if after is not before:
        why = implausible_jump(before, after, rec, limits)
        if why is not None:
            return ImplausibleRecord(why)  # never raised: no traceback keeps frames alive
    if after is before:
        return "unchanged"
    states[key] = after
    if before is None:
        return "opened" if after.is_open else "closed"
    if before.is_open and not after.is_open:
        return "closed"
    return "reopened" if after.is_open and not before.is_open else "updated"


SEGMENT_CHUNK = 5000  # sessions per load and write statement (arrays on PostgreSQL)
_TABLE = cast(Table, RadiusSession.__table__)
_LOAD_COLS = (_TABLE.c.id, _TABLE.c.nas_ip, _TABLE.c.acct_session_id, _TABLE.c.username,
              *(_TABLE.c[name] for name in _STATE_FIELDS))
_WRITE_COLS = (*_STATE_FIELDS, "state_seq")
_PG_TYPES = {"started_at": "timestamptz", "updated_at": "timestamptz",
             "stopped_at": "timestamptz", "session_time": "bigint", "input_octets": "bigint",
             "output_octets": "bigint", "input_packets": "bigint", "output_packets": "bigint",
             "terminate_cause": "varchar", "framed_ip": "varchar",
             "calling_station_id": "varchar", "nas_port_id": "varchar", "state_seq": "bigint",
             "id": "bigint", "nas_ip": "varchar", "acct_session_id": "varchar",
             "username": "varchar", "subscriber_id": "integer"}
# Fixed statement texts (one array parameter per column, whatever the batch size), so
# psycopg prepares them once per connection; the arrays go in binary (%b): psycopg writes a
# text array element by element in Python, eight times slower (measured: 30 against 3.8 us
# per record for 15 columns). A NULL state_seq keeps the stored one.
# {table}: the partition the locked load found the rows in (PostgreSQL), so the statement is
# the plain table's: no partition pruning asked of the planner.
_PG_UPDATE = (
    "UPDATE {table} AS t SET "  # noqa: S608 - column names of the model, no input
    + ", ".join(f"{c} = u.{c}" for c in _STATE_FIELDS)
    + ", state_seq = COALESCE(u.state_seq, t.state_seq) FROM unnest("
    + ", ".join(f"%b::{_PG_TYPES[c]}[]" for c in ("id", *_WRITE_COLS))
    + ") AS u(" + ", ".join(("id", *_WRITE_COLS)) + ") WHERE t.id = u.id")
_INSERT_COLS = ("nas_ip", "acct_session_id", "username", "subscriber_id", *_WRITE_COLS)
# The new sessions and their keys in one statement: a key another ingester claimed first is
# the unique-key conflict (IntegrityError) that sets the batch aside, as before partitions.
_PG_INSERT = (
    "WITH s AS (INSERT INTO radius_sessions ("  # noqa: S608 - column names of the model
    + ", ".join(_INSERT_COLS) + ") SELECT * FROM unnest("
    + ", ".join(f"%b::{_PG_TYPES[c]}[]" for c in _INSERT_COLS) + ")"
    " RETURNING id, nas_ip, acct_session_id, username, started_at) "
    "INSERT INTO radius_session_keys (nas_ip, acct_session_id, username, session_id, "
    "started_at) SELECT nas_ip, acct_session_id, username, id, started_at FROM s")
_KEYS = cast(Table, RadiusSessionKey.__table__)
# The locked load on PostgreSQL: per key, one probe of the key table's primary key, then one
# of the row's own partition by (id, started_at) (runtime pruning). LATERAL subqueries (the
# second one locking its row) fix that shape: left to itself, the planner joins the arrays
# to the sessions by a hash join over every partition, or (tables not analyzed yet, a new
# month) drives the join from the sessions (measured 2.8-8.6 times slower, and quadratic).
# It returns each row's partition: the UPDATE goes to it by id, as on a plain table.
_PG_LOAD = (
    "SELECT t.id, t.nas_ip, t.acct_session_id, t.username, "  # noqa: S608 - model columns
    + ", ".join(f"t.{c}" for c in _STATE_FIELDS)
    + ", t.tableoid::regclass::text FROM unnest(%b::varchar[], %b::varchar[], %b::varchar[]) "
    "AS k(nas_ip, acct_session_id, username) CROSS JOIN LATERAL (SELECT sk.session_id, "
    "sk.started_at FROM radius_session_keys AS sk WHERE sk.nas_ip = k.nas_ip "
    "AND sk.acct_session_id = k.acct_session_id AND sk.username = k.username LIMIT 1) AS sk "
    "CROSS JOIN LATERAL (SELECT r.*, r.tableoid FROM radius_sessions AS r "
    "WHERE r.id = sk.session_id AND r.started_at = sk.started_at FOR UPDATE) AS t")
# a key table or new month not analyzed yet must not be scanned once per key
_NO_SEQSCAN = "SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)"
_SEQSCAN_BACK = "SELECT set_config('enable_seqscan', %s, true)"
_UTC_FIELDS = tuple(i for i, name in enumerate(_STATE_FIELDS)
                    if name in ("started_at", "updated_at", "stopped_at"))


def _pg_state(values: tuple[Any, ...]) -> SessionState:
    """A state from the driver's row (timestamps in UTC, as the models return them)."""
    out = list(values)
    for i in _UTC_FIELDS:
        if out[i] is not None:
            out[i] = out[i].astimezone(dt.UTC)
    return SessionState(*out)


def _load_states(session: Session, keys: list[Key]
                 ) -> dict[Key, tuple[int, SessionState, str]]:
    """The stored sessions of *keys* as plain rows (row id, state, and the table it is in:
    its month's partition on PostgreSQL), locked: each key found in the key table, then its
    session by (id, started_at). On PostgreSQL the keys go as three arrays (fixed text),
    elsewhere as tuple IN lists of 300."""
    found: dict[Key, tuple[int, SessionState, str]] = {}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        saved = conn.exec_driver_sql(_NO_SEQSCAN).scalar_one()
        for i in range(0, len(keys), SEGMENT_CHUNK):
            chunk = keys[i : i + SEGMENT_CHUNK]
            keys_in = tuple(column([c[i] for c in chunk], "varchar") for i in range(3))
            # .all(): one fetch of every row (iterating fetches them one by one)
            for row in conn.exec_driver_sql(_PG_LOAD, keys_in).all():
                found[(row[1], row[2], row[3])] = (row[0], _pg_state(row[4:-1]), row[-1])
        conn.exec_driver_sql(_SEQSCAN_BACK, (saved,))
        return found
    t, kt = _TABLE, _KEYS
    for i in range(0, len(keys), 300):
        chunk = keys[i : i + 300]
        query = (select(*_LOAD_COLS)
                 .select_from(kt.join(t, and_(t.c.id == kt.c.session_id,
                                              t.c.started_at == kt.c.started_at)))
                 .where(tuple_(kt.c.nas_ip, kt.c.acct_session_id, kt.c.username).in_(chunk)))
        for row in session.execute(query):
            found[(row[1], row[2], row[3])] = (row[0], SessionState(*row[4:]), t.name)
    return found


def _nothing() -> None:
    return None


def _fold_segment(session: Session, recs: list[AcctRecord], subscriber_ids: dict[str, int],
                  limits: Limits) -> tuple[list[Outcome], Callable[[], None]]:
    """Fold a run of session records (no Accounting-On/Off among them) into their sessions:
    one locked read of the sessions and the fold in memory, plain rows throughout, no ORM
    objects; returned with the write (the feed bumped once if a session opened or closed,
    one UPDATE and one INSERT per :data:`SEGMENT_CHUNK` sessions), which runs once however
    often it is called."""
    if not recs:
        return [], _nothing
    if session.new or session.dirty or session.deleted:
        session.flush()  # the reads below are Core statements: no autoflush
    keys = list(dict.fromkeys(_key(r) for r in recs))
    stored = _load_states(session, keys)
    first = {k: st for k, (_, st, _) in stored.items()}
    states: dict[Key, SessionState] = dict(first)
    outcomes = [_fold_into(states, rec, limits) for rec in recs]
    changed = [k for k in keys if states.get(k) is not first.get(k)]
    if not changed:
        return outcomes, _nothing
    moved = {k for k in changed if k not in first or first[k].is_open != states[k].is_open}
    expire_held(session, RadiusSession, (stored[k][0] for k in changed if k in stored))
    done: list[bool] = []

    def rows(seq: int | None) -> tuple[list[tuple[int, SessionState, int | None, str]],
                                       list[tuple[Key, SessionState, int | None]]]:
        updates = [(stored[k][0], states[k], seq if k in moved else None, stored[k][2])
                   for k in changed if k in stored]
        # in key order: two ingesters claiming the same new keys wait for each other
        inserts = sorted((k, states[k], seq) for k in changed if k not in stored)
        return updates, inserts

    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # the feed bumped and every statement's arrays built here, so that the write, if it
        # runs on another thread, only waits for the database
        statements = _pg_writes(*rows(bump(session, SESSION_FEED) if moved else None),
                                subscriber_ids)

        def write() -> None:
            if not done:
                done.append(True)
                _execute(conn, statements)

        return outcomes, write

    def write_here() -> None:
        if not done:
            done.append(True)
            _write_states(session, *rows(bump(session, SESSION_FEED) if moved else None),
                          subscriber_ids)

    return outcomes, write_here


_STATE_OF = attrgetter(*_STATE_FIELDS)


def _pg_writes(updates: list[tuple[int, SessionState, int | None, str]],
               inserts: list[tuple[Key, SessionState, int | None]],
               subscriber_ids: dict[str, int]) -> list[tuple[str, tuple[Any, ...]]]:
    """The PostgreSQL statements that store folded sessions, with their parameters (what
    :func:`_write_states` does elsewhere): one ``UPDATE .. FROM unnest`` per partition and
    one ``INSERT .. SELECT unnest`` per chunk, each column one binary array, run through
    SQLAlchemy (:func:`_execute`), so a refused value or a duplicate key is the DataError /
    IntegrityError the ingester isolates."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    by_table: dict[str, list[tuple[int, SessionState, int | None, str]]] = {}
    for u in updates:
        by_table.setdefault(u[3], []).append(u)
    for table, rows in sorted(by_table.items()):
        if table != _TABLE.name and not is_partition(table):
            raise ValueError(f"session row in an unexpected table {table!r}")
        sql = _PG_UPDATE.format(table=table)
        for i in range(0, len(rows), SEGMENT_CHUNK):
            chunk = rows[i : i + SEGMENT_CHUNK]
            fields = zip(*(_STATE_OF(u[1]) for u in chunk), strict=True)
            out.append((sql, (
                column([u[0] for u in chunk], "bigint"),
                *(column(list(values), _PG_TYPES[name])
                  for name, values in zip(_STATE_FIELDS, fields, strict=True)),
                column([u[2] for u in chunk], "bigint"))))
    for i in range(0, len(inserts), SEGMENT_CHUNK):
        new = inserts[i : i + SEGMENT_CHUNK]
        fields = zip(*(_STATE_OF(st) for _, st, _ in new), strict=True)
        out.append((_PG_INSERT, (
            column([k[0] for k, _, _ in new], "varchar"),
            column([k[1] for k, _, _ in new], "varchar"),
            column([k[2] for k, _, _ in new], "varchar"),
            column([subscriber_ids.get(k[2]) for k, _, _ in new], "integer"),
            *(column(list(values), _PG_TYPES[name])
              for name, values in zip(_STATE_FIELDS, fields, strict=True)),
            column([seq or 0 for _, _, seq in new], "bigint"))))
    return out


def _execute(conn: Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    for sql, params in statements:
        conn.exec_driver_sql(sql, params)


def _write_states(session: Session, updates: list[tuple[int, SessionState, int | None, str]],
                  inserts: list[tuple[Key, SessionState, int | None]],
                  subscriber_ids: dict[str, int]) -> None:
    """Store folded sessions on a database other than PostgreSQL (which runs the statements
    of :func:`_pg_writes`), with executemany: *updates* by row id (a None feed value keeps
    the stored one), *inserts* as new rows with their keys."""
    t = _TABLE
    if updates:
        values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in _STATE_FIELDS}
        values["state_seq"] = func.coalesce(bindparam("b_state_seq", type_=BigInteger),
                                            t.c.state_seq)
        session.execute(
            update(t).where(t.c.id == bindparam("b_id")).values(values),
            [{"b_id": row_id, "b_state_seq": seq,
              **{f"b_{name}": getattr(st, name) for name in _STATE_FIELDS}}
             for row_id, st, seq, _ in updates])
    if inserts:
        made = session.execute(insert(t).returning(t.c.id, t.c.nas_ip, t.c.acct_session_id,
                                                   t.c.username, t.c.started_at), [
            {"nas_ip": k[0], "acct_session_id": k[1], "username": k[2],
             "subscriber_id": subscriber_ids.get(k[2]), "state_seq": seq or 0,
             **{name: getattr(st, name) for name in _STATE_FIELDS}}
            for k, st, seq in inserts]).all()
        session.execute(insert(_KEYS), [
            {"nas_ip": nas, "acct_session_id": sid, "username": user, "session_id": row_id,
             "started_at": started} for row_id, nas, sid, user, started in made])


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


def close_replaced_sessions(session: Session, nas_ip: str, username: str,
                            acct_session_ids: list[str], at: dt.datetime) -> int:
    """Close the open sessions a login from the same device replaced (at most
    :data:`MAX_REPLACED`). Like every close radbill makes on its own, a later Interim
    reopens the session and a late Stop finalises it."""
    ids = [i for i in acct_session_ids if i][:MAX_REPLACED]
    if not ids or not username:
        return 0
    result = session.execute(
        update(RadiusSession)
        .where(RadiusSession.nas_ip == nas_ip, RadiusSession.acct_session_id.in_(ids),
               func.lower(RadiusSession.username) == username.strip().lower(),
               RadiusSession.stopped_at.is_(None))
        # the login's time has whole seconds: never end a session before it started
        .values(stopped_at=case((RadiusSession.started_at > at, RadiusSession.started_at),
                                else_=at),
                terminate_cause=REPLACED, state_seq=bump(session, SESSION_FEED))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def close_unlisted_sessions(session: Session, nas_ip: str, listed_ids: set[str],
                            listed_users: set[str], started_before: dt.datetime,
                            at: dt.datetime) -> tuple[list[str], int]:
    """Close the open sessions of one NAS that the NAS itself no longer lists (RouterOS API
    ``/ppp/active``, ``/ip/hotspot/active``), started before *started_before* (the moment
    the list was read, less clock skew: a session that started since may not be listed
    yet). A session counts as listed by its Acct-Session-Id (compared in lower case), or by
    its username where the NAS lists a user without a session id. Returns the usernames of
    the sessions closed, and how many unlisted ones were spared for starting too late."""
    rows = session.execute(
        select(RadiusSession.id, RadiusSession.username, RadiusSession.acct_session_id,
               RadiusSession.started_at)
        .where(RadiusSession.nas_ip == nas_ip, RadiusSession.stopped_at.is_(None))).all()
    unlisted = [(rid, name, started) for rid, name, sid, started in rows
                if sid.lower() not in listed_ids and name.lower() not in listed_users]
    gone = [(rid, name) for rid, name, started in unlisted
            if _utc(started) < started_before]
    spared = len(unlisted) - len(gone)
    if not gone:
        return [], spared
    seq = bump(session, SESSION_FEED)
    for i in range(0, len(gone), IN_CHUNK):
        session.execute(
            update(RadiusSession)
            .where(RadiusSession.id.in_([rid for rid, _ in gone[i:i + IN_CHUNK]]),
                   RadiusSession.stopped_at.is_(None))
            .values(stopped_at=at, terminate_cause=GONE, state_seq=seq)
            .execution_options(synchronize_session=False))
    return [name for _, name in gone], spared


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


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


def sessions_between(session: Session, username: str, start: dt.datetime, end: dt.datetime,
                     limit: int = 2000) -> list[RadiusSession]:
    """The subscriber's sessions that ran at some time in [*start*, *end*), oldest first (at
    most *limit*: a period has far fewer)."""
    return list(session.scalars(
        select(RadiusSession)
        .where(RadiusSession.username == username, RadiusSession.started_at < end,
               (RadiusSession.stopped_at.is_(None)) | (RadiusSession.stopped_at >= start))
        .order_by(RadiusSession.started_at, RadiusSession.id).limit(limit)))


def open_sessions_at(session: Session, framed_ip: str, limit: int = 2) -> list[RadiusSession]:
    """Open sessions holding the address *framed_ip* (at most *limit*)."""
    return list(session.scalars(
        select(RadiusSession)
        .where(RadiusSession.framed_ip == framed_ip, RadiusSession.stopped_at.is_(None))
        .order_by(RadiusSession.started_at.desc(), RadiusSession.id.desc()).limit(limit)))


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


def usernames_on_nas(nas_ip: str) -> Select[str]:
    """Users who have (or had) a session on the NAS at *nas_ip*, as a query to filter by
    (``username IN (SELECT ...)``): a big NAS has seen hundreds of thousands of users, more
    than one statement's parameters may carry. Index: (nas_ip, username)."""
    return select(RadiusSession.username).where(RadiusSession.nas_ip == nas_ip)

