"""Feeding FreeRADIUS's detail spools into the database, from outside FreeRADIUS.

FreeRADIUS writes every accounting request and every auth decision to hourly detail files
before it answers the NAS (see ``raddb/mods/detail``). :class:`Ingester` reads them in order
and applies each batch in one transaction together with its :class:`~radius.models.DetailCursor`,
so nothing is applied twice by a crash and nothing is lost while the database is down: the
records wait on disk and the ingester retries with back-off, logging loudly.

One bad record never stops the stream. Every field is validated and bounded first
(:mod:`radius.bounds`); a record that fails that, or whose counters jump further than any
line could carry, is set aside in the batch's own transaction (:mod:`radius.rejects`). A
batch that still fails is split in halves until the record that makes it fail is found and
set aside, and the rest is applied; only a failure that is not one record's doing (the
database is down, locked, not migrated) stops the stream, which then retries with every
record safe on disk. Set-aside records raise one alert per burst and can be replayed after a
fix through the same code (:func:`replay`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from billing.subscribers import subscriber_ids
from radbill import audit
from radbill.db import utcnow
from radbill.errors import InvalidInput, NotFound
from radbill.gcpause import collector_paused
from radius import accounting, lag, rejects
from radius.accounting import DEFAULT_LIMITS, AcctRecord, InvalidRecord, Limits
from radius.bounds import MAX_I64, received_at
from radius.detail import DetailRecord, complete_records
from radius.models import DetailCursor, PostAuth, RejectedRecord
from radius.postauth import row_from_attrs
from radius.rejects import Rejection
from usage import service as usage

log = logging.getLogger("radbill.ingest")

READ_CHUNK = 4 * 1024 * 1024
GZ = ".gz"  # a detail file compressed once applied (tidy_spool): never read again
TORN_TAIL_AGE_S = 30.0  # a partial record this old in a rotated file was never finished
T = TypeVar("T")


def parse_accounting(attrs: Mapping[str, str]) -> AcctRecord | InvalidRecord:
    """One accounting record's attributes parsed and bounded, or why they cannot be (returned,
    not raised). Pure: no database, nothing shared, so the ingester runs it ahead, on its
    reading thread, for the batch after the one being applied."""
    try:
        return accounting.record_from_attrs(attrs, received_at(attrs))
    except InvalidRecord as exc:
        return exc


def apply_accounting(session: Session, records: Sequence[Mapping[str, str]],
                     limits: Limits = DEFAULT_LIMITS) -> dict[int, str]:
    """Apply a batch of accounting records in the caller's transaction. Returns the records
    it refused (by index in *records*, with the reason): those that fail validation and
    those whose counters jump implausibly. The others are applied. Python's cyclic
    collector is paused for the batch (:mod:`radbill.gcpause`)."""
    with collector_paused():
        return _apply_parsed(session, [parse_accounting(attrs) for attrs in records], limits)


def apply_parsed_accounting(session: Session, parsed: Sequence[AcctRecord | InvalidRecord],
                            limits: Limits = DEFAULT_LIMITS) -> dict[int, str]:
    """:func:`apply_accounting` for records :func:`parse_accounting` has parsed already."""
    with collector_paused():
        return _apply_parsed(session, parsed, limits)


def _apply_parsed(session: Session, parsed: Sequence[AcctRecord | InvalidRecord],
                  limits: Limits) -> dict[int, str]:
    refused: dict[int, str] = {}
    good: list[AcctRecord] = []
    where: list[int] = []
    for i, rec in enumerate(parsed):
        if isinstance(rec, InvalidRecord):
            refused[i] = str(rec)
        else:
            good.append(rec)
            where.append(i)
    ids = subscriber_ids(session, {r.username for r in good if r.username})
    applied: list[AcctRecord] = []
    outcomes, write_sessions = accounting.fold_many(session, good, ids, limits)
    for i, rec, outcome in zip(where, good, outcomes, strict=True):
        if isinstance(outcome, InvalidRecord):
            refused[i] = str(outcome)
        else:
            applied.append(rec)
    # Usage per day and period, caps and quotas move with the sessions, in this transaction.
    # On PostgreSQL the sessions are written while metering computes (the connection is
    # free then; the database and Python each have a core), else before it.
    if session.get_bind().dialect.name != "postgresql":
        write_sessions()
        usage.record_usage(session, applied, ids)
        return refused
    meanwhile = _Meanwhile(write_sessions)
    usage.record_usage(session, applied, ids, while_computing=meanwhile)
    write_sessions()  # not written yet if metering had nothing to read (no-op otherwise)
    return refused


class _Meanwhile:
    """A database job (*job*: the batch's session writes) run on a thread of its own for as
    long as the with-block runs, then waited for (its exception raised in this thread, as
    if it had run here). The block must not touch the session's connection. A thread per
    job (some 0.1 ms a batch), not a shared one: two ingesters' jobs must never wait in
    line behind each other while one waits for a row the other holds."""

    def __init__(self, job: Callable[[], None]) -> None:
        self.job = job
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.job()
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            self.error = exc

    def __enter__(self) -> _Meanwhile:
        self.thread = threading.Thread(target=self._run, name="radbill-ingest-writer",
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        assert self.thread is not None
        self.thread.join()  # even when the block failed: the connection is the job's
        error, self.error = self.error, None
        if error is None:
            return
        if exc is None:
            raise error
        log.error("the session writes failed (%s) while metering failed too",
                  describe(error))


def apply_postauth(session: Session, records: Sequence[Mapping[str, str]]) -> dict[int, str]:
    """Store a batch of auth decisions (one multi-row INSERT: this runs once per login).
    Returns the records it refused (only a corrupt Timestamp: every text is bounded)."""
    refused: dict[int, str] = {}
    rows = []
    for i, attrs in enumerate(records):
        try:
            rows.append(row_from_attrs(attrs))
        except InvalidRecord as exc:
            refused[i] = str(exc)
    if rows:
        session.execute(insert(PostAuth), rows)
    for attrs in records:
        replaces = (attrs.get("Radbill-Replaces") or "").split()
        if replaces and attrs.get("Radbill-Decision") == "accept":
            # A login from the device of these open sessions was accepted: the NAS lost
            # them without a Stop. Closed at the login, with the cause saying why.
            try:
                at = received_at(attrs)
            except InvalidRecord:
                continue
            accounting.close_replaced_sessions(
                session, attrs.get("Radbill-NAS-Address") or "",
                attrs.get("Radbill-User-Name") or "", replaces, at)
    return refused


Handler = Callable[[Session, Sequence[Mapping[str, str]]], dict[int, str]]


@dataclass(frozen=True)
class Ahead:
    """A stream's handler in two steps, so the first can run ahead: *prepare* turns one
    record's attributes into what *apply* takes, with no database and nothing shared (the
    ingester runs it on its reading thread for the next batch while the database applies
    this one); *apply* does the rest in the batch's transaction and returns the refused
    records by index, as a :data:`Handler` does. Both together must do exactly what the
    stream's handler does (replays go through the handler)."""

    prepare: Callable[[Mapping[str, str]], object]
    apply: Callable[[Session, Sequence[Any]], dict[int, str]]


