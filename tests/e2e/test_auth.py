"""Access-Requests through the real FreeRADIUS: every method and every policy branch."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from billing import subscribers
from billing.models import SubscriberStatus
from radbill.db import session_factory, utcnow
from radius.models import PostAuth
from tests.e2e import rawradius
from tests.e2e.server import SECRET, RadiusServer, wait_for, wait_until
from tests.factories import make_subscriber

pytestmark = pytest.mark.e2e


def add(engine, box, username: str, **kw):  # type: ignore[no-untyped-def]
    with session_factory(engine)() as s, s.begin():
        make_subscriber(s, box, username=username, **kw)


def change(engine, fn):  # type: ignore[no-untyped-def]
    with session_factory(engine)() as s, s.begin():
        fn(s)


def seen(radius: RadiusServer, username: str, password: str) -> None:
    """Wait until the snapshot accepts *username* (at most a second after the commit)."""
    c = radius.client()
    wait_for(lambda: c.authenticate(username, password).accepted, timeout=5)


@pytest.mark.parametrize("method", ["pap", "chap", "mschapv2"])
def test_methods_accept_right_and_reject_wrong_password(radius, seeded, server_box, method
                                                        ) -> None:  # type: ignore[no-untyped-def]
    user = f"m-{method}"
    add(seeded, server_box, user, password="Pa55 w0rd!", simultaneous_use=5)
    seen(radius, user, "Pa55 w0rd!")
    c = radius.client()
    ok = c.authenticate(user, "Pa55 w0rd!", method)
    assert ok.accepted
    assert ok.get("Mikrotik-Rate-Limit") == "5M/20M 10M/40M 3750k/15M 16/16"
    assert ok.get("Framed-Pool") == "pool-home"
    assert ok.get("Acct-Interim-Interval") == 300
    if method == "mschapv2":
        assert ok.get("MS-CHAP2-Success") is not None
    bad = c.authenticate(user, "wrong", method)
    assert bad.rejected and bad.get("Reply-Message") == "Login failed"
    assert bad.get("Mikrotik-Rate-Limit") is None  # nothing of the accept leaks


def test_static_ip_and_session_timeout_to_end_of_paid_period(radius, seeded, server_box
                                                             ) -> None:  # type: ignore[no-untyped-def]
    add(seeded, server_box, "static", ip="10.20.0.5")

    def paid(s):  # type: ignore[no-untyped-def]
        sub = subscribers.get_subscriber(s, "static", lock=True)
        sub.paid_until = utcnow() + dt.timedelta(hours=1)
        from radbill.db import AUTH_FEED, bump

        sub.auth_version = bump(s, AUTH_FEED)

    change(seeded, paid)
    c = radius.client()
    r = wait_until(lambda: c.authenticate("static", "s3cret"),
                   lambda r: r.get("Session-Timeout"), timeout=2)
    assert r.get("Framed-IP-Address") == "10.20.0.5"
    assert 3590 <= r.get("Session-Timeout") <= 3600
    assert r.get("Framed-Pool") is None


def test_suspension_reflected_within_one_second_walled_garden(radius, seeded, server_box
                                                              ) -> None:  # type: ignore[no-untyped-def]
    add(seeded, server_box, "late-payer")
    seen(radius, "late-payer", "s3cret")
    c = radius.client()
    change(seeded, lambda s: subscribers.change_status(s, "late-payer",
                                                       SubscriberStatus.SUSPENDED, actor="t"))
    committed = time.monotonic()
    r = wait_until(lambda: c.authenticate("late-payer", "s3cret", "chap"),
                   lambda r: r.get("Mikrotik-Address-List"), timeout=1.0, interval=0.02)
    elapsed = time.monotonic() - committed
    assert elapsed < 1.0
    assert r.accepted
    assert r.get("Mikrotik-Address-List") == "radbill-suspended"
    assert r.get("Mikrotik-Rate-Limit") == "256k/256k"
    # reconnect: full speed again, also within a second
    change(seeded, lambda s: subscribers.change_status(s, "late-payer", SubscriberStatus.ACTIVE,
                                                       actor="t"))
    r = wait_until(lambda: c.authenticate("late-payer", "s3cret"),
                   lambda r: not r.get("Mikrotik-Address-List"), timeout=1.0, interval=0.02)
    assert r.get("Mikrotik-Rate-Limit") == "5M/20M 10M/40M 3750k/15M 16/16"


def test_password_and_plan_change_reflected(radius, seeded, server_box) -> None:  # type: ignore[no-untyped-def]
    from billing import plans

    add(seeded, server_box, "changer")
    seen(radius, "changer", "s3cret")
    change(seeded, lambda s: plans.create_plan(s, name="Gold", price="2000", currency="BDT",
                                               rate="50M/50M"))
    change(seeded, lambda s: subscribers.set_plan(s, "changer", "Gold", actor="t"))
    change(seeded, lambda s: subscribers.set_password(s, server_box, "changer", "n3w", actor="t"))
    c = radius.client()
    r = wait_until(lambda: c.authenticate("changer", "n3w"), lambda r: r.accepted,
                 timeout=1.0, interval=0.02)
    assert r.get("Mikrotik-Rate-Limit") == "50M/50M"
    assert c.authenticate("changer", "s3cret").rejected


@pytest.mark.parametrize(
    ("username", "setup", "kwargs", "message"),
    [
        ("gone", {"status": SubscriberStatus.DISABLED}, {}, "Account disabled"),
        ("ended", {"status": SubscriberStatus.TERMINATED}, {}, "Account terminated"),
        ("bound", {"mac": "AA:BB:CC:00:00:01"}, {"mac": "AA:BB:CC:00:00:02"},
         "Device not registered for this account"),
        ("hs-only", {"service": "hotspot"}, {"service": "pppoe"},
         "Account not valid for this service"),
        ("nobody-here", None, {}, "Wrong username or password"),
    ],
)
def test_rejects_with_reason_when_the_isp_shows_reasons(detailed_radius, seeded, server_box,
                                                        username, setup, kwargs, message
                                                        ) -> None:  # type: ignore[no-untyped-def]
    radius = detailed_radius
    if setup is not None:
        status = setup.pop("status", None)
        add(seeded, server_box, username, **setup)
        if status is not None:
            change(seeded, lambda s: subscribers.change_status(s, username, status, actor="t"))
    c = radius.client()
    r = wait_until(lambda: c.authenticate(username, "s3cret", **kwargs),
                   lambda r: r.get("Reply-Message") == message, timeout=5)
    assert r.rejected
    assert r.get("Mikrotik-Rate-Limit") is None
    # without the password nobody learns the reason, even with reasons shown
    r = c.authenticate(username, "not-the-password", **kwargs)
    assert r.rejected and r.get("Reply-Message") == "Wrong username or password"


def test_mac_binding_accepts_the_bound_device(radius, seeded, server_box) -> None:  # type: ignore[no-untyped-def]
    add(seeded, server_box, "bound-ok", mac="AA:BB:CC:00:00:09", service="hotspot")
    c = radius.client()
    r = wait_until(lambda: c.authenticate("bound-ok", "s3cret", "chap", service="hotspot",
                                      mac="aa-bb-cc-00-00-09"), lambda r: r.accepted,
        timeout=2)
    assert r.get("Mikrotik-Rate-Limit") is not None


def test_every_decision_is_logged_with_its_reason(radius, seeded, server_box) -> None:  # type: ignore[no-untyped-def]
    # two devices: the first login counts toward Simultaneous-Use until its Start or lapse
    add(seeded, server_box, "logged", simultaneous_use=2)
    seen(radius, "logged", "s3cret")
    c = radius.client()
    c.authenticate("logged", "s3cret", "mschapv2", mac="AA:BB:CC:00:00:10")
    c.authenticate("logged", "nope", "chap")

    def rows():  # type: ignore[no-untyped-def]
        with session_factory(seeded)() as s:
            found = s.scalars(select(PostAuth).where(PostAuth.username == "logged")
                              .order_by(PostAuth.id)).all()
        return found if found and found[-1].reason == "bad-password" else None

    found = wait_for(rows, timeout=5)
    last_two = [(r.decision, r.reason, r.auth_method) for r in found[-2:]]
    assert last_two == [("accept", "active", "MS-CHAP"), ("reject", "bad-password", "CHAP")]
    assert found[-2].calling_station_id == "AA:BB:CC:00:00:10"
    assert found[-2].nas_ip == "127.0.0.1"
    assert found[-2].rate_limit == "5M/20M 10M/40M 3750k/15M 16/16"
    assert found[-1].reply_message == "Login failed"


def test_malformed_requests_get_reject_or_silence_and_never_a_crash(radius, seeded, server_box
                                                                     ) -> None:  # type: ignore[no-untyped-def]
    add(seeded, server_box, "survivor")
    seen(radius, "survivor", "s3cret")
    secret = SECRET.encode()
    pw = (2, b"s3cret")
    cases = {
        "no User-Name": rawradius.access_request(secret, [pw]),
        "253-byte username": rawradius.access_request(secret, [(1, b"u" * 253), pw]),
        "300-byte username in two attributes": rawradius.access_request(
            secret, [(1, b"u" * 250), (1, b"u" * 50), pw]),
        "invalid UTF-8": rawradius.access_request(secret, [(1, b"surv\xff\xfeivor"), pw]),
        "empty User-Name": rawradius.access_request(secret, [(1, b""), pw]),
        "garbage NAS-IP-Address": rawradius.access_request(secret, [(1, b"survivor"), pw,
                                                                    (4, b"\x01\x02\x03")]),
        "garbage Service-Type": rawradius.access_request(secret, [(1, b"survivor"), pw,
                                                                  (6, b"\xff")]),
        "binary Calling-Station-Id": rawradius.access_request(
            secret, [(1, b"survivor"), pw, (31, bytes(range(1, 40)))]),
        "truncated attribute": rawradius.access_request(secret, [(1, b"survivor"), pw],
                                                        raw_tail=b"\x1f\x30abc"),
        "no Message-Authenticator": rawradius.access_request(
            secret, [(1, b"survivor"), pw], message_authenticator=False),
        "wrong secret": rawradius.access_request(b"not-the-secret", [(1, b"survivor"), pw]),
    }
    outcomes = {name: rawradius.send(pkt, radius.auth_port) for name, pkt in cases.items()}
    outcomes["unknown client 127.0.0.2"] = rawradius.send(
        rawradius.access_request(secret, [(1, b"survivor"), pw]), radius.auth_port,
        source="127.0.0.2")
    for name, code in outcomes.items():
        assert code in (None, 3), f"{name}: got code {code}, expected reject (3) or silence"
    # the ones that must be dropped outright (BlastRADIUS, unknown client, bad authenticator)
    assert outcomes["no Message-Authenticator"] is None
    assert outcomes["unknown client 127.0.0.2"] is None
    assert outcomes["wrong secret"] is None
    assert outcomes["253-byte username"] == 3
    # rlm_python3 passes string values as C strings: junk that starts with a NUL byte reaches
    # the policy as an empty Calling-Station-Id. Harmless (no MAC binding on this account),
    # but it cannot be told from "no Calling-Station-Id", so it is only required not to crash.
    nul_junk = rawradius.access_request(secret, [(1, b"survivor"), pw,
                                                 (31, bytes(range(0, 40)))])
    assert rawradius.send(nul_junk, radius.auth_port) in (None, 2, 3)
    # still serving
    assert radius.proc.poll() is None
    assert radius.client().authenticate("survivor", "s3cret").accepted


def test_reject_mode_for_suspended(seeded, database_url, server_box, data_dir,
                                  tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    add(seeded, server_box, "reject-me")
    change(seeded, lambda s: subscribers.change_status(s, "reject-me",
                                                       SubscriberStatus.SUSPENDED, actor="t"))
    server = RadiusServer(database_url, tmp_path_factory.mktemp("reject-mode"),
                          RADBILL_SUSPENDED_MODE="reject",
                          RADBILL_SECRET_KEY_FILE=str(data_dir / "secret.key"))
    server.start()
    try:
        r = server.client().authenticate("reject-me", "s3cret")
        assert r.rejected and r.get("Reply-Message") == "Login failed"
        assert r.get("Mikrotik-Address-List") is None
    finally:
        server.stop()


def test_billing_run_suspension_and_payment_reach_radius_within_a_second(
        radius, seeded, server_box) -> None:  # type: ignore[no-untyped-def]
    from billing.payments import record_payment
    from billing.run import billing_run, run_days

    with session_factory(seeded)() as s, s.begin():
        make_subscriber(s, server_box, username="billed", activated_on=dt.date(2026, 11, 1))
    seen(radius, "billed", "s3cret")
    c = radius.client()
    # Home-20 is postpaid with no grace days: invoiced 1 Dec, due 8 Dec, suspended 9 Dec
    run_days(session_factory(seeded), dt.date(2026, 12, 1), dt.date(2026, 12, 8))
    report = billing_run(session_factory(seeded), dt.date(2026, 12, 9))
    assert ("billed", "suspend") in [(e.username, e.kind) for e in report.events]
    ran = time.monotonic()
    r = wait_until(lambda: c.authenticate("billed", "s3cret"),
                   lambda r: r.get("Mikrotik-Address-List"), timeout=1.0, interval=0.02)
    assert time.monotonic() - ran < 1.0
    assert r.accepted and r.get("Mikrotik-Rate-Limit") == "256k/256k"
    with session_factory(seeded)() as s, s.begin():
        result = record_payment(s, "billed", "1000", method="cash", reference="E2E-1",
                                today=dt.date(2026, 12, 9), actor="test")
    assert result.reconnected
    paid = time.monotonic()
    r = wait_until(lambda: c.authenticate("billed", "s3cret"),
                   lambda r: not r.get("Mikrotik-Address-List"), timeout=1.0, interval=0.02)
    assert time.monotonic() - paid < 1.0
    assert r.get("Mikrotik-Rate-Limit") == "5M/20M 10M/40M 3750k/15M 16/16"
