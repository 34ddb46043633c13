"""The rlm_python3 translation, without FreeRADIUS."""

import datetime as dt

from billing.rates import RatePair
from radius.hook import RLM_MODULE_OK, RLM_MODULE_REJECT, RLM_MODULE_UPDATED, PolicyHook
from radius.policy import PlanRecord, PolicyConfig, SubscriberRecord
from radius.snapshot import AuthSnapshot

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def hook(loaded: bool = True) -> PolicyHook:
    snap = AuthSnapshot()
    snap.loaded = loaded
    snap.plans[1] = PlanRecord(id=1, name="p", rate=RatePair(10_000_000, 10_000_000))
    snap.subscribers["alice"] = SubscriberRecord("alice", "pw", "pppoe", "active", 1)
    return PolicyHook(snap, PolicyConfig(), clock=lambda: NOW, unknown_nas_type="mikrotik")


def test_accept_sets_cleartext_password_and_reply_with_overwrite_operator() -> None:
    rcode, reply, control = hook().authorize((("User-Name", "alice"),
                                              ("Framed-Protocol", "PPP")))
    assert rcode == RLM_MODULE_UPDATED
    assert reply == (("Mikrotik-Rate-Limit", ":=", "10M/10M"),
                     ("Acct-Interim-Interval", ":=", "300"))
    assert control == (("Radbill-Decision", ":=", "accept"), ("Radbill-Reason", ":=", "active"),
                       ("Cleartext-Password", ":=", "pw"),
                       ("Radbill-Reject-Message", ":=", "Login failed"))


def test_quoted_values_are_unquoted() -> None:
    rcode, _, _ = hook().authorize((("User-Name", '"alice"'),))
    assert rcode == RLM_MODULE_UPDATED


def test_reject_carries_reason_and_no_password() -> None:
    rcode, reply, control = hook().authorize((("User-Name", "mallory"),))
    assert rcode == RLM_MODULE_REJECT
    assert reply == ()
    assert ("Radbill-Reason", ":=", "unknown-user") in control
    assert ("Radbill-Reject-Message", ":=", "Login failed") in control
    assert not any(name == "Cleartext-Password" for name, _, _ in control)


def test_no_snapshot_yet_means_silence_not_unknown_user() -> None:
    rcode, reply, control = hook(loaded=False).authorize((("User-Name", "alice"),))
    assert rcode == RLM_MODULE_OK and reply == ()
    assert control[0] == ("Radbill-Decision", ":=", "silent")


def test_garbage_input_never_raises() -> None:
    for pairs in [None, (), ((1, 2),), (("User-Name",),), "junk", (("User-Name", "a" * 300),),
                  (("User-Name", ""),), (("User-Name", "\udcff"),)]:
        rcode, _, control = hook().authorize(pairs)  # type: ignore[arg-type]
        assert rcode == RLM_MODULE_REJECT, pairs
        assert control[0] == ("Radbill-Decision", ":=", "reject")


def test_internal_error_is_a_logged_reject(caplog) -> None:  # type: ignore[no-untyped-def]
    h = hook()
    h.snapshot.subscribers = None  # type: ignore[assignment]
    rcode, _, control = h.authorize((("User-Name", "alice"),))
    assert rcode == RLM_MODULE_REJECT
    assert ("Radbill-Reason", ":=", "bad-request") in control
    assert "policy failed" in caplog.text


def test_undecodable_standard_attribute_is_a_bad_request() -> None:
    rcode, reply, control = hook().authorize((("User-Name", "alice"), ("Attr-4", "0x010203")))
    assert rcode == RLM_MODULE_REJECT
    assert ("Radbill-Reason", ":=", "bad-request") in control
    assert reply == ()
    # an unknown vendor attribute is not malformed
    rcode, _, _ = hook().authorize((("User-Name", "alice"), ("Attr-26.9999.1", "0x01")))
    assert rcode == RLM_MODULE_UPDATED


def test_binary_junk_in_text_attributes_is_a_bad_request() -> None:
    for pairs in [(("User-Name", "alice"), ("Calling-Station-Id", "\\000\\001\\002")),
                  (("User-Name", "ali\x01ce"),)]:
        rcode, _, control = hook().authorize(pairs)
        assert rcode == RLM_MODULE_REJECT
        assert ("Radbill-Reason", ":=", "bad-request") in control


def test_a_policy_reject_waits_for_the_password_and_says_nothing_specific() -> None:
    h = hook()
    h.snapshot.subscribers["dave"] = SubscriberRecord("dave", "pw", "pppoe", "disabled", 1)
    rcode, reply, control = h.authorize((("User-Name", "dave"),))
    assert rcode == RLM_MODULE_UPDATED  # on to pap/chap/mschap: the password first
    assert reply == ()
    assert ("Cleartext-Password", ":=", "pw") in control
    assert ("Radbill-Decision", ":=", "reject") in control
    assert ("Radbill-Reason", ":=", "disabled") in control
    assert ("Radbill-Reject-Message", ":=", "Login failed") in control
    assert ("Radbill-Message", ":=", "Login failed") in control


def test_detailed_messages_only_name_the_reason_after_a_right_password() -> None:
    h = hook()
    h.config = PolicyConfig(detailed_messages=True)
    h.snapshot.subscribers["dave"] = SubscriberRecord("dave", "pw", "pppoe", "disabled", 1)
    _, _, control = h.authorize((("User-Name", "dave"),))
    assert ("Radbill-Message", ":=", "Account disabled") in control  # password right
    assert ("Radbill-Reject-Message", ":=", "Wrong username or password") in control


