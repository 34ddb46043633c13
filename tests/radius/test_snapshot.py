"""The snapshot follows the database through the change feeds, and survives its loss."""

import datetime as dt

from sqlalchemy import create_engine

from billing import plans, subscribers
from billing.models import SubscriberStatus
from radbill.db import session_factory, utcnow
from radius import accounting
from radius.accounting import AcctRecord
from radius.snapshot import AuthSnapshot, SnapshotRefresher
from tests.factories import make_plan, make_subscriber


def commit(db, fn):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        return fn(s)


def test_full_load_then_incremental_changes(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box)
    assert refresher.refresh_once()
    sub, plan, online = snap.lookup("alice")
    assert sub is not None and sub.password == "s3cret" and sub.status == "active"
    assert plan is not None and str(plan.rate) == "20M/5M" and online == 0

    commit(db, lambda s: subscribers.change_status(s, "alice", SubscriberStatus.SUSPENDED,
                                                   actor="t"))
    commit(db, lambda s: subscribers.set_password(s, box, "alice", "n3w", actor="t"))
    commit(db, lambda s: plans.set_plan_rate(s, "Home-20", "30M/10M", actor="t"))
    commit(db, lambda s: make_subscriber(s, box, username="bob"))
    assert refresher.refresh_once()
    sub, plan, _ = snap.lookup("alice")
    assert sub.status == "suspended" and sub.password == "n3w"
    assert str(plan.rate) == "30M/10M"
    assert snap.lookup("bob")[0] is not None


def test_plan_move_is_seen(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_plan(s, name="Gold", rate="50M/50M"),
                          make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box)
    refresher.refresh_once()
    commit(db, lambda s: subscribers.set_plan(s, "alice", "Gold", actor="t"))
    refresher.refresh_once()
    assert snap.lookup("alice")[1].name == "Gold"


def test_open_session_counts_follow_accounting(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box)
    refresher.refresh_once()
    now = utcnow()

    def acct(status: str, sid: str):  # type: ignore[no-untyped-def]
        return lambda s: accounting.apply(s, AcctRecord(status=status, nas_ip="10.0.0.1",
                                                        event_time=now, username="alice",
                                                        acct_session_id=sid))

    commit(db, acct("Start", "s1"))
    commit(db, acct("Start", "s2"))
    refresher.refresh_once()
    assert snap.lookup("alice")[2] == 2
    commit(db, acct("Stop", "s1"))
    refresher.refresh_once()
    assert snap.lookup("alice")[2] == 1
    commit(db, lambda s: accounting.close_nas_sessions(s, "10.0.0.1", now, "NAS-Reboot"))
    refresher.refresh_once()
    assert snap.lookup("alice")[2] == 0
    # a fresh snapshot agrees with the incremental one
    fresh = AuthSnapshot()
    SnapshotRefresher(fresh, db, box).refresh_once()
    assert fresh.online == snap.online == {}


def test_database_unreachable_keeps_last_snapshot_and_recovers(db, box, caplog) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box)
    assert refresher.refresh_once()
    refresher.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                     connect_args={"connect_timeout": 1})
    assert not refresher.refresh_once()
    assert not snap.healthy and snap.loaded
    assert snap.lookup("alice")[0].status == "active"  # never read as unknown or unpaid
    assert "DATABASE UNREACHABLE" in caplog.text
    refresher.engine = db
    assert refresher.refresh_once() and snap.healthy
    assert "reachable again" in caplog.text


def test_undecryptable_password_rejects_that_subscriber_only(db, box) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    from radbill.crypto import SecretBox

    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    SnapshotRefresher(snap, db, SecretBox(Fernet.generate_key())).refresh_once()
    assert snap.lookup("alice")[0].password is None


def test_refresher_thread_picks_up_change_within_a_second(db, box) -> None:  # type: ignore[no-untyped-def]
    import time

    commit(db, lambda s: (make_plan(s), make_subscriber(s, box)))
    snap = AuthSnapshot()
    refresher = SnapshotRefresher(snap, db, box, poll_seconds=0.25)
    refresher.start()
    try:
        deadline = time.monotonic() + 5
        while not snap.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        commit(db, lambda s: subscribers.change_status(s, "alice", SubscriberStatus.SUSPENDED,
                                                       actor="t"))
        changed_at = time.monotonic()
        while snap.lookup("alice")[0].status != "suspended":
            assert time.monotonic() - changed_at < 1.0, "change not seen within 1 s"
            time.sleep(0.01)
    finally:
        refresher.stop()
    assert not refresher.is_alive()


def test_stale_sessions_closed_at_their_last_update(db, box) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    old = now - dt.timedelta(seconds=3 * 300 + 5)

    def setup(s):  # type: ignore[no-untyped-def]
        accounting.apply(s, AcctRecord(status="Start", nas_ip="10.0.0.1", event_time=old,
                                       username="alice", acct_session_id="old"))
        accounting.apply(s, AcctRecord(status="Start", nas_ip="10.0.0.1", event_time=now,
                                       username="alice", acct_session_id="fresh"))

    commit(db, setup)
    assert commit(db, lambda s: accounting.close_stale_sessions(s, now, 300)) == 1
    rows = commit(db, lambda s: {r.acct_session_id: (r.stopped_at, r.terminate_cause)
                                 for r in accounting.sessions_for(s, "alice")})
    assert rows["old"] == (old, "Stale-Session")
    assert rows["fresh"] == (None, None)