def handlers(limits: Limits = DEFAULT_LIMITS) -> dict[str, Handler]:
    """What applies each stream's records, by stream name."""
    return {"acct": partial(apply_accounting, limits=limits), "postauth": apply_postauth}


def ahead_handlers(limits: Limits = DEFAULT_LIMITS) -> dict[str, Ahead]:
    """The streams whose handler can run in two steps (:class:`Ahead`), by stream name."""
    return {"acct": Ahead(parse_accounting, partial(apply_parsed_accounting, limits=limits))}


@dataclass(frozen=True)
class Stream:
    """A directory of detail files and what to do with their records (*ahead*: the same
    handler in two steps, when it has them)."""

    name: str
    directory: Path
    handler: Handler
    ahead: Ahead | None = None


def default_streams(spool_dir: Path, limits: Limits = DEFAULT_LIMITS) -> list[Stream]:
    """The accounting and post-auth spools under *spool_dir*."""
    two_step = ahead_handlers(limits)
    return [Stream(name, spool_dir / name, handler, two_step.get(name))
            for name, handler in handlers(limits).items()]


def is_record_fault(exc: BaseException) -> bool:
    """Whether *exc* can be one record's doing, so isolating the record is worth trying.

    A value the database refuses (DataError: out of range, too long, NUL), a constraint
    (IntegrityError) or anything our own code raises on a value (ValueError, OverflowError,
    ...) can be. A database that is down, locked, out of disk, not migrated or refusing our
    permissions (OperationalError, InterfaceError, ProgrammingError, ...) or a failing disk
    is never one record's doing: setting records aside for it would empty the spool into the
    set-aside table, so the stream stops and retries instead."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, DataError | IntegrityError) and not exc.connection_invalidated
    if _is_driver_error(exc):  # raised by the driver itself (COPY), not wrapped by SQLAlchemy
        return any(base.__name__ in ("DataError", "IntegrityError")
                   for base in type(exc).__mro__)
    if isinstance(exc, StatementError) and isinstance(exc.orig, BaseException):
        return is_record_fault(exc.orig)  # a driver-side error SQLAlchemy wrapped
    return isinstance(exc, Exception) and not isinstance(exc, OSError | MemoryError)


def _is_driver_error(exc: BaseException) -> bool:
    """Whether *exc* is a DB-API (PEP 249) error raised by the driver: psycopg's and sqlite3's
    exception classes all derive from their module's ``Error``."""
    for base in type(exc).__mro__:
        if base.__name__ == "Error" and base.__module__.split(".")[0] in ("psycopg", "sqlite3"):
            return True
    return False


