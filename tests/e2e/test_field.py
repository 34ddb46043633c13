"""RADIUS in the field, through the real FreeRADIUS: each NAS type's reply, no account
enumeration, failed-login throttling, usernames, IPv6.

Replies are decoded by pyrad with FreeRADIUS's own dictionaries (``/usr/share/freeradius``),
not with radbill's dictionary or encoder: the vendor attributes are checked as a NAS of that
kind would read them. Each NAS sits on its own loopback address (127.0.0.2-6): FreeRADIUS
tells them apart by the packet's source, as it tells real routers apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary
from sqlalchemy import Engine, select

from billing import plans, subscribers
from billing.models import SubscriberStatus
from radbill.db import session_factory
from radius.models import PostAuth
from radius.nas import create_nas
from tests.conftest import wipe
from tests.e2e.server import SECRET, RadiusServer, wait_for
from tests.factories import make_plan, make_subscriber

FR = Path("/usr/share/freeradius")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (FR / "dictionary.erx").exists(),
                                 reason="FreeRADIUS dictionaries not installed")]

NAS_IPS = {"mikrotik": "127.0.0.1", "accel-ppp": "127.0.0.2", "wispr": "127.0.0.3",
           "cisco": "127.0.0.4", "juniper": "127.0.0.5", "other": "127.0.0.6"}
GARDEN_URL = "http://pay.isp.example/portal"


@cache
def fr_dictionary() -> Dictionary:
    """FreeRADIUS's dictionaries for the attributes under test (an independent decoder)."""
    names = ["rfc2865", "rfc2866", "rfc2869", "rfc3162", "rfc4818", "rfc6911", "mikrotik",
             "wispr", "cisco", "erx", "microsoft"]
    return Dictionary(*(str(FR / f"dictionary.{n}") for n in names))


def login(radius: RadiusServer, nas_type: str, username: str, password: str,
          mac: str = "02:00:00:00:00:01") -> tuple[int | None, dict[str, list[object]]]:
    """A PAP PPPoE login from the NAS of *nas_type*: the reply code and its attributes."""
    client = Client(server="127.0.0.1", authport=radius.auth_port, secret=SECRET.encode(),
                    dict=fr_dictionary())
    client.bind((NAS_IPS[nas_type], 0))
    client.timeout, client.retries = 3, 1
    pkt = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username)
    pkt.add_message_authenticator()
    pkt["User-Password"] = pkt.PwCrypt(password)
    pkt["NAS-IP-Address"] = NAS_IPS[nas_type]
    pkt["Service-Type"] = "Framed-User"
    pkt["Framed-Protocol"] = "PPP"
    pkt["Calling-Station-Id"] = mac
    try:
        reply = client.SendPacket(pkt)
    except Timeout:
        return None, {}
    finally:
        client._socket.close()
    attrs: dict[str, list[object]] = {}
    for key in reply.keys():  # noqa: SIM118 - pyrad's Packet iterates differently
        attrs[str(key)] = list(reply[key])
    return reply.code, attrs


@pytest.fixture(scope="module")
def field_db(engine: Engine, server_box) -> Engine:  # type: ignore[no-untyped-def]
    """One NAS of each type, the plan Home-20 (20M down, 5M up, pool-home) and subscribers."""
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        for nas_type, ip in NAS_IPS.items():
            create_nas(s, server_box, name=f"nas-{nas_type}", ip=ip, secret=SECRET,
                       nas_type=nas_type)
        make_plan(s, ip_pool="pool-home")
        make_subscriber(s, server_box, username="payer", simultaneous_use=50)
        make_subscriber(s, server_box, username="late", simultaneous_use=50)
        subscribers.change_status(s, "late", SubscriberStatus.SUSPENDED, actor="t")
        make_subscriber(s, server_box, username="gone", simultaneous_use=50)
        subscribers.change_status(s, "gone", SubscriberStatus.DISABLED, actor="t")
        make_subscriber(s, server_box, username="victim", simultaneous_use=50)
        make_subscriber(s, server_box, username=" Case.User ", simultaneous_use=50)
        make_plan(s, name="Dual", rate="50M/10M", ip_pool="pool-dual")
        plans.set_plan_addressing(s, "Dual", ipv6_pool="v6-wan", delegated_ipv6_pool="v6-pd",
                                  idle_timeout=600, actor="t")
        make_subscriber(s, server_box, username="v6pool", plan="Dual", simultaneous_use=50)
        make_subscriber(s, server_box, username="v6fixed", simultaneous_use=50)
        subscribers.set_ipv6(s, "v6fixed", framed_prefix="2001:db8:10::/64",
                             delegated_prefix="2001:db8:20::/56", pool=None, actor="t")
    return engine


