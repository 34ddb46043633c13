"""Ingest lag: how far the database is behind the detail spools, as a metric and an alert.

FreeRADIUS answers the NAS once a record is in the detail file; the ingester applies it
later (:mod:`radius.ingest`). How much later is the lag, per stream: the age of the oldest
record not applied yet (when FreeRADIUS received it, its ``Timestamp``) and the bytes of
spool behind the node's cursor. It is

* a metric: :func:`prometheus_text` renders it in the Prometheus text format, which the
  ingester writes to a file for node_exporter's textfile collector
  (``radbill_ingest.prom`` in ``RADBILL_METRICS_DIR``, default ``<data>/metrics``) and
  ``radbill accounting lag --prometheus`` prints;
* an alert: :func:`check_alert` raises one ``ingest_lag`` alert when a stream is further
  behind than the threshold (``RADBILL_INGEST_LAG_ALERT_S``) and resolves it once every
  stream has caught up below it.

A lag that grows means records arrive faster than they are applied, or the database is
down: either way the records are safe on disk, but usage, caps and Simultaneous-Use counts
are that far behind the network.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from radbill.db import utcnow
from radbill.ops import Alert, raise_alert
from radius.bounds import InvalidRecord, received_at
from radius.detail import complete_records
from radius.models import DetailCursor

ALERT_KIND = "ingest_lag"
ACTOR = "ingest"
STREAMS = ("acct", "postauth")
PEEK = 64 * 1024  # enough for any one record (a RADIUS packet is at most 4 KiB)

Position = tuple[str, int]  # (detail file name, offset applied up to)


@dataclass(frozen=True)
class StreamLag:
    """How far one stream's database is behind its spool."""

    stream: str
    bytes_behind: int
    files_behind: int  # detail files with records not applied yet
    oldest_unapplied: dt.datetime | None  # when FreeRADIUS received it; None: caught up
    age_seconds: float  # now minus that, 0 when caught up

    def as_dict(self) -> dict[str, object]:
        """For JSON output."""
        return {"stream": self.stream, "bytes_behind": self.bytes_behind,
                "files_behind": self.files_behind,
                "oldest_unapplied": (self.oldest_unapplied.isoformat()
                                     if self.oldest_unapplied else None),
                "age_seconds": round(self.age_seconds, 3)}


def positions(session: Session, node: str = "") -> dict[str, Position]:
    """Each stream's cursor of node *node*: (file, offset applied up to)."""
    return {c.stream: (c.file_name, c.offset) for c in session.scalars(
        select(DetailCursor).where(DetailCursor.node == node).order_by(DetailCursor.stream))}


def stream_lag(stream: str, directory: Path, position: Position, now: dt.datetime
               ) -> StreamLag:
    """The lag of the spool in *directory* for a cursor at *position*. Reads the file names,
    their sizes and the one record at the cursor, nothing else."""
    name, offset = position
    try:
        files = sorted(p.name for p in directory.glob("detail-*"))
    except OSError:
        files = []
    behind = 0
    pending: list[tuple[str, int, int]] = []  # (file, from offset, size)
    for f in files:
        if f < name:
            continue
        try:
            size = (directory / f).stat().st_size
        except OSError:  # removed meanwhile (retention)
            continue
        start = offset if f == name and offset <= size else 0
        if size > start:
            pending.append((f, start, size))
            behind += size - start
    oldest = _oldest(directory, pending)
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return StreamLag(stream, behind, len(pending), oldest, age)


def _oldest(directory: Path, pending: Sequence[tuple[str, int, int]]) -> dt.datetime | None:
    """When FreeRADIUS received the first record not applied yet: its Timestamp, or (a record
    still being written, a corrupt Timestamp) the file's modification time."""
    for f, start, _ in pending:
        path = directory / f
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read(PEEK)
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        except OSError:
            continue
        for rec in complete_records(data, start):
            try:
                return received_at(rec.attrs) if rec.attrs.get("Timestamp") else mtime
            except InvalidRecord:
                return mtime
        if data.strip():
            return mtime
    return None


