"""Data caps end to end: Interim-Updates through the real FreeRADIUS (and the ingester of
`radbill radius run`) cross the cap, and the real `radbill enforcement run` worker sends the
simulated MikroTik a CoA with the fair-usage Mikrotik-Rate-Limit; a new login gets that rate;
a top-up lifts the throttle live; the next period restores the plan's rate live.

The tests run in order and build on each other (one module-wide world)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.models import EnforcementRequest, Subscriber
from billing.run import billing_run
from radbill.crypto import SecretBox
from radbill.db import session_factory, utcnow
from radius.models import RadiusSession
from radius.nas import create_nas
from simulators.nas import NasSimulator
from simulators.radius_client import free_udp_port
from tests.conftest import wipe
from tests.e2e.server import SECRET, EnforcementWorker, RadiusServer, wait_for
from tests.factories import make_plan, make_subscriber
from usage import service
from usage.models import UsageState

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COA = free_udp_port()
PLAN_RATE = "5M/20M"  # 20M down / 5M up as MikroTik rx/tx
FUP_RATE = "512k/1M"  # the fair-usage speed, 1M down / 512k up
GROW = 100_000_000  # per interim: 100 MB up and 1 GB down (the simulator sends 10x down)


@pytest.fixture(scope="module")
def seeded(engine: Engine, server_box: SecretBox) -> Engine:
    """A NAS with CoA on; "capper" on a 1G-cap plan (both directions count) and "free" on
    an uncapped one, in a billing period that started five days ago."""
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        today = local_today(isp_settings(s), utcnow())
        create_nas(s, server_box, name="nas", ip="127.0.0.1", secret=SECRET, coa_port=COA)
        make_plan(s, "Capped", rate="20M/5M", data_cap="1G", fup_rate="1M/512k")
        make_plan(s, "Free", rate="20M/5M")
        service.add_pack(s, "Capped", "2G", "2G", "150", actor="test")
        for name, plan in (("capper", "Capped"), ("free", "Free")):
            make_subscriber(s, server_box, username=name, plan=plan, password=f"pw-{name}",
                            activated_on=today - dt.timedelta(days=5), today=today)
    return engine


@pytest.fixture(scope="module")
def nas(radius: RadiusServer, seeded: Engine) -> Iterator[NasSimulator]:
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=radius.auth_port,
                       acct_port=radius.acct_port, secret=SECRET, coa_port=COA, seed=3).start()
    results = sim.login_many([("capper", "pw-capper"), ("free", "pw-free")])
    assert all(r.accepted for r in results)
    assert all(r.reply["Mikrotik-Rate-Limit"].startswith(PLAN_RATE) for r in results)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def worker(seeded: Engine, database_url: str, data_dir: Path, nas: NasSimulator
           ) -> Iterator[EnforcementWorker]:
    w = EnforcementWorker(database_url, data_dir, RADBILL_COA_TIMEOUT_MS="300",
                          RADBILL_COA_RETRIES="2").start()
    yield w
    w.stop()
    print(w.log[-4000:])


def rate(sim: NasSimulator, name: str) -> str:
    (sess,) = sim.online(name)
    return sess.rate_limit or ""


def counted(engine: Engine, name: str) -> int:
    with session_factory(engine)() as s:
        sub = s.scalars(select(Subscriber).where(Subscriber.username == name)).one()
        state = s.get(UsageState, sub.id)
        return 0 if state is None else state.download + state.upload


def actions(engine: Engine, name: str) -> list[tuple[str, str]]:
    with session_factory(engine)() as s:
        return [(a, st) for a, st in s.execute(
            select(EnforcementRequest.action, EnforcementRequest.status)
            .join(Subscriber, Subscriber.id == EnforcementRequest.subscriber_id)
            .where(Subscriber.username == name).order_by(EnforcementRequest.id))]


def open_sessions(engine: Engine, name: str) -> list[str]:
    with session_factory(engine)() as s:
        return list(s.scalars(select(RadiusSession.acct_session_id).where(
            RadiusSession.username == name, RadiusSession.stopped_at.is_(None))))


def today(engine: Engine) -> dt.date:
    with session_factory(engine)() as s:
        return local_today(isp_settings(s), utcnow())


def test_interims_crossing_the_cap_bring_a_coa_with_the_fair_usage_rate(
        seeded, nas, worker) -> None:  # type: ignore[no-untyped-def]
    session_before = nas.online("capper")[0].session_id
    nas.interim(GROW)  # 1.1 GB each: over the 1G cap
    wait_for(lambda: counted(seeded, "capper") == 11 * GROW, timeout=30)
    wait_for(lambda: rate(nas, "capper") == FUP_RATE, timeout=30)
    assert nas.online("capper")[0].session_id == session_before  # changed live, by CoA
    assert nas.counters.coas >= 1 and nas.counters.disconnects == 0
    assert rate(nas, "free").startswith(PLAN_RATE)  # no cap, no throttle
    wait_for(lambda: actions(seeded, "capper") == [("throttle", "done")], timeout=30)
    assert actions(seeded, "free") == []


def test_a_new_login_gets_the_fair_usage_rate(seeded, nas, worker) -> None:  # type: ignore[no-untyped-def]
    assert nas.logout("capper") == 1
    # the router dials again until the Stop has reached the database (Simultaneous-Use 1)
    result = wait_for(lambda: (r := nas.login("capper", "pw-capper")).accepted and r,
                      timeout=30, interval=0.5)
    assert result.reply["Mikrotik-Rate-Limit"] == FUP_RATE
    wait_for(lambda: open_sessions(seeded, "capper") == [result.session.session_id], timeout=30)


def test_a_top_up_lifts_the_throttle_live(seeded, nas, worker) -> None:  # type: ignore[no-untyped-def]
    with session_factory(seeded)() as s, s.begin():
        topup = service.buy_topup(s, "capper", "2G", today=today(seeded), actor="test")
    assert topup.document
    wait_for(lambda: rate(nas, "capper").startswith(PLAN_RATE), timeout=30)
    nas.interim(GROW)  # the new session: 1.1G; with the first 2.2G of a 3G cap
    wait_for(lambda: counted(seeded, "capper") == 22 * GROW, timeout=30)
    assert rate(nas, "capper").startswith(PLAN_RATE)
    nas.interim(GROW)  # 3.3G: over the raised cap
    wait_for(lambda: rate(nas, "capper") == FUP_RATE, timeout=30)


def test_the_next_period_restores_the_plan_rate_live(seeded, nas, worker) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(seeded)
    with factory() as s:
        end = s.scalars(select(Subscriber.period_end)
                        .where(Subscriber.username == "capper")).one()
    assert end is not None
    billing_run(factory, end)  # billing moves the period on
    with factory() as s, s.begin():
        assert service.renew_periods(s, end) == 1
    wait_for(lambda: rate(nas, "capper").startswith(PLAN_RATE), timeout=30)
    wait_for(lambda: [a for a, _ in actions(seeded, "capper")]
             == ["throttle", "unthrottle", "throttle", "unthrottle"], timeout=30)
    assert nas.counters.disconnects == 0  # every change was a live CoA
