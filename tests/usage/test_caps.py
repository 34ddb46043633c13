"""Data caps: the throttle at the cap (what a login gets, what the running session is sent),
80% and 100% notices once per period, what the cap counts, the next period restoring full
speed, exemption and counter reset (audited), top-ups (a charge on a numbered document, the
cap raised, the throttle lifted), and the set of subscribers over their cap."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.models import (
    EnforcementRequest,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    LedgerEntry,
    Subscriber,
)
from billing.run import billing_run
from coa.queue import desired_for
from notify.models import Outbox
from radbill.audit import AuditLog
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.ingest import apply_accounting
from radius.policy import AuthRequest, PolicyConfig, Reason, decide
from radius.snapshot import plan_record, subscriber_record
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import acct
from usage import service
from usage.models import Topup, UsageState

DHAKA = ZoneInfo("Asia/Dhaka")
GB = 10**9
TODAY = dt.date(2026, 11, 20)


def at(day: int, hour: int = 12, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=DHAKA).astimezone(dt.UTC)


@pytest.fixture
def world(db: Engine, box: SecretBox) -> Engine:
    with session_factory(db)() as s, s.begin():
        make_plan(s, "Capped", rate="20M/5M", data_cap="10G", fup_rate="1M/512k")
        make_plan(s, "Up-Capped", rate="20M/5M", data_cap="10G", fup_rate="1M/512k",
                  cap_counts="upload")
        make_plan(s, "Uncapped", rate="20M/5M")
        for name, plan in (("alice", "Capped"), ("bob", "Capped"), ("carol", "Up-Capped"),
                           ("dave", "Uncapped")):
            make_subscriber(s, box, username=name, plan=plan, password="pw-12345",
                            activated_on=dt.date(2026, 11, 1))
    return db


def interim(s: Session, user: str, down: int, up: int = 0, day: int = 10, hour: int = 12,
            month: int = 11, sid: str = "s1") -> None:
    # every session began on the 1st at midnight: its Acct-Session-Time runs with the clock
    # (a session time that stood still while hours passed would be a NAS reset: a new run)
    when = at(day, hour, month)
    secs = int((when - at(1, 0)).total_seconds())
    assert apply_accounting(s, [acct("Interim-Update", sid, user, when, secs, up, down)]) == {}


def sub_of(s: Session, name: str) -> Subscriber:
    return s.scalars(select(Subscriber).where(Subscriber.username == name)).one()


def requests(s: Session, name: str) -> list[str]:
    return list(s.scalars(select(EnforcementRequest.action).join(
        Subscriber, Subscriber.id == EnforcementRequest.subscriber_id)
        .where(Subscriber.username == name).order_by(EnforcementRequest.id)))


def notices(s: Session, name: str) -> list[str]:
    return list(s.scalars(select(Outbox.dedupe_key).join(
        Subscriber, Subscriber.id == Outbox.subscriber_id)
        .where(Subscriber.username == name, Outbox.kind.like("usage_%")).order_by(Outbox.id)))


def audits(s: Session, sub_id: int) -> list[str]:
    return list(s.scalars(select(AuditLog.action).where(
        AuditLog.entity == "subscriber", AuditLog.entity_id == str(sub_id),
        AuditLog.action.like("usage.%")).order_by(AuditLog.id)))


def login(s: Session, box: SecretBox, name: str) -> tuple[Reason, dict[str, str]]:
    sub = sub_of(s, name)
    d = decide(AuthRequest(username=name, service_type="Framed-User"),
               subscriber_record(sub, box), plan_record(sub.plan), 0, PolicyConfig(),
               dt.datetime(2026, 11, 20, tzinfo=dt.UTC))
    assert d.accept
    return d.reason, dict(d.reply)


def test_crossing_the_cap_throttles_once_with_notices_at_80_and_100(world: Engine,
                                                                     box: SecretBox) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        interim(s, "alice", 7 * GB)
    with factory() as s:
        assert notices(s, "alice") == [] and requests(s, "alice") == []
        assert login(s, box, "alice")[1]["Mikrotik-Rate-Limit"].startswith("5M/20M")
    with factory() as s, s.begin():
        interim(s, "alice", 8 * GB)
    with factory() as s:
        assert notices(s, "alice") == [f"usage80:{sub_of(s, 'alice').id}:2026-11-01"]
        assert not sub_of(s, "alice").cap_throttled and requests(s, "alice") == []
    with factory() as s, s.begin():
        before = sub_of(s, "alice").auth_version
        interim(s, "alice", 6 * GB, day=11, sid="s2")  # another session: 8G + 6G, over 10G
        assert sub_of(s, "alice").auth_version > before  # RADIUS sees the change
    with factory() as s:
        alice = sub_of(s, "alice")
        assert alice.cap_throttled and not alice.fup_throttled
        assert notices(s, "alice") == [f"usage80:{alice.id}:2026-11-01",
                                       f"usage100:{alice.id}:2026-11-01"]
        assert requests(s, "alice") == ["throttle"]
        assert audits(s, alice.id) == ["usage.throttle"]
        reason, reply = login(s, box, "alice")  # a new login gets the fair-usage speed
        assert reason is Reason.THROTTLED and reply["Mikrotik-Rate-Limit"] == "512k/1M"
        # what the enforcement worker sends the running PPPoE session: a CoA with that rate
        assert desired_for(alice, box, Settings.from_env({}),
                           dt.datetime(2026, 11, 20, tzinfo=dt.UTC)).rate_limit == "512k/1M"
        assert not sub_of(s, "bob").cap_throttled
    with factory() as s, s.begin():
        interim(s, "alice", 9 * GB, day=12, sid="s2")  # more usage: nothing new to send
    with factory() as s:
        assert len(notices(s, "alice")) == 2 and requests(s, "alice") == ["throttle"]


def test_the_cap_counts_what_the_plan_says(world: Engine) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        interim(s, "carol", 50 * GB, 1 * GB)  # upload-only cap: download does not count
        interim(s, "bob", 6 * GB, 5 * GB)  # both: 11G
    with factory() as s:
        assert not sub_of(s, "carol").cap_throttled and notices(s, "carol") == []
        assert sub_of(s, "bob").cap_throttled
    with factory() as s, s.begin():
        interim(s, "carol", 50 * GB, 10 * GB, hour=13)
    with factory() as s:
        assert sub_of(s, "carol").cap_throttled


def test_the_next_period_restores_full_speed(world: Engine, box: SecretBox) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        interim(s, "alice", 11 * GB)
    billing_run(factory, dt.date(2026, 12, 1))  # billing moves the period on
    with factory() as s, s.begin():
        assert service.renew_periods(s, dt.date(2026, 12, 1)) == 1
    with factory() as s:
        alice = sub_of(s, "alice")
        assert alice.period_start == dt.date(2026, 12, 1)
        assert not alice.cap_throttled
        assert requests(s, "alice") == ["throttle", "unthrottle"]
        assert audits(s, alice.id) == ["usage.throttle", "usage.unthrottle"]
        assert login(s, box, "alice")[0] is Reason.ACTIVE
        state = s.get(UsageState, alice.id)
        assert state is not None and (state.period_start, state.download) == (
            dt.date(2026, 12, 1), 0)
    with factory() as s, s.begin():
        assert service.renew_periods(s, dt.date(2026, 12, 1)) == 0  # nothing left to do
        interim(s, "alice", 10 * GB, day=2, month=12, sid="s2")  # the new period's notices
    with factory() as s:
        assert notices(s, "alice")[-2:] == [
            f"usage80:{sub_of(s, 'alice').id}:2026-12-01",
            f"usage100:{sub_of(s, 'alice').id}:2026-12-01"]
        assert sub_of(s, "alice").cap_throttled


def test_exemption_and_reset_lift_the_throttle_and_are_audited(world: Engine) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        interim(s, "alice", 11 * GB)
        interim(s, "bob", 11 * GB)
    with factory() as s, s.begin():
        service.set_exempt(s, "alice", True, today=TODAY, reason="hospital line", actor="op")
        service.reset_counter(s, "bob", today=TODAY, reason="billing error", actor="op")
    with factory() as s:
        for name, action in (("alice", "usage.exempt"), ("bob", "usage.reset")):
            sub = sub_of(s, name)
            assert not sub.cap_throttled
            assert requests(s, name) == ["throttle", "unthrottle"]
            assert audits(s, sub.id) == ["usage.throttle", action, "usage.unthrottle"]
        row = s.scalars(select(AuditLog).where(AuditLog.action == "usage.reset")).one()
        assert row.actor == "op" and row.reason == "billing error"
    with factory() as s, s.begin():
        interim(s, "alice", 30 * GB, hour=14)  # exempt: no throttle whatever she uses
        interim(s, "bob", 12 * GB, hour=14)  # counted again from the reset: 1G since
    with factory() as s:
        assert not sub_of(s, "alice").cap_throttled and not sub_of(s, "bob").cap_throttled
    with factory() as s, s.begin(), pytest.raises(Exception, match="reason"):
        service.reset_counter(s, "bob", today=TODAY, reason=" ", actor="op")


def test_a_top_up_is_charged_raises_the_cap_and_lifts_the_throttle(world: Engine) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        service.add_pack(s, "Capped", "5G extra", "5G", "200", actor="op")
        interim(s, "alice", 11 * GB)
    with factory() as s, s.begin():
        topup = service.buy_topup(s, "alice", "5G extra", today=TODAY, actor="op")
        number = topup.document
    with factory() as s:
        alice = sub_of(s, "alice")
        assert not alice.cap_throttled
        assert requests(s, "alice") == ["throttle", "unthrottle"]
        inv = s.scalars(select(Invoice).where(Invoice.number == number)).one()
        assert inv.kind is InvoiceKind.CHARGE and str(inv.total) == "200.00"
        assert inv.subscriber_id == alice.id
        assert s.scalars(select(InvoiceLine.description).where(
            InvoiceLine.invoice_id == inv.id)).one().startswith("Data top-up 5G extra")
        assert [str(a) for a in s.scalars(select(LedgerEntry.amount).where(
            LedgerEntry.invoice_id == inv.id))] == ["200.00"]
        assert s.scalars(select(Topup.size_bytes)).all() == [5 * GB]
        assert "usage.topup" in audits(s, alice.id)
        state = s.get(UsageState, alice.id)
        assert state is not None and state.extra_bytes == 5 * GB
    with factory() as s, s.begin():
        interim(s, "alice", 15 * GB, hour=13)  # past the raised cap (15G)
    with factory() as s:
        assert sub_of(s, "alice").cap_throttled
    with factory() as s, s.begin(), pytest.raises(Exception, match="no top-up pack"):
        service.buy_topup(s, "dave", "5G extra", today=TODAY, actor="op")


def test_over_cap_lists_who_is_over_and_whether_throttled(world: Engine) -> None:
    factory = session_factory(world)
    with factory() as s, s.begin():
        interim(s, "alice", 10 * GB)  # at the cap: over
        interim(s, "bob", 10 * GB - 1)  # one byte short: a near miss
        interim(s, "dave", 500 * GB)  # no cap at all
    with factory() as s, s.begin():
        rows = service.over_cap(s, TODAY)
        assert [(r.username, r.counted_bytes, r.cap_bytes, r.throttled, r.exempt)
                for r in rows] == [("alice", 10 * GB, 10 * GB, True, False)]
        service.set_exempt(s, "alice", True, today=TODAY, reason="vip", actor="op")
    with factory() as s:
        rows = service.over_cap(s, TODAY)
        assert [(r.username, r.throttled, r.exempt) for r in rows] == [("alice", False, True)]
        # a new period (billing moved it) is not over any more, before anything rolls
        sub_of(s, "alice").period_start = dt.date(2026, 12, 1)
        s.flush()
        assert service.over_cap(s, TODAY) == []