def measure(spool_dir: Path, cursors: Mapping[str, Position], now: dt.datetime | None = None,
            streams: Sequence[str] = STREAMS) -> list[StreamLag]:
    """The lag of each stream under *spool_dir* for the cursors *cursors* (see
    :func:`positions`; a stream without a cursor has applied nothing yet)."""
    now = now or utcnow()
    return [stream_lag(s, spool_dir / s, cursors.get(s, ("", 0)), now) for s in streams]


def prometheus_text(lags: Sequence[StreamLag], node: str = "") -> str:
    """The lag in the Prometheus text exposition format (version 0.0.4)."""
    label = node.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines = [
        "# HELP radbill_ingest_lag_seconds Age of the oldest detail record not yet applied "
        "to the database (0 when caught up).",
        "# TYPE radbill_ingest_lag_seconds gauge",
        *(f'radbill_ingest_lag_seconds{{node="{label}",stream="{g.stream}"}} '
          f"{g.age_seconds:.3f}" for g in lags),
        "# HELP radbill_ingest_lag_bytes Bytes of detail spool not yet applied.",
        "# TYPE radbill_ingest_lag_bytes gauge",
        *(f'radbill_ingest_lag_bytes{{node="{label}",stream="{g.stream}"}} {g.bytes_behind}'
          for g in lags),
        "# HELP radbill_ingest_lag_files Detail files with records not yet applied.",
        "# TYPE radbill_ingest_lag_files gauge",
        *(f'radbill_ingest_lag_files{{node="{label}",stream="{g.stream}"}} {g.files_behind}'
          for g in lags),
    ]
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Replace *path* with *text* atomically (a collector never reads half a file). The file
    is world-readable (0644, whatever the umask: node_exporter runs as its own user; it holds
    no secret); its directory is created owner-only if missing, so point
    ``RADBILL_METRICS_DIR`` at the collector's directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _open_alert(session: Session, node: str) -> Alert | None:
    """This node's open lag alert (each node has its own spool and its own lag: one node
    catching up must not resolve another's alert). Open ones are few: filtered here, not in
    JSON SQL that differs between the databases."""
    for alert in session.scalars(select(Alert).where(Alert.kind == ALERT_KIND,
                                                     Alert.resolved_at.is_(None))
                                 .order_by(Alert.id).limit(100).with_for_update()):
        if (alert.data or {}).get("node", "") == node:
            return alert
    return None


def check_alert(session: Session, lags: Sequence[StreamLag], threshold_seconds: float,
                node: str = "", now: dt.datetime | None = None) -> str | None:
    """Raise the ``ingest_lag`` alert of node *node* when a stream is more than
    *threshold_seconds* behind (one open alert per node: later checks update its figures),
    resolve it once every stream is back under the threshold. Returns ``"raised"``,
    ``"updated"``, ``"resolved"`` or None."""
    now = now or utcnow()
    worst = max(lags, key=lambda g: g.age_seconds, default=None)
    alert = _open_alert(session, node)
    if worst is None or worst.age_seconds <= threshold_seconds:
        if alert is None:
            return None
        alert.resolved_at, alert.resolved_by = now, ACTOR
        return "resolved"
    where = f" on node {node}" if node else ""
    message = (f"accounting ingest is {int(worst.age_seconds)} s behind{where} "
               f"({worst.stream}: {worst.bytes_behind} bytes in {worst.files_behind} "
               f"file(s) not applied; threshold {int(threshold_seconds)} s): usage, caps and "
               "online counts lag the network; the records are safe on disk")
    data = {"node": node, "threshold_seconds": threshold_seconds,
            "streams": [g.as_dict() for g in lags], "checked_at": now.isoformat()}
    if alert is None:
        raise_alert(session, ALERT_KIND, message, {**data, "worst_seconds": worst.age_seconds})
        return "raised"
    previous = dict(alert.data or {})
    alert.message = message
    alert.data = {**data, "worst_seconds": max(worst.age_seconds,
                                               float(previous.get("worst_seconds", 0)))}
    return "updated"
