"""Records the ingester set aside: storing them safely, listing them, one alert per burst.

A set-aside record is kept in ``radius_rejected_records`` as escaped JSON text (see
:class:`~radius.models.RejectedRecord`), so what made it fail cannot make storing it fail.
Replaying goes through the ingester's own code (:func:`radius.ingest.replay`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from radbill.db import utcnow
from radbill.ops import Alert, raise_alert
from radius.bounds import display_text
from radius.models import RejectedRecord

ALERT_KIND = "accounting-rejected"
PENDING, REPLAYED = "pending", "replayed"
STATUSES = (PENDING, REPLAYED)
MAX_RECORD_CHARS = 64 * 1024  # a RADIUS packet is at most 4096 bytes; this is ample
MAX_REASON_CHARS = 1000
# Attribute names are letters, digits and dashes: this key marks a stored text that is not
# a whole record (a torn tail, or a record cut to MAX_RECORD_CHARS) and cannot be replayed.
NOT_A_RECORD = "(not a record)"
_CHUNK = 500


@dataclass(frozen=True)
class Rejection:
    """One record to set aside: where it starts in its file, its attributes (or the raw
    text of something that is not a complete record) and why."""

    offset: int
    record: Mapping[str, str] | str
    reason: str


def encode_record(record: Mapping[str, str] | str) -> str:
    """The record as ASCII JSON text, at most :data:`MAX_RECORD_CHARS` characters."""
    if isinstance(record, str):
        return json.dumps({NOT_A_RECORD: record[: MAX_RECORD_CHARS // 16]})  # <= 12 per char
    text = json.dumps(dict(record))
    if len(text) <= MAX_RECORD_CHARS:
        return text
    # JSON-escaping ASCII JSON at most doubles it.
    return json.dumps({NOT_A_RECORD: text[: MAX_RECORD_CHARS // 2 - 64]})


def decode_record(text: str) -> dict[str, str]:
    """The stored record's attributes (a :data:`NOT_A_RECORD` entry if it is not one)."""
    data = json.loads(text)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {
        NOT_A_RECORD: text}


def clean_reason(reason: str) -> str:
    """A reason as stored: one line, no NUL, bounded."""
    line = reason.strip().splitlines()[0] if reason.strip() else "unknown"
    return display_text(line, MAX_REASON_CHARS) or "unknown"


def set_aside(session: Session, stream: str, file_name: str,
              rejections: Sequence[Rejection]) -> int:
    """Store *rejections* read from *file_name* in the caller's transaction (once per place
    in the spool: a file read again adds nothing) and raise or update the alert. Returns how
    many were new."""
    if not rejections:
        return 0
    seen: set[int] = set()
    offsets = sorted({r.offset for r in rejections})
    for i in range(0, len(offsets), _CHUNK):
        seen.update(session.scalars(select(RejectedRecord.offset).where(
            RejectedRecord.stream == stream, RejectedRecord.file_name == file_name,
            RejectedRecord.offset.in_(offsets[i : i + _CHUNK]))))
    now = utcnow()
    new = 0
    for r in rejections:
        if r.offset in seen:
            continue
        seen.add(r.offset)
        session.add(RejectedRecord(stream=stream, file_name=file_name, offset=r.offset,
                                   record=encode_record(r.record), reason=clean_reason(r.reason),
                                   status=PENDING, first_seen=now, attempts=0))
        new += 1
    if new:
        session.flush()
        _alert(session, new, stream, clean_reason(rejections[-1].reason), now)
    return new


def _open_alert(session: Session) -> Alert | None:
    return session.scalars(select(Alert).where(Alert.kind == ALERT_KIND,
                                               Alert.resolved_at.is_(None))
                           .order_by(Alert.id).limit(1).with_for_update()).first()


def _alert(session: Session, new: int, stream: str, reason: str, now: dt.datetime) -> None:
    """One open alert per burst: raised on the first set-aside record, then only its count
    and latest reason change until it is resolved (a replay that leaves nothing pending)."""
    alert = _open_alert(session)
    if alert is None:
        raise_alert(session, ALERT_KIND,
                    f"{new} {stream} record(s) set aside by the ingester (latest: {reason}); "
                    "see 'radbill accounting rejected', replay with 'radbill accounting replay'",
                    {"count": new, "latest_reason": reason, "latest_at": now.isoformat()})
        return
    data = dict(alert.data or {})
    data.update(count=int(data.get("count", 0)) + new, latest_reason=reason,
                latest_at=now.isoformat())
    alert.data = data
    alert.message = (f"{data['count']} accounting/post-auth record(s) set aside by the ingester "
                     f"(latest: {reason}); see 'radbill accounting rejected', replay with "
                     "'radbill accounting replay'")


def resolve_alert_if_clear(session: Session, actor: str) -> bool:
    """Resolve the open alert once nothing is pending any more; True if it was resolved."""
    alert = _open_alert(session)
    if alert is None or count_pending(session):
        return False
    alert.resolved_at, alert.resolved_by = utcnow(), actor[:64]
    return True


def count_pending(session: Session) -> int:
    """How many set-aside records wait for a replay."""
    return int(session.scalar(select(func.count()).select_from(RejectedRecord)
                              .where(RejectedRecord.status == PENDING)) or 0)


def list_rejected(session: Session, *, status: str | None = PENDING, stream: str | None = None,
                  limit: int = 50) -> list[RejectedRecord]:
    """Set-aside records, newest first (*status* None: any)."""
    stmt = select(RejectedRecord).order_by(RejectedRecord.id.desc()).limit(max(1, limit))
    if status:
        stmt = stmt.where(RejectedRecord.status == status)
    if stream:
        stmt = stmt.where(RejectedRecord.stream == stream)
    return list(session.scalars(stmt))


def summary(row: RejectedRecord) -> dict[str, Any]:
    """A plain dictionary of a set-aside record for JSON output and pages."""
    record = decode_record(row.record)
    return {
        "id": row.id,
        "stream": row.stream,
        "file": row.file_name,
        "offset": row.offset,
        "first_seen": row.first_seen.isoformat(),
        "status": row.status,
        "reason": row.reason,
        "attempts": row.attempts,
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "outcome": row.outcome,
        "user_name": record.get("User-Name") or record.get("Radbill-User-Name"),
        "acct_session_id": record.get("Acct-Session-Id"),
        "status_type": record.get("Acct-Status-Type") or record.get("Packet-Type"),
        "record": record,
    }


def printable(value: object) -> str:
    """A value safe to show on a terminal or page: control characters (NUL, ESC, ...)
    escaped as ``\\xNN``. The exact value stays in the record."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def prune(session: Session, older_than: dt.datetime) -> int:
    """Delete records replayed before *older_than* (pending ones stay until replayed)."""
    result = session.execute(delete(RejectedRecord).where(
        RejectedRecord.status == REPLAYED, RejectedRecord.replayed_at < older_than)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
