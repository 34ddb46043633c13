"""The run plans a batch while the one before is written and committed
(billing.run._overlapped_phase_one, PostgreSQL): when the ISP row is not as the batch was
planned with, or another transaction holds it, the batch is billed again the usual way and
numbering stays gapless; a write that fails bills its accounts one by one."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from billing import batch, run
from billing.models import Invoice, IspSettings, Subscriber
from radbill.crypto import SecretBox
from tests.billing.sim import Sim
from tests.conftest import BACKEND, wipe

D = dt.date


def six_due(engine: Engine, box: SecretBox) -> Sim:
    """Six postpaid subscribers whose first period ends on 2026-12-01."""
    wipe(engine)
    sim = Sim(engine, box, D(2026, 11, 1))
    sim.plan("Home", price="1000")
    for i in range(6):
        sim.subscriber(f"s{i}", "Home")
    sim.run()  # activation day: nothing invoiced for a postpaid plan
    sim.today = D(2026, 12, 1)
    return sim


def numbers(sim: Sim) -> tuple[list[int], int]:
    """The invoice numbers in subscriber order, and the ISP's next number."""
    with sim.factory() as s:
        found = [int(n.removeprefix("INV-")) for n in s.scalars(
            select(Invoice.number).join(Subscriber, Subscriber.id == Invoice.subscriber_id)
            .order_by(Subscriber.username, Invoice.number))]
        isp = s.get(IspSettings, 1)
        assert isp is not None
        return found, isp.next_invoice_number


@pytest.fixture
def pg_only() -> None:
    if BACKEND == "sqlite":
        pytest.skip("batches overlap on PostgreSQL only (SQLite has one writer)")


def test_each_batch_is_planned_while_the_one_before_is_finished(engine, box, monkeypatch,
                                                              pg_only) -> None:  # type: ignore[no-untyped-def]
    sim = six_due(engine, box)
    real = run._lock_isp_nowait
    calls: list[bool] = []

    def spy(session: Any) -> IspSettings | None:
        locked = real(session)
        calls.append(locked is not None)
        return locked

    written: list[int] = []
    real_write = batch.write_planned

    def write_spy(session: Any, isp: Any, cal: Any, writes: Any, *a: Any, **kw: Any
                  ) -> Any:
        written.append(len(writes.segment))
        return real_write(session, isp, cal, writes, *a, **kw)

    monkeypatch.setattr(run, "_lock_isp_nowait", spy)
    monkeypatch.setattr(batch, "write_planned", write_spy)
    report = sim.run(batch_size=2)
    found, next_number = numbers(sim)
    wipe(engine)
    assert not report.errors
    assert [e.kind for e in report.events] == ["invoice"] * 6
    first = found[0]
    assert found == list(range(first, first + 6))
    assert next_number == first + 6
    # batch 1 locked first; batches 2 and 3 planned ahead, found the row as expected
    assert calls == [True, True]
    assert written == [2, 2, 2]


def test_a_number_taken_meanwhile_makes_the_batch_planned_again(engine, box, monkeypatch,
                                                                pg_only) -> None:  # type: ignore[no-untyped-def]
    sim = six_due(engine, box)
    real = run._lock_isp_nowait
    calls: list[bool] = []

    def another_document_first(session: Any) -> IspSettings | None:
        if not calls:  # another transaction numbers five documents before batch 2 locks
            with engine.begin() as conn:
                conn.execute(text("UPDATE isp_settings "
                                  "SET next_invoice_number = next_invoice_number + 5"))
        locked = real(session)
        calls.append(locked is not None)
        return locked

    monkeypatch.setattr(run, "_lock_isp_nowait", another_document_first)
    report = sim.run(batch_size=2)
    found, next_number = numbers(sim)
    wipe(engine)
    assert not report.errors
    assert [e.kind for e in report.events] == ["invoice"] * 6
    first = found[0]
    assert found == [first, first + 1, first + 7, first + 8, first + 9, first + 10]
    assert next_number == first + 11
    # batch 2 planned while batch 1 was written, then billed again locked; batch 3 after it
    # as a first batch (nothing being written: the ISP row locked first)
    assert calls == [True]


