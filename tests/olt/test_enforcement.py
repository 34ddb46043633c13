"""Every SNMP profile over real UDP against the simulated OLT: discover, bind, suspend ->
blocked (read back), pay -> unblocked; reboots with re-indexing; quiet no-op SETs; v3 keys;
an unreachable OLT next to a healthy one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from billing import accounts
from billing.models import Subscriber
from coa.models import EnforcementAttempt
from coa.radius import CoaController
from coa.routeros import RouterOsController
from coa.runner import status
from coa.transport import RadiusTransport
from coa.worker import EnforcementWorker, WorkerConfig
from olt import inventory, poller
from olt.channel import OltChannel
from olt.models import OltTask
from olt.snmp import Credentials, OltAuthError, OltTimeout, SnmpClient
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import session_factory, utcnow
from radbill.ops import Alert
from simulators.olt import SimOlt
from tests.coa.aio import arun
from tests.factories import make_plan, make_subscriber
from tests.olt.conftest import SNMP_PROFILES, V3

TODAY = dt.date(2026, 12, 9)


@pytest.fixture
def settings(tmp_path: Path, db: Engine) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db.url.render_as_string(False))


def register(db: Engine, box: SecretBox, sim: SimOlt, name: str = "olt-1", *,
             v3: bool = False, timeout_ms: int = 500, **kw: Any) -> None:
    creds: dict[str, Any] = (dict(V3) if v3 else
                             {"community": sim.community,
                              "write_community": sim.write_community})
    with session_factory(db)() as s, s.begin():
        inventory.create_olt(s, box, name=name, vendor=sim.vendor, ip="127.0.0.1",
                             port=sim.port, timeout_ms=timeout_ms, retries=0, **creds, **kw)


def subscribers(db: Engine, box: SecretBox, *names: str) -> None:
    with session_factory(db)() as s, s.begin():
        if s.scalar(select(Subscriber.id).limit(1)) is None:
            make_plan(s)
        for name in names:
            make_subscriber(s, box, username=name)


def bind(db: Engine, username: str, olt: str, ident: str, kind: str) -> None:
    with session_factory(db)() as s, s.begin():
        inventory.bind(s, username, olt, **{kind: ident})


def change(db: Engine, name: str, fn: Any) -> None:
    with session_factory(db)() as s, s.begin():
        sub = s.scalars(select(Subscriber).where(Subscriber.username == name)).one()
        fn(s, sub)


def suspend(db: Engine, name: str) -> None:
    change(db, name, lambda s, sub: accounts.suspend(s, sub, TODAY, "unpaid", "test"))


def pay(db: Engine, name: str) -> None:
    change(db, name, lambda s, sub: accounts.reactivate(s, sub, TODAY, "paid", "test"))


def worker_rounds(db: Engine, box: SecretBox, settings: Settings, n: int = 1,
                  **olt_kw: Any) -> list[dict[str, int]]:
    async def main() -> list[dict[str, int]]:
        transport = await RadiusTransport(sockets=1).start()
        api = RouterOsController(timeout=1)
        factory = session_factory(db)
        worker = EnforcementWorker(factory, box, settings,
                                   CoaController(transport, timeout=0.1, retries=0), api,
                                   WorkerConfig(), olt=OltChannel(factory, box, **olt_kw))
        try:
            return [await worker.tick() for _ in range(n)]
        finally:
            transport.close()
            await api.close()

    return arun(main())


def olt_attempts(db: Engine) -> list[tuple[str, str]]:
    with session_factory(db)() as s:
        return [(a.outcome, a.detail or "") for a in s.scalars(
            select(EnforcementAttempt).where(EnforcementAttempt.channel == "olt")
            .order_by(EnforcementAttempt.id))]


def tasks(db: Engine) -> list[OltTask]:
    with session_factory(db)() as s:
        return list(s.scalars(select(OltTask).order_by(OltTask.id)))


def due_now(db: Engine) -> None:
    with session_factory(db)() as s, s.begin():
        s.execute(update(OltTask).values(next_attempt_at=utcnow()))


def kind_of(sim: SimOlt) -> str:
    return sim.layout.ident_kind


@pytest.mark.parametrize("vendor", SNMP_PROFILES)
def test_discover_bind_suspend_blocks_and_payment_unblocks(db, box, settings, olt_sim,  # type: ignore[no-untyped-def]
                                                           vendor) -> None:
    sim = olt_sim(vendor, onus=6)
    register(db, box, sim)
    counts = poller.discover(db, box, "olt-1")
    assert (counts["seen"], counts["new"], counts["online"]) == (6, 6, 6)
    with session_factory(db)() as s:
        onus = inventory.onus_of(s, inventory.get_olt(s, "olt-1"))
    assert sorted(o["ident"] for o in onus) == sorted(o.ident for o in sim.onus)
    first = next(o for o in onus if o["ident"] == sim.onus[1].ident)
    assert first["status"] == "online" and first["rx_dbm"] == sim.onus[1].rx_dbm
    assert first["pon"] is not None and first["onu"] is not None and first["blocked"] is False
    subscribers(db, box, "alice", "bob")
    target, other = sim.onus[1], sim.onus[2]
    bind(db, "alice", "olt-1", target.ident, kind_of(sim))
    bind(db, "bob", "olt-1", other.ident, kind_of(sim))

    suspend(db, "alice")
    out = worker_rounds(db, box, settings)[0]
    assert out["olt_done"] == 1
    assert sim.by_ident(target.ident).blocked and not sim.by_ident(other.ident).blocked
    [(outcome, detail)] = olt_attempts(db)
    assert outcome == "ack" and "blocked at index" in detail
    assert sim.layout.save_oid is None or sim.counters.saves == 1
    with session_factory(db)() as s:
        assert inventory.binding_of(s, s.scalars(select(Subscriber.id).where(
            Subscriber.username == "alice")).one())["blocked"] is True

    pay(db, "alice")
    assert worker_rounds(db, box, settings)[0]["olt_done"] == 1
    assert not sim.by_ident(target.ident).blocked
    assert [o for o, _ in olt_attempts(db)] == ["ack", "ack"]
    assert [t.block for t in tasks(db)] == [True, False]


@pytest.mark.parametrize("vendor", ["bdcom-epon", "huawei-gpon", "vsol-gpon"])
def test_after_a_reboot_with_reindexing_the_right_onu_is_hit_and_the_block_restored(  # type: ignore[no-untyped-def]
        db, box, settings, olt_sim, vendor) -> None:
    sim = olt_sim(vendor, onus=8)
    # no saved configuration here, so the reboot forgets the block
    register(db, box, sim, overrides='{"save_oid": null}')
    poller.discover(db, box, "olt-1")
    subscribers(db, box, "alice")
    target = sim.onus[0]
    before = sim.index_of(target)
    bind(db, "alice", "olt-1", target.ident, kind_of(sim))
    suspend(db, "alice")
    worker_rounds(db, box, settings)
    assert sim.by_ident(target.ident).blocked

    time.sleep(0.05)
    sim.reboot()
    assert sim.index_of(target) != before and not sim.by_ident(target.ident).blocked
    # the watch notices sysUpTime went backwards, polls, and queues a repair for the drift
    got = arun(poller.watch(session_factory(db), box))
    assert got["reboots"] == 1 and got["drift"] == 1
    with session_factory(db)() as s:
        assert status(s, settings)["olt"]["drift"] == 0  # the repair is queued (open task)
        assert s.scalars(select(Alert.kind)).all() == ["olt-rebooted"]
    worker_rounds(db, box, settings)
    assert sim.by_ident(target.ident).blocked
    assert sum(o.blocked for o in sim.onus) == 1  # only alice's ONU, at its new index
    assert olt_attempts(db)[-1][0] == "ack" and sim.index_of(target) in olt_attempts(db)[-1][1]


def test_drift_is_counted_in_enforcement_status(db, box, settings, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("zte-gpon", onus=3)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[0].ident, "serial")
    sim.set_onu(sim.onus[0].ident, blocked=True)  # someone blocked it by hand on the OLT
    poller.discover(db, box, "olt-1")
    with session_factory(db)() as s:
        assert status(s, settings)["olt"]["drift"] == 1
        assert status(s, settings)["olt"]["bound"] == 1


def test_a_silent_no_op_set_is_detected_retried_and_reported(db, box, settings, olt_sim  # type: ignore[no-untyped-def]
                                                              ) -> None:
    sim = olt_sim("cdata-gpon", onus=3)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[0].ident, "serial")
    sim.faults.silent_set = True
    suspend(db, "alice")
    assert worker_rounds(db, box, settings, max_attempts=2)[0]["olt_retry"] == 1
    [(outcome, detail)] = olt_attempts(db)
    assert outcome == "not-applied" and "answered noError" in detail
    due_now(db)
    assert worker_rounds(db, box, settings, max_attempts=2)[0]["olt_failed"] == 1
    with session_factory(db)() as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.kind == "olt-enforcement-failed" and sim.onus[0].ident in alert.message
        assert status(s, settings)["olt"]["failed"] == 1
    assert not sim.onus[0].blocked


@pytest.mark.parametrize("fault", ["noAccess", "drop"])
def test_a_read_only_write_community_fails_clearly(db, box, settings, olt_sim, fault  # type: ignore[no-untyped-def]
                                                   ) -> None:
    sim = olt_sim("huawei-gpon", onus=2)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[0].ident, "serial")
    sim.faults.read_only_write = fault
    suspend(db, "alice")
    worker_rounds(db, box, settings)
    assert olt_attempts(db)[0][0] == ("read-only" if fault == "noAccess" else "timeout")
    assert tasks(db)[0].status == "retry"


def test_v3_authpriv_works_and_a_wrong_key_fails_clearly(olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("zte-gpon", onus=2)

    async def main() -> tuple[dict[str, Any], str]:
        async with SnmpClient(Credentials("127.0.0.1", sim.port, **V3)) as good:
            values = await good.get(["1.3.6.1.2.1.1.3.0"])
        wrong = Credentials("127.0.0.1", sim.port, v3_user="radbill",
                            v3_auth_key="not-the-key", v3_priv_key=V3["v3_priv_key"],
                            timeout=10, retries=0)  # the report answers at once: the
        # long timeout only matters on a loaded machine (1 s timed out in a CI run)
        async with SnmpClient(wrong) as bad:
            with pytest.raises(OltAuthError, match="authentication failed") as exc:
                await bad.get(["1.3.6.1.2.1.1.3.0"])
        return values, str(exc.value)

    values, message = arun(main())
    assert isinstance(values["1.3.6.1.2.1.1.3.0"], int)
    assert "Wrong SNMP PDU digest" in message


def test_v3_olt_is_enforced_end_to_end(db, box, settings, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("bdcom-gpon", onus=3)
    register(db, box, sim, v3=True)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[2].ident, "serial")
    suspend(db, "alice")
    worker_rounds(db, box, settings)
    assert sim.onus[2].blocked and olt_attempts(db)[0][0] == "ack"


def test_a_wrong_community_looks_like_a_timeout(olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("zte-gpon", onus=1)

    async def main() -> None:
        async with SnmpClient(Credentials("127.0.0.1", sim.port, "guess", timeout=0.3,
                                          retries=0)) as c:
            with pytest.raises(OltTimeout):
                await c.get(["1.3.6.1.2.1.1.3.0"])

    arun(main())


@pytest.mark.parametrize("fault", ["unreachable", "slow-walk"])
def test_an_unreachable_or_slow_olt_does_not_delay_another(db, box, settings, olt_sim,  # type: ignore[no-untyped-def]
                                                           fault) -> None:
    dead = olt_sim("huawei-gpon", onus=2)
    live = olt_sim("zte-gpon", onus=2, seed=1)
    register(db, box, dead, "dead", timeout_ms=3000)
    register(db, box, live, "live")
    subscribers(db, box, "alice", "bob")
    bind(db, "alice", "dead", dead.onus[0].ident, "serial")
    bind(db, "bob", "live", live.onus[0].ident, "serial")
    if fault == "unreachable":
        dead.faults.drop = True
    else:
        dead.faults.walk_delay = 2.5  # every GETBULK answered 2.5 s late (under the timeout)

    async def main() -> tuple[float, float]:
        factory = session_factory(db)
        channel = OltChannel(factory, box)
        started = time.monotonic()
        await channel.spawn()
        live_done = 0.0
        while channel.inflight:
            await asyncio.sleep(0.02)
            with factory() as s:
                rows = {t.ident: t.status for t in s.scalars(select(OltTask))}
            if not live_done and rows.get(live.onus[0].ident) == "done":
                live_done = time.monotonic() - started
        return live_done, time.monotonic() - started

    suspend(db, "alice")
    suspend(db, "bob")
    with session_factory(db)() as s, s.begin():
        from coa import queue
        from olt.channel import plan

        reqs = queue.claim(s, box, settings, utcnow(), 100)
        plan(s, [(r.request_id, r.subscriber_id) for r in reqs], utcnow())
    live_done, dead_done = arun(main())
    assert live.onus[0].blocked
    assert dead_done >= 2.5
    # the live OLT did not wait for the other: done while the dead one was still waiting (a
    # margin, not a wall-clock bound: on a loaded machine the live one alone took 2.4 s)
    assert 0 < live_done < dead_done - 1.0
    by_olt = {t.ident: t for t in tasks(db)}
    assert by_olt[live.onus[0].ident].status == "done"
    other = by_olt[dead.onus[0].ident]
    if fault == "unreachable":
        assert not dead.onus[0].blocked
        assert other.status == "retry" and "timed out" in (other.last_error or "")
        assert other.next_attempt_at > utcnow()  # backing off
    else:  # slow, but it answers: done, only later
        assert dead.onus[0].blocked and other.status == "done"


def test_an_onu_that_vanished_from_the_olt_is_reported_not_found(db, box, settings, olt_sim  # type: ignore[no-untyped-def]
                                                                  ) -> None:
    sim = olt_sim("vsol-gpon", onus=2)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", "VSOL12345678", "serial")
    suspend(db, "alice")
    worker_rounds(db, box, settings)
    assert olt_attempts(db)[0][0] == "not-found"


def test_nas_only_vendor_is_not_touched_over_snmp(db, box, settings, olt_sim) -> None:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        inventory.create_olt(s, box, name="epon", vendor="vsol-epon", ip="127.0.0.1",
                             port=9, community="public")
    subscribers(db, box, "alice")
    bind(db, "alice", "epon", "02:00:00:00:00:01", "mac")
    suspend(db, "alice")
    worker_rounds(db, box, settings)
    [(outcome, detail)] = olt_attempts(db)
    assert outcome == "unsupported" and "NAS only" in detail
    assert tasks(db)[0].status == "failed"
    with session_factory(db)() as s:
        assert status(s, settings)["olt"]["nas_only"] == 1


def test_poll_keeps_history_and_marks_weak_signals(db, box, settings, olt_sim) -> None:  # type: ignore[no-untyped-def]
    sim = olt_sim("huawei-gpon", onus=3)
    register(db, box, sim)
    sim.set_onu(sim.onus[0].ident, rx_dbm=-29.5)
    sim.set_onu(sim.onus[1].ident, online=False)
    arun(poller.poll(session_factory(db), box))
    sim.set_onu(sim.onus[0].ident, rx_dbm=-30.25)
    arun(poller.poll(session_factory(db), box))
    sim.set_onu(sim.onus[0].ident, rx_dbm=-31.0)
    # the reconciler's pass (every minute) updates the current state, keeps no sample
    arun(poller.poll(session_factory(db), box, sample=False))
    with session_factory(db)() as s:
        rows = {o["ident"]: o for o in inventory.onus_of(s, inventory.get_olt(s, "olt-1"))}
        weak = rows[sim.onus[0].ident]
        assert (weak["weak"], weak["rx_dbm"], weak["status"]) == (True, -31.0, "online")
        off = rows[sim.onus[1].ident]
        assert (off["status"], off["rx_dbm"], off["weak"]) == ("offline", None, False)
        from olt.models import Onu

        onu_id = s.scalars(select(Onu.id).where(Onu.ident == sim.onus[0].ident)).one()
        samples = inventory.samples_of(s, onu_id)
        assert [x.rx_dbm for x in samples] == [-29.5, -30.25]
    with session_factory(db)() as s, s.begin():  # 30 days after the second: the first goes
        olt = inventory.get_olt(s, "olt-1")
        inventory.store_readings(s, olt, [], samples[1].at + dt.timedelta(days=30))
    with session_factory(db)() as s:
        # and an ONU the OLT no longer reports is shown offline, with a sample saying so
        assert [x.rx_dbm for x in inventory.samples_of(s, onu_id)] == [-30.25, None]
        assert {o["status"] for o in inventory.onus_of(s, inventory.get_olt(s, "olt-1"))} == {
            "offline"}


def test_the_scheduled_olt_poll_job_keeps_samples(db, box, settings, olt_sim) -> None:  # type: ignore[no-untyped-def]
    from radbill import scheduler
    from radbill.crypto import secret_box

    sim = olt_sim("bdcom-epon", onus=2)
    with session_factory(db)() as s, s.begin():
        inventory.create_olt(s, secret_box(settings), name="olt-1", vendor=sim.vendor,
                             ip="127.0.0.1", port=sim.port, community="public",
                             write_community="private")
    assert scheduler.run_job(db, settings, "olt-poll", scheduler.olt_poll_job(settings)) == "ok"
    with session_factory(db)() as s:
        from olt.models import OnuSample

        assert len(s.scalars(select(OnuSample)).all()) == 2


def test_the_running_worker_repairs_a_reboot_within_seconds(db, box, settings, olt_sim  # type: ignore[no-untyped-def]
                                                            ) -> None:
    sim = olt_sim("zte-gpon", onus=8)
    register(db, box, sim, timeout_ms=3000)
    poller.discover(db, box, "olt-1")
    assert arun(poller.watch(session_factory(db), box)) == {}  # no reboot, nothing done
    subscribers(db, box, "alice")
    ident = sim.onus[3].ident  # (the list is reordered by the reboot)
    bind(db, "alice", "olt-1", ident, "serial")
    suspend(db, "alice")

    async def main() -> float:
        transport = await RadiusTransport(sockets=1).start()
        api = RouterOsController(timeout=1)
        factory = session_factory(db)
        worker = EnforcementWorker(factory, box, settings,
                                   CoaController(transport, timeout=0.1, retries=0), api,
                                   WorkerConfig(olt_watch_seconds=0.5, reconcile_seconds=3600),
                                   olt=OltChannel(factory, box))
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                if [o for o, _ in olt_attempts(db)] == ["ack"]:
                    break
            assert sim.by_ident(ident).blocked, olt_attempts(db)
            sim.reboot()  # forgets the block (nothing saved: ZTE has no SNMP save)
            started = time.monotonic()
            while time.monotonic() - started < 10:
                await asyncio.sleep(0.05)
                if sim.by_ident(ident).blocked:
                    return time.monotonic() - started
            return -1.0
        finally:
            stop.set()
            await running
            transport.close()
            await api.close()

    repaired = arun(main())
    assert 0 < repaired < 5, olt_attempts(db)  # the reconciler (every hour here) was not needed
    [(first, before), (second, after)] = olt_attempts(db)
    assert (first, second) == ("ack", "ack")
    assert before != after  # the ONU came back under another index and was found by serial


@pytest.mark.parametrize("action", ["disable", "terminate"])
def test_disable_and_terminate_block_too(db, box, settings, olt_sim, action) -> None:  # type: ignore[no-untyped-def]
    from billing.models import SubscriberStatus

    sim = olt_sim("bdcom-epon", onus=3)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[1].ident, "mac")
    target = SubscriberStatus.DISABLED if action == "disable" else SubscriberStatus.TERMINATED
    with session_factory(db)() as s, s.begin():
        accounts.set_status_by_operator(s, "alice", target, actor="test", reason="test")
    worker_rounds(db, box, settings)
    assert sim.onus[1].blocked and not sim.onus[0].blocked
    assert [o for o, _ in olt_attempts(db)] == ["ack"]


def test_a_task_left_working_by_a_dead_worker_is_taken_again_after_its_lease(  # type: ignore[no-untyped-def]
        db, box, settings, olt_sim) -> None:
    sim = olt_sim("cdata-gpon", onus=2)
    register(db, box, sim)
    subscribers(db, box, "alice")
    bind(db, "alice", "olt-1", sim.onus[0].ident, "serial")
    suspend(db, "alice")
    with session_factory(db)() as s, s.begin():
        from coa import queue
        from olt.channel import plan

        reqs = queue.claim(s, box, settings, utcnow(), 100)
        plan(s, [(r.request_id, r.subscriber_id) for r in reqs], utcnow())
        s.execute(update(OltTask).values(status="working", attempts=1,
                                         next_attempt_at=utcnow() + dt.timedelta(minutes=2)))
    channel_tick = lambda: arun(OltChannel(session_factory(db), box).tick())  # noqa: E731
    assert channel_tick() == {}  # still leased to the (dead) worker
    with session_factory(db)() as s, s.begin():
        s.execute(update(OltTask).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
    assert channel_tick() == {"olt_done": 1}
    assert sim.onus[0].blocked and tasks(db)[0].attempts == 2