FAILED_ALONE = "could not be applied: "


def describe(exc: BaseException) -> str:
    """One line saying why a record failed: a validation message as it is, anything else
    (what the database or our code raised on a record that passed validation) as
    ``could not be applied: <type>: <message>`` (the driver's message, not the SQL with
    the parameters, which repeat the bad value)."""
    if isinstance(exc, InvalidInput):
        return rejects.clean_reason(str(exc))
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return rejects.clean_reason(FAILED_ALONE + (f"{type(orig).__name__}: {text}" if text else
                                                type(orig).__name__))


def isolate(items: Sequence[T], attempt: Callable[[Sequence[T]], None],
            set_aside: Callable[[T, BaseException], None]) -> None:
    """Run *attempt* (its own transaction) on *items*; if it fails for a reason that can be
    one record's doing, split the items in halves, in order, until each failing one is alone,
    and hand that one to *set_aside* (also its own transaction). Anything else propagates.

    Costs nothing while batches succeed; k bad records in n cost about 2k*log2(n) extra
    transactions."""
    try:
        attempt(items)
    except Exception as exc:
        if not is_record_fault(exc):
            raise
        if len(items) == 1:
            log.error("record failed on its own (%s): setting it aside", describe(exc))
            set_aside(items[0], exc)
            return
        mid = len(items) // 2
        log.warning("batch of %d failed (%s); narrowing it down", len(items), describe(exc))
        isolate(items[:mid], attempt, set_aside)
        isolate(items[mid:], attempt, set_aside)


# The reading thread pauses this long after every YIELD_EVERY records (about 0.15 ms of
# work), unless the applying thread is waiting for its batch: CPython hands the GIL to a
# thread that asks for it only after a switch interval (5 ms) unless its holder lets go, and
# the applying thread asks for it each time the database answers; the pause lets go.
YIELD_EVERY = 8
YIELD_SECONDS = 0.0001


@dataclass(frozen=True)
class _Raised:
    """What a stream's prepare raised on a record (not a refusal, which it returns): raised
    again inside the batch's transaction, so isolation finds the record and sets it aside
    exactly as when the handler raised it there."""

    exc: Exception


@dataclass(frozen=True)
class _Batch:
    """Consecutive complete records read from *offset* of *path* (the file with *inode*),
    each with what the stream's :class:`Ahead` prepared of it (None without one); *more*:
    the read stopped at the batch size or the read size, so more may follow at once."""

    path: Path
    inode: int
    offset: int
    records: list[DetailRecord]
    prepared: list[object]
    more: bool