def test_isp_row_held_by_another_transaction(engine, box, monkeypatch, pg_only
                                             ) -> None:  # type: ignore[no-untyped-def]
    sim = six_due(engine, box)
    real = run._lock_isp_nowait
    calls: list[bool] = []

    def held(session: Any) -> IspSettings | None:
        with engine.connect() as other:  # another transaction holds the ISP row
            other.execute(text("SELECT 1 FROM isp_settings WHERE id = 1 FOR UPDATE"))
            locked = real(session)  # the run does not wait for it there
            other.rollback()
        calls.append(locked is not None)
        return locked

    monkeypatch.setattr(run, "_lock_isp_nowait", held)
    report = sim.run(batch_size=2)
    found, next_number = numbers(sim)
    wipe(engine)
    assert not report.errors
    assert [e.kind for e in report.events] == ["invoice"] * 6
    first = found[0]
    assert found == list(range(first, first + 6))
    assert next_number == first + 6
    assert calls == [False]  # batch 2 billed the usual way, after the row was released


def test_a_failed_write_bills_its_accounts_one_by_one(engine, box, monkeypatch, pg_only
                                                       ) -> None:  # type: ignore[no-untyped-def]
    sim = six_due(engine, box)
    real = batch.Writes.apply
    failed: list[int] = []

    def apply(self: Any, session: Any, isp: Any) -> None:
        if not failed:  # batch 1's write, in the writing thread, after its first rows
            failed.append(len(self.segment))
            self.rows.send(session)
            raise RuntimeError("bad row")
        real(self, session, isp)

    monkeypatch.setattr(batch.Writes, "apply", apply)
    report = sim.run(batch_size=2)
    found, next_number = numbers(sim)
    with sim.factory() as s:
        periods = set(s.scalars(select(Subscriber.period_start)))
    wipe(engine)
    assert failed == [2]
    assert not report.errors
    assert [e.kind for e in report.events] == ["invoice"] * 6
    first = found[0]
    # the savepoint rolled back, the two accounts billed one by one with the same numbers;
    # batch 2, planned from where batch 1 was to end, found the row as planned with
    assert found == list(range(first, first + 6))
    assert next_number == first + 6
    assert periods == {D(2026, 12, 1)}  # every period moved on, the failed segment's too


