"""Feeding FreeRADIUS's detail spools into the database, from outside FreeRADIUS.

FreeRADIUS writes every accounting request and every auth decision to hourly detail files
before it answers the NAS (see ``raddb/mods/detail``). :class:`Ingester` reads them in order
and applies each batch in one transaction together with its :class:`~radius.models.DetailCursor`,
so nothing is applied twice by a crash and nothing is lost while the database is down: the
records wait on disk and the ingester retries with back-off, logging loudly.

A record that cannot be used (garbage values) is written to ``rejected/`` with the reason and
skipped, so one bad packet never blocks the stream.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from billing.subscribers import subscriber_ids
from radbill.db import utcnow
from radius import accounting
from radius.detail import DetailRecord, complete_records
from radius.models import DetailCursor, PostAuth

log = logging.getLogger("radbill.ingest")

READ_CHUNK = 4 * 1024 * 1024
TORN_TAIL_AGE_S = 30.0  # a partial record this old in a rotated file was never finished


def received_at(attrs: dict[str, str]) -> dt.datetime:
    """When FreeRADIUS received the packet (the detail ``Timestamp``), in UTC."""
    raw = attrs.get("Timestamp")
    if raw and raw.isdigit():
        return dt.datetime.fromtimestamp(int(raw), dt.UTC)
    return utcnow()


def apply_accounting(session: Session, records: list[dict[str, str]]) -> list[str]:
    """Apply a batch of accounting records; returns one outcome per record."""
    parsed = [accounting.record_from_attrs(a, received_at(a)) for a in records]
    ids = subscriber_ids(session, {r.username for r in parsed if r.username})
    return accounting.apply_many(session, parsed, ids)


def apply_postauth(session: Session, records: list[dict[str, str]]) -> list[str]:
    """Store a batch of auth decisions (one multi-row INSERT: this runs once per login)."""
    # These records are replies (see raddb/mods/detail): the request's details arrive as
    # internal Radbill-* attributes.
    rows = [
        {
            "at": received_at(attrs),
            "username": (attrs.get("Radbill-User-Name") or "")[:253],
            "nas_ip": attrs.get("Radbill-NAS-Address") or None,
            "calling_station_id": (attrs.get("Radbill-Calling-Station") or None),
            "decision": attrs.get("Radbill-Decision", "reject")[:16],
            "reason": attrs.get("Radbill-Reason", "unknown")[:64],
            "reply_message": attrs.get("Reply-Message") or None,
            "auth_method": (attrs.get("Radbill-Auth-Method") or None),
            "rate_limit": (attrs.get("Mikrotik-Rate-Limit") or None),
        }
        for attrs in records
    ]
    if rows:
        session.execute(insert(PostAuth), rows)
    return ["stored"] * len(rows)


Handler = Callable[[Session, list[dict[str, str]]], list[str]]


@dataclass(frozen=True)
class Stream:
    """A directory of detail files and what to do with their records."""

    name: str
    directory: Path
    handler: Handler


def default_streams(spool_dir: Path) -> list[Stream]:
    """The accounting and post-auth spools under *spool_dir*."""
    return [
        Stream("acct", spool_dir / "acct", apply_accounting),
        Stream("postauth", spool_dir / "postauth", apply_postauth),
    ]


class Ingester:
    """Moves records from detail files into the database, batch by batch."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        spool_dir: Path,
        streams: list[Stream] | None = None,
        batch_size: int = 2000,
    ) -> None:
        self.factory = factory
        self.spool_dir = spool_dir
        self.streams = streams or default_streams(spool_dir)
        self.batch_size = batch_size
        self.rejected_dir = spool_dir / "rejected"
        self.applied = 0
        self.rejected = 0
        self._stop = threading.Event()

    # -- one pass -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply everything on disk now. Raises on a database error (nothing is skipped)."""
        return sum(self._drain(stream) for stream in self.streams)

    def _cursor(self, session: Session, stream: str) -> DetailCursor:
        cursor = session.get(DetailCursor, stream, with_for_update=True)
        if cursor is None:
            cursor = DetailCursor(stream=stream, file_name="", offset=0, records=0)
            session.add(cursor)
            session.flush()
        return cursor

    def _drain(self, stream: Stream) -> int:
        done = 0
        while not self._stop.is_set():
            files = sorted(p.name for p in stream.directory.glob("detail-*")) if (
                stream.directory.is_dir()) else []
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
                # The file was replaced (restored from backup, spool wiped): start it over.
                # Replays are harmless for accounting (idempotent); post-auth may repeat.
                log.error("%s: %s is shorter than the cursor (%d); reading it from the start",
                          stream.name, name, offset)
                offset = 0
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(READ_CHUNK)
            records = []
            for rec in complete_records(data, offset):
                records.append(rec)
                if len(records) >= self.batch_size:
                    break
            if records:
                done += self._apply(stream, name, records)
                continue
            newer = len(pending) > 1
            if not newer:
                return done
            if data and time.time() - path.stat().st_mtime < TORN_TAIL_AGE_S:
                return done  # maybe still being written; look again later
            if data:
                self._reject(stream, name, offset, "incomplete record at end of rotated file",
                             {"bytes": data[:2000].decode("utf-8", "replace")})
            self._advance(stream.name, pending[1], 0)
        return done

    def _apply(self, stream: Stream, name: str, records: list[DetailRecord]) -> int:
        attrs = [r.attrs for r in records]
        end = records[-1].end_offset
        try:
            with self.factory() as session, session.begin():
                stream.handler(session, attrs)
                self._move(session, stream.name, name, end, len(records))
            self.applied += len(records)
            return len(records)
        except accounting.InvalidRecord:
            pass
        # One record in the batch is unusable: apply them one by one, setting aside the bad.
        ok = 0
        start = records[0].end_offset
        for rec in records:
            try:
                with self.factory() as session, session.begin():
                    stream.handler(session, [rec.attrs])
                    self._move(session, stream.name, name, rec.end_offset, 1)
                ok += 1
                self.applied += 1
            except accounting.InvalidRecord as exc:
                self._reject(stream, name, start, str(exc), rec.attrs)
                self._advance(stream.name, name, rec.end_offset)
            start = rec.end_offset
        return ok

    def _move(self, session: Session, stream: str, name: str, offset: int, n: int) -> None:
        cursor = self._cursor(session, stream)
        cursor.file_name, cursor.offset = name, offset
        cursor.records += n
        cursor.updated_at = utcnow()

    def _advance(self, stream: str, name: str, offset: int) -> None:
        with self.factory() as session, session.begin():
            self._move(session, stream, name, offset, 0)

    def _reject(self, stream: Stream, name: str, offset: int, why: str, attrs: object) -> None:
        self.rejected += 1
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": utcnow().isoformat(), "stream": stream.name, "file": name,
                           "offset": offset, "reason": why, "record": attrs})
        with (self.rejected_dir / f"{stream.name}.jsonl").open("a") as fh:
            fh.write(line + "\n")
        log.error("%s record in %s at offset %d set aside: %s (see %s)", stream.name, name,
                  offset, why, self.rejected_dir)

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
            self._stop.wait(delay)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return."""
        self._stop.set()


def prune_spool(spool_dir: Path, factory: sessionmaker[Session], keep_days: int = 7) -> int:
    """Delete detail files older than *keep_days* that have been applied completely."""
    cutoff = time.time() - keep_days * 86400
    removed = 0
    with factory() as session:
        cursors = {c.stream: c.file_name for c in session.scalars(select(DetailCursor))}
    for stream in default_streams(spool_dir):
        if not stream.directory.is_dir():
            continue
        for p in stream.directory.glob("detail-*"):
            if p.name < cursors.get(stream.name, "") and p.stat().st_mtime < cutoff:
                os.unlink(p)
                removed += 1
    return removed
