"""The compact snapshot (issue 14): the same records as the full rows give, passwords decrypted
only at login, loading in chunks, key rotation without a restart, and a saved snapshot that a
restart reads and then brings up to date from the change feed."""

import datetime as dt
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text

from billing import authfeed, subscribers
from billing.isp import billed_until, mark_billed_through
from billing.models import Plan, Subscriber, SubscriberStatus
from radbill.config import Settings
from radbill.crypto import SecretBox, read_keys, rotate_key, secret_box
from radbill.db import session_factory
from radbill.dbapi import Reader
from radius import accounting
from radius.accounting import AcctRecord
from radius.hook import PolicyHook
from radius.nas import create_nas
from radius.policy import PolicyConfig, Reason, SubscriberRecord
from radius.snapshot import (
    SAVED_FORMAT,
    AuthSnapshot,
    SnapshotRefresher,
    SubscriberEntry,
    entries_from_rows,
    plan_record,
    subscriber_record,
    unpack,
)
from tests.conftest import BACKEND
from tests.factories import make_plan, make_subscriber

PAID = dt.datetime(2026, 12, 1, 17, 30, 5, 123456, tzinfo=dt.UTC)


def commit(db, fn):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        return fn(s)


def populate(s, box) -> None:  # type: ignore[no-untyped-def]
    """Subscribers with every field the policy reads set one way or another."""
    make_plan(s)
    make_subscriber(s, box)  # alice: defaults
    make_subscriber(s, box, username="Bob.Case", password="pw-bob", ip="10.0.0.7",
                    mac="aa:bb:cc:dd:ee:01", simultaneous_use=3, service="hotspot")
    make_subscriber(s, box, username="carol", password="পাসওয়ার্ড", pool="vip-pool")
    subscribers.set_ipv6(s, "carol", framed_prefix=None, delegated_prefix="2001:db8:7::/56",
                         pool="v6-pool", actor="t")
    subscribers.set_ipv6(s, "alice", framed_prefix="2001:db8:1::/64", delegated_prefix=None,
                         pool=None, actor="t")
    subscribers.change_status(s, "carol", SubscriberStatus.SUSPENDED, actor="t")
    alice = subscribers.get_subscriber(s, "alice")
    alice.paid_until, alice.fup_throttled = PAID, True


def loaded(db, box, **kw) -> tuple[AuthSnapshot, SnapshotRefresher]:  # type: ignore[no-untyped-def]
    snap = AuthSnapshot(**kw)
    refresher = SnapshotRefresher(snap, db, box)
    assert refresher.refresh_once()
    return snap, refresher


def full_rows(db, box) -> dict[str, SubscriberRecord]:  # type: ignore[no-untyped-def]
    """What the old layout made of every subscriber: the ORM row, password decrypted."""
    with session_factory(db)() as s:
        return {sub.username.lower(): subscriber_record(sub, box)
                for sub in s.scalars(select(Subscriber).order_by(Subscriber.username)).unique()}


@pytest.mark.parametrize("source", ["engine", "url"])
def test_records_equal_those_made_from_the_full_rows(db, box, database_url, source) -> None:  # type: ignore[no-untyped-def]
    """Through a SQLAlchemy engine (tests, tools) and through the driver on a connection of
    the refresher's own (FreeRADIUS: no SQLAlchemy there), the same records."""
    commit(db, lambda s: populate(s, box))
    snap, refresher = loaded(db if source == "engine" else database_url, box)
    refresher.stop()
    expected = full_rows(db, box)
    assert {key: snap.record(key) for key in sorted(snap.subscribers)} == expected
    assert expected["alice"].paid_until == PAID and expected["alice"].fup_throttled
    assert expected["bob.case"].username == "Bob.Case"  # as stored, under its lower-case key
    # one plain string per subscriber, the username left out when it is the key
    assert all(type(v) is str for v in snap.subscribers.values())
    assert not snap.subscribers["alice"].startswith("alice")


def test_passwords_are_decrypted_at_login_only_and_cached_within_bounds(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (populate(s, box),
                          [make_subscriber(s, box, username=f"u{i}") for i in range(5)]))
    calls: list[str] = []

    class CountingBox(SecretBox):
        def decrypt_fast(self, token: str) -> str:
            calls.append(token)
            return super().decrypt_fast(token)

    counting = CountingBox(box.keys)
    snap, refresher = loaded(db, counting, revealed_cache=3)
    assert calls == []  # a million subscribers load without a million decryptions
    assert snap.lookup("alice")[0].password == "s3cret"
    assert snap.lookup("ALICE ")[0].password == "s3cret"
    assert len(calls) == 1  # the second login of the same subscriber is served from the cache
    for i in range(5):
        assert snap.lookup(f"u{i}")[0].password == "s3cret"
    assert len(snap._revealed) <= 3  # the bound is the point
    # a changed password is read from the new entry, never from the cache
    commit(db, lambda s: subscribers.set_password(s, box, "alice", "n3w", actor="t"))
    assert refresher.refresh_once()
    assert snap.lookup("alice")[0].password == "n3w"