@pytest.fixture(scope="module")
def field_radius(field_db: Engine, database_url: str, data_dir: Path
                 ) -> Iterator[RadiusServer]:
    # a payment-portal URL (WISPr can redirect) but no garden pool (accel-ppp cannot garden)
    server = RadiusServer(database_url, data_dir, RADBILL_WALLED_GARDEN_URL=GARDEN_URL).start()
    wait_for(lambda: login(server, "mikrotik", "payer", "s3cret")[0] == packet.AccessAccept,
             timeout=10)
    yield server
    server.stop()


ACTIVE = {
    "mikrotik": {"Mikrotik-Rate-Limit": ["5M/20M"]},
    "accel-ppp": {"Filter-Id": ["20000/5000"]},
    "wispr": {"WISPr-Bandwidth-Max-Up": [5_000_000], "WISPr-Bandwidth-Max-Down": [20_000_000]},
    "cisco": {"Cisco-AVPair": ["ip:sub-qos-policy-in=radbill-5000k",
                               "ip:sub-qos-policy-out=radbill-20000k"]},
    "juniper": {"ERX-Service-Activate": ["radbill-rate(20000000,5000000)"]},
    "other": {},
}
VENDOR_PREFIXES = ("Mikrotik-", "Filter-Id", "WISPr-", "Cisco-", "ERX-")


def vendor_attrs(attrs: dict[str, list[object]]) -> dict[str, list[object]]:
    return {k: v for k, v in attrs.items() if k.startswith(VENDOR_PREFIXES)}


@pytest.mark.parametrize("nas_type", list(NAS_IPS))
def test_each_nas_type_gets_its_own_rate_attributes(field_radius, nas_type
                                                    ) -> None:  # type: ignore[no-untyped-def]
    code, attrs = login(field_radius, nas_type, "payer", "s3cret")
    assert code == packet.AccessAccept
    assert vendor_attrs(attrs) == ACTIVE[nas_type]
    assert attrs["Framed-Pool"] == ["pool-home"] and attrs["Acct-Interim-Interval"] == [300]


GARDEN = {
    "mikrotik": {"Mikrotik-Address-List": ["radbill-suspended"],
                 "Mikrotik-Rate-Limit": ["256k/256k"]},
    "wispr": {"WISPr-Redirection-URL": [GARDEN_URL], "WISPr-Bandwidth-Max-Up": [256_000],
              "WISPr-Bandwidth-Max-Down": [256_000]},
    "cisco": {"Cisco-AVPair": ["ip:inacl=radbill-suspended",
                               "ip:sub-qos-policy-in=radbill-256k",
                               "ip:sub-qos-policy-out=radbill-256k"]},
    "juniper": {"ERX-Ingress-Policy-Name": ["radbill-suspended"],
                "ERX-Service-Activate": ["radbill-rate(256000,256000)"]},
}


@pytest.mark.parametrize("nas_type", list(NAS_IPS))
def test_suspended_subscriber_is_gardened_where_the_nas_can_and_rejected_where_it_cannot(
        field_radius, field_db, nas_type) -> None:  # type: ignore[no-untyped-def]
    code, attrs = login(field_radius, nas_type, "late", "s3cret")
    if nas_type in GARDEN:
        assert code == packet.AccessAccept
        assert vendor_attrs(attrs) == GARDEN[nas_type]
        return
    # accel-ppp without a garden pool, and a NAS of unknown kind, would ignore the garden
    # attributes: an accept would be free Internet
    assert code == packet.AccessReject
    assert attrs.get("Reply-Message") == ["Login failed"]
    assert vendor_attrs(attrs) == {}

    def logged():  # type: ignore[no-untyped-def]
        with session_factory(field_db)() as s:
            return s.scalars(select(PostAuth.reason).where(
                PostAuth.username == "late", PostAuth.nas_ip == NAS_IPS[nas_type],
                PostAuth.decision == "reject")).first()

    assert wait_for(logged, timeout=10) == "suspended-nas-cannot-garden"


@pytest.mark.parametrize("nas_type", list(NAS_IPS))
def test_disabled_and_wrong_password_get_the_same_generic_reject(field_radius, nas_type
                                                                  ) -> None:  # type: ignore[no-untyped-def]
    answers = {login(field_radius, nas_type, user, password)[1].get("Reply-Message", [None])[0]
               for user, password in [("gone", "s3cret"), ("gone", "wrong"), ("late", "wrong"),
                                      ("payer", "wrong"), ("nobody", "s3cret")]}
    assert answers == {"Login failed"}


