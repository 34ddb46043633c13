"""Monthly partitions of ``radius_sessions`` on PostgreSQL (migration 0028).

The table is partitioned by calendar month (UTC) of ``started_at``: ``radius_sessions_YYYY_MM``
plus ``radius_sessions_default`` for a ``started_at`` outside every month created (a NAS clock
in 1970 or 2040). ``started_at`` never changes once the row exists, so a row never moves
between partitions. SQLite keeps one plain table: every function here does nothing there.

- :func:`ensure_months`: the current month and two ahead exist (``radbill db upgrade`` and the
  nightly retention job). A month whose rows already sit in the DEFAULT partition is created
  as a plain table, the rows moved into it and the table attached, in one transaction.
- :func:`drop_old_months`: a whole month that ended before the retention cut-off, with no
  open session and none stopped on or after the cut-off, is detached and dropped (checked
  with the month locked against writes, in the transaction that detaches it, under a
  ``lock_timeout``); any other month keeps the batched deletes of its closed sessions.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

log = logging.getLogger("radbill.radius.partitions")

PARENT = "radius_sessions"
DEFAULT = "radius_sessions_default"
AHEAD = 2  # months created ahead of the current one
FILLFACTOR = 70  # as migration 0025: room for HOT updates (each partition; not the parent)
LOCK_TIMEOUT = "5s"  # how long a month's drop or creation waits for the ingester's locks
_NAME = re.compile(r"^radius_sessions_(\d{4})_(\d{2})$")


def is_partition(table: str) -> bool:
    """Whether *table* is one of radius_sessions' partitions (no model of its own)."""
    return table == DEFAULT or _NAME.match(table) is not None


def month_start(at: dt.datetime | dt.date) -> dt.datetime:
    """The first instant (UTC) of the calendar month *at* falls in (UTC)."""
    if isinstance(at, dt.datetime):
        at = at.astimezone(dt.UTC) if at.tzinfo else at
    return dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC)


def next_month(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def month_name(start: dt.datetime) -> str:
    return f"{PARENT}_{start.year:04d}_{start.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """Whether ``radius_sessions`` is a partitioned table here (PostgreSQL after 0028)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.exec_driver_sql(
        "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", (PARENT,)).scalar())


def months(conn: Connection) -> list[dt.datetime]:
    """The months that have a partition, oldest first."""
    names = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)", (PARENT,)).scalars()
    out = []
    for name in names:
        found = _NAME.match(name)
        if found:
            out.append(dt.datetime(int(found[1]), int(found[2]), 1, tzinfo=dt.UTC))
    return sorted(out)


def _create_month(conn: Connection, start: dt.datetime) -> int:
    """Create month *start* as a partition, moving its rows out of the DEFAULT partition,
    in the caller's transaction. Returns how many rows moved."""
    name, end = month_name(start), next_month(start)
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS) "
                         f"WITH (fillfactor = {FILLFACTOR})")
    moved = conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE started_at >= %s AND started_at < %s "  # noqa: S608 - fixed names
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved", (start, end)).rowcount
    # DDL takes no parameters: the bounds are our own datetimes, rendered
    conn.exec_driver_sql(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
                         f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    return int(moved or 0)


def ensure_months(engine: Engine, now: dt.datetime, ahead: int = AHEAD) -> list[str]:
    """Create the partitions of the current month (UTC) and *ahead* more that do not exist
    yet, each in its own transaction. Returns the names created (none on SQLite)."""
    created: list[str] = []
    start = month_start(now)
    for _ in range(ahead + 1):
        with engine.begin() as conn:
            if not is_partitioned(conn):
                return created
            if conn.exec_driver_sql("SELECT to_regclass(%s)",
                                    (month_name(start),)).scalar() is None:
                moved = _create_month(conn, start)
                created.append(month_name(start))
                log.info("created %s (%d rows moved from the default partition)",
                         month_name(start), moved)
        start = next_month(start)
    return created


@dataclass
class Dropped:
    """What :func:`drop_old_months` did."""

    months: list[str]
    rows: int
    kept: list[str]  # months past the cut-off kept for an open or late-stopped session


def _blocker(conn: Connection, name: str, before: dt.datetime) -> bool:
    return conn.exec_driver_sql(
        f"SELECT 1 FROM {name} WHERE stopped_at IS NULL OR stopped_at >= %s LIMIT 1",  # noqa: S608 - a partition's name
        (before,)).first() is not None


def drop_old_months(engine: Engine, before: dt.datetime, batch: int = 5000,
                    dry_run: bool = False) -> Dropped:
    """Detach and drop every month partition that ends on or before *before* and holds no
    open session and none stopped on or after *before*. Its keys (``radius_session_keys``)
    go first, in batches of *batch* (their own transactions: late records for those closed
    sessions then open new ones, as after a batched delete); the check is repeated with the
    month locked against writes, and the detach and drop made in that same transaction."""
    out = Dropped([], 0, [])
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return out
        candidates = [m for m in months(conn) if next_month(m) <= before]
        conn.rollback()
    for start in candidates:
        name, end = month_name(start), next_month(start)
        with engine.begin() as conn:
            if _blocker(conn, name, before):
                out.kept.append(name)
                continue
            if dry_run:
                out.rows += int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())  # noqa: S608 - a partition's name
                out.months.append(name)
                continue
        while True:
            with engine.begin() as conn:
                n = conn.exec_driver_sql(
                    "DELETE FROM radius_session_keys WHERE (nas_ip, acct_session_id, username) "
                    "IN (SELECT nas_ip, acct_session_id, username FROM radius_session_keys "
                    "WHERE started_at >= %s AND started_at < %s LIMIT %s)",
                    (start, end, max(1, batch))).rowcount
            if not n:
                break
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.exec_driver_sql(f"LOCK TABLE {name} IN EXCLUSIVE MODE")
            if _blocker(conn, name, before):  # reopened by a late Interim meanwhile
                out.kept.append(name)
                continue
            rows = int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())  # noqa: S608 - a partition's name
            conn.exec_driver_sql(
                "DELETE FROM radius_session_keys WHERE started_at >= %s AND started_at < %s",
                (start, end))
            conn.exec_driver_sql(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
            conn.exec_driver_sql(f"DROP TABLE {name}")
        out.months.append(name)
        out.rows += rows
        log.info("dropped %s (%d closed sessions)", name, rows)
    return out