class Ingester:
    """Moves records from detail files into the database, batch by batch."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        spool_dir: Path,
        streams: list[Stream] | None = None,
        batch_size: int = 5000,
        limits: Limits = DEFAULT_LIMITS,
        node: str = "",
        lag_alert_seconds: float | None = None,
        metrics_path: Path | None = None,
        observe_every: float = 5.0,
        read_ahead: bool = False,
    ) -> None:
        self.factory = factory
        self.spool_dir = spool_dir
        self.node = node  # whose spool this is: the cursors are this node's own
        self.streams = streams or default_streams(spool_dir, limits)
        # 5,000 records a transaction at most (what a 4 MiB read holds of typical records):
        # measured 20% less CPU per record than 2,000 on PostgreSQL, fewer statements per
        # record; a stream that keeps up applies what is on disk, in smaller batches.
        self.batch_size = batch_size
        # Read and prepare the next full batch on a second thread while this one is applied.
        # `radbill radius run` turns it on (RADBILL_INGEST_READ_AHEAD, default yes): on a
        # quiet 2-vCPU machine it was faster in 7 of 8 rounds (metered ingest 2.58x and 3.16x
        # stock rlm_sql in two runs, 2.23x and 2.84x without), for some 10% more CPU; on a
        # machine whose CPUs are already saturated it cost more CPU than it hid (0-10%
        # slower). Off here for the callers that build an ingester themselves (tools, tests;
        # bench/accounting_ingest.py's -ahead variants measure both in one run).
        self.read_ahead = read_ahead
        self.applied = 0
        self.rejected = 0
        self._stop = threading.Event()
        # lag: measured every *observe_every* seconds while running when either is set
        self.lag_alert_seconds = lag_alert_seconds
        self.metrics_path = metrics_path
        self.observe_every = observe_every
        self.lag: list[lag.StreamLag] = []
        self._positions: dict[str, lag.Position] = {}  # last cursors read from the database
        self._observed = 0.0

    # -- one pass -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply everything on disk now; returns how many records were applied. Raises on a
        database failure that is not one record's doing (nothing is skipped then)."""
        return sum(self._drain(stream) for stream in self.streams)

    def _cursor(self, session: Session, stream: str) -> DetailCursor:
        cursor = session.get(DetailCursor, (self.node, stream), with_for_update=True)
        if cursor is None:
            cursor = DetailCursor(node=self.node, stream=stream, file_name="", offset=0,
                                  records=0)
            legacy = self._legacy_cursor(session, stream)
            if legacy is not None:
                cursor.file_name, cursor.offset = legacy.file_name, legacy.offset
                cursor.records = legacy.records
                session.delete(legacy)
                log.warning("%s: node %s takes over the cursor of the single-node setup "
                            "(%s at %d)", stream, self.node, legacy.file_name, legacy.offset)
            session.add(cursor)
            session.flush()
        return cursor

    def _legacy_cursor(self, session: Session, stream: str) -> DetailCursor | None:
        """The cursor a version before node names left (node ""), if it describes this
        node's spool: its file is here and at least as long as its offset. The node that
        was upgraded in place takes it over; a new node with an empty spool does not."""
        if not self.node:
            return None
        legacy = session.get(DetailCursor, ("", stream), with_for_update=True)
        if legacy is None or not legacy.file_name:
            return None
        path = self.spool_dir / stream / legacy.file_name
        try:
            if path.stat().st_size < legacy.offset:
                return None
        except OSError:
            return None
        return legacy

    def _place(self, name: str) -> str:
        """A detail file as set-aside records name it: with the node, when there are nodes
        (each node's spool has files of the same names)."""
        return f"{self.node}/{name}" if self.node else name

    def _drain(self, stream: Stream) -> int:
        done = 0
        # With read_ahead, while a full batch is applied the next one is read and prepared
        # (Stream.ahead) on a thread of its own: psycopg lets go of the GIL while it waits
        # for the database, so the parsing can run while PostgreSQL works (issue 14). The
        # batch read ahead is used only if the cursor, after the commit, stands where it
        # starts, in the same file; otherwise it is dropped and read again.
        pool: ThreadPoolExecutor | None = None
        ahead: tuple[Future[tuple[bytes, _Batch]], threading.Event] | None = None
        try:
            while not self._stop.is_set():
                files = sorted(p.name for p in stream.directory.glob("detail-*")
                               if not p.name.endswith(GZ)) if stream.directory.is_dir() else []
                with self.factory() as session, session.begin():
                    cursor = self._cursor(session, stream.name)
                    position = (cursor.file_name, cursor.offset)
                pending = [f for f in files if f >= position[0]]
                if not pending:
                    return done
                name = pending[0]
                offset = position[1] if name == position[0] else 0
                path = stream.directory / name
                if offset > path.stat().st_size:
                    # The file was replaced (restored from backup, spool wiped): start it
                    # over. Replays are harmless for accounting (idempotent); post-auth may
                    # repeat.
                    log.error("%s: %s is shorter than the cursor (%d); reading it from the "
                              "start", stream.name, name, offset)
                    offset = 0
                batch = self._read_ahead(ahead, path, offset)
                ahead = None
                data = b""
                if batch is None:
                    data, batch = self._read(stream, path, offset)
                if batch.records:
                    if batch.more and self.read_ahead:
                        pool = pool or ThreadPoolExecutor(
                            1, thread_name_prefix=f"radbill-ingest-{stream.name}")
                        hurry = threading.Event()
                        ahead = (pool.submit(self._read, stream, path,
                                             batch.records[-1].end_offset, hurry=hurry), hurry)
                    done += self._apply(stream, name, batch)
                    self._maybe_observe()  # a long backlog: the lag while it drains
                    continue
                newer = len(pending) > 1
                if not newer:
                    return done
                if data and time.time() - path.stat().st_mtime < TORN_TAIL_AGE_S:
                    return done  # maybe still being written; look again later
                torn = [Rejection(offset, data[:4096].decode("utf-8", "replace"),
                                  "incomplete record at the end of a rotated file")
                        ] if data else []
                with self.factory() as session, session.begin():
                    rejects.set_aside(session, stream.name, self._place(name), torn)
                    self._move(session, stream.name, pending[1], 0, 0)
                self._report(stream.name, name, torn)
            return done
        finally:
            if ahead is not None:
                ahead[1].set()  # not wanted any more: done without pauses
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, stream: Stream, path: Path, offset: int, *,
              hurry: threading.Event | None = None) -> tuple[bytes, _Batch]:
        """Up to :attr:`batch_size` complete records of *path* from *offset* (one read of at
        most :data:`READ_CHUNK`), each with what the stream's :class:`Ahead` prepares of it,
        and the bytes read. On the reading thread (*hurry* given) it pauses every
        :data:`YIELD_EVERY` records until *hurry* is set, so that the applying thread gets
        the GIL back as soon as the database answers it."""
        with path.open("rb") as fh:
            inode = os.fstat(fh.fileno()).st_ino
            fh.seek(offset)
            data = fh.read(READ_CHUNK)
        records: list[DetailRecord] = []
        prepared: list[object] = []
        prepare = stream.ahead.prepare if stream.ahead is not None else None
        with collector_paused():
            for rec in complete_records(data, offset):
                records.append(rec)
                if prepare is not None:
                    try:
                        prepared.append(prepare(rec.attrs))
                    except Exception as exc:  # noqa: BLE001 - raised again in the batch
                        prepared.append(_Raised(exc))
                else:
                    prepared.append(None)
                if len(records) >= self.batch_size:
                    break
                if (hurry is not None and len(records) % YIELD_EVERY == 0
                        and not hurry.is_set()):
                    time.sleep(YIELD_SECONDS)
        more = len(records) >= self.batch_size or len(data) == READ_CHUNK
        return data, _Batch(path, inode, offset, records, prepared, more)

    @staticmethod
    def _read_ahead(ahead: tuple[Future[tuple[bytes, _Batch]], threading.Event] | None,
                    path: Path, offset: int) -> _Batch | None:
        """The batch read ahead, if it starts where the cursor stands now (the same file,
        the same offset) and holds records; None: read in this thread."""
        if ahead is None:
            return None
        future, hurry = ahead
        hurry.set()  # waited for now: no more pauses
        try:
            _, batch = future.result()
        except Exception as exc:  # noqa: BLE001 - read again here, raising as it always did
            log.debug("reading ahead failed (%s); reading again", type(exc).__name__)
            return None
        try:
            inode = path.stat().st_ino
        except OSError:
            return None
        if (batch.path, batch.inode, batch.offset) != (path, inode, offset) or not batch.records:
            return None
        return batch

    def _apply(self, stream: Stream, name: str, batch: _Batch) -> int:
        """Apply *batch* (consecutive records of *name*) and move the cursor past it; a record
        that makes the batch fail is isolated and set aside (:func:`isolate`)."""
        applied = 0
        items = list(zip(batch.records, batch.prepared, strict=True))

        def attempt(part: Sequence[tuple[DetailRecord, object]]) -> None:
            nonlocal applied
            with self.factory() as session, session.begin():
                if stream.ahead is None:
                    refused = stream.handler(session, [r.attrs for r, _ in part])
                else:
                    for _, prepared in part:
                        if isinstance(prepared, _Raised):
                            raise prepared.exc  # as the handler would have, in the batch
                    refused = stream.ahead.apply(session, [p for _, p in part])
                aside = [Rejection(part[i][0].offset, part[i][0].attrs, why)
                         for i, why in sorted(refused.items())]
                rejects.set_aside(session, stream.name, self._place(name), aside)
                self._move(session, stream.name, name, part[-1][0].end_offset,
                           len(part) - len(aside))
            applied += len(part) - len(aside)
            self._report(stream.name, name, aside)

        def set_aside(item: tuple[DetailRecord, object], exc: BaseException) -> None:
            rec = item[0]
            aside = [Rejection(rec.offset, rec.attrs, describe(exc))]
            with self.factory() as session, session.begin():
                rejects.set_aside(session, stream.name, self._place(name), aside)
                self._move(session, stream.name, name, rec.end_offset, 0)
            self._report(stream.name, name, aside)

        isolate(items, attempt, set_aside)
        self.applied += applied
        return applied

    def _report(self, stream: str, name: str, rejections: list[Rejection]) -> None:
        """Count and log records set aside (after their transaction committed)."""
        self.rejected += len(rejections)
        for r in rejections[:5]:
            log.error("%s record in %s at offset %d set aside: %s", stream, name, r.offset,
                      r.reason)
        if len(rejections) > 5:
            log.error("... and %d more %s records in %s set aside", len(rejections) - 5,
                      stream, name)

    def _move(self, session: Session, stream: str, name: str, offset: int, n: int) -> None:
        cursor = self._cursor(session, stream)
        cursor.file_name, cursor.offset = name, offset
        cursor.records += n
        cursor.updated_at = utcnow()

    # -- lag ------------------------------------------------------------------------------

    def observe(self, now: dt.datetime | None = None) -> list[lag.StreamLag]:
        """Measure the lag (:mod:`radius.lag`), write the metric file and raise or resolve
        the lag alert, as configured. With the database down the cursors last read are used
        (and the alert waits for the database); never raises."""
        self._observed = time.monotonic()
        db_up = True
        try:
            with self.factory() as session:
                self._positions.update(lag.positions(session, self.node))
        except Exception as exc:  # noqa: BLE001 - the lag matters most while it is down
            db_up = False
            log.debug("lag: cursors not readable (%s)", type(exc).__name__)
        now = now or utcnow()
        known = [s for s in self.streams if db_up or s.name in self._positions]
        self.lag = [lag.stream_lag(s.name, s.directory, self._positions.get(s.name, ("", 0)),
                                   now) for s in known]
        if self.metrics_path is not None:
            try:
                lag.write_textfile(self.metrics_path, lag.prometheus_text(self.lag, self.node))
            except OSError as exc:
                log.error("lag metric not written to %s: %s", self.metrics_path, exc)
        if db_up and self.lag_alert_seconds is not None:
            try:
                with self.factory() as session, session.begin():
                    outcome = lag.check_alert(session, self.lag, self.lag_alert_seconds,
                                              self.node, now)
            except Exception as exc:  # noqa: BLE001 - checked again at the next observation
                log.error("lag alert not checked: %s", str(exc).splitlines()[0])
            else:
                worst = max((g.age_seconds for g in self.lag), default=0.0)
                if outcome == "raised":
                    log.error("ACCOUNTING INGEST %.0f s BEHIND (alert threshold %.0f s)",
                              worst, self.lag_alert_seconds)
                elif outcome == "resolved":
                    log.warning("accounting ingest caught up (%.0f s behind): lag alert "
                                "resolved", worst)
        return self.lag

    def _maybe_observe(self) -> None:
        if (self.lag_alert_seconds is None and self.metrics_path is None) or (
                time.monotonic() - self._observed < self.observe_every):
            return
        try:
            self.observe()
        except Exception as exc:  # noqa: BLE001 - a metric never stops the ingester
            log.error("lag not measured: %s", str(exc).splitlines()[0])

    # -- loop -----------------------------------------------------------------------------

    def run_forever(self, poll_seconds: float = 0.2, max_backoff: float = 5.0) -> None:
        """Poll until :meth:`stop`. Database errors are logged and retried with back-off."""
        failures = 0
        while not self._stop.is_set():
            try:
                self.run_once()
                if failures:
                    log.warning("accounting ingestion resumed after %d failed attempts; "
                                "backlog applied", failures)
                failures = 0
                delay = poll_seconds
            except Exception as exc:  # noqa: BLE001 - keep the records on disk and retry
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.error("ACCOUNTING NOT REACHING THE DATABASE (attempt %d): %s; records "
                              "are safe in %s and will be applied when it is back", failures,
                              f"{type(exc).__name__}: {exc}".splitlines()[0], self.spool_dir)
                delay = min(max_backoff, poll_seconds * 2 ** min(failures, 6))
            self._maybe_observe()
            self._stop.wait(delay)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return."""
        self._stop.set()


@dataclass
class ReplayReport:
    """What a replay did, by set-aside record id."""

    replayed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # still set aside: the new reason
    skipped: list[int] = field(default_factory=list)  # already replayed before
    alert_resolved: bool = False


def replay(factory: sessionmaker[Session], *, ids: Sequence[int] | None = None, actor: str,
           limits: Limits = DEFAULT_LIMITS, chunk: int = 500) -> ReplayReport:
    """Apply set-aside records again (*ids*, or every pending one when None), oldest first,
    through the ingester's own handlers and isolation, and resolve the alert once nothing is
    pending. Safe to repeat: a replayed record is skipped, applying a record twice changes
    nothing, and one that fails again stays pending with the new reason. Every replayed
    record is audited. Raises :class:`~radbill.errors.NotFound` for an unknown id, before
    replaying anything."""
    by_stream = handlers(limits)
    report = ReplayReport()
    for batch in _replay_batches(factory, ids, chunk):
        with factory() as session:
            rows = session.execute(select(RejectedRecord.id, RejectedRecord.stream,
                                          RejectedRecord.status)
                                   .where(RejectedRecord.id.in_(batch))
                                   .order_by(RejectedRecord.id)).all()
        groups: dict[str, list[int]] = {}
        for row_id, stream, status in rows:
            if status == rejects.PENDING:
                groups.setdefault(stream, []).append(row_id)
            else:
                report.skipped.append(row_id)
        for stream, group in groups.items():
            isolate(group,
                    partial(_replay_attempt, factory, by_stream.get(stream), actor, report),
                    partial(_replay_failed, factory, actor, report))
    with factory() as session, session.begin():
        report.alert_resolved = rejects.resolve_alert_if_clear(session, actor)
    return report


def _replay_batches(factory: sessionmaker[Session], ids: Sequence[int] | None, chunk: int
                    ) -> Iterator[list[int]]:
    """The ids to replay, *chunk* at a time: the given ones (all checked first), or every
    record pending now (keyset pages, so records that fail again are not met twice)."""
    if ids is not None:
        wanted = sorted(set(ids))
        found: set[int] = set()
        valid = [i for i in wanted if 0 < i <= MAX_I64]
        with factory() as session:
            for i in range(0, len(valid), chunk):
                found.update(session.scalars(select(RejectedRecord.id).where(
                    RejectedRecord.id.in_(valid[i : i + chunk]))))
        missing = [i for i in wanted if i not in found]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise NotFound("no set-aside record with id "
                           f"{', '.join(map(str, missing[:10]))}{more}; nothing replayed")
        for i in range(0, len(wanted), chunk):
            yield wanted[i : i + chunk]
        return
    with factory() as session:
        top = session.scalar(select(func.max(RejectedRecord.id))) or 0
    last = 0
    while True:
        with factory() as session:
            batch = list(session.scalars(
                select(RejectedRecord.id).where(RejectedRecord.status == rejects.PENDING,
                                                RejectedRecord.id > last,
                                                RejectedRecord.id <= top)
                .order_by(RejectedRecord.id).limit(chunk)))
        if not batch:
            return
        yield batch
        last = batch[-1]


def _replay_attempt(factory: sessionmaker[Session], handler: Handler | None, actor: str,
                    report: ReplayReport, ids: Sequence[int]) -> None:
    """Replay *ids* (one stream) in one transaction: applied ones become ``replayed``, the
    ones the handler refuses again stay pending with the new reason."""
    outcome: dict[int, str | None] = {}
    with factory() as session, session.begin():
        rows = list(session.scalars(
            select(RejectedRecord).where(RejectedRecord.id.in_(ids),
                                         RejectedRecord.status == rejects.PENDING)
            .order_by(RejectedRecord.id).with_for_update()))
        records = [rejects.decode_record(r.record) for r in rows]
        refused: dict[int, str] = {}
        usable = []
        for i, rec in enumerate(records):
            if handler is None:
                refused[i] = f"no ingester stream {rows[i].stream!r}: cannot be replayed"
            elif rejects.NOT_A_RECORD in rec:
                refused[i] = "not a complete record: cannot be replayed"
            else:
                usable.append(i)
        if handler is not None and usable:
            for j, why in handler(session, [records[i] for i in usable]).items():
                refused[usable[j]] = why
        now = utcnow()
        for i, row in enumerate(rows):
            again = refused.get(i)
            _mark(session, row, actor, now, None if again is None else rejects.clean_reason(again))
            outcome[row.id] = row.reason if again is not None else None
    for row_id, failure in outcome.items():
        if failure is None:
            report.replayed.append(row_id)
        else:
            report.failed[row_id] = failure


def _replay_failed(factory: sessionmaker[Session], actor: str, report: ReplayReport,
                   row_id: int, exc: BaseException) -> None:
    """A replayed record that made its transaction fail on its own: it stays pending."""
    with factory() as session, session.begin():
        row = session.get(RejectedRecord, row_id, with_for_update=True)
        if row is None or row.status != rejects.PENDING:
            return
        _mark(session, row, actor, utcnow(), describe(exc))
        reason = row.reason
    report.failed[row_id] = reason


def _mark(session: Session, row: RejectedRecord, actor: str, now: dt.datetime,
          failure: str | None) -> None:
    before = {"status": row.status, "reason": row.reason}
    row.attempts += 1
    row.replayed_at = now
    if failure is None:
        row.status, row.outcome = rejects.REPLAYED, "applied"
    else:
        row.reason, row.outcome = failure, "failed"
    audit.record(session, actor=actor, action="accounting.replay", entity="rejected_record",
                 entity_id=row.id, before=before,
                 after={"status": row.status, "outcome": row.outcome, "reason": row.reason})


@dataclass
class SpoolTidy:
    """What :func:`tidy_spool` did: files compressed and deleted, bytes before and after."""

    compressed: int = 0
    removed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def _applied(spool_dir: Path, factory: sessionmaker[Session], node: str
             ) -> Iterator[tuple[Path, bool]]:
    """Each detail file node *node* has read completely (before its cursor's file), with
    whether it is compressed already."""
    with factory() as session:
        cursors = {c.stream: c.file_name for c in session.scalars(
            select(DetailCursor).where(DetailCursor.node == node))}
    for stream in default_streams(spool_dir):
        if not stream.directory.is_dir():
            continue
        for p in sorted(stream.directory.glob("detail-*")):
            name = p.name.removesuffix(GZ)
            if name < cursors.get(stream.name, ""):
                yield p, p.name.endswith(GZ)


def compress(path: Path) -> int:
    """Gzip *path* into ``<path>.gz`` (written aside, then renamed, keeping the file's time)
    and delete it. Returns the compressed size."""
    import gzip
    import shutil

    target = path.with_name(path.name + GZ)
    tmp = path.with_name(f".{path.name}{GZ}.tmp")  # not a detail-* name: nobody reads it
    stat = path.stat()
    with path.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, READ_CHUNK)
    os.utime(tmp, (stat.st_atime, stat.st_mtime))
    os.replace(tmp, target)
    os.unlink(path)
    return target.stat().st_size


def tidy_spool(spool_dir: Path, factory: sessionmaker[Session], keep_days: int = 7,
               node: str = "") -> SpoolTidy:
    """Compress the detail files node *node* has applied completely, and delete those older
    than *keep_days*. The file the cursor stands in (it may still grow) is never touched;
    set-aside records are kept in the database whole, so a replay needs no file."""
    cutoff = time.time() - keep_days * 86400
    done = SpoolTidy()
    for path, gzipped in _applied(spool_dir, factory, node):
        if path.stat().st_mtime < cutoff:
            os.unlink(path)
            done.removed += 1
        elif not gzipped:
            done.bytes_in += path.stat().st_size
            done.bytes_out += compress(path)
            done.compressed += 1
    return done


def prune_spool(spool_dir: Path, factory: sessionmaker[Session], keep_days: int = 7,
                node: str = "") -> int:
    """Delete detail files (compressed or not) older than *keep_days* that node *node* has
    applied completely."""
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for path, _gzipped in _applied(spool_dir, factory, node):
        if path.stat().st_mtime < cutoff:
            os.unlink(path)
            removed += 1
    return removed
