"""Enforcement end to end: billing changes reach simulated MikroTik NAS through the real
FreeRADIUS, the real `radbill enforcement run` worker, RFC 5176 and the RouterOS API.

One module-wide world: 1,000 subscribers online at NAS A (127.0.0.1, CoA on), 20 at NAS B
(127.0.0.2, CoA ignored, RouterOS API on). Subscribers' routers dial in again 0.2 s after
being disconnected, as PPPoE clients do. The tests run in order and build on each other.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from billing import accounts
from billing.models import EnforcementRequest, Invoice, Subscriber
from billing.payments import record_payment
from billing.run import billing_run
from coa.models import EnforcementAttempt
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.models import RadiusSession
from radius.nas import create_nas
from simulators.nas import NasSimulator
from simulators.radius_client import free_udp_port
from tests.conftest import wipe
from tests.e2e.server import (
    PROJECT,
    SECRET,
    EnforcementWorker,
    RadiusServer,
    wait_for,
    wait_until,
)
from tests.factories import make_plan, make_subscriber
from tests.pgserver import free_tcp_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

A_USERS = [f"u{i:04d}" for i in range(1000)]
LATE = A_USERS[::10]  # 100 who do not pay
B_USERS = [f"b{i:02d}" for i in range(20)]
GARDEN = "radbill-suspended"
GARDEN_RATE = "256k/256k"
PLAN_RATE = "5M/20M"  # Home-20 (20M down / 5M up) as rx/tx
API_PASSWORD = "api-pass-123"
COA_A, COA_B, API_B = free_udp_port(), free_udp_port("127.0.0.2"), free_tcp_port()


@pytest.fixture(scope="module")
def seeded(engine: Engine, server_box: SecretBox) -> Engine:
    """Two NAS, Home-20, 1,020 subscribers invoiced on 1 Dec; all but 120 have paid; billing
    has run every day to 8 Dec (the unpaid are due for suspension on 9 Dec)."""
    wipe(engine)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        create_nas(s, server_box, name="nas-a", ip="127.0.0.1", secret=SECRET, coa_port=COA_A)
        create_nas(s, server_box, name="nas-b", ip="127.0.0.2", secret=SECRET, coa_port=COA_B,
                   api_port=API_B, api_username="radbill", api_password=API_PASSWORD)
        make_plan(s)
        for name in A_USERS + B_USERS:
            make_subscriber(s, server_box, username=name, password=f"pw-{name}",
                            activated_on=dt.date(2026, 11, 1))
    billing_run(factory, dt.date(2026, 12, 1))
    paid = set(A_USERS) - set(LATE)
    with factory() as s, s.begin():
        for name in sorted(paid):
            record_payment(s, name, "1000", method="cash", reference=f"R-{name}",
                           today=dt.date(2026, 12, 2), actor="test")
    # the runs of the ladder's steps up to the one that suspends: the reminder (5 Dec) and,
    # with no grace days, the final reminder on the due date (8 Dec); the days between have
    # nothing to do
    for day in (dt.date(2026, 12, 5), dt.date(2026, 12, 8)):
        billing_run(factory, day)
    return engine


@pytest.fixture(scope="module")
def nas_a(radius: RadiusServer, seeded: Engine) -> Iterator[NasSimulator]:
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=radius.auth_port,
                       acct_port=radius.acct_port, secret=SECRET, coa_port=COA_A, seed=7).start()
    sim.redial_after = 0.2
    results = sim.login_many((n, f"pw-{n}") for n in A_USERS)
    assert all(r.accepted for r in results)
    started = time.monotonic()
    wait_for(lambda: open_count(seeded) >= len(A_USERS), timeout=120)
    print(f"1000 Accounting-Starts stored after {time.monotonic() - started:.2f} s")
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def nas_b(radius: RadiusServer, seeded: Engine, nas_a: NasSimulator) -> Iterator[NasSimulator]:
    sim = NasSimulator(nas_ip="127.0.0.2", auth_port=radius.auth_port,
                       acct_port=radius.acct_port, secret=SECRET, coa_port=COA_B,
                       api_port=API_B, api_password=API_PASSWORD).start()
    sim.faults.ignore_coa = True
    sim.redial_after = 0.2
    assert all(r.accepted for r in sim.login_many((n, f"pw-{n}") for n in B_USERS))
    wait_for(lambda: open_count(seeded) >= len(A_USERS) + len(B_USERS), timeout=60)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def worker(seeded: Engine, database_url: str, data_dir: Path, nas_a: NasSimulator,
           nas_b: NasSimulator) -> Iterator[EnforcementWorker]:
    # the reconciler runs when a test says so: its own round every minute would repair the
    # drift a test is about to show (seen on a loaded machine)
    w = EnforcementWorker(database_url, data_dir, RADBILL_COA_TIMEOUT_MS="300",
                          RADBILL_COA_RETRIES="2", RADBILL_RECONCILE_SECONDS="86400").start()
    yield w
    w.stop()
    print(w.log[-6000:])


def open_count(engine: Engine) -> int:
    with session_factory(engine)() as s:
        return len(s.scalars(select(RadiusSession.id).where(RadiusSession.stopped_at.is_(None)))
                   .all())


def in_garden(sim: NasSimulator, names: list[str]) -> bool:
    sessions = {s.username: s for s in sim.online()}
    return all(n in sessions and sessions[n].address_list == GARDEN
               and sessions[n].rate_limit == GARDEN_RATE for n in names)


def at_full_speed(sim: NasSimulator, names: list[str]) -> bool:
    sessions = {s.username: s for s in sim.online()}
    return all(n in sessions and not sessions[n].address_list
               and (sessions[n].rate_limit or "").startswith(PLAN_RATE) for n in names)


def requests_of(engine: Engine, names: list[str], action: str) -> list[EnforcementRequest]:
    with session_factory(engine)() as s:
        return list(s.scalars(select(EnforcementRequest).join(
            Subscriber, Subscriber.id == EnforcementRequest.subscriber_id).where(
            Subscriber.username.in_(names), EnforcementRequest.action == action)))


def all_done(engine: Engine, names: list[str], action: str) -> bool:
    reqs = requests_of(engine, names, action)
    return len(reqs) >= len(names) and all(r.status == "done" for r in reqs)


def test_bulk_suspension_reaches_the_network(seeded, nas_a, nas_b, worker) -> None:  # type: ignore[no-untyped-def]
    before = {s.username: s.session_id for s in nas_a.online()}
    report = billing_run(session_factory(seeded), dt.date(2026, 12, 9))
    suspended = sorted(e.username for e in report.events if e.kind == "suspend")
    assert suspended == sorted(LATE + B_USERS)
    started = time.monotonic()
    wait_for(lambda: in_garden(nas_a, LATE), timeout=30)
    took = time.monotonic() - started
    after = {s.username: s.session_id for s in nas_a.online()}
    assert all(after[n] != before[n] for n in LATE)  # disconnected and dialled in again
    paid = [n for n in A_USERS if n not in LATE]
    assert all(after[n] == before[n] for n in paid)  # nobody else was touched
    assert nas_a.counters.disconnects == len(LATE)
    wait_for(lambda: all_done(seeded, LATE, "suspend"), timeout=30)
    with session_factory(seeded)() as s:
        outcomes = set(s.execute(select(EnforcementAttempt.channel, EnforcementAttempt.outcome)
                                 .where(EnforcementAttempt.nas_ip == "127.0.0.1")))
    assert outcomes == {("disconnect", "ack")}
    assert {r.outcome for r in requests_of(seeded, LATE, "suspend")} == {"confirmed-stop"}
    print(f"100 suspensions in the walled garden after {took:.2f} s")


def test_nas_that_ignores_coa_gets_the_api_path(seeded, nas_b, worker) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: in_garden(nas_b, B_USERS), timeout=30)
    wait_for(lambda: all_done(seeded, B_USERS, "suspend"), timeout=30)
    assert nas_b.counters.disconnects == 0  # CoA was never answered
    with session_factory(seeded)() as s:
        rows = list(s.execute(select(EnforcementAttempt.acct_session_id,
                                     EnforcementAttempt.channel, EnforcementAttempt.outcome,
                                     EnforcementAttempt.sends)
                              .where(EnforcementAttempt.nas_ip == "127.0.0.2")))
    by_session: dict[str, list[tuple[str, str]]] = {}
    for sid, channel, outcome, _ in rows:
        by_session.setdefault(sid, []).append((channel, outcome))
    assert len(by_session) == len(B_USERS)
    for steps in by_session.values():
        assert ("disconnect", "timeout") in steps and ("api-disconnect", "ack") in steps
    assert all(sends == 3 for _, channel, _, sends in rows if channel == "disconnect")


def test_paying_brings_them_back_to_full_speed(seeded, nas_a, worker) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(seeded)
    with factory() as s, s.begin():
        for name in LATE:
            assert record_payment(s, name, "1000", method="cash", reference=f"L-{name}",
                                  today=dt.date(2026, 12, 10), actor="test").reconnected
    wait_for(lambda: at_full_speed(nas_a, LATE), timeout=30)
    wait_for(lambda: all_done(seeded, LATE, "reconnect"), timeout=30)
    with factory() as s:
        assert s.scalars(select(Invoice.id).where(Invoice.status != "paid")).all() != []  # B
        assert all(not sub.suspended_for_nonpayment for sub in s.scalars(
            select(Subscriber).where(Subscriber.username.in_(LATE))))


def test_ten_percent_packet_loss_still_converges(seeded, nas_a, worker) -> None:  # type: ignore[no-untyped-def]
    victims = [n for n in A_USERS if n not in LATE][:50]
    nas_a.faults.drop = 0.10
    try:
        with session_factory(seeded)() as s, s.begin():
            for name in victims:
                sub = s.scalars(select(Subscriber).where(Subscriber.username == name)).one()
                assert accounts.suspend(s, sub, dt.date(2026, 12, 10), "loss test", "test")
        wait_for(lambda: in_garden(nas_a, victims), timeout=60)
        wait_for(lambda: all_done(seeded, victims, "suspend"), timeout=60)
    finally:
        nas_a.faults.drop = 0.0
    assert nas_a.counters.dropped > 0
    with session_factory(seeded)() as s:
        retransmitted = s.scalars(select(EnforcementAttempt.id).where(
            EnforcementAttempt.sends > 1, EnforcementAttempt.nas_ip == "127.0.0.1")).all()
    assert len(retransmitted) > 0


def cli(database_url: str, data_dir: Path, *args: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "RADBILL_DATABASE_URL": database_url, "RADBILL_DATA_DIR": str(data_dir)}
    out = subprocess.run([sys.executable, "-m", "radbill.cli", *args], cwd=PROJECT, env=env,
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def open_session(engine: Engine, name: str) -> RadiusSession | None:
    with session_factory(engine)() as s:
        return s.scalars(select(RadiusSession).where(RadiusSession.username == name,
                                                     RadiusSession.stopped_at.is_(None))).first()


def test_reconciler_fixes_a_suspended_subscriber_left_online_by_a_nas_reboot(  # type: ignore[no-untyped-def]
        seeded, nas_a, worker, database_url, data_dir) -> None:
    target = A_USERS[-1]  # paid, never suspended before
    online_before = nas_a.online(target)[0]
    # The router restarts its RADIUS client: Accounting-On, but its sessions stay up.
    nas_a.reboot(keep_sessions=True)
    wait_for(lambda: open_session(seeded, target) is None, timeout=15)
    with session_factory(seeded)() as s, s.begin():
        sub = s.scalars(select(Subscriber).where(Subscriber.username == target)).one()
        accounts.suspend(s, sub, dt.date(2026, 12, 11), "reboot test", "test")
    # Accounting says nobody is online, so the worker has nothing to disconnect...
    wait_for(lambda: all_done(seeded, [target], "suspend"), timeout=15)
    assert [r.outcome for r in requests_of(seeded, [target], "suspend")] == ["no-session"]
    assert nas_a.online(target)[0].session_id == online_before.session_id  # still online
    # ...until the next Interim-Update shows the session is alive (a second later at least:
    # the detail file stamps records in whole seconds, and only a later Interim reopens).
    time.sleep(1.1)
    nas_a.interim()
    wait_for(lambda: open_session(seeded, target) is not None, timeout=15)
    assert cli(database_url, data_dir, "enforcement", "status", "--json")["drift"] == 1
    counts = cli(database_url, data_dir, "enforcement", "reconcile", "--json")
    assert counts["accounting_drift"] == 1 and counts["drift"] == 1
    wait_for(lambda: in_garden(nas_a, [target]), timeout=30)
    status = wait_until(lambda: cli(database_url, data_dir, "enforcement", "status", "--json"),
                        lambda d: d["pending"] == 0 and d["confirming"] == 0, timeout=30)
    assert status["drift"] == 0 and status["failed"] == 0
