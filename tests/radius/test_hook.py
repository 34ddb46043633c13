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
    h.snapshot.lookup = None  # type: ignore[assignment,method-assign]
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
