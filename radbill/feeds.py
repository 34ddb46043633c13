"""The change feeds' names, and how their readers learn that one moved.

Writers stamp what they change with the next value of a feed (:func:`radbill.db.bump`);
readers (the RADIUS snapshot) read what has a stamp above the value they last saw. Kept free
of SQLAlchemy: the policy inside FreeRADIUS reads through the driver (:mod:`radbill.dbapi`).
"""

from __future__ import annotations

from typing import Any

from radbill.dbapi import Reader, conninfo

AUTH_FEED = "auth"  # subscribers and plans: what the RADIUS policy decides from
SESSION_FEED = "sessions"  # accounting sessions opening or closing: simultaneous-use counts


# PostgreSQL's NOTIFY channel of the change feeds: every bump notifies it (delivered when the
# transaction commits, once per feed and transaction), so readers wake at once instead of
# waiting for their next poll (:class:`ChangeListener`).
CHANGE_CHANNEL = "radbill_changes"


def feed_value(reader: Reader, feed: str) -> int | None:
    """The value *feed* has reached (None if its counter is missing: no ``db upgrade``)."""
    value = reader.scalar("SELECT value FROM change_counters WHERE name = %(feed)s",
                          {"feed": feed})
    return None if value is None else int(value)


class ChangeListener:
    """Waits for the change feeds to move: PostgreSQL ``LISTEN`` on :data:`CHANGE_CHANNEL`,
    on a connection of its own (autocommit, outside any pool).

    Only a wake-up: the reader still reads the feed counters, so a notification lost with a
    dropped connection costs one poll interval, never a change. A failure to connect or a
    dropped connection raises from :meth:`wait`; the caller falls back to polling and
    tries again later."""

    def __init__(self, url: str, channel: str = CHANGE_CHANNEL, connect_timeout: int = 5
                 ) -> None:
        self.conninfo = conninfo(url)  # the libpq form of radbill's URL
        self.channel = channel
        self.connect_timeout = connect_timeout
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """Connect and ``LISTEN`` unless connected already."""
        import psycopg

        if self.connected:
            return
        try:
            self._conn = psycopg.connect(self.conninfo, autocommit=True,
                                         connect_timeout=self.connect_timeout,
                                         application_name="radbill-listen")
            self._conn.execute(f"LISTEN {self.channel}")
        except psycopg.Error:
            self.close()
            raise

    def wait(self, timeout: float) -> bool:
        """Block up to *timeout* seconds; True if a change was notified (every notification
        pending is consumed: one wake-up covers them all)."""
        import psycopg

        try:
            self.connect()
            assert self._conn is not None
            woke = any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
            if woke:
                for _ in self._conn.notifies(timeout=0):
                    pass
            return woke
        except psycopg.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
