from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import plans, subscribers
from billing.models import SubscriberStatus
from radbill.audit import AuditLog
from radbill.db import AUTH_FEED, ChangeCounter
from radbill.errors import Conflict, InvalidInput, NotFound
from tests.factories import make_plan, make_subscriber


def test_plan_stores_exact_decimal_and_rates(session) -> None:  # type: ignore[no-untyped-def]
    plan = make_plan(session, price="499.50", burst="40M/10M", data_cap="100G",
                     fup_rate="2M/1M", grace_days=3, late_fee="50")
    session.commit()
    session.expire_all()
    got = plans.get_plan(session, "Home-20")
    assert got.price == Decimal("499.50")
    assert (got.download_bps, got.upload_bps) == (20_000_000, 5_000_000)
    assert got.burst_threshold_download_bps == 15_000_000
    assert got.data_cap_bytes == 100 * 10**9
    assert got.late_fee == Decimal("50.00")
    assert plan.id == got.id


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"price": "abc"}, "malformed amount"), ({"price": "-1"}, "zero or more"),
     ({"price": "1.005"}, "two decimals"), ({"currency": "taka"}, "ISO 4217"),
     ({"rate": "fast"}, "malformed rate"), ({"fup_rate": "30M/5M"}, "slower"),
     ({"billing_cycle": "days"}, "validity"), ({"grace_days": -1}, "grace"),
     ({"burst_time": 5}, "need --burst"), ({"data_cap": "lots"}, "malformed size")],
)
def test_plan_validation(session, kw, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        make_plan(session, **kw)


def test_duplicate_plan_is_a_conflict(session) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    with pytest.raises(Conflict):
        make_plan(session)


def test_subscriber_password_encrypted_at_rest_and_reversible(session, box) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    sub = make_subscriber(session, box, mac="aa-bb-cc-dd-ee-ff", ip="10.0.0.5")
    session.commit()
    assert "s3cret" not in sub.password_enc
    assert box.decrypt(sub.password_enc) == "s3cret"
    assert sub.mac_address == "AA:BB:CC:DD:EE:FF"
    assert sub.static_ip == "10.0.0.5"


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [({"username": "bad user"}, InvalidInput, "invalid username"),
     ({"username": "x" * 65}, InvalidInput, "invalid username"),
     ({"password": ""}, InvalidInput, "empty"),
     ({"password": "x" * 129}, InvalidInput, "128 bytes"),
     ({"password": "a\x00b"}, InvalidInput, "control"),
     ({"mac": "zz:zz"}, InvalidInput, "MAC"),
     ({"ip": "10.0.0.256"}, InvalidInput, "IPv4"),
     ({"ip": "224.0.0.1"}, InvalidInput, "cannot be assigned"),
     ({"ip": "10.0.0.9", "pool": "p"}, InvalidInput, "not both"),
     ({"service": "dialup"}, InvalidInput, "service"),
     ({"plan": "Nope"}, NotFound, "unknown plan"),
     ({"simultaneous_use": 0}, InvalidInput, "simultaneous"),
     ({"phone": "call me"}, InvalidInput, "phone"),
     ({"email": "nope"}, InvalidInput, "e-mail")],
)
def test_subscriber_validation_writes_nothing(session, box, kw, error, message) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    session.commit()
    with pytest.raises(error, match=message):
        make_subscriber(session, box, **kw)
    session.rollback()
    assert subscribers.list_subscribers(session) == []


def test_duplicate_username_and_ip_are_conflicts_from_the_database(session, box) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    make_subscriber(session, box, ip="10.0.0.5")
    with pytest.raises(Conflict, match="already exists"):
        make_subscriber(session, box)
    with pytest.raises(Conflict, match=r"10\.0\.0\.5"):
        make_subscriber(session, box, username="bob", ip="10.0.0.5")
    session.commit()  # the first subscriber survives the failed attempts
    assert [s.username for s in subscribers.list_subscribers(session)] == ["alice"]


def test_status_transitions_are_audited_and_bump_the_feed(session, box) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    make_subscriber(session, box)
    v0 = session.scalar(select(ChangeCounter.value).where(ChangeCounter.name == AUTH_FEED))
    assert subscribers.change_status(session, "alice", SubscriberStatus.SUSPENDED,
                                     actor="tester", reason="unpaid")
    assert not subscribers.change_status(session, "alice", SubscriberStatus.SUSPENDED,
                                         actor="tester")
    sub = subscribers.get_subscriber(session, "alice")
    assert sub.auth_version == v0 + 1
    row = session.scalars(select(AuditLog).where(AuditLog.action == "subscriber.suspended")).one()
    assert (row.actor, row.before, row.after, row.reason) == (
        "tester", {"status": "active"}, {"status": "suspended"}, "unpaid")
    subscribers.change_status(session, "alice", SubscriberStatus.TERMINATED, actor="t")
    with pytest.raises(Conflict, match="cannot become active"):
        subscribers.change_status(session, "alice", SubscriberStatus.ACTIVE, actor="t")


def test_search(session, box) -> None:  # type: ignore[no-untyped-def]
    make_plan(session)
    make_subscriber(session, box, full_name="Rahim Uddin", phone="+8801711000000")
    make_subscriber(session, box, username="bob")
    assert [s.username for s in subscribers.list_subscribers(session, search="rahim")] == ["alice"]
    assert [s.username for s in subscribers.list_subscribers(session, search="01711")] == ["alice"]
    assert len(subscribers.list_subscribers(session, status="active")) == 2
