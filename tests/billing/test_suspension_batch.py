"""Suspension day, set-based (billing.batch.suspend_batch) against the per-account path
(billing.accounts.suspend through billing.run.process): on the same data, the same audit,
outbox, enforcement, subscriber, invoice and ledger rows and the same report; and the
enforcement requests are committed in small transactions, the first ones before the last
accounts are planned."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from billing import batch, run
from billing.models import EnforcementRequest
from radbill.crypto import SecretBox
from tests.billing.sim import Sim
from tests.billing.test_batch import snapshot
from tests.conftest import BACKEND, wipe

D = dt.date


def scenario(engine: Engine, box: SecretBox, per_account: bool, bill_while_suspended: bool
             ) -> tuple[list[str], dict[str, Any]]:
    """Twenty-four subscribers on postpaid and prepaid plans; some pay, some pay part, some
    nothing, one has a promise, one is disabled: a suspension day for most of them."""
    wipe(engine)
    sim = Sim(engine, box, D(2026, 11, 1))
    sim.isp(postpaid_due_days=5, suspension_guard_percent=100,
            bill_while_suspended=bill_while_suspended)
    sim.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=3)
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=2, late_fee="25")
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=10,
             billing_mode="prepaid")
    for i in range(24):
        plan = ("Home", "Pre", "Fixed")[i % 3]
        sim.subscriber(f"s{i:02d}", plan, full_name=f"Customer {i}", phone=f"+88017000000{i:02d}")
    events: list[str] = []

    def run_until(last: dt.date) -> None:
        while sim.today <= last:
            report = sim.run(per_account=per_account)
            events.extend(f"{sim.today} {e}" for e in report.events)
            events.extend(f"{sim.today} ERROR {e}" for e in report.errors)
            sim.today += dt.timedelta(days=1)

    run_until(D(2026, 11, 3))
    for i in range(0, 24, 4):
        sim.pay(f"s{i:02d}", "5000")
    sim.pay("s01", "100")  # part
    sim.promise("s05", D(2026, 11, 20))
    sim.set_status("s07", "disabled", reason="moved")
    run_until(D(2026, 12, 14))
    return events, snapshot(sim)


@pytest.mark.parametrize("bill_while_suspended", [True, False])
def test_set_based_suspensions_write_what_the_per_account_path_writes(
        engine, box, monkeypatch, bill_while_suspended) -> None:  # type: ignore[no-untyped-def]
    written: list[int] = []
    real = batch.write_suspensions

    def spy(session: Any, segment: list[batch.Suspension], *a: Any, **kw: Any) -> None:
        real(session, segment, *a, **kw)
        written.extend(s.sub.id for s in segment)

    monkeypatch.setattr(batch, "write_suspensions", spy)
    batch_events, batch_rows = scenario(engine, box, False, bill_while_suspended)
    account_events, account_rows = scenario(engine, box, True, bill_while_suspended)
    wipe(engine)
    suspensions = [e for e in batch_events if " suspend " in f" {e} "]
    assert len(suspensions) >= 10, batch_events
    assert not [e for e in batch_events if " ERROR " in e]
    # most went the set-based way (postpaid accounts whose used days are invoiced on a pause
    # go one by one)
    assert len(written) >= (len(suspensions) if bill_while_suspended else 10)
    assert batch_events == account_events
    for table, expected in account_rows.items():
        assert batch_rows[table] == expected, table
    if not bill_while_suspended:
        assert any(a[1] == "billing.pause" for a in batch_rows["audit"])


def test_suspension_requests_are_committed_in_small_transactions(
        engine, box, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With a batch of 4, the worker (another connection) sees the first accounts'
    enforcement requests while the later ones are still being planned. (PostgreSQL: SQLite
    takes every transaction's write lock at BEGIN, so a second connection waits instead.)"""
    if BACKEND == "sqlite":
        pytest.skip("a concurrent reader needs PostgreSQL's MVCC")
    monkeypatch.setattr(run, "SUSPEND_BATCH_SIZE", 4)
    wipe(engine)
    sim = Sim(engine, box, D(2026, 11, 1))
    sim.isp(postpaid_due_days=5, suspension_guard_percent=100)
    sim.plan("Home", price="1000", grace_days=3)
    for i in range(12):
        sim.subscriber(f"s{i:02d}", "Home")
    seen: list[int] = []
    real = batch.suspend_batch

    def spy(session: Any, isp: Any, cal: Any, ids: Any, *a: Any, **kw: Any) -> None:
        with sim.factory() as other:  # what the enforcement worker can read now
            seen.append(int(other.scalar(select(func.count()).select_from(EnforcementRequest)
                                         .where(EnforcementRequest.action == "suspend"))
                            or 0))
        real(session, isp, cal, ids, *a, **kw)

    monkeypatch.setattr(batch, "suspend_batch", spy)
    for day in range(1, 32):
        sim.today = D(2026, 12, day)
        sim.run()
    wipe(engine)
    assert seen[:3] == [0, 4, 8]
