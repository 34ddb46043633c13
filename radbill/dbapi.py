"""Reading the database through its driver alone (sqlite3, psycopg), without SQLAlchemy.

The RADIUS policy runs inside FreeRADIUS, and every megabyte it imports is in FreeRADIUS's
memory for as long as it runs: SQLAlchemy and the ORM models are some 35 MB there, a quarter
of the server at 100,000 subscribers. The policy only reads a handful of columns, so its
reads (:mod:`billing.authfeed`, :mod:`radius.sessionfeed`, :func:`radbill.feeds.feed_value`)
are plain SQL through a :class:`Reader`, which wraps either a connection of its own (made
from radbill's database URL by :func:`connect`) or the driver connection under a SQLAlchemy
session or engine (tests and tools, which have one already).

SQL is written once with ``%(name)s`` parameters (psycopg's style) and rewritten for SQLite.
SQLite hands back what SQLAlchemy stored there as text: :func:`utc` and :func:`day` read it.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT = 5  # seconds, as radbill.db.make_engine
_PARAM = re.compile(r"%\((\w+)\)s")


def conninfo(url: str) -> str:
    """The libpq form of radbill's PostgreSQL URL (``postgresql+psycopg://`` ->
    ``postgresql://``; everything else, percent-escapes included, is the same in both)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql://{rest}"


def sqlite_path(url: str) -> str:
    """The file of radbill's SQLite URL (``sqlite:///relative`` or ``sqlite:////absolute``)."""
    if not url.startswith("sqlite:///"):
        raise ValueError("not a SQLite file URL: expected sqlite:///PATH")
    return url.removeprefix("sqlite:///")


def connect(url: str, application_name: str = "radbill") -> Reader:
    """A :class:`Reader` on a connection of its own to the database of *url* (radbill's
    ``RADBILL_DATABASE_URL``), set up as :func:`radbill.db.make_engine` sets its own."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=10)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000",
                       "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        return Reader(conn, "sqlite", own=True)
    import psycopg

    return Reader(psycopg.connect(conninfo(url), connect_timeout=CONNECT_TIMEOUT,
                                  application_name=application_name),
                  "postgresql", own=True)


def _driver(conn: Any) -> Any:
    # a SQLAlchemy pool proxy or connection fairy holds the driver's connection
    return getattr(conn, "driver_connection", None) or getattr(conn, "dbapi_connection", conn)


class Reader:
    """One driver connection to read through. *own*: the reader opened it, begins and ends
    its transactions (:meth:`transaction`) and closes it; otherwise it reads inside the
    caller's transaction and leaves the connection alone."""

    def __init__(self, conn: Any, dialect: str, *, own: bool = False,
                 release: Any = None) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"dialect {dialect!r}")
        self.conn = conn
        self.dialect = dialect
        self.own = own
        self._release = release  # what to close instead of conn (a pooled connection)
        self._cursors = 0

    @classmethod
    def of_session(cls, session: Any) -> Reader:
        """The connection of a SQLAlchemy session, inside its transaction."""
        conn = session.connection()
        return cls(_driver(conn.connection), conn.dialect.name)

    @classmethod
    def of_engine(cls, engine: Any) -> Reader:
        """A connection of a SQLAlchemy engine's pool, read like one of its own (returned
        to the pool by :meth:`close`)."""
        pooled = engine.raw_connection()
        return cls(_driver(pooled), engine.dialect.name, own=True, release=pooled)

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _sql(self, sql: str) -> str:
        return _PARAM.sub(r":\1", sql) if self.sqlite else sql

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row of *sql*."""
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of *sql* (None if there is none)."""
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def chunks(self, sql: str, params: Mapping[str, Any] | None = None, chunk: int = 1000
               ) -> Iterator[Sequence[tuple[Any, ...]]]:
        """The rows of *sql* in lists of at most *chunk*, from a server-side cursor on
        PostgreSQL (a million rows are never in memory at once)."""
        if self.sqlite:
            cur = self.conn.cursor()
        else:
            self._cursors += 1
            cur = self.conn.cursor(name=f"radbill_read_{self._cursors}")
            cur.itersize = chunk
        try:
            cur.execute(self._sql(sql), params or {})
            while rows := cur.fetchmany(chunk):
                yield rows
        finally:
            cur.close()

    @contextmanager
    def transaction(self) -> Iterator[Reader]:
        """One read transaction (a consistent view on PostgreSQL; on SQLite a deferred one,
        which never takes the write lock). Rolled back at the end: nothing is written."""
        if not self.own:
            yield self
            return
        if self.sqlite:
            self.conn.execute("BEGIN DEFERRED")
        try:
            yield self
        finally:
            if self.sqlite:
                self.conn.execute("ROLLBACK")
            else:
                self.conn.rollback()

    def close(self) -> None:
        """Close the connection (or give it back to its pool); a broken one is dropped."""
        if not self.own:
            return
        target = self._release if self._release is not None else self.conn
        with suppress(Exception):  # a broken connection: nothing to keep
            target.close()


def utc(value: Any) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime: PostgreSQL gives one, SQLite the text
    SQLAlchemy wrote (UTC, no zone)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def day(value: Any) -> dt.date | None:
    """A stored date (SQLite: ISO text)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
