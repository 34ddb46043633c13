"""Two RADIUS nodes on one database, on loopback, each `radbill radius run` with its own data
directory and node name, the same at-rest key, and a simulated NAS that lists node A as its
primary and node B as its secondary server (issue 15, point 2).

The tests run in order and build on each other: both nodes decide alike and follow a billing
change; node A dies with accounting in its spool that its ingester had not applied, the NAS
fails over to B, and A applies its spool when it comes back; the enforcement workers of both
nodes share one queue; a node with another key refuses to start, in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from billing import subscribers
from billing.models import EnforcementRequest, Subscriber, SubscriberStatus
from coa import queue
from coa.models import EnforcementAttempt
from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import session_factory
from radius.models import DetailCursor, RadiusSession
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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USERS = [f"n{i:03d}" for i in range(60)]
COA = free_udp_port()
GARDEN = "radbill-suspended"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tmp_path_factory.mktemp("node-a"), tmp_path_factory.mktemp("node-b")


@pytest.fixture(scope="module")
def key_box(dirs: tuple[Path, Path]) -> SecretBox:
    return SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(dirs[0])})))


@pytest.fixture(scope="module")
def world(engine: Engine, key_box: SecretBox) -> Engine:
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        create_nas(s, key_box, name="nas", ip="127.0.0.1", secret=SECRET, coa_port=COA)
        make_plan(s, burst="40M/10M", ip_pool="pool-home")
        for name in USERS:
            make_subscriber(s, key_box, username=name, password=f"pw-{name}")
    return engine


def node(database_url: str, data_dir: Path, key_dir: Path,
         ports: tuple[int, int] | None = None) -> RadiusServer:
    return RadiusServer(database_url, data_dir, ports,
                        RADBILL_NODE_NAME=data_dir.name,
                        RADBILL_SECRET_KEY_FILE=str(key_dir / "secret.key"))


@pytest.fixture(scope="module")
def nodes(world: Engine, database_url: str, dirs: tuple[Path, Path]
          ) -> Iterator[dict[str, RadiusServer]]:
    running = {"a": node(database_url, dirs[0], dirs[0]).start(),
               "b": node(database_url, dirs[1], dirs[0]).start()}
    yield running
    for server in running.values():
        server.stop()
    for name, server in running.items():
        assert "shorter than the cursor" not in server.log, name
        assert "Traceback" not in server.log, server.log[-3000:]


@pytest.fixture(scope="module")
def nas(nodes: dict[str, RadiusServer]) -> Iterator[NasSimulator]:
    a, b = nodes["a"], nodes["b"]
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=a.auth_port, acct_port=a.acct_port,
                       secret=SECRET, coa_port=COA, seed=3,
                       secondary=("127.0.0.1", b.auth_port, b.acct_port)).start()
    yield sim
    sim.stop()


def decision(server: RadiusServer, user: str, password: str) -> tuple[int | None, dict]:  # type: ignore[type-arg]
    result = server.client(timeout=2, retries=2).authenticate(user, password)
    attrs = {k: v for k, v in result.attrs.items()
             if k not in ("Session-Timeout", "Message-Authenticator")}
    return result.code, attrs


def test_both_nodes_make_identical_decisions(nodes, world) -> None:  # type: ignore[no-untyped-def]
    cases = [(u, f"pw-{u}") for u in USERS[:5]] + [(USERS[5], "wrong"), ("nobody", "x-x-x-x")]
    a = [decision(nodes["a"], u, p) for u, p in cases]
    b = [decision(nodes["b"], u, p) for u, p in cases]
    assert a == b
    assert [code for code, _ in a] == [2] * 5 + [3, 3]  # Access-Accept / Access-Reject
    assert a[0][1]["Mikrotik-Rate-Limit"] == ["5M/20M 10M/40M 3750k/15M 16/16"]


def test_a_billing_change_reaches_both_nodes(nodes, world) -> None:  # type: ignore[no-untyped-def]
    user = USERS[6]
    with session_factory(world)() as s, s.begin():
        subscribers.change_status(s, user, SubscriberStatus.SUSPENDED, actor="test")
    for server in nodes.values():
        wait_until(lambda server=server: decision(server, user, f"pw-{user}"),
                   lambda d: d[1].get("Mikrotik-Address-List") == [GARDEN], timeout=5)
    assert decision(nodes["a"], user, f"pw-{user}") == decision(nodes["b"], user, f"pw-{user}")
    with session_factory(world)() as s, s.begin():
        subscribers.change_status(s, user, SubscriberStatus.ACTIVE, actor="test")
    for server in nodes.values():
        wait_until(lambda server=server: decision(server, user, f"pw-{user}"),
                   lambda d: "Mikrotik-Address-List" not in d[1], timeout=5)


def stored(engine: Engine) -> dict[str, tuple[int, int, bool]]:
    """Each session's (input, output, stopped) as accounting stored it, by Acct-Session-Id."""
    with session_factory(engine)() as s:
        return {r.acct_session_id: (r.input_octets, r.output_octets, r.stopped_at is not None)
                for r in s.scalars(select(RadiusSession).order_by(RadiusSession.id))}