def test_failed_logins_throttle_the_user_but_not_its_own_device(field_radius, field_db
                                                                ) -> None:  # type: ignore[no-untyped-def]
    home, elsewhere = "02:00:00:00:aa:01", "02:00:00:00:bb:02"
    assert login(field_radius, "mikrotik", "victim", "s3cret", home)[0] == packet.AccessAccept
    for _ in range(5):  # RADBILL_LOGIN_FAILURES_BEFORE_THROTTLE's default
        code, attrs = login(field_radius, "mikrotik", "victim", "guess", elsewhere)
        assert code == packet.AccessReject and attrs["Reply-Message"] == ["Login failed"]
    # now even the right password is refused without a check, with the same words ...
    code, attrs = login(field_radius, "mikrotik", "victim", "s3cret", elsewhere)
    assert code == packet.AccessReject and attrs["Reply-Message"] == ["Login failed"]
    # ... except from the device that last logged in: a guesser cannot lock the owner out
    assert login(field_radius, "mikrotik", "victim", "s3cret", home)[0] == packet.AccessAccept

    def reasons():  # type: ignore[no-untyped-def]
        with session_factory(field_db)() as s:
            found = list(s.scalars(select(PostAuth.reason).where(PostAuth.username == "victim")
                                   .order_by(PostAuth.id)))
        return found if len(found) >= 8 else None

    assert wait_for(reasons, timeout=10) == ["active", *["bad-password"] * 5,
                                             "login-throttled", "active"]


@pytest.mark.parametrize("spelling", ["case.user", "CASE.USER", "Case.User", " case.USER "])
def test_usernames_match_in_any_case_and_without_spaces(field_radius, spelling
                                                         ) -> None:  # type: ignore[no-untyped-def]
    assert login(field_radius, "mikrotik", spelling, "s3cret")[0] == packet.AccessAccept


def test_a_username_differing_only_in_case_is_refused(field_db, server_box
                                                      ) -> None:  # type: ignore[no-untyped-def]
    from radbill.errors import Conflict

    with pytest.raises(Conflict, match="already exists"), \
            session_factory(field_db)() as s, s.begin():
        make_subscriber(s, server_box, username="CASE.user")


def test_ipv6_from_the_plan_and_the_subscriber_and_idle_timeout(field_radius
                                                                ) -> None:  # type: ignore[no-untyped-def]
    code, attrs = login(field_radius, "mikrotik", "v6pool", "s3cret")
    assert code == packet.AccessAccept
    assert attrs["Framed-Pool"] == ["pool-dual"]
    assert attrs["Framed-IPv6-Pool"] == ["v6-wan"]
    assert attrs["Delegated-IPv6-Prefix-Pool"] == ["v6-pd"]
    assert attrs["Idle-Timeout"] == [600]
    code, attrs = login(field_radius, "mikrotik", "v6fixed", "s3cret")
    assert code == packet.AccessAccept
    assert attrs["Framed-IPv6-Prefix"] == ["2001:db8:10::/64"]
    assert attrs["Delegated-IPv6-Prefix"] == ["2001:db8:20::/56"]
    assert "Idle-Timeout" not in attrs and "Framed-IPv6-Pool" not in attrs


def test_accounting_keeps_the_latest_framed_ip_of_a_session(field_radius, field_db
                                                            ) -> None:  # type: ignore[no-untyped-def]
    from radius.models import RadiusSession

    c = field_radius.client()
    assert c.account("Start", "payer", "readdr-1", framed_ip="100.64.7.1")
    assert c.account("Start", "payer", "readdr-1", framed_ip="100.64.7.2", session_time=5)

    def address():  # type: ignore[no-untyped-def]
        with session_factory(field_db)() as s:
            return s.scalar(select(RadiusSession.framed_ip).where(
                RadiusSession.acct_session_id == "readdr-1"))

    assert wait_for(lambda: address() == "100.64.7.2", timeout=10)


@pytest.fixture(scope="module")
def lapse_radius(field_db: Engine, database_url: str, tmp_path_factory, data_dir: Path
                 ) -> Iterator[RadiusServer]:  # type: ignore[no-untyped-def]
    """The same database, provisional sessions lapsing after 5 s (the minimum), and a
    walled-garden pool apart from the paying pool."""
    server = RadiusServer(database_url, tmp_path_factory.mktemp("lapse"),
                          RADBILL_PROVISIONAL_SESSION_SECONDS="5",
                          RADBILL_WALLED_GARDEN_POOL="garden-pool",
                          RADBILL_SECRET_KEY_FILE=str(data_dir / "secret.key")).start()
    yield server
    server.stop()


