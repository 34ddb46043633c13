"""The policy, branch by branch, with a frozen clock and exact reply attributes."""

import datetime as dt

import pytest

from billing.rates import Burst, RatePair
from radius.policy import (
    AuthRequest,
    PlanRecord,
    PolicyConfig,
    Reason,
    SubscriberRecord,
    decide,
    normalize_mac,
)

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
PLAN = PlanRecord(
    id=1, name="Home-20", rate=RatePair(20_000_000, 5_000_000),
    burst=Burst(RatePair(40_000_000, 10_000_000), RatePair(15_000_000, 3_750_000), 16),
    fup_rate=RatePair(2_000_000, 1_000_000), ip_pool="pool-home",
)
SUB = SubscriberRecord(username="alice", password="s3cret", service="pppoe", status="active",
                       plan_id=1)
PPP = AuthRequest(username="alice", service_type="Framed-User", framed_protocol="PPP",
                  calling_station_id="AA:BB:CC:DD:EE:01")
HOTSPOT = AuthRequest(username="alice", service_type="Login-User",
                      calling_station_id="aa-bb-cc-dd-ee-01")
CONFIG = PolicyConfig()


def test_active_gets_plan_rate_with_burst_pool_and_interim() -> None:
    d = decide(PPP, SUB, PLAN, 0, CONFIG, NOW)
    assert d.accept and d.reason is Reason.ACTIVE and d.password == "s3cret"
    assert d.reply == (
        ("Mikrotik-Rate-Limit", "5M/20M 10M/40M 3750k/15M 16/16"),
        ("Acct-Interim-Interval", "300"),
        ("Framed-Pool", "pool-home"),
    )


def test_static_ip_wins_over_pool_and_session_timeout_to_end_of_paid_period() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "static_ip": "10.0.0.5",
                           "paid_until": NOW + dt.timedelta(hours=2, seconds=5)})
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW)
    assert d.accept
    assert ("Framed-IP-Address", "10.0.0.5") in d.reply
    assert not any(name == "Framed-Pool" for name, _ in d.reply)
    assert ("Session-Timeout", "7205") in d.reply


def test_subscriber_pool_overrides_plan_pool() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "ip_pool": "pool-vip"})
    assert ("Framed-Pool", "pool-vip") in decide(PPP, sub, PLAN, 0, CONFIG, NOW).reply


def test_no_session_timeout_without_paid_period() -> None:
    assert not any(n == "Session-Timeout" for n, _ in decide(PPP, SUB, PLAN, 0, CONFIG, NOW).reply)


def test_fair_usage_throttled_gets_fup_rate_without_burst() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "fup_throttled": True})
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW)
    assert d.accept and d.reason is Reason.THROTTLED
    assert d.reply[0] == ("Mikrotik-Rate-Limit", "1M/2M")


def test_suspended_walled_garden_by_default() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "status": "suspended"})
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW)
    assert d.accept and d.reason is Reason.WALLED_GARDEN and d.password == "s3cret"
    assert d.reply[:2] == (("Mikrotik-Address-List", "radbill-suspended"),
                           ("Mikrotik-Rate-Limit", "256k/256k"))
    assert ("Reply-Message", d.reply_message) in d.reply


def test_suspended_reject_mode() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "status": "suspended"})
    d = decide(PPP, sub, PLAN, 0, PolicyConfig(suspended_mode="reject"), NOW)
    assert not d.accept and d.reason is Reason.SUSPENDED
    assert d.reply == () and d.reply_message == "Account suspended for non-payment"
    assert d.password == SUB.password  # checked by FreeRADIUS before the reason shows


def test_paid_period_over_goes_to_walled_garden_even_if_billing_has_not_run() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "paid_until": NOW})
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW)
    assert d.accept and d.reason is Reason.EXPIRED_WALLED_GARDEN
    d = decide(PPP, sub, PLAN, 0, PolicyConfig(suspended_mode="reject"), NOW)
    assert not d.accept and d.reason is Reason.EXPIRED


@pytest.mark.parametrize(
    ("change", "request_", "online", "reason", "message"),
    [
        ({"status": "disabled"}, PPP, 0, Reason.DISABLED, "Account disabled"),
        ({"status": "terminated"}, PPP, 0, Reason.TERMINATED, "Account terminated"),
        ({"mac_address": "AA:BB:CC:DD:EE:02"}, PPP, 0, Reason.MAC_MISMATCH,
         "Device not registered for this account"),
        ({}, PPP, 1, Reason.SIMULTANEOUS_USE, "Already logged in"),
        ({"simultaneous_use": 2}, PPP, 2, Reason.SIMULTANEOUS_USE, "Already logged in"),
        ({"service": "hotspot"}, PPP, 0, Reason.WRONG_SERVICE,
         "Account not valid for this service"),
        ({}, HOTSPOT, 0, Reason.WRONG_SERVICE, "Account not valid for this service"),
    ],
)
def test_rejects_wait_for_the_password_check(change: dict, request_: AuthRequest, online: int,
                                             reason: Reason, message: str) -> None:
    sub = SUB.__class__(**{**SUB.__dict__, **change})
    d = decide(request_, sub, PLAN, online, CONFIG, NOW)
    assert not d.accept
    assert d.reason is reason
    assert d.reply == ()  # no message in the policy's reply: FreeRADIUS picks the words
    assert d.reply_message == message  # the detailed words, for logs and the opt-in setting
    assert d.password == SUB.password  # so the password is checked before anything shows


def test_credential_error_and_unknown_user_carry_no_password() -> None:
    d = decide(PPP, SUB.__class__(**{**SUB.__dict__, "password": None}), PLAN, 0, CONFIG, NOW)
    assert d.reason is Reason.CREDENTIAL_ERROR and d.password is None
    d = decide(PPP, None, None, 0, CONFIG, NOW)
    assert d.reason is Reason.UNKNOWN_USER and d.password is None


