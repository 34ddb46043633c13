"""Hotspot prepaid quotas: the Access-Accept carries what is left (Session-Timeout,
Mikrotik-Total-Limit and its Gigawords part) so the NAS enforces it itself; the next login
gets the new remainder; a used-up quota is refused; a new period makes it whole again."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from billing.models import Subscriber
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.ingest import apply_accounting
from radius.policy import AuthRequest, PolicyConfig, Reason, decide
from radius.snapshot import AuthSnapshot
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import G, acct
from usage import service

DHAKA = ZoneInfo("Asia/Dhaka")
GB = 10**9
NOW = dt.datetime(2026, 11, 20, 6, tzinfo=dt.UTC)


@pytest.fixture
def world(db: Engine, box: SecretBox) -> Engine:
    with session_factory(db)() as s, s.begin():
        make_plan(s, "Voucher", rate="5M/2M", data_cap="20G", time_quota_s=36_000)
        make_plan(s, "Hotspot-FUP", rate="5M/2M", data_cap="20G", fup_rate="1M/1M")
        make_subscriber(s, box, username="hana", plan="Voucher", service="hotspot",
                        password="pw-12345", activated_on=dt.date(2026, 11, 1))
        make_subscriber(s, box, username="pat", plan="Voucher", service="pppoe",
                        password="pw-12345", activated_on=dt.date(2026, 11, 1))
        make_subscriber(s, box, username="fay", plan="Hotspot-FUP", service="hotspot",
                        password="pw-12345", activated_on=dt.date(2026, 11, 1))
    return db


def used(engine: Engine, user: str, secs: int, up: int, down: int, sid: str = "h1") -> None:
    when = dt.datetime(2026, 11, 20, 11, tzinfo=DHAKA).astimezone(dt.UTC)
    with session_factory(engine)() as s, s.begin():
        assert apply_accounting(s, [acct("Stop", sid, user, when, secs, up, down)]) == {}


def login(engine: Engine, snap: AuthSnapshot, box: SecretBox, user: str):  # type: ignore[no-untyped-def]
    with session_factory(engine)() as s, s.begin():
        snap.refresh(s, box)
    sub, plan, n = snap.lookup(user)
    return decide(AuthRequest(username=user, service_type="Login-User"), sub, plan, n,
                  PolicyConfig(), NOW)


def test_the_accept_carries_what_is_left_and_the_next_login_the_new_remainder(
        world: Engine, box: SecretBox) -> None:
    snap = AuthSnapshot()
    first = dict(login(world, snap, box, "hana").reply)
    # nothing used yet: the whole quota (20G is 4 gigawords and 2,820,130,816 bytes)
    assert first["Session-Timeout"] == "36000"
    assert (int(first["Mikrotik-Total-Limit-Gigawords"]) << 32
            | int(first["Mikrotik-Total-Limit"])) == 20 * GB
    assert first["Mikrotik-Total-Limit-Gigawords"] == "4"
    used(world, "hana", 1_000, 3 * G, 5 * GB)  # 3 GiB up, 5 GB down, 1,000 s
    d = login(world, snap, box, "hana")
    assert d.accept and d.reason is Reason.ACTIVE
    reply = dict(d.reply)
    left = 20 * GB - 3 * G - 5 * GB
    assert reply["Session-Timeout"] == "35000"
    assert reply["Mikrotik-Total-Limit"] == str(left & 0xFFFFFFFF)
    assert reply["Mikrotik-Total-Limit-Gigawords"] == str(left >> 32)
    used(world, "hana", 35_000, 3 * G, 5 * GB, sid="h2")  # the time is used up
    d = login(world, snap, box, "hana")
    assert not d.accept and d.reason is Reason.QUOTA_EXHAUSTED


def test_a_used_up_data_quota_is_refused_and_a_new_period_restores_it(
        world: Engine, box: SecretBox) -> None:
    snap = AuthSnapshot()
    used(world, "hana", 10, 10 * GB, 10 * GB)
    assert login(world, snap, box, "hana").reason is Reason.QUOTA_EXHAUSTED
    with session_factory(world)() as s, s.begin():
        hana = s.scalars(select(Subscriber).where(Subscriber.username == "hana")).one()
        hana.period_start, hana.period_end = dt.date(2026, 12, 1), dt.date(2027, 1, 1)
        assert service.renew_periods(s, dt.date(2026, 12, 1)) == 1
    reply = dict(login(world, snap, box, "hana").reply)
    assert reply["Session-Timeout"] == "36000" and reply["Mikrotik-Total-Limit-Gigawords"] == "4"


def test_no_quota_attributes_without_a_hotspot_quota(world: Engine, box: SecretBox) -> None:
    snap = AuthSnapshot()
    used(world, "pat", 10, 1 * GB, 1 * GB)
    used(world, "fay", 10, 1 * GB, 1 * GB)
    for user in ("pat", "fay"):  # PPPoE on the same plan; a Hotspot cap with a FUP speed
        with session_factory(world)() as s, s.begin():
            snap.refresh(s, box)
        sub, plan, _ = snap.lookup(user)
        d = decide(AuthRequest(username=user), sub, plan, 0, PolicyConfig(), NOW)
        assert d.accept
        assert not {"Session-Timeout", "Mikrotik-Total-Limit"} & set(dict(d.reply))