def test_undecryptable_password_rejects_that_subscriber_only(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: populate(s, box))
    snap, _ = loaded(db, SecretBox(Fernet.generate_key()))
    assert snap.lookup("alice")[0].password is None
    hook = PolicyHook(snap, PolicyConfig(), unknown_nas_type="mikrotik")
    assert hook.decide({"User-Name": "alice"}).reason is Reason.CREDENTIAL_ERROR
    assert hook.decide({"User-Name": "nobody"}).reason is Reason.UNKNOWN_USER


def test_rows_are_read_in_chunks(db, box) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: (make_plan(s),
                          [make_subscriber(s, box, username=f"u{i}") for i in range(7)]))
    with session_factory(db)() as s, s.begin():
        chunks = list(authfeed.auth_rows_since(Reader.of_session(s), 0, ("username", "status"),
                                               chunk=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert sorted(r[0] for c in chunks for r in c) == [f"u{i}" for i in range(7)]
    assert {r[1] for c in chunks for r in c} == {"active"}
    assert all(type(r[1]) is str for c in chunks for r in c)  # the value, not the enum


def test_only_the_policys_columns_can_be_asked_for(db) -> None:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin(), pytest.raises(ValueError, match="not a subscr"):
        next(authfeed.auth_rows_since(Reader.of_session(s), 0, ("username", "phone")))


def test_the_driver_reads_plans_billing_and_sessions_as_the_orm_does(db, box, database_url
                                                                     ) -> None:  # type: ignore[no-untyped-def]
    """Plans (speeds, burst, fair-usage rate, pools, quotas), the billing run's progress, NAS
    types and open sessions: the snapshot the policy loads through the driver alone equals
    what the ORM's services give."""
    def setup(s):  # type: ignore[no-untyped-def]
        populate(s, box)
        make_plan(s, name="Burst-50", rate="50M/10M", burst="80M/20M",
                  burst_threshold="40M/8M", burst_time=12, ip_pool="p50")
        make_plan(s, name="Capped", rate="10M/10M", data_cap="100G", fup_rate="1M/1M")
        make_plan(s, name="Quota", rate="5M/5M", data_cap="5G", time_quota_s=36_000)
        mark_billed_through(s, dt.date(2026, 11, 29))
        create_nas(s, box, name="core", ip="10.9.0.1", secret="s3cr3t-nas", nas_type="cisco")
        accounting.apply(s, AcctRecord(status="Start", nas_ip="10.9.0.1", acct_session_id="S1",
                                       username="Bob.Case", calling_station_id="AA-BB",
                                       nas_port_id="ge-1/0/1",
                                       event_time=dt.datetime(2026, 11, 30, tzinfo=dt.UTC)))
    commit(db, setup)
    snap, refresher = loaded(database_url, box)
    refresher.stop()
    with session_factory(db)() as s:
        plans = {p.id: plan_record(p) for p in s.scalars(select(Plan))}
        assert snap.plans == plans and len(plans) == 4
        assert plans[s.scalar(select(Plan.id).where(Plan.name == "Burst-50"))].burst is not None
        assert snap.billed_until == billed_until(s) == dt.datetime(2026, 11, 29, 18,
                                                                   tzinfo=dt.UTC)
    assert snap.nas_types == {"10.9.0.1": "cisco"}
    assert snap.online == {"bob.case": 1}
    (ref,) = snap.sessions["bob.case"]
    assert (ref.nas_ip, ref.acct_session_id, ref.nas_port_id) == ("10.9.0.1", "S1", "ge-1/0/1")


@pytest.mark.skipif(BACKEND != "postgresql", reason="ends a PostgreSQL backend")
def test_a_connection_that_died_idle_is_replaced_without_an_outage(db, box, database_url,
                                                                   caplog) -> None:  # type: ignore[no-untyped-def]
    """The refresher keeps its connection between polls: a database restart (here, its
    backend terminated) costs one reconnection, not a refresh failure or an alarm."""
    commit(db, lambda s: populate(s, box))
    snap, refresher = loaded(database_url, box)
    with db.begin() as conn:
        ended = conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'radbill-policy' AND datname = current_database()"
        )).scalars().all()
    assert ended == [True]
    commit(db, lambda s: subscribers.set_password(s, box, "alice", "after", actor="t"))
    with caplog.at_level("WARNING", logger="radbill.snapshot"):
        assert refresher.refresh_once()
    refresher.stop()
    assert snap.lookup("alice")[0].password == "after"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]