def test_unknown_user_and_missing_username() -> None:
    assert decide(PPP, None, None, 0, CONFIG, NOW).reason is Reason.UNKNOWN_USER
    d = decide(AuthRequest(username=None), SUB, PLAN, 0, CONFIG, NOW)
    assert d.reason is Reason.BAD_REQUEST and not d.accept


def test_mac_binding_matches_in_any_notation() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "mac_address": "AA:BB:CC:DD:EE:01",
                           "service": "hotspot"})
    assert decide(HOTSPOT, sub, PLAN, 0, CONFIG, NOW).accept
    assert normalize_mac("aabb.ccdd.ee01") == "AA:BB:CC:DD:EE:01"
    assert normalize_mac("not-a-mac") is None
    assert normalize_mac(None) is None


def test_second_session_allowed_below_limit() -> None:
    sub = SUB.__class__(**{**SUB.__dict__, "simultaneous_use": 2})
    assert decide(PPP, sub, PLAN, 1, CONFIG, NOW).accept


def test_nas_without_service_type_is_not_checked_for_service() -> None:
    assert decide(AuthRequest(username="alice"), SUB, PLAN, 0, CONFIG, NOW).accept


def _with(record, **change):  # type: ignore[no-untyped-def]
    return record.__class__(**{**record.__dict__, **change})


@pytest.mark.parametrize(("nas_type", "status", "paid_until", "reason"), [
    ("other", "suspended", None, Reason.SUSPENDED_NO_GARDEN),
    ("other", "active", NOW, Reason.EXPIRED_NO_GARDEN),
    ("accel-ppp", "suspended", None, Reason.SUSPENDED_NO_GARDEN),  # no garden pool set
    ("wispr", "suspended", None, Reason.SUSPENDED_NO_GARDEN),  # no portal URL set
])
def test_a_nas_that_cannot_garden_rejects_instead_of_free_internet(
        nas_type: str, status: str, paid_until: dt.datetime | None, reason: Reason) -> None:
    from radius.nas_profiles import profile_for

    sub = _with(SUB, status=status, paid_until=paid_until)
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW, profile_for(nas_type))
    assert not d.accept and d.reason is reason and d.password == "s3cret"


def test_garden_by_pool_and_by_redirect_once_configured() -> None:
    from radius.nas_profiles import profile_for

    sub = _with(SUB, status="suspended")
    config = PolicyConfig(walled_garden_pool="garden", walled_garden_url="http://pay.example")
    d = decide(PPP, sub, PLAN, 0, config, NOW, profile_for("accel-ppp"))
    assert d.accept and d.reply[:2] == (("Framed-Pool", "garden"), ("Filter-Id", "256/256"))
    assert [a for a in d.reply if a[0] == "Framed-Pool"] == [("Framed-Pool", "garden")]
    d = decide(PPP, sub, PLAN, 0, config, NOW, profile_for("wispr"))
    assert d.accept and d.reply[0] == ("WISPr-Redirection-URL", "http://pay.example")
    d = decide(PPP, sub, PLAN, 0, config, NOW)  # MikroTik: address list, garden pool
    assert ("Framed-Pool", "garden") in d.reply


def test_ipv6_and_idle_timeout() -> None:
    plan = PlanRecord(id=1, name="Dual", rate=RatePair(1_000_000, 1_000_000),
                      ipv6_pool="v6-wan", delegated_ipv6_pool="v6-pd", idle_timeout=600)
    d = decide(PPP, SUB, plan, 0, CONFIG, NOW)
    assert d.reply[1:] == (("Acct-Interim-Interval", "300"), ("Idle-Timeout", "600"),
                           ("Framed-IPv6-Pool", "v6-wan"),
                           ("Delegated-IPv6-Prefix-Pool", "v6-pd"))
    sub = _with(SUB, framed_ipv6_prefix="2001:db8:1::/64",
                delegated_ipv6_prefix="2001:db8:100::/56")
    d = decide(PPP, sub, PLAN, 0, PolicyConfig(idle_timeout=900), NOW)
    assert d.reply[1:] == (("Acct-Interim-Interval", "300"), ("Idle-Timeout", "900"),
                           ("Framed-Pool", "pool-home"), ("Framed-IPv6-Prefix", "2001:db8:1::/64"),
                           ("Delegated-IPv6-Prefix", "2001:db8:100::/56"))


H = dt.timedelta(hours=1)


@pytest.mark.parametrize(("paid_until", "billed_until", "expected"), [
    (None, None, "active"),
    (NOW + H, NOW - H, "active"),  # not yet
    (NOW - H, None, "expired-walled-garden"),  # before the first billing run: enforced
    (NOW - H, NOW - H, "expired-walled-garden"),  # billing ran for the day before the cut
    (NOW - H, NOW + H, "expired-walled-garden"),
    (NOW - H, NOW - 2 * H, "active"),  # the run never reached the cut-off: held
])
def test_a_cut_off_the_billing_run_has_not_reached_is_held(
        paid_until: dt.datetime | None, billed_until: dt.datetime | None, expected: str) -> None:
    sub = SubscriberRecord(**{**SUB.__dict__, "paid_until": paid_until})
    d = decide(PPP, sub, PLAN, 0, CONFIG, NOW, None, billed_until)
    assert (d.accept, d.reason.value) == (True, expected)
    timeouts = [v for n, v in d.reply if n == "Session-Timeout"]
    assert timeouts == (["3600"] if paid_until is not None and paid_until > NOW else [])