def _waiting_on_a_lock(engine: Engine, timeout: float = 30.0) -> bool:
    """Whether another backend of the test database waits on a lock, within *timeout*."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar_one()
            conn.rollback()
            if waiting:
                return True
            time.sleep(0.05)
    return False


@pytest.mark.parametrize("overlap", [True, False])
def test_a_writer_holding_a_subscriber_then_the_isp_row_never_deadlocks_with_the_run(
        engine, box, pg_only, overlap) -> None:  # type: ignore[no-untyped-def]
    # A plan change, a back-dated payment or a credit note locks its subscriber, then the
    # ISP row. The run takes its batch's subscribers before the ISP row, so such a writer
    # finishes while the run waits for it; the other way round, PostgreSQL found a deadlock
    # and aborted one of the two.
    sim = six_due(engine, box)
    reports: list[run.RunReport] = []
    with engine.connect() as other:
        other.execute(text("SELECT id FROM subscribers WHERE username = 's3' FOR UPDATE"))
        billing = threading.Thread(
            target=lambda: reports.append(sim.run(batch_size=100, overlap=overlap)))
        billing.start()
        try:
            assert _waiting_on_a_lock(engine)  # the run waits for s3
            other.execute(text("SET LOCAL lock_timeout = '20s'"))
            other.execute(text("SELECT 1 FROM isp_settings WHERE id = 1 FOR UPDATE"))
            other.commit()
        finally:
            billing.join(60)
    found, next_number = numbers(sim)
    wipe(engine)
    assert next_number == found[0] + 6
    assert len(reports) == 1
    assert not reports[0].errors
    assert [e.kind for e in reports[0].events] == ["invoice"] * 6
    assert found == list(range(found[0], found[0] + 6))


def test_an_account_needing_its_own_service_is_billed_by_the_writing_thread_in_its_place(
        engine, box, monkeypatch, pg_only) -> None:  # type: ignore[no-untyped-def]
    sim = six_due(engine, box)
    sim.plan("Fast", price="1500")
    with engine.begin() as conn:  # s1 moves to Fast at this renewal: run.renew's service
        conn.execute(text("UPDATE subscribers SET next_plan_id = "
                          "(SELECT id FROM plans WHERE name = 'Fast') WHERE username = 's1'"))
    real_write = batch.write_planned
    written: list[tuple[list[str], int]] = []

    def write_spy(session: Any, isp: Any, cal: Any, writes: Any, rest: Any, *a: Any,
                  **kw: Any) -> Any:
        written.append(([p.sub.username for p in writes.segment],
                        len(rest[0]) if rest is not None else 0))
        return real_write(session, isp, cal, writes, rest, *a, **kw)

    monkeypatch.setattr(batch, "write_planned", write_spy)
    report = sim.run(batch_size=2)
    found, next_number = numbers(sim)
    with sim.factory() as s:
        plans = dict(s.execute(text("SELECT s.username, p.name FROM subscribers s "
                                    "JOIN plans p ON p.id = s.plan_id")).all())
    wipe(engine)
    assert not report.errors
    # batch 1: s0 planned ahead, s1 billed after it in the writing thread; batch 2, after a
    # batch with such an account, billed alone once batch 1 had ended (no account of its
    # own there); batch 3 planned ahead again
    assert written == [(["s0"], 1), (["s4", "s5"], 0)]
    assert [(e.username, e.kind) for e in report.events if e.kind != "invoice"] == [
        ("s1", "plan_change")]
    assert [e.username for e in report.events if e.kind == "invoice"] == [
        f"s{i}" for i in range(6)]
    assert found == list(range(found[0], found[0] + 6))
    assert next_number == found[0] + 6
    assert plans == {"s0": "Home", "s1": "Fast", "s2": "Home", "s3": "Home", "s4": "Home",
                     "s5": "Home"}  # the postpaid period just ended was billed on Home


def test_an_account_renewed_and_throttled_on_one_day_is_billed_in_its_place(
        engine, box, pg_only) -> None:  # type: ignore[no-untyped-def]
    # t1's renewal falls on the day it is throttled: planning it ahead drafts its invoice and
    # moves its period on in memory before the throttle stops the planning there. The
    # writing thread bills it and the rest of the batch after a0, in account order, with
    # the renewal dated today (plan_ahead hands t1 over as read again, not half-planned).
    wipe(engine)
    sim = Sim(engine, box, D(2026, 10, 1))
    sim.isp(postpaid_due_days=5)
    sim.plan("Home", price="1000")
    sim.plan("Slow", price="700", grace_days=40, throttle_after_days=25)
    sim.subscriber("a0", "Home")
    sim.subscriber("t1", "Slow")
    sim.subscriber("a2", "Home")
    while sim.today < D(2026, 12, 1):
        sim.run()
        if sim.today == D(2026, 11, 2):
            sim.pay("a0", "1000")
            sim.pay("a2", "1000")
        sim.today += dt.timedelta(days=1)
    report = sim.run(batch_size=3)
    found, next_number = numbers(sim)
    t1 = sim.invoices("t1")
    wipe(engine)
    assert not report.errors
    assert [(e.username, e.kind) for e in report.events] == [
        ("a0", "invoice"), ("t1", "invoice"), ("t1", "throttle"), ("a2", "invoice")]
    assert [(i["period"], i["issued"]) for i in t1] == [
        ((D(2026, 10, 1), D(2026, 11, 1)), D(2026, 11, 1)),
        ((D(2026, 11, 1), D(2026, 12, 1)), D(2026, 12, 1))]
    assert sorted(found) == list(range(min(found), min(found) + 6))  # no gap, none twice
    assert next_number == max(found) + 1
