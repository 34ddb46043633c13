"""Every reconciliation report: a constructed case that must appear and a near miss that must
not, on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from billing import accounts, payments, promises
from billing.isp import local_today, start_of_day_utc
from billing.isp import settings as isp_settings
from billing.models import (
    Holiday,
    Invoice,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    Payment,
    Subscriber,
    SubscriberStatus,
)
from radbill.crypto import SecretBox
from radbill.db import session_factory, utcnow
from radbill.errors import InvalidInput, NotFound
from radius import nas as nas_service
from radius.accounting import ACCOUNTING_ON, START, STOP, AcctRecord, apply
from radius.models import PostAuth
from reports import registry
from reports.registry import Params
from tests.factories import make_plan, make_subscriber

NAS1, NAS2, ROGUE = "10.0.0.1", "10.0.0.2", "10.9.9.9"


@pytest.fixture
def s(db: Engine) -> Iterator[Session]:
    with session_factory(db)() as session:
        yield session


@pytest.fixture
def now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


def today_of(s: Session, now: dt.datetime) -> dt.date:
    return local_today(isp_settings(s), now)


def params(s: Session, now: dt.datetime, **kw: Any) -> Params:
    return Params(now=now, today=today_of(s, now), interim_interval=300, **kw)


def run(s: Session, name: str, now: dt.datetime, **kw: Any) -> list[dict[str, Any]]:
    s.flush()
    return registry.run(s, name, params(s, now, **kw))


def users(rows: list[dict[str, Any]]) -> list[str | None]:
    return sorted((r["username"] for r in rows), key=lambda u: u or "")


def sub_id(s: Session, username: str) -> int:
    sub = s.query(Subscriber).filter_by(username=username).one()
    return sub.id


def start(s: Session, user: str, sid: str, at: dt.datetime, nas: str = NAS1,
          framed: str | None = None, sub: int | None = None) -> None:
    apply(s, AcctRecord(status=START, nas_ip=nas, event_time=at, username=user,
                        acct_session_id=sid, framed_ip=framed), sub)


def stop(s: Session, user: str, sid: str, at: dt.datetime, nas: str = NAS1,
         sub: int | None = None) -> None:
    apply(s, AcctRecord(status=STOP, nas_ip=nas, event_time=at, username=user,
                        acct_session_id=sid, session_time=60), sub)


def online(s: Session, user: str, at: dt.datetime, *, sid: str | None = None, nas: str = NAS1,
           framed: str | None = None) -> None:
    start(s, user, sid or f"{user}-1", at, nas, framed, sub_id(s, user))


def registered(s: Session, box: SecretBox, *addresses: str) -> None:
    for i, ip in enumerate(addresses, 1):
        nas_service.create_nas(s, box, name=f"nas{i}", ip=ip, secret="s3cret-s3cret")


def people(s: Session, box: SecretBox, *names: str, plan: str = "Home-20", **kw: Any) -> None:
    for name in names:
        make_subscriber(s, box, name, plan=plan, **kw)


# -- suspended-online ---------------------------------------------------------------------------


def test_suspended_online(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "sus1", "act1", "sus2", "sus3", "dis2", "dis3")
    day = today_of(s, now)
    for name in ("sus1", "sus2", "sus3"):
        accounts.suspend(s, s.query(Subscriber).filter_by(username=name).one(), day,
                         "unpaid", "test")
    for name in ("dis2", "dis3"):
        accounts.set_status_by_operator(s, name, SubscriberStatus.DISABLED, reason="x",
                                        actor="test")
    online(s, "sus1", now - dt.timedelta(minutes=2))
    online(s, "act1", now - dt.timedelta(minutes=2))  # active: fine
    online(s, "sus2", now - dt.timedelta(hours=2))
    stop(s, "sus2", "sus2-1", now - dt.timedelta(hours=1), sub=sub_id(s, "sus2"))  # closed
    # dis2's last login got full speed a minute into the (ISP's) day it was disabled; dis3's
    # the walled garden
    midnight = start_of_day_utc(isp_settings(s), day)
    s.add_all([PostAuth(at=midnight + dt.timedelta(minutes=1), username="dis2",
                        decision="accept", reason="active"),
               PostAuth(at=now - dt.timedelta(minutes=1), username="dis3", decision="accept",
                        reason="active"),
               PostAuth(at=now, username="dis3", decision="accept",
                        reason="suspended-walled-garden"),
               # near miss: full speed a minute before the day sus3 was suspended
               PostAuth(at=midnight - dt.timedelta(minutes=1), username="sus3",
                        decision="accept", reason="active")])
    rows = run(s, "suspended-online", now)
    assert users(rows) == ["dis2", "sus1"]
    by = {r["username"]: r for r in rows}
    assert by["sus1"]["nas_ip"] == NAS1 and by["sus1"]["acct_session_id"] == "sus1-1"
    assert by["sus1"]["finding"] == "online while suspended"
    assert "disconnect" in by["sus1"]["action"]
    assert by["dis2"]["finding"] == "last login got full speed while disabled"


# -- never-online -------------------------------------------------------------------------------


def test_never_online(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "idle", "user", "recent", "gone", "stillon")
    accounts.set_status_by_operator(s, "gone", SubscriberStatus.DISABLED, reason="x",
                                    actor="test")
    later = now + dt.timedelta(days=40)  # everybody was created 40 days before
    online(s, "user", later - dt.timedelta(days=31))  # last online 31 days ago
    stop(s, "user", "user-1", later - dt.timedelta(days=31), sub=sub_id(s, "user"))
    online(s, "recent", later - dt.timedelta(days=29))  # ... 29 days ago: near miss
    stop(s, "recent", "recent-1", later - dt.timedelta(days=29), sub=sub_id(s, "recent"))
    online(s, "stillon", later - dt.timedelta(days=35))  # online all the time: near miss
    rows = run(s, "never-online", later, days=30)
    assert users(rows) == ["idle", "user"]
    assert {r["username"]: r["finding"] for r in rows} == {
        "idle": "never online", "user": "not online for 30 days"}
    # created within the N days: not yet
    assert run(s, "never-online", now + dt.timedelta(days=20), days=30) == []
    assert users(run(s, "never-online", later, days=30, nas=NAS1)) == ["user"]


# -- over-cap -----------------------------------------------------------------------------------


def test_over_cap_lists_who_is_over_and_not_throttled(s: Session, box: SecretBox,
                                                      now: dt.datetime) -> None:
    from radius.ingest import apply_accounting
    from tests.usage.helpers import acct
    from usage import service as usage

    make_plan(s, "Capped", rate="20M/5M", data_cap="10G", fup_rate="1M/512k")
    make_plan(s, "NoFup", rate="20M/5M", data_cap="10G")
    today = today_of(s, now)
    for name, plan in (("lost", "Capped"), ("slowed", "Capped"), ("short", "Capped"),
                       ("vip", "Capped"), ("nofup", "NoFup")):
        make_subscriber(s, box, username=name, plan=plan, password="pw-12345",
                        activated_on=today)
    s.flush()
    # the ISP day of `now` (five minutes earlier is yesterday in Dhaka at 18:03 UTC, before
    # the subscribers' first period)
    seen = now
    for name, down in (("lost", 11 * 10**9), ("slowed", 12 * 10**9), ("short", 10**10 - 1),
                       ("vip", 20 * 10**9), ("nofup", 15 * 10**9)):
        assert apply_accounting(s, [acct("Interim-Update", f"{name}-1", name, seen, 600, 0,
                                         down)]) == {}
    usage.set_exempt(s, "vip", True, today=today, reason="board member", actor="op")
    # the throttle the ingester set for "lost" never reached the subscriber's row
    s.execute(update(Subscriber).where(Subscriber.username == "lost")
              .values(cap_throttled=False))
    rows = run(s, "over-cap", now)
    # "slowed" is throttled, "short" one byte short, "vip" exempt: near misses
    assert [(r["username"], r["used_bytes"], r["has_fup"]) for r in rows] == [
        ("lost", 11 * 10**9, True), ("nofup", 15 * 10**9, False)]
    assert rows[0]["action"].startswith("throttle missing")
    assert "no fair-usage speed" in rows[1]["action"]
    assert users(run(s, "over-cap", now, plan="NoFup")) == ["nofup"]
    assert len(run(s, "over-cap", now, limit=1)) == 1


# -- unknown-sessions ---------------------------------------------------------------------------


def test_unknown_sessions(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "alice")
    registered(s, box, NAS1)
    at = now - dt.timedelta(minutes=1)
    start(s, "ghost", "g1", at)  # unknown user, registered NAS
    online(s, "alice", at, sid="a-rogue", nas=ROGUE)  # known user, unregistered NAS
    online(s, "alice", at, sid="a-ok")  # near miss: known user, registered NAS
    start(s, "ALICE", "a-case", at)  # near miss: a known user, not linked, other case
    start(s, "ghost", "g2", at - dt.timedelta(hours=1))  # near miss: closed
    stop(s, "ghost", "g2", at)
    rows = run(s, "unknown-sessions", now)
    assert sorted((r["user_name"], r["acct_session_id"], r["finding"]) for r in rows) == [
        ("alice", "a-rogue", "NAS not registered"), ("ghost", "g1", "unknown user")]
    assert next(r for r in rows if r["acct_session_id"] == "a-rogue")["username"] == "alice"
    assert users(run(s, "unknown-sessions", now, nas="nas1")) == [None]


# -- stale-sessions -----------------------------------------------------------------------------


def test_stale_sessions(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "quiet", "fine", "ended")
    online(s, "quiet", now - dt.timedelta(minutes=16))  # > 3 x 300 s
    online(s, "fine", now - dt.timedelta(minutes=14))  # near miss
    online(s, "ended", now - dt.timedelta(hours=1))
    stop(s, "ended", "ended-1", now - dt.timedelta(minutes=50), sub=sub_id(s, "ended"))
    rows = run(s, "stale-sessions", now)
    assert users(rows) == ["quiet"]
    assert rows[0]["silent_minutes"] == 16


# -- past-paid-period ---------------------------------------------------------------------------


def test_past_paid_period(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s, name="Pre", billing_mode="prepaid")
    people(s, box, "late", "paid", "offline", plan="Pre")
    until = {"late": now - dt.timedelta(hours=2), "paid": now + dt.timedelta(hours=2),
             "offline": now - dt.timedelta(hours=2)}
    for name, value in until.items():
        s.execute(update(Subscriber).where(Subscriber.username == name)
                  .values(paid_until=value))
        online(s, name, now - dt.timedelta(hours=5))
    stop(s, "offline", "offline-1", now - dt.timedelta(hours=3), sub=sub_id(s, "offline"))
    rows = run(s, "past-paid-period", now)
    assert users(rows) == ["late"]
    assert rows[0]["hours_past"] == 2


# -- nas-gaps -----------------------------------------------------------------------------------


def test_nas_gaps(s: Session, now: dt.datetime) -> None:
    silent, quiet, burst, once, slow, fine = ("10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4",
                                              "10.1.0.5", "10.1.0.6")
    minutes = dt.timedelta(minutes=1)
    start(s, "a", "a1", now - 20 * minutes, silent)  # silent 20 min > 3 x 5 min
    start(s, "b", "b1", now - 14 * minutes, quiet)  # near miss: silent 14 min
    for k, age in enumerate((1, 2, 7, 8)):  # half an Interim late (> 6.25 min, < 15)
        start(s, f"c{k}", f"c{k}", now - age * minutes, slow)
    for k, age in enumerate((1, 2, 3, 4, 7)):  # near miss: one in five late
        start(s, f"d{k}", f"d{k}", now - age * minutes, fine)
    for when in (now - dt.timedelta(hours=5), now - dt.timedelta(hours=2)):  # two reboots
        start(s, "e", f"e{when.hour}", when - 10 * minutes, burst)
        apply(s, AcctRecord(status=ACCOUNTING_ON, nas_ip=burst, event_time=when))
    for when in (now - dt.timedelta(hours=30), now - dt.timedelta(hours=2)):  # near miss:
        start(s, "f", f"f{when.hour}", when - 10 * minutes, once)  # one reboot in 24 h
        apply(s, AcctRecord(status=ACCOUNTING_ON, nas_ip=once, event_time=when))
    rows = run(s, "nas-gaps", now)
    assert sorted((r["nas_ip"], r["finding"]) for r in rows) == [
        (silent, "silent"), (burst, "accounting-on-burst"), (slow, "interim-outlier")]
    assert all(r["action"] and r["nas"] is None for r in rows)


# -- duplicate-sessions -------------------------------------------------------------------------


def test_duplicate_sessions(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "bob", "dave", "erin", "frank", "gina")
    people(s, box, "carol", simultaneous_use=2)
    at = now - dt.timedelta(minutes=1)
    online(s, "bob", at, sid="b1")
    online(s, "bob", at, sid="b2", nas=NAS2)  # two open, one allowed
    online(s, "carol", at, sid="c1")
    online(s, "carol", at, sid="c2")  # near miss: two allowed
    online(s, "dave", at, framed="100.64.0.5")
    online(s, "erin", at, framed="100.64.0.5", nas=NAS2)  # one address twice
    online(s, "frank", at, framed="100.64.0.6")
    online(s, "gina", at - dt.timedelta(hours=1), framed="100.64.0.6")  # near miss: closed
    stop(s, "gina", "gina-1", at, sub=sub_id(s, "gina"))
    rows = run(s, "duplicate-sessions", now)
    assert sorted((r["username"], r["finding"]) for r in rows) == [
        ("bob", "over simultaneous-use"), ("dave", "framed-ip conflict"),
        ("erin", "framed-ip conflict")]


# -- revenue-by-nas -----------------------------------------------------------------------------


def test_revenue_by_nas(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    make_plan(s, name="Biz", price="3000")
    people(s, box, "on1", "on2", "off1")
    people(s, box, "biz", plan="Biz")
    day = today_of(s, now)
    registered(s, box, NAS1, NAS2)
    online(s, "on1", now - dt.timedelta(minutes=1))
    online(s, "on2", now - dt.timedelta(minutes=1))
    online(s, "off1", now - dt.timedelta(hours=3), nas=NAS2)  # last on NAS2, offline now
    stop(s, "off1", "off1-1", now - dt.timedelta(hours=2), nas=NAS2, sub=sub_id(s, "off1"))
    payments.adjust(s, "on1", "charge", "1000", reason="router", today=day, actor="t")
    payments.record_payment(s, "on1", "600", method="cash", reference="r1", today=day,
                            actor="t")
    payments.adjust(s, "off1", "charge", "500", reason="visit", today=day, actor="t")
    # near miss: last month's invoice and payment are not this month's
    old = day.replace(day=1) - dt.timedelta(days=3)
    sub = s.query(Subscriber).filter_by(username="on2").one()
    s.add(Invoice(subscriber_id=sub.id, number="OLD-1", kind=InvoiceKind.CHARGE,
                  plan_name="Home-20", period_start=old, period_end=old, issued_on=old,
                  due_on=old, currency="BDT", subtotal=Decimal(99), tax_percent=0,
                  tax=Decimal(0), total=Decimal(99)))
    s.add(Payment(subscriber_id=sub.id, amount=Decimal(77), currency="BDT", method="cash",
                  reference="old", actor="t",
                  received_at=now - dt.timedelta(days=day.day + 2)))
    rows = run(s, "revenue-by-nas", now)
    got = {(r["nas"], r["plan"]): (r["active"], r["online"], r["billed"], r["collected"])
           for r in rows}
    assert got == {("nas1", "Home-20"): (2, 2, "1000.00", "600.00"),
                   ("nas2", "Home-20"): (1, 0, "500.00", "0.00"),
                   (None, "Biz"): (1, 0, "0.00", "0.00")}
    assert {r["nas_ip"] for r in rows if r["plan"] == "Biz"} == {"(never online)"}
    assert [r["plan"] for r in run(s, "revenue-by-nas", now, nas="nas2")] == ["Home-20"]


# -- ledger-check -------------------------------------------------------------------------------


def test_ledger_check(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s)
    people(s, box, "ok", "charge", "over", "unposted", "flipped", "credit")
    day = today_of(s, now)
    for name in ("ok", "charge", "over", "flipped", "credit"):
        payments.adjust(s, name, "charge", "1000", reason="router", today=day, actor="t")
    # near misses: a consistent account with a payment, a credit note and a payment for
    # more than its invoice
    payments.record_payment(s, "ok", "400", method="cash", reference="ok1", today=day,
                            actor="t")
    payments.record_payment(s, "credit", "1500", method="cash", reference="cr1", today=day,
                            actor="t")

    def invoice_of(name: str) -> Invoice:
        return s.query(Invoice).join(Subscriber).filter(Subscriber.username == name).one()

    s.flush()
    # constructed faults, behind the services' backs (what the report exists to catch)
    s.execute(update(LedgerEntry).where(LedgerEntry.invoice_id == invoice_of("charge").id)
              .values(amount=Decimal("900.00")))
    over = invoice_of("over")
    s.add(LedgerEntry(subscriber_id=over.subscriber_id, kind=LedgerKind.CREDIT,
                      amount=Decimal("-1200.00"), currency="BDT", effective_on=day,
                      description="bad credit", invoice_id=over.id))
    s.add(Payment(subscriber_id=sub_id(s, "unposted"), amount=Decimal(250), currency="BDT",
                  method="cash", reference="lost", actor="t", received_at=now))
    s.execute(update(Invoice).where(Invoice.id == invoice_of("flipped").id)
              .values(status="paid", paid_on=day))
    rows = run(s, "ledger-check", now)
    assert sorted((r["username"], r["finding"]) for r in rows) == [
        ("charge", "invoice charge differs"), ("flipped", "owing with no open invoice"),
        ("over", "open invoice while in credit"), ("over", "settled beyond total"),
        ("unposted", "payment not allocated")]
    charge = next(r for r in rows if r["username"] == "charge")
    assert (charge["expected"], charge["actual"]) == ("1000.00", "900.00")
    unposted = next(r for r in rows if r["username"] == "unposted")
    assert (unposted["expected"], unposted["actual"], unposted["document"]) == (
        "250.00", "0.00", "cash lost")


# -- suspensions-tomorrow -----------------------------------------------------------------------


def _open_invoice(s: Session, name: str, number: str, due: dt.date) -> None:
    sub = s.query(Subscriber).filter_by(username=name).one()
    s.add(Invoice(subscriber_id=sub.id, number=number, kind=InvoiceKind.PERIOD,
                  plan_name=sub.plan.name, period_start=due - dt.timedelta(days=30),
                  period_end=due, issued_on=due - dt.timedelta(days=7), due_on=due,
                  currency="BDT", subtotal=Decimal(1000), tax_percent=0, tax=Decimal(0),
                  total=Decimal(1000)))


def test_suspensions_tomorrow(s: Session, box: SecretBox, now: dt.datetime) -> None:
    make_plan(s, grace_days=2)
    people(s, box, "due", "notyet", "promised", "suspended", activated_on=None)
    day = today_of(s, now)
    tomorrow = day + dt.timedelta(days=1)
    _open_invoice(s, "due", "T-1", tomorrow - dt.timedelta(days=3))  # grace over tomorrow
    _open_invoice(s, "notyet", "T-2", tomorrow - dt.timedelta(days=2))  # the day after
    _open_invoice(s, "promised", "T-3", tomorrow - dt.timedelta(days=3))
    _open_invoice(s, "suspended", "T-4", tomorrow - dt.timedelta(days=3))
    s.flush()
    promises.promise_to_pay(s, "promised", tomorrow, today=day, actor="t")
    accounts.suspend(s, s.query(Subscriber).filter_by(username="suspended").one(), day,
                     "unpaid", "t")
    rows = run(s, "suspensions-tomorrow", now)
    assert users(rows) == ["due"]
    assert rows[0]["suspend_on"] == str(tomorrow)
    assert rows[0]["oldest_due_on"] == str(tomorrow - dt.timedelta(days=3))
    s.add(Holiday(day=tomorrow, name="closed"))  # nobody is suspended on a holiday
    assert run(s, "suspensions-tomorrow", now) == []


# -- the registry -------------------------------------------------------------------------------


def test_every_report_runs_on_an_empty_database(s: Session, now: dt.datetime) -> None:
    for name in registry.names():
        assert run(s, name, now) == [], name


def test_bad_parameters_are_one_line_errors(now: dt.datetime) -> None:
    today = now.date()
    with pytest.raises(InvalidInput, match="limit"):
        Params(now=now, today=today, limit=0)
    with pytest.raises(InvalidInput, match="days"):
        Params(now=now, today=today, days=100_000)
    with pytest.raises(InvalidInput, match="nas"):
        Params(now=now, today=today, nas="x" * 46)
    with pytest.raises(InvalidInput, match="timezone"):
        Params(now=now.replace(tzinfo=None), today=today)
    with pytest.raises(NotFound, match="no report 'nope'"):
        registry.get("nope")


def test_csv_quotes_what_a_spreadsheet_would_run() -> None:
    text = registry.to_csv(("username", "amount"), [{"username": "=HYPERLINK(1)",
                                                     "amount": "-12.50"}])
    assert text == "username,amount\r\n'=HYPERLINK(1),-12.50\r\n"
