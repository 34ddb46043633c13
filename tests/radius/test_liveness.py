"""The hot path's in-memory state: throttling, provisional sessions, same-device replacement."""

from __future__ import annotations

from radius.liveness import (
    Device,
    LoginThrottle,
    ProvisionalSessions,
    SessionRef,
    same_device,
)

NAS = "10.0.0.1"


def test_throttle_locks_after_the_limit_and_doubles_with_each_failure() -> None:
    t = LoginThrottle(max_failures=3, base_lock=30, max_lock=100)
    for now in (0.0, 1.0):
        t.failure("bob", now)
        assert not t.blocked("bob", None, now)
    t.failure("bob", 2.0)  # third: locked for 30 s
    assert t.blocked("bob", "aa", 2.0) and t.blocked("bob", "aa", 31.9)
    assert not t.blocked("bob", "aa", 32.0)
    t.failure("bob", 40.0)  # fourth: 60 s
    assert t.blocked("bob", None, 99.9) and not t.blocked("bob", None, 100.0)
    for now in (101.0, 102.0, 103.0):
        t.failure("bob", now)
    assert t.blocked("bob", None, 103.0 + 99.9)  # capped at max_lock
    assert not t.blocked("bob", None, 103.0 + 100.0)


def test_throttle_spares_the_last_good_device_and_forgets_on_success() -> None:
    t = LoginThrottle(max_failures=1)
    t.success("bob", "AA:BB:CC:00:00:01")
    t.failure("bob", 0.0)
    assert t.blocked("bob", "02:00:00:00:00:99", 1.0)
    assert not t.blocked("bob", "aa:bb:cc:00:00:01", 1.0)  # case-insensitive
    t.success("bob", "aa:bb:cc:00:00:01")
    assert not t.blocked("bob", "02:00:00:00:00:99", 1.0)


def test_throttle_failures_outside_the_window_start_over_and_tables_are_bounded() -> None:
    t = LoginThrottle(max_failures=2, window=10, max_users=3)
    t.failure("bob", 0.0)
    t.failure("bob", 11.0)  # the first is too old
    assert not t.blocked("bob", None, 11.0)
    for i in range(10):
        t.failure(f"u{i}", 0.0)
    assert len(t._failures) == 3


def test_same_device_matches_calling_station_or_port_on_the_same_nas() -> None:
    refs = (SessionRef(NAS, "s1", "AA:BB:CC:00:00:01", "ether1"),
            SessionRef(NAS, "s2", "AA:BB:CC:00:00:02", "ether2"),
            SessionRef("10.0.0.2", "s3", "AA:BB:CC:00:00:01", "ether1"),
            SessionRef(NAS, "s4", None, "ether4"))
    assert [r.acct_session_id for r in same_device(
        refs, Device(NAS, "aa:bb:cc:00:00:01", None))] == ["s1"]
    assert [r.acct_session_id for r in same_device(refs, Device(NAS, None, "ether4"))] == ["s4"]
    assert same_device(refs, Device(NAS, None, None)) == []
    assert same_device(refs, Device(None, "aa:bb:cc:00:00:01", None)) == []


def test_provisional_session_counts_until_a_start_or_its_lapse() -> None:
    p = ProvisionalSessions(lifetime=60)
    dev, other = Device(NAS, "aa:01", None), Device(NAS, "aa:02", None)
    p.add("bob", dev, 3, 0.0)  # the snapshot had seen 3 of bob's sessions open
    assert p.count("bob", 3, other, 1.0) == 1
    assert p.count("bob", 4, other, 2.0) == 0  # its Start: a fourth session seen open
    p.add("bob", dev, 4, 3.0)
    assert p.count("bob", 4, other, 62.9) == 1
    assert p.count("bob", 4, other, 63.0) == 0  # lapsed


def test_a_start_is_seen_even_if_its_session_ended_before_the_next_login() -> None:
    # what the snapshot counts is sessions seen open, not open now: a session that started
    # and ended again must not leave its provisional session behind
    p = ProvisionalSessions()
    anon = Device(NAS, None, None)  # a NAS that sends no Calling-Station-Id
    p.add("bob", anon, 0, 0.0)
    assert p.count("bob", 1, anon, 5.0) == 0


def test_starts_are_matched_to_provisional_sessions_oldest_first() -> None:
    p = ProvisionalSessions()
    p.add("bob", Device(NAS, "aa:01", None), 0, 0.0)
    p.add("bob", Device(NAS, "aa:02", None), 0, 1.0)
    p.add("bob", Device(NAS, "aa:03", None), 1, 2.0)
    anybody = Device(NAS, "aa:09", None)
    assert p.count("bob", 1, anybody, 3.0) == 2
    assert p.count("bob", 2, anybody, 3.0) == 1
    assert p.count("bob", 3, anybody, 3.0) == 0


def test_a_redial_from_the_same_device_replaces_its_own_provisional_session() -> None:
    p = ProvisionalSessions()
    dev = Device(NAS, "aa:01", None)
    p.add("bob", dev, 0, 0.0)
    p.add("bob", dev, 0, 1.0)
    assert len(p) == 1
    assert p.count("bob", 0, dev, 2.0) == 0
    assert p.count("bob", 0, Device(NAS, "aa:02", None), 2.0) == 1
    p.discard("bob", dev)  # the password was wrong after all
    assert len(p) == 0


def test_what_logins_leave_behind_is_bounded() -> None:
    """Repeated logins do not accumulate state: provisional sessions go once they lapse
    (whether or not the user logs in again), a re-login from the same device stores nothing
    new, and the tables never exceed their bound (measured with tracemalloc, not RSS)."""
    import gc
    import tracemalloc

    p, t = ProvisionalSessions(lifetime=90, max_users=50_000), LoginThrottle(max_users=50_000)
    users = [f"user{i:05d}" for i in range(5_000)]
    devices = {u: Device(NAS, f"aa:bb:cc:00:{i // 256:02x}:{i % 256:02x}", None)
               for i, u in enumerate(users)}

    def login_round(now: float) -> None:
        for u in users:
            dev = devices[u]
            p.add(u, dev, 0, now)
            t.success(u, dev.calling_station_id)

    login_round(0.0)
    assert len(p) == 5_000  # all within the lifetime: each counts until its Start
    gc.collect()
    tracemalloc.start()
    try:
        login_round(100.0)  # after the first round lapsed: its state replaced, traced
        gc.collect()
        before = tracemalloc.take_snapshot()
        for now in (200.0, 300.0, 400.0):
            login_round(now)
        gc.collect()
        grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(
            before, "filename"))
    finally:
        tracemalloc.stop()
    assert len(p) == 5_000  # the lapsed ones were dropped as the new ones came
    assert grown < 5_000 * 64, grown  # nothing per login kept from the earlier rounds
    p.add("late", Device(NAS, "aa:01", None), 0, 500.0)
    assert len(p) == 1  # every earlier one has lapsed: dropped without being looked at
    assert len(t._trusted) == 5_000
    small = LoginThrottle(max_users=100)
    for u in users:
        small.success(u, devices[u].calling_station_id)
    assert len(small._trusted) == 100 and "user04999" in small._trusted