def test_a_field_holding_the_separator_is_kept_whole() -> None:
    entry = SubscriberEntry("odd", "tok", "pppoe", "active", 1, ip_pool="pool\x1fx")
    row = (*entry, 5)
    (key, stored), version = entries_from_rows([row])[0][0], entries_from_rows([row])[1]
    assert key == "odd" and version == 5
    assert isinstance(stored, SubscriberEntry) and stored.ip_pool == "pool\x1fx"
    assert unpack(key, stored) == stored


def test_two_key_rotations_without_a_restart(cli, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The snapshot keeps tokens: a rotation stamps the change feed, so the snapshot reads the
    new tokens before the next rotation drops the key its old ones were made with."""
    cli("plan", "create", "Home", "--price", "500", "--currency", "BDT", "--rate", "5M/5M")
    for i in range(4):
        cli("subscriber", "create", f"user{i}", "--password", f"pw-{i}", "--plan", "Home")
    settings = Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path),
                                  "RADBILL_DATABASE_URL": str(db.url)})
    (first,) = read_keys(tmp_path / "secret.key")
    snap, refresher = loaded(db, secret_box(settings, create=False))
    for _ in range(2):
        rotate_key(settings, session_factory(db), batch=3)
        assert refresher.refresh_once()
    # a subscriber made now has a token the policy's box has never seen: reading it makes the
    # box re-read the key file, which no longer holds the first key
    cli("subscriber", "create", "late", "--password", "late-pw", "--plan", "Home")
    assert refresher.refresh_once()
    assert snap.lookup("late")[0].password == "late-pw"
    assert first not in read_keys(tmp_path / "secret.key")
    assert [snap.lookup(f"user{i}")[0].password for i in range(4)] == [
        f"pw-{i}" for i in range(4)]


def test_a_restart_reads_the_saved_snapshot_then_only_the_changes(db, box, tmp_path: Path
                                                                 ) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: populate(s, box))
    saved = tmp_path / "radius-snapshot"
    _, refresher = loaded(db, box)
    refresher.save_to = saved
    (tmp_path / ".radius-snapshot.1.tmp").write_text("left by a killed process")
    refresher.save_if_due()  # due: never saved
    assert saved.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["radius-snapshot"]
    mtime = saved.stat().st_mtime_ns
    refresher.save_if_due()  # not due: saved just now, nothing changed
    assert saved.stat().st_mtime_ns == mtime
    assert saved.read_text().startswith(SAVED_FORMAT)
    assert b"s3cret" not in saved.read_bytes()  # tokens stay encrypted at rest

    def change(s):  # type: ignore[no-untyped-def]
        subscribers.change_status(s, "alice", SubscriberStatus.SUSPENDED, actor="t")
        make_subscriber(s, box, username="dave", password="pw-dave")

    commit(db, change)
    restarted = AuthSnapshot()
    assert restarted.load_saved(saved) == 3
    hook = PolicyHook(restarted, PolicyConfig(), unknown_nas_type="mikrotik")
    # read from a file alone, nothing is answered: the database has not said anything yet
    assert not hook.decide({"User-Name": "alice"}).respond
    assert not hook.decide({"User-Name": "dave"}).respond
    # 2 subscribers changed (alice, dave) + every plan (1): not the 3 others again
    with session_factory(db)() as s, s.begin():
        assert restarted.refresh(s, box) == 3
    expected = full_rows(db, box)
    # answered at once: what changed from memory, the others from the mapped file, and a
    # name in neither is unknown (file and change feed are the whole state)
    assert sorted(restarted.subscribers) == ["alice", "dave"]
    assert {k: restarted.record(k) for k in expected} == expected
    assert restarted.lookup("alice")[0].status == "suspended"
    assert restarted.known("bob.case") and not restarted.known("nobody")
    assert hook.decide({"User-Name": "Bob.Case"}).reason is Reason.MAC_MISMATCH  # its record
    assert hook.decide({"User-Name": "nobody"}).reason is Reason.UNKNOWN_USER
    assert hook.decide({"User-Name": "a"}).reason is Reason.UNKNOWN_USER  # sorts first
    assert hook.decide({"User-Name": "zzz"}).reason is Reason.UNKNOWN_USER  # sorts last
    assert not restarted.save(saved)  # never the changes alone over the whole file
    assert restarted.merge_saved() == 4 and restarted.size == 4
    assert {k: restarted.record(k) for k in sorted(restarted.subscribers)} == expected
    assert restarted.lookup("alice")[0].status == "suspended"
    assert restarted.merge_saved() == 0  # once
    assert restarted.save(saved)


def test_a_restart_with_the_database_down_stays_silent(db, box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: populate(s, box))
    saved = tmp_path / "radius-snapshot"
    snap, _ = loaded(db, box)
    assert snap.save(saved)
    restarted = AuthSnapshot()
    assert restarted.load_saved(saved) == 3
    down = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                         connect_args={"connect_timeout": 1})
    refresher = SnapshotRefresher(restarted, down, box)
    assert not refresher.refresh_once()
    hook = PolicyHook(restarted, PolicyConfig(), unknown_nas_type="mikrotik")
    # never "unknown user" (a subscriber created after the file) nor an answer from the file
    for name in ("alice", "somebody-new"):
        _, _, control = hook.authorize((("User-Name", name),))
        assert ("Radbill-Decision", ":=", "silent") in control
    refresher.engine = db
    assert refresher.refresh_once()
    assert hook.decide({"User-Name": "somebody-new"}).reason is Reason.UNKNOWN_USER
    assert hook.decide({"User-Name": "alice"}).accept


@pytest.mark.parametrize("damage", ["other fields", "cut short", "missing"])
def test_a_saved_snapshot_that_does_not_fit_is_not_used(db, box, tmp_path: Path, damage: str
                                                        ) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: populate(s, box))
    saved = tmp_path / "radius-snapshot"
    snap, _ = loaded(db, box)
    assert snap.save(saved)
    text = saved.read_text()
    if damage == "other fields":
        first, rest = text.split("\n", 1)
        saved.write_text(first + "\x1fdata_cap\n" + rest)
    elif damage == "cut short":
        saved.write_text(text[:-5])
    else:
        saved.unlink()
    restarted = AuthSnapshot()
    assert restarted.load_saved(saved) == 0 and restarted.auth_version == 0
    assert restarted.subscribers == {}


def test_every_saved_subscriber_is_found_in_the_mapped_file_and_nobody_else(tmp_path: Path
                                                                            ) -> None:
    rng = __import__("random").Random(14)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-@"
    names = {"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 20)))
             for _ in range(3_000)}
    names |= {"a", "ab", "ab1", "ab.", "b", "user9", "user10"}  # prefixes of each other
    snap = AuthSnapshot()
    snap.subscribers = {n: f"\x1f{n}-token\x1fpppoe\x1factive\x1f1" for n in names}
    snap.loaded = True
    saved = tmp_path / "radius-snapshot"
    assert snap.save(saved)
    restarted = AuthSnapshot()
    assert restarted.load_saved(saved) == len(names)
    assert restarted.subscribers == {}
    assert all(restarted._stored(n) == snap.subscribers[n] for n in sorted(names))
    others = {n + "x" for n in names} | {"", "0", "~", "ab0", "zzzzzzzzzzzzzzzzzzzzzz"}
    assert not any(restarted.known(n) for n in sorted(others - names))
    assert restarted.merge_saved() == len(names)
    assert restarted.subscribers == snap.subscribers


def test_the_refresher_answers_from_the_file_and_merges_it_in_the_background(
        db, box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    commit(db, lambda s: populate(s, box))
    saved = tmp_path / "radius-snapshot"
    snap, _ = loaded(db, box)
    assert snap.save(saved)
    restarted = AuthSnapshot()
    assert restarted.load_saved(saved) == 3
    refresher = SnapshotRefresher(restarted, db, box, poll_seconds=0.05, save_to=saved)
    assert refresher.refresh_once()  # what start_policy does before the thread runs
    assert restarted.subscribers == {} and restarted.lookup("carol")[0].status == "suspended"
    refresher.start()
    try:
        for _ in range(400):
            if restarted._saved is None:
                break
            refresher._stop_event.wait(0.05)
    finally:
        refresher.stop()
    assert sorted(restarted.subscribers) == ["alice", "bob.case", "carol"]
    assert {k: restarted.record(k) for k in restarted.subscribers} == full_rows(db, box)
