"""What the RADIUS policy reads of accounting and the NAS table, in plain SQL through the
driver (the policy runs inside FreeRADIUS without SQLAlchemy: see :mod:`radbill.dbapi`).
The columns are those of :class:`~radius.models.RadiusSession` and
:class:`~radius.models.Nas`."""

from __future__ import annotations

from radbill.dbapi import Reader
from radius.liveness import SessionRef

IN_CHUNK = 500  # bound on the values of one IN list (SQLite; PostgreSQL takes one array)

_COLUMNS = "username, nas_ip, acct_session_id, calling_station_id, nas_port_id"


def nas_types(reader: Reader) -> dict[str, str]:
    """NAS address -> its type (the profile the policy answers it with)."""
    return {str(ip): str(kind) for ip, kind in reader.rows("SELECT ip_address, nas_type FROM nas")}


def _open_of(reader: Reader, keys: list[str]) -> list[tuple[str, str, str, str | None, str | None]]:
    """The open sessions of the users *keys* (usernames in lower case)."""
    if not reader.sqlite:
        return reader.rows(f"SELECT {_COLUMNS} FROM radius_sessions "  # noqa: S608 - constant
                           "WHERE stopped_at IS NULL AND lower(username) = ANY(%(keys)s)",
                           {"keys": keys})
    found = []
    for i in range(0, len(keys), IN_CHUNK):
        part = keys[i:i + IN_CHUNK]
        marks = ", ".join(f"%(k{n})s" for n in range(len(part)))
        found += reader.rows(f"SELECT {_COLUMNS} FROM radius_sessions "  # noqa: S608 - marks
                             f"WHERE stopped_at IS NULL AND lower(username) IN ({marks})",
                             {f"k{n}": key for n, key in enumerate(part)})
    return found


def open_session_refs(reader: Reader, since_seq: int
                      ) -> tuple[dict[str, tuple[SessionRef, ...]], int, dict[str, set[str]]]:
    """The open sessions (NAS, Acct-Session-Id, device) of every user whose sessions opened
    or closed after *since_seq* (every user with an open session for 0), keyed by the
    username in lower case without spaces; the feed value they are current to; and, per
    user, the Acct-Session-Ids that opened or closed since (a session may have done both
    between two reads: it still proves its Start arrived)."""
    feed = reader.scalar("SELECT max(state_seq) FROM radius_sessions") or 0
    found: dict[str, list[SessionRef]] = {}
    touched: dict[str, set[str]] = {}
    if since_seq == 0:
        rows = reader.rows(f"SELECT {_COLUMNS} FROM radius_sessions "  # noqa: S608 - constant
                           "WHERE stopped_at IS NULL")
        keys: list[str] = []
    else:
        for name, sid in reader.rows("SELECT username, acct_session_id FROM radius_sessions "
                                     "WHERE state_seq > %(seq)s", {"seq": since_seq}):
            touched.setdefault(name.strip().lower(), set()).add(sid)
        keys = sorted(touched)
        if not keys:
            return {}, max(feed, since_seq), {}
        rows = _open_of(reader, keys)
    for name, nas_ip, sid, csid, port in rows:
        key = name.strip().lower()
        found.setdefault(key, []).append(SessionRef(nas_ip, sid, csid, port))
        if since_seq == 0:
            touched.setdefault(key, set()).add(sid)
    out = {k: tuple(v) for k, v in found.items()}
    for key in keys:
        out.setdefault(key, ())
    return out, feed, touched