def test_node_a_dies_mid_stream_logins_fail_over_and_no_accounting_is_lost(
        nodes, nas, world, database_url, dirs) -> None:  # type: ignore[no-untyped-def]
    first, later = USERS[10:30], USERS[30:40]
    assert all(r.accepted for r in nas.login_many((u, f"pw-{u}") for u in first))
    assert nas.counters.failovers == 0  # the primary answered
    nas.interim(grow=1_000_000)
    wait_for(lambda: sum(1 for v in stored(world).values() if v[0] == 1_000_000) == len(first),
             timeout=20)
    a = nodes["a"]
    # A's ingester stops (its process frozen) while its FreeRADIUS goes on answering and
    # spooling: what follows is on A's disk only ...
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    nas.interim(grow=5_000_000)
    ended = [s.session_id for s in nas.online() if s.username in first[:5]]
    for user in first[:5]:
        nas.logout(user)
    expected = {s.session_id: (s.input_bytes, s.output_bytes) for s in nas.online()}
    # ... and A dies: FreeRADIUS and the ingester, at once
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    spooled = stored(world)
    assert all(spooled[sid][0] == 1_000_000 for sid in expected)  # not in the database yet
    assert not any(spooled[sid][2] for sid in ended)

    # logins fail over to B, and so does their accounting
    assert all(r.accepted for r in nas.login_many((u, f"pw-{u}") for u in later))
    assert nas.counters.failovers >= 1
    b_sessions = {s.session_id for s in nas.online() if s.username in later}
    wait_for(lambda: b_sessions <= set(stored(world)), timeout=20)
    assert nas.counters.acct_lost == 0

    # A comes back on its data directory and ports and applies what its spool holds
    restarted = node(database_url, dirs[0], dirs[0], (a.auth_port, a.acct_port)).start()
    nodes["a"] = restarted

    def caught_up() -> bool:
        now = stored(world)
        return (all(now[sid][:2] == want for sid, want in expected.items())
                and all(now[sid][2] for sid in ended))

    wait_for(caught_up, timeout=30)
    assert "shorter than the cursor" not in restarted.log
    with session_factory(world)() as s:
        cursors = {(c.node, c.stream) for c in s.scalars(select(DetailCursor))}
    assert {(dirs[0].name, "acct"), (dirs[1].name, "acct")} <= cursors


def test_enforcement_workers_on_both_nodes_share_the_queue(nodes, nas, world, database_url,
                                                           dirs) -> None:  # type: ignore[no-untyped-def]
    targets = sorted({s.username for s in nas.online()})
    assert len(targets) >= 20
    wait_for(lambda: sum(1 for v in stored(world).values() if not v[2]) >= len(targets),
             timeout=20)
    before = nas.counters.disconnects, nas.counters.naks
    workers = [EnforcementWorker(database_url, d, RADBILL_SECRET_KEY_FILE=str(
        dirs[0] / "secret.key"), RADBILL_COA_TIMEOUT_MS="2000").start() for d in dirs]
    try:
        with session_factory(world)() as s, s.begin():
            ids = dict(s.execute(select(Subscriber.username, Subscriber.id)
                                 .where(Subscriber.username.in_(targets))).all())
            for user in targets:
                queue.request(s, ids[user], "disconnect", "test: two workers")

        def finished() -> list[tuple[str, int]] | None:
            with session_factory(world)() as s:
                rows = s.execute(select(EnforcementRequest.status, EnforcementRequest.attempts)
                                 .where(EnforcementRequest.reason == "test: two workers")
                                 .order_by(EnforcementRequest.id)).all()
            return None if any(st not in ("done", "failed") for st, _ in rows) else list(rows)

        rows = wait_for(finished, timeout=60)
    finally:
        logs = [w.log for w in workers]
        for w in workers:
            w.stop()
    assert rows == [("done", 1)] * len(targets), logs
    # every subscriber disconnected once: not once by each worker (a second Disconnect for a
    # session already gone would be NAKed)
    assert (nas.counters.disconnects - before[0], nas.counters.naks - before[1]) == (
        len(targets), 0)
    assert not any(s.username in targets for s in nas.online())
    with session_factory(world)() as s:
        sent = s.scalars(select(EnforcementAttempt.outcome)
                         .join(EnforcementRequest,
                               EnforcementRequest.id == EnforcementAttempt.request_id)
                         .where(EnforcementRequest.reason == "test: two workers")
                         .order_by(EnforcementAttempt.id)).all()
    assert sent == ["ack"] * len(targets)  # one attempt per request: no worker repeated one


def test_a_node_with_another_key_says_so_in_one_line(world, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "RADBILL_DATABASE_URL": database_url, "RADBILL_DATA_DIR": str(tmp_path),
           "RADBILL_NODE_NAME": "node-c"}  # no key copied: a new one is made, not the one
    proc = subprocess.run([sys.executable, "-m", "radbill.cli", "radius", "run", "--auth-port",
                           str(free_udp_port()), "--acct-port", str(free_udp_port())],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, lines
    assert "is not the key this database's secrets were written with" in lines[0]
    assert str(tmp_path / "secret.key") in lines[0]
