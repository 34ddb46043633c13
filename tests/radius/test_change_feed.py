"""Change feed push: on PostgreSQL a committed change wakes the policy snapshot (NOTIFY);
polling stays the fallback, and the only way on SQLite."""

import logging
import threading

import pytest

from billing import subscribers
from billing.models import SubscriberStatus
from radbill.db import ChangeListener, session_factory
from radius.snapshot import AuthSnapshot, SnapshotRefresher
from tests.conftest import BACKEND
from tests.e2e.server import wait_for
from tests.factories import make_plan, make_subscriber

postgresql_only = pytest.mark.skipif(BACKEND != "postgresql",
                                     reason="LISTEN/NOTIFY is PostgreSQL's")


def commit(db, fn):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        return fn(s)


def suspend(s):  # type: ignore[no-untyped-def]
    subscribers.change_status(s, "alice", SubscriberStatus.SUSPENDED, actor="t")


@postgresql_only
def test_a_change_notifies_when_it_commits_not_before(db, box, database_url) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    listener = ChangeListener(database_url)
    try:
        assert listener.wait(0.01) is False  # connected and listening; nothing changed
        with session_factory(db)() as s, s.begin():
            suspend(s)
            assert listener.wait(0.2) is False  # not committed yet: nobody is woken
        assert listener.wait(5) is True
        assert listener.wait(0.05) is False  # one wake-up per change, consumed
    finally:
        listener.close()


@postgresql_only
def test_the_snapshot_is_woken_by_a_change_long_before_its_poll(db, box, database_url
                                                                ) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    # a poll of 60 s: only the notification can bring the change within the 10 s waited
    refresher = SnapshotRefresher(snap, db, box, poll_seconds=60,
                                  listener=ChangeListener(database_url))
    assert refresher.refresh_once()
    refresher.start()
    try:
        wait_for(lambda: refresher.listening, timeout=10)
        commit(db, suspend)
        wait_for(lambda: snap.lookup("alice")[0].status == "suspended", timeout=10)
    finally:
        refresher.stop()
    assert not refresher.is_alive()
    assert refresher.listener is not None and not refresher.listener.connected


def test_without_a_listener_it_polls(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box, poll_seconds=0.05)
    refresher.start()
    try:
        wait_for(lambda: snap.loaded, timeout=10)
        commit(db, suspend)
        wait_for(lambda: snap.lookup("alice")[0].status == "suspended", timeout=10)
    finally:
        refresher.stop()
    assert refresher.listening is False


class BrokenListener:
    """A listener whose database refuses it."""

    def __init__(self) -> None:
        self.calls = 0

    def connect(self) -> None:
        self.calls += 1
        raise OSError("connection refused")

    def wait(self, timeout: float) -> bool:
        raise AssertionError("not connected")

    def close(self) -> None:
        pass


def test_a_failing_listener_falls_back_to_polling_with_one_line(db, box, caplog) -> None:  # type: ignore[no-untyped-def]
    now = [100.0]
    listener = BrokenListener()
    refresher = SnapshotRefresher(AuthSnapshot(), db, box, poll_seconds=0.01,
                                  clock=lambda: now[0], listener=listener)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="radbill.snapshot"):
        for _ in range(5):
            assert refresher.wait_for_change(0.01) is False
    assert listener.calls == 1  # not retried at every poll
    assert caplog.text.count("change notifications unavailable") == 1
    assert "polling every 10 ms" in caplog.text
    now[0] += SnapshotRefresher.LISTEN_RETRY_S
    refresher.wait_for_change(0.01)
    assert listener.calls == 2  # tried again after the retry interval


def test_stop_is_not_held_up_by_the_listener(db, box) -> None:  # type: ignore[no-untyped-def]
    woken = threading.Event()

    class Quiet:
        connected = False

        def connect(self) -> None:
            pass

        def wait(self, timeout: float) -> bool:
            woken.set()
            threading.Event().wait(timeout)
            return False

        def close(self) -> None:
            pass

    refresher = SnapshotRefresher(AuthSnapshot(), db, box, poll_seconds=0.2,
                                  listener=Quiet())  # type: ignore[arg-type]
    refresher.start()
    woken.wait(10)
    refresher.stop(timeout=5)
    assert not refresher.is_alive()
