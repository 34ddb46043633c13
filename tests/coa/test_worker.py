"""The enforcement worker and queue against the database and a simulated NAS (no FreeRADIUS:
accounting rows are written through the accounting service, as the ingester would)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from billing import accounts
from billing.models import EnforcementRequest, Subscriber
from coa import queue
from coa.models import EnforcementAttempt
from coa.radius import CoaController
from coa.reconciler import accounting_drift, reconcile
from coa.routeros import RouterOsController
from coa.runner import status
from coa.transport import RadiusTransport
from coa.worker import EnforcementWorker, WorkerConfig
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import make_engine, session_factory, utcnow
from radbill.ops import Alert
from radius import accounting
from radius.models import RadiusSession
from radius.nas import create_nas
from simulators.nas import NasSimulator, SimSession
from tests.coa.aio import arun
from tests.coa.conftest import API_PASSWORD, NAS_SECRET
from tests.factories import make_plan, make_subscriber

TODAY = dt.date(2026, 12, 9)


@pytest.fixture
def settings(tmp_path: Path, db: Engine) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db.url.render_as_string(False))


def seed(db: Engine, box: SecretBox, sim: NasSimulator, *names: str, api: bool = False,
         via: str = "coa", **sub_kw: Any) -> None:
    with session_factory(db)() as s, s.begin():
        create_nas(s, box, name="sim", ip=sim.nas_ip, secret=NAS_SECRET, coa_port=sim.coa_port,
                   api_port=sim.api_port if api else None,
                   api_username="radbill" if api else None,
                   api_password=API_PASSWORD if api else None, enforce_via=via)
        make_plan(s, fup_rate="1M/512k", data_cap="100G")
        for name in names:
            make_subscriber(s, box, username=name, **sub_kw)


def online(db: Engine, sim: NasSimulator, name: str, *, service: str = "pppoe",
           at: dt.datetime | None = None) -> SimSession:
    """Put *name* online at the NAS and in accounting (an Accounting-Start)."""
    sess = sim.attach(name, service=service, rate_limit="5M/20M")
    record = accounting.AcctRecord(status=accounting.START, nas_ip=sim.nas_ip,
                                   event_time=at or utcnow() - dt.timedelta(minutes=5),
                                   username=name, acct_session_id=sess.session_id,
                                   framed_ip=sess.framed_ip)
    with session_factory(db)() as s, s.begin():
        accounting.apply(s, record)
    return sess


def stop(db: Engine, sim: NasSimulator, sess: SimSession) -> None:
    """The Accounting-Stop the NAS sends after a disconnect, as the ingester applies it."""
    with session_factory(db)() as s, s.begin():
        accounting.apply(s, accounting.AcctRecord(
            status=accounting.STOP, nas_ip=sim.nas_ip, event_time=utcnow(),
            username=sess.username, acct_session_id=sess.session_id,
            terminate_cause="Admin-Reset"))


def change(db: Engine, name: str, fn: Any) -> None:
    with session_factory(db)() as s, s.begin():
        sub = s.scalars(select(Subscriber).where(Subscriber.username == name)).one()
        fn(s, sub)


def suspend(db: Engine, name: str) -> None:
    change(db, name, lambda s, sub: accounts.suspend(s, sub, TODAY, "test", "test"))


def rounds(db: Engine, box: SecretBox, settings: Settings, n: int = 1, **config: Any
           ) -> list[dict[str, int]]:
    async def main() -> list[dict[str, int]]:
        transport = await RadiusTransport(sockets=2).start()
        api = RouterOsController(timeout=2)
        worker = EnforcementWorker(
            session_factory(db), box, settings, CoaController(transport, timeout=0.1, retries=1),
            api, WorkerConfig(**config),
            probe=session_factory(make_engine(settings.database_url, sqlite_begin="DEFERRED")))
        try:
            return [await worker.tick() for _ in range(n)]
        finally:
            transport.close()
            await api.close()

    return arun(main())


def requests(db: Engine) -> list[EnforcementRequest]:
    with session_factory(db)() as s:
        return list(s.scalars(select(EnforcementRequest).order_by(EnforcementRequest.id)))


def attempts(db: Engine) -> list[tuple[str, str, int | None]]:
    with session_factory(db)() as s:
        return [(a.channel, a.outcome, a.error_cause) for a in s.scalars(
            select(EnforcementAttempt).order_by(EnforcementAttempt.id))]


def test_suspension_disconnects_and_is_done_when_the_stop_arrives(db, box, sim, settings
                                                                  ) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", "bob")
    alice, bob = online(db, sim, "alice"), online(db, sim, "bob")
    suspend(db, "alice")
    assert rounds(db, box, settings)[0] == {"claimed": 1, "confirming": 1}
    assert [s.username for s in sim.online()] == ["bob"]
    assert attempts(db) == [("disconnect", "ack", None)]
    assert requests(db)[0].status == "confirming"
    assert rounds(db, box, settings)[0] == {}  # no Stop yet: still waiting
    stop(db, sim, alice)
    assert rounds(db, box, settings)[0] == {"confirmed": 1}
    req = requests(db)[0]
    assert (req.status, req.outcome, req.attempts) == ("done", "confirmed-stop", 1)
    assert sim.online("bob")[0] is bob


def test_no_stop_before_the_deadline_sends_it_again(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    online(db, sim, "alice")
    sim.redial_after = None
    suspend(db, "alice")
    rounds(db, box, settings, confirm_seconds=0)
    assert rounds(db, box, settings, confirm_seconds=0)[0] == {"unconfirmed": 1, "claimed": 1,
                                                               "done": 1}
    # the second try finds the session gone at the NAS: closed here too
    assert attempts(db) == [("disconnect", "ack", None), ("disconnect", "gone", 503)]
    with session_factory(db)() as s:
        row = s.scalars(select(RadiusSession)).one()
    assert (row.stopped_at is not None, row.terminate_cause) == (True, accounting.GONE)


def test_unanswered_requests_back_off_then_fail_with_an_alert(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    online(db, sim, "alice")
    sim.faults.silent = True
    suspend(db, "alice")
    before = utcnow()
    assert rounds(db, box, settings, max_attempts=2)[0] == {"claimed": 1, "retry": 1}
    req = requests(db)[0]
    assert req.status == "retry" and "no answer" in (req.last_error or "")
    assert dt.timedelta(seconds=1.5) < req.next_attempt_at - before < dt.timedelta(seconds=4)
    assert rounds(db, box, settings, max_attempts=2)[0] == {}  # backing off
    with session_factory(db)() as s, s.begin():
        s.execute(update(EnforcementRequest).values(next_attempt_at=utcnow()))
    assert rounds(db, box, settings, max_attempts=2)[0] == {"claimed": 1, "failed": 1}
    assert requests(db)[0].status == "failed"
    with session_factory(db)() as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.kind == "enforcement-failed" and "alice" in alert.message
        assert status(s, settings)["failed"] == 1
    assert sim.online("alice")


def test_nak_falls_back_to_the_routeros_api(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", api=True)
    online(db, sim, "alice")
    sim.faults.nak = 501
    suspend(db, "alice")
    assert rounds(db, box, settings)[0] == {"claimed": 1, "confirming": 1}
    assert attempts(db) == [("disconnect", "nak", 501), ("api-disconnect", "ack", None)]
    assert sim.online() == []


def test_api_only_nas_also_disables_a_locally_kept_secret(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", api=True, via="api")
    item = sim.api_add("/ppp/secret", {"name": "alice", "password": "x", "disabled": "no"})
    online(db, sim, "alice")
    change(db, "alice", lambda s, sub: accounts.subscribers.change_status(
        s, "alice", accounts.SubscriberStatus.TERMINATED, actor="t", reason="moved away"))
    with session_factory(db)() as s, s.begin():
        sub = s.scalars(select(Subscriber)).one()
        queue.request(s, sub.id, "terminate", "moved away")
    rounds(db, box, settings)
    assert attempts(db) == [("api-secret", "ack", None), ("api-disconnect", "ack", None)]
    assert sim.secrets[item]["disabled"] == "yes" and sim.online() == []
    assert sim.counters.disconnects == 0  # CoA never used for this NAS


def test_only_the_newest_request_of_a_subscriber_counts(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    online(db, sim, "alice")
    suspend(db, "alice")
    change(db, "alice", lambda s, sub: accounts.reactivate(s, sub, TODAY, "paid", "test"))
    rounds(db, box, settings)
    old, new = requests(db)
    assert (old.action, old.status, old.outcome) == ("suspend", "superseded",
                                                     f"superseded by #{new.id}")
    assert (new.action, new.status) == ("reconnect", "confirming")


def test_a_dead_workers_claim_is_taken_over_after_its_lease(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    online(db, sim, "alice")
    suspend(db, "alice")
    with session_factory(db)() as s, s.begin():  # a worker claims, then dies
        assert len(queue.claim(s, box, settings, utcnow(), 100)) == 1
    assert requests(db)[0].status == "working"
    assert rounds(db, box, settings)[0] == {}  # the lease still runs
    with session_factory(db)() as s, s.begin():
        s.execute(update(EnforcementRequest).values(next_attempt_at=utcnow()))
    assert rounds(db, box, settings)[0] == {"claimed": 1, "confirming": 1}
    assert requests(db)[0].attempts == 2 and sim.online() == []


def test_throttle_changes_the_rate_live_and_counts_as_current(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    alice = online(db, sim, "alice")
    change(db, "alice", lambda s, sub: accounts.set_throttle(s, sub, True, "fair usage"))
    assert rounds(db, box, settings)[0] == {"claimed": 1, "done": 1}
    assert sim.online("alice")[0] is alice and alice.rate_limit == "512k/1M"
    assert requests(db)[0].outcome == "coa-ack"
    with session_factory(db)() as s:
        assert s.scalars(select(RadiusSession.enforced_at)).one() is not None
        assert accounting_drift(s, settings) == []  # changed live: not drift


def test_suspend_by_coa_moves_the_session_into_the_garden_without_dropping_it(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    alice = online(db, sim, "alice")
    suspend(db, "alice")
    rounds(db, box, settings, suspend_by="coa")
    assert sim.online("alice")[0] is alice
    assert (alice.rate_limit, alice.address_list) == ("256k/256k", "radbill-suspended")
    assert requests(db)[0].status == "done"


def test_an_operators_disconnect_touches_one_session_and_supersedes_nothing(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", simultaneous_use=2)
    first, second = online(db, sim, "alice"), online(db, sim, "alice")
    suspend(db, "alice")
    with session_factory(db)() as s, s.begin():
        accounts.request_disconnect(s, "alice", nas_ip=sim.nas_ip,
                                    acct_session_id=second.session_id, reason="MAC changed",
                                    actor="op")
    rounds(db, box, settings)
    suspension, operator = requests(db)
    assert suspension.status == "confirming"  # the suspension was not superseded
    # both requests target the second session in one round: whichever arrives second gets
    # 503 and is done; the other waits for the Stop
    assert operator.status in ("confirming", "done")
    assert sim.online() == [] and first is not second
    assert sim.counters.disconnects == 2 and sim.counters.naks == 1


def test_accounting_drift_and_its_repair_by_resync(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", "bob")
    online(db, sim, "alice")
    online(db, sim, "bob")
    suspend(db, "alice")
    with session_factory(db)() as s, s.begin():  # as if the worker had found no session
        s.execute(update(EnforcementRequest).values(status="done", outcome="no-session"))
        drift = accounting_drift(s, settings)
    assert [(name, why.split(" ")[0]) for _, name, why in drift] == [("alice", "session")]
    counts = arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    assert counts["accounting_drift"] == 1 and counts["routers"] == 0
    rounds(db, box, settings)
    assert [s.username for s in sim.online()] == ["bob"]
    assert [r.action for r in requests(db)] == ["suspend", "resync"]


def test_reconciler_reads_the_router_and_repairs_it(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "ann", "ben", "cat", "dan", "eve", api=True)
    ann = online(db, sim, "ann")
    ann.address_list = "radbill-suspended"  # active, but stuck in the suspended list
    online(db, sim, "ben")
    suspend(db, "ben")
    with session_factory(db)() as s, s.begin():  # ben's suspension never reached the router
        s.execute(update(EnforcementRequest).values(status="failed"))
    sim.attach("eve")  # terminated, still online, and accounting never heard of it
    change(db, "eve", lambda s, sub: accounts.subscribers.change_status(
        s, "eve", accounts.SubscriberStatus.TERMINATED, actor="t", reason="moved"))
    tunnel = sim.attach("pop2-tunnel")  # not a subscriber: a site-to-site link
    sim.attach("cat", rate_limit="5M/20M")  # online, but accounting never heard of it
    dan = online(db, sim, "dan")
    counts = arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    assert counts["stuck-in-walled-garden"] == 1
    assert counts["outside-walled-garden"] == 1
    assert counts["online-not-allowed"] == 1
    assert counts["unaccounted"] == 3  # eve, the tunnel and cat
    assert counts["unknown_online"] == 1
    assert sorted(s.username for s in sim.online()) == ["cat", "dan", "pop2-tunnel"]
    assert sim.online("dan")[0] is dan and sim.online("pop2-tunnel")[0] is tunnel
    assert not any(r["list"] == "radbill-suspended" for r in sim.api_print(
        "/ip/firewall/address-list"))
    assert counts["accounting_drift"] == 1  # ben, seen by accounting too: a resync is queued
    repairs = [(r.status, r.outcome) for r in requests(db) if r.action == "resync"]
    assert sorted(repairs, key=str) == [("done", "api-repair"), ("done", "api-repair"),
                                        ("done", "api-repair"), ("pending", None)]
    with session_factory(db)() as s:
        assert status(s, settings)["last_reconcile"]["counts"]["unaccounted"] == 3


def test_request_rejects_an_unknown_action(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown enforcement action"):
        queue.request(session, 1, "explode", "no")


def test_a_coa_ack_is_read_back_through_the_api_and_repaired_if_it_did_not_take(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice", "bob", api=True)
    alice, bob = online(db, sim, "alice"), online(db, sim, "bob")
    change(db, "alice", lambda s, sub: accounts.set_throttle(s, sub, True, "fair usage"))
    rounds(db, box, settings)
    assert attempts(db) == [("coa", "ack", None), ("api-readback", "ack", None)]
    assert alice.rate_limit == "512k/1M"
    sim.faults.coa_no_effect = True  # the router ACKs but does nothing
    change(db, "bob", lambda s, sub: accounts.set_throttle(s, sub, True, "fair usage"))
    rounds(db, box, settings)
    assert attempts(db)[2:] == [("coa", "ack", None), ("api-readback", "nak", None),
                                ("api-change", "ack", None)]
    assert bob.rate_limit == "512k/1M" and sim.online("bob")[0] is bob
    assert [r.status for r in requests(db)] == ["done", "done"]


def test_an_ack_never_followed_by_a_stop_fails_after_every_attempt(db, box, sim, settings
                                                                    ) -> None:  # type: ignore[no-untyped-def]
    seed(db, box, sim, "alice")
    online(db, sim, "alice")
    sim.faults.coa_no_effect = True  # ACKs the Disconnect, drops nothing, sends no Stop
    suspend(db, "alice")
    config = {"confirm_seconds": 0, "max_attempts": 2}
    assert rounds(db, box, settings, **config)[0] == {"claimed": 1, "confirming": 1}
    assert rounds(db, box, settings, **config)[0] == {"unconfirmed": 1, "claimed": 1,
                                                      "confirming": 1}
    assert rounds(db, box, settings, **config)[0] == {"failed": 1}
    req = requests(db)[0]
    assert (req.status, req.attempts) == ("failed", 2) and "never stopped" in req.last_error
    with session_factory(db)() as s:
        assert [a.kind for a in s.scalars(select(Alert))] == ["enforcement-failed"]


def test_a_login_that_beat_the_policy_snapshot_is_drift(db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    from radius.models import PostAuth

    seed(db, box, sim, "alice")
    suspend(db, "alice")
    change(db, "alice", lambda s, sub: accounts.reactivate(s, sub, TODAY, "paid", "test"))
    rounds(db, box, settings)  # nobody online: done, no-session
    # her router re-dials at once and FreeRADIUS, 250 ms behind, still puts her in the garden
    online(db, sim, "alice", at=utcnow())
    with session_factory(db)() as s, s.begin():
        s.add(PostAuth(at=utcnow(), username="alice", nas_ip=sim.nas_ip, decision="accept",
                       reason="suspended-walled-garden"))
    with session_factory(db)() as s:
        assert [why for _, _, why in accounting_drift(s, settings)] == [
            "active, but logged in to the walled garden"]
    # a session moved live (CoA) after that login is current
    with session_factory(db)() as s, s.begin():
        s.execute(update(RadiusSession).values(enforced_at=utcnow() + dt.timedelta(seconds=1)))
    with session_factory(db)() as s:
        assert accounting_drift(s, settings) == []


def test_reconciler_knows_sessions_whose_ids_the_router_prints_in_upper_case(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    names = [f"u{i:02d}" for i in range(12)]
    seed(db, box, sim, *names, api=True)
    sessions = [online(db, sim, name) for name in names]
    assert {s.session_id for s in sessions} >= {"8100000a", "8100000b", "8100000c"}
    counts = arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    assert counts.get("unaccounted", 0) == 0  # the router's 0x8100000A is accounting's 8100000a
    assert len(sim.online()) == 12


def test_reconciler_closes_accounting_sessions_the_router_no_longer_lists(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    from radius.models import RadiusSession

    seed(db, box, sim, "ann", "ben", "cat", api=True)
    online(db, sim, "ann")
    ben = online(db, sim, "ben")
    online(db, sim, "cat", at=utcnow())  # started just now: maybe not listed yet, spared
    sim.sessions.pop(ben.session_id)  # the router lost ben's session without a Stop
    sim.sessions.pop(next(s.session_id for s in sim.online("cat")))
    counts = arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    assert counts["closed_not_on_router"] == 1
    with session_factory(db)() as s:
        rows = {r.username: (r.stopped_at is not None, r.terminate_cause)
                for r in s.scalars(select(RadiusSession))}
    assert rows == {"ann": (False, None), "ben": (True, accounting.GONE),
                    "cat": (False, None)}


def test_a_login_at_the_fair_usage_speed_that_beat_an_unthrottle_is_repaired_live(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: a top-up (or period renewal) lifts the cap throttle while the subscriber's
    router re-dials. The Access-Accept came from the snapshot before the unthrottle (the FUP
    rate); the unthrottle's request found no open session (the Start was not stored yet)
    and is done. Nothing else would ever give that session its full speed back."""
    from radius.models import PostAuth
    from usage import service as usage

    seed(db, box, sim, "alice", activated_on=TODAY - dt.timedelta(days=8), today=TODAY)
    with session_factory(db)() as s, s.begin():
        usage.add_pack(s, "Home-20", "10G", "10G", "100", actor="test")
        sub = s.scalars(select(Subscriber).where(Subscriber.username == "alice")).one()
        sub.cap_throttled = True  # over the cap and throttled, nobody online
    change(db, "alice", lambda s, sub: usage.buy_topup(s, "alice", "10G", today=TODAY,
                                                       actor="test"))
    assert [r.action for r in requests(db)] == ["unthrottle"]
    rounds(db, box, settings)  # nobody online yet: done, no-session
    assert [(r.status, r.outcome) for r in requests(db)] == [("done", "no-session")]
    # the login was answered from the snapshot before the top-up: the FUP rate
    sess = online(db, sim, "alice", at=utcnow())
    sess.rate_limit = "512k/1M"
    with session_factory(db)() as s, s.begin():
        s.add(PostAuth(at=utcnow() - dt.timedelta(seconds=1), username="alice",
                       nas_ip=sim.nas_ip, decision="accept", reason="fair-usage-throttled"))
    with session_factory(db)() as s:
        assert [why for _, _, why in accounting_drift(s, settings)] == [
            "not throttled, but logged in at the fair-usage speed"]
    counts = arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    assert counts["accounting_drift"] == 1
    rounds(db, box, settings)
    assert [r.action for r in requests(db)] == ["unthrottle", "unthrottle"]
    assert attempts(db) == [("coa", "ack", None)]  # live: the session stays up
    assert sim.online("alice")[0] is sess and sess.rate_limit == "5M/20M"
    with session_factory(db)() as s:
        assert accounting_drift(s, settings) == []  # changed live since that login


def test_a_login_at_full_speed_that_beat_a_throttle_is_repaired_live(
        db, box, sim, settings) -> None:  # type: ignore[no-untyped-def]
    from radius.models import PostAuth

    seed(db, box, sim, "alice")
    change(db, "alice", lambda s, sub: accounts.set_throttle(s, sub, True, "fair usage"))
    rounds(db, box, settings)  # nobody online yet: done, no-session
    sess = online(db, sim, "alice", at=utcnow())  # answered before the throttle: full speed
    with session_factory(db)() as s, s.begin():
        s.add(PostAuth(at=utcnow() - dt.timedelta(seconds=1), username="alice",
                       nas_ip=sim.nas_ip, decision="accept", reason="active"))
    with session_factory(db)() as s:
        assert [why for _, _, why in accounting_drift(s, settings)] == [
            "throttled, but logged in at full speed"]
    arun(reconcile(session_factory(db), box, settings, RouterOsController()))
    rounds(db, box, settings)
    assert [r.action for r in requests(db)] == ["throttle", "throttle"]
    assert sim.online("alice")[0] is sess and sess.rate_limit == "512k/1M"