def test_usernames_case_and_spaces() -> None:
    h = hook()
    # one device: its redials replace each other's provisional session
    device = (("Calling-Station-Id", "02:00:00:00:00:01"), ("Packet-Src-IP-Address", "10.0.0.1"))
    for name in ("ALICE", " alice ", "Alice"):
        rcode, _, control = h.authorize((("User-Name", name), *device))
        assert rcode == RLM_MODULE_UPDATED and ("Radbill-Decision", ":=", "accept") in control
    h.case_insensitive = False
    _, _, control = h.authorize((("User-Name", "ALICE"), *device))
    assert ("Radbill-Reason", ":=", "unknown-user") in control


def test_redial_from_the_device_of_an_open_session_replaces_it() -> None:
    from radius.liveness import SessionRef

    h = hook()
    h.snapshot.sessions["alice"] = (SessionRef("10.0.0.1", "81a0", "AA:BB:CC:00:00:01"),)
    pairs = (("User-Name", "alice"), ("Packet-Src-IP-Address", "10.0.0.1"))
    rcode, reply, _ = h.authorize((*pairs, ("Calling-Station-Id", "aa-bb-cc-00-00-01")))
    assert rcode == RLM_MODULE_UPDATED
    assert ("Radbill-Replaces", ":=", "81a0") in reply
    # another device: Simultaneous-Use 1 is taken (by the session and now the provisional one)
    _, _, control = h.authorize((*pairs, ("Calling-Station-Id", "AA:BB:CC:00:00:02")))
    assert ("Radbill-Reason", ":=", "simultaneous-use") in control


def test_wrong_passwords_throttle_in_post_auth() -> None:
    h = hook()
    rejected = (("User-Name", "alice"), ("Radbill-Decision", "reject"),
                ("Radbill-Reason", "bad-password"), ("Radbill-Policy-Decision", "accept"),
                ("Calling-Station-Id", "02:00:00:00:00:09"))
    for _ in range(5):
        h.authorize(rejected[:1] + rejected[4:])
        assert h.post_auth(rejected) == 7
    _, _, control = h.authorize((("User-Name", "alice"),
                                 ("Calling-Station-Id", "02:00:00:00:00:09")))
    assert ("Radbill-Reason", ":=", "login-throttled") in control
    assert not any(name == "Cleartext-Password" for name, _, _ in control)
    assert len(h.provisional) == 0  # every wrong-password accept was taken back


def _login(h: PolicyHook, user: str, mac: str, nas: str = "10.0.0.1") -> None:
    # fresh strings per request, as rlm_python3 builds them
    pairs = (("User-Name", "".join(user)), ("Packet-Src-IP-Address", "".join(nas)),
             ("Calling-Station-Id", mac.upper().replace(":", "-")), ("NAS-Port-Id", "ether1"),
             ("Framed-Protocol", "PPP"))
    _, _, control = h.authorize(pairs)
    decision = next(v for a, _, v in control if a == "Radbill-Decision")
    assert decision == "accept", control
    h.post_auth((*pairs, ("Radbill-Decision", decision), ("Radbill-Reason", "active"),
                 ("Radbill-Policy-Decision", decision), ("Radbill-Password-Ok", "1")))


def test_a_login_stores_each_string_once() -> None:
    """What a login leaves in memory (its provisional session, its trusted device) holds one
    copy of the user's key, of its station and of the NAS address, whichever of authorize and
    post_auth stored them, and a re-login keeps the strings already stored."""
    h = hook()
    h.snapshot.subscribers["bob"] = SubscriberRecord("bob", "pw", "pppoe", "active", 1)
    now = [0.0]
    h.monotonic = lambda: now[0]
    _login(h, "alice", "aa:bb:cc:00:00:01")
    _login(h, "bob", "aa:bb:cc:00:00:02")
    trusted = {k: (k, v) for k, v in h.throttle._trusted.items()}
    for user in ("alice", "bob"):
        (entry,) = h.provisional.entries(user)
        key, station = trusted[user]
        assert entry.user is key and entry.calling_station_id is station
    assert h.provisional.entries("alice")[0].nas_ip is h.provisional.entries("bob")[0].nas_ip
    now[0] = 100.0  # lapsed: a re-login from the trusted device reuses its station string
    _login(h, "alice", "aa:bb:cc:00:00:01")
    (entry,) = h.provisional.entries("alice")
    assert entry.calling_station_id is trusted["alice"][1]


def test_what_a_login_leaves_behind_is_small() -> None:
    """Python memory per accepted login while its provisional session lives (tracemalloc):
    some 315 bytes (the key, the station, one flat record), 615 when each string was stored
    twice and the device was an object of its own."""
    import gc
    import tracemalloc

    h = hook()
    users = [f"user{i:05d}" for i in range(3_000)]
    for u in users:
        h.snapshot.subscribers[u] = SubscriberRecord(u, "pw", "pppoe", "active", 1)
    macs = [f"aa:bb:cc:00:{i // 256:02x}:{i % 256:02x}" for i in range(len(users))]
    _login(h, users[0], macs[0])
    h.snapshot._revealed_max = 1  # the decrypted-record cache is bounded on its own
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for u, mac in zip(users[1:], macs[1:], strict=True):
            _login(h, u, mac)
        gc.collect()
        grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(
            before, "filename"))
    finally:
        tracemalloc.stop()
    assert len(h.provisional) == len(users)
    assert grown / (len(users) - 1) < 400, grown / (len(users) - 1)