def test_an_accepted_login_counts_before_its_start_and_lapses_without_one(
        lapse_radius, field_db, server_box) -> None:  # type: ignore[no-untyped-def]
    from simulators.nas import NasSimulator

    with session_factory(field_db)() as s, s.begin():
        make_subscriber(s, server_box, username="sharer")  # Simultaneous-Use 1
        make_subscriber(s, server_box, username="sharer2")
    wait_for(lambda: login(lapse_radius, "mikrotik", "sharer", "s3cret", "02:00:00:00:cc:00"
                           )[0] == packet.AccessAccept, timeout=10)
    # no Start yet (PPPoE sends it seconds later): ten other devices share the account now
    codes = [login(lapse_radius, "mikrotik", "sharer", "s3cret", f"02:00:00:00:cc:{i:02x}")[0]
             for i in range(1, 11)]
    assert codes == [packet.AccessReject] * 10
    # the same device may redial (it replaces its own provisional session)
    assert login(lapse_radius, "mikrotik", "sharer", "s3cret", "02:00:00:00:cc:00"
                 )[0] == packet.AccessAccept
    # no Start ever comes: the provisional session lapses and another device gets in
    wait_for(lambda: login(lapse_radius, "mikrotik", "sharer", "s3cret", "02:00:00:00:cc:20"
                           )[0] == packet.AccessAccept, timeout=30, interval=0.5)

    # a burst through the NAS simulator: ten concurrent logins of one account, the Start of
    # the first one seconds away; one gets in
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=lapse_radius.auth_port,
                       acct_port=lapse_radius.acct_port, secret=SECRET).start()
    try:
        results = sim.login_many([("sharer2", "s3cret")] * 10, concurrency=10)
        assert sum(r.accepted for r in results) == 1
        # its Start arrives; once the provisional session has lapsed, the real one holds the
        # slot: another device is still refused
        from radius.models import RadiusSession

        def started():  # type: ignore[no-untyped-def]
            with session_factory(field_db)() as s:
                return s.scalar(select(RadiusSession.id).where(
                    RadiusSession.username == "sharer2", RadiusSession.stopped_at.is_(None)))

        wait_for(started, timeout=10)
        time.sleep(6)  # past the 5 s lapse (a wait, not a measurement)
        assert login(lapse_radius, "mikrotik", "sharer2", "s3cret", "02:00:00:00:dd:01"
                     )[0] == packet.AccessReject
    finally:
        sim.stop()


def test_a_walled_garden_pool_apart_from_the_paying_pool(lapse_radius
                                                         ) -> None:  # type: ignore[no-untyped-def]
    def answered():  # type: ignore[no-untyped-def]
        reply = login(lapse_radius, "accel-ppp", "late", "s3cret")
        return reply if reply[0] else None

    code, attrs = wait_for(answered, timeout=10)
    # accel-ppp holds a suspended subscriber by address pool: with one set, it can
    assert code == packet.AccessAccept
    assert attrs["Framed-Pool"] == ["garden-pool"] and attrs["Filter-Id"] == ["256/256"]
    code, attrs = login(lapse_radius, "mikrotik", "late", "s3cret")
    assert code == packet.AccessAccept and attrs["Framed-Pool"] == ["garden-pool"]
    assert attrs["Mikrotik-Address-List"] == ["radbill-suspended"]
    code, attrs = login(lapse_radius, "mikrotik", "payer", "s3cret")
    assert attrs["Framed-Pool"] == ["pool-home"]  # paying subscribers keep theirs


def test_a_session_that_started_and_ended_frees_its_provisional_slot(field_radius, field_db,
                                                                    server_box
                                                                    ) -> None:  # type: ignore[no-untyped-def]
    """Log in, Start, Stop, log in again from another device: no 90 s wait for the lapse."""
    from radius.models import RadiusSession
    from simulators.nas import NasSimulator

    with session_factory(field_db)() as s, s.begin():
        make_subscriber(s, server_box, username="hopper")  # Simultaneous-Use 1
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=field_radius.auth_port,
                       acct_port=field_radius.acct_port, secret=SECRET).start()
    try:
        wait_for(lambda: sim.login("hopper", "s3cret").accepted, timeout=10, interval=0.5)

        def closed():  # type: ignore[no-untyped-def]
            with session_factory(field_db)() as s:
                return s.scalar(select(RadiusSession.id).where(
                    RadiusSession.username == "hopper", RadiusSession.stopped_at.is_not(None)))

        assert sim.logout("hopper") == 1
        wait_for(closed, timeout=10)
        # the provisional session lives 90 s here: only its Start can have ended it
        wait_for(lambda: sim.login("hopper", "s3cret", mac="02:00:00:00:ee:02").accepted,
                 timeout=30, interval=0.5)
    finally:
        sim.stop()


def test_the_cli_finds_a_subscriber_in_any_case(field_db) -> None:  # type: ignore[no-untyped-def]
    with session_factory(field_db)() as s:
        assert subscribers.get_subscriber(s, " CASE.user ").username == "Case.User"
