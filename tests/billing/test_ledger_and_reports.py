"""Ledger adjustments, the throttle and termination stages, and the report data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing import payments, reports
from radbill.errors import Conflict, InvalidInput
from radius.snapshot import AuthSnapshot, SnapshotRefresher
from tests.billing.sim import Sim

D = dt.date


@pytest.fixture
def sim(db, box) -> Sim:  # type: ignore[no-untyped-def]
    s = Sim(db, box, D(2026, 11, 1))
    s.isp(postpaid_due_days=7)
    s.plan("Home", price="1000", grace_days=3, fup_rate="2M/1M", throttle_after_days=1,
           terminate_after_days=30)
    return s


def adjust(sim: Sim, username: str, kind: str, amount: str) -> Decimal:
    with sim.factory() as s, s.begin():
        return payments.adjust(s, username, kind, amount, reason=f"{kind} test",
                               today=sim.today, actor="operator")


def test_adjustments_post_signed_entries_and_reconnect_when_cleared(sim: Sim) -> None:
    sim.subscriber("a", "Home")
    sim.days_until(D(2026, 12, 12))
    assert sim.status("a") == "suspended" and sim.balance("a") == Decimal("1000.00")
    assert adjust(sim, "a", "charge", "100") == Decimal("1100.00")
    assert adjust(sim, "a", "credit", "100") == Decimal("1000.00")
    assert sim.status("a") == "suspended"
    assert adjust(sim, "a", "write-off", "1000") == Decimal("0.00")
    assert sim.status("a") == "active"  # nothing overdue any more
    with pytest.raises(Conflict, match="more than"):
        adjust(sim, "a", "refund", "1")
    sim.pay("a", "300")
    assert adjust(sim, "a", "refund", "300") == Decimal("0.00")
    with pytest.raises(InvalidInput, match="unknown adjustment"):
        adjust(sim, "a", "bonus", "1")


def test_throttle_stage_then_suspension_then_termination(sim: Sim, db, box) -> None:  # type: ignore[no-untyped-def]
    sim.subscriber("t", "Home")
    events = sim.days_until(D(2027, 1, 12))
    happened = {d: [k for _, k in e if k in ("throttle", "suspend", "terminate")]
                for d, e in events.items()}
    assert happened[D(2026, 12, 9)] == ["throttle"]  # one day after due
    assert happened[D(2026, 12, 12)] == ["suspend"]
    assert happened[D(2027, 1, 11)] == ["terminate"]  # 30 days suspended
    assert sim.status("t") == "terminated"


def test_throttle_reaches_the_radius_policy_and_payment_lifts_it(sim: Sim, db, box) -> None:  # type: ignore[no-untyped-def]
    sim.subscriber("fup", "Home")
    sim.days_until(D(2026, 12, 9))
    snapshot = AuthSnapshot()
    SnapshotRefresher(snapshot, db, box).refresh_once()
    assert snapshot.lookup("fup")[0].fup_throttled
    sim.pay("fup", "1000")
    SnapshotRefresher(snapshot, db, box).refresh_once()
    assert not snapshot.lookup("fup")[0].fup_throttled


def test_reports_renewals_and_overdue(sim: Sim) -> None:
    sim.subscriber("r1", "Home", phone="+8801700000001")
    sim.today = D(2026, 11, 28)
    sim.subscriber("r2", "Home")
    with sim.factory() as s:
        due = reports.renewals(s, D(2026, 11, 28), 7)
    assert [(r["username"], r["renews_on"], r["amount"]) for r in due] == [
        ("r1", "2026-12-01", "1000.00")]
    sim.today = D(2026, 12, 10)
    sim.run()
    with sim.factory() as s, s.begin():
        data = reports.overdue(s, D(2026, 12, 10))
    assert data["subscribers"] == [{"username": "r1", "name": None, "phone": "+8801700000001",
                                    "status": "active", "overdue": "1000.00",
                                    "currency": "BDT", "oldest_due_on": "2026-12-08",
                                    "days_overdue": 2}]
    assert data["totals"] == {"BDT": "1000.00"}
