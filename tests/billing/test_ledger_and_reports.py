"""Ledger adjustments, the throttle and termination stages, and the report data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing import reports
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


def adjust(sim: Sim, username: str, kind: str, amount: str, **kw: object) -> Decimal:
    return sim.adjust(username, kind, amount, **kw).balance


def test_adjustments_post_signed_entries_and_reconnect_when_asked(sim: Sim) -> None:
    sim.subscriber("a", "Home")
    sim.days_until(D(2026, 12, 12))
    assert sim.status("a") == "suspended" and sim.balance("a") == Decimal("1000.00")
    charge = sim.adjust("a", "charge", "100")  # a one-line invoice of its own
    assert (charge.balance, charge.document) == (Decimal("1100.00"), "INV-000002")
    assert sim.invoices("a")[-1]["kind"] == "charge"
    assert adjust(sim, "a", "credit", "100") == Decimal("1000.00")
    assert sim.status("a") == "suspended"
    with pytest.raises(InvalidInput, match="names the invoice"):
        adjust(sim, "a", "write-off", "1000")
    # the goodwill credit paid the oldest document; what is left of it is written off, and
    # the subscriber stays suspended: the operator did not ask to reconnect
    assert sim.outstanding("a") == {"INV-000001": Decimal("900.00"),
                                    "INV-000002": Decimal("100.00")}
    assert adjust(sim, "a", "write-off", "900", invoice="INV-000001") == Decimal("100.00")
    assert sim.invoices("a")[0]["status"] == "written_off"
    assert sim.status("a") == "suspended"
    sim.run()  # and the ladder leaves the operator's suspension alone
    assert sim.status("a") == "suspended"
    off = sim.adjust("a", "write-off", "100", invoice="INV-000002", reconnect=True)
    assert off.reconnected and sim.status("a") == "active"
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
    sim.today = D(2026, 12, 1)
    sim.run()  # r1's November: issued today, due 8 Dec
    with sim.factory() as s, s.begin():
        assert reports.overdue(s, D(2026, 12, 8))["subscribers"] == []
        data = reports.overdue(s, D(2026, 12, 10))
    assert data["subscribers"] == [{"username": "r1", "name": None, "phone": "+8801700000001",
                                    "status": "active", "overdue": "1000.00",
                                    "currency": "BDT", "oldest_due_on": "2026-12-08",
                                    "days_overdue": 2}]
    assert data["totals"] == {"BDT": "1000.00"}
