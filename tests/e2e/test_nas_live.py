"""NAS without restarts (issue 15, point 4): adding, changing and removing a NAS reaches a
running FreeRADIUS within seconds, while another NAS logs subscribers in and out under load
and never misses an answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import session_factory
from radius.nas import create_nas, delete_nas, update_nas
from simulators.nas import NasSimulator
from simulators.radius_client import RadiusClient
from tests.conftest import wipe
from tests.e2e.server import SECRET, RadiusServer, wait_for
from tests.factories import make_plan, make_subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USERS = [f"live{i:02d}" for i in range(20)]
SECRET_B, SECRET_B2 = "nas-b-secret-1", "nas-b-secret-2"


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="module")
def live_box(live_dir: Path) -> SecretBox:
    return SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(live_dir)})))


@pytest.fixture(scope="module")
def live(engine: Engine, live_box: SecretBox, database_url: str, live_dir: Path
         ) -> Iterator[RadiusServer]:
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        create_nas(s, live_box, name="nas-a", ip="127.0.0.1", secret=SECRET)
        make_plan(s)
        for name in USERS:
            make_subscriber(s, live_box, username=name, password=f"pw-{name}",
                            simultaneous_use=100)
        make_subscriber(s, live_box, username="probe", password="pw-probe", simultaneous_use=100)
    server = RadiusServer(database_url, live_dir).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


class Load:
    """NAS A at work: its subscribers log in, send an Interim and log out, over and over."""

    def __init__(self, sim: NasSimulator) -> None:
        self.sim, self.cycles, self.refused = sim, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            results = self.sim.login_many((u, f"pw-{u}") for u in USERS)
            self.refused += sum(1 for r in results if not r.accepted)
            self.sim.interim()
            for user in USERS:
                self.sim.logout(user)
            self.cycles += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


def answered(server: RadiusServer, secret: str) -> bool:
    """Whether FreeRADIUS answers an Access-Request from 127.0.0.2 signed with *secret*."""
    client = RadiusClient("127.0.0.1", secret, server.auth_port, server.acct_port, timeout=0.5,
                          retries=1, nas_ip="127.0.0.2")
    client.client.bind(("127.0.0.2", 0))
    return not client.authenticate("probe", "pw-probe").timed_out


def test_nas_added_changed_and_removed_under_load(live, engine, live_box) -> None:  # type: ignore[no-untyped-def]
    sim = NasSimulator(nas_ip="127.0.0.1", auth_port=live.auth_port,
                       acct_port=live.acct_port, secret=SECRET, seed=5).start()
    factory = session_factory(engine)
    took: dict[str, float] = {}
    try:
        with Load(sim) as load:
            wait_for(lambda: load.cycles >= 2, timeout=60)
            assert not answered(live, SECRET_B)  # not a NAS yet

            with factory() as s, s.begin():
                create_nas(s, live_box, name="nas-b", ip="127.0.0.2", secret=SECRET_B)
            t0 = time.monotonic()
            wait_for(lambda: answered(live, SECRET_B), timeout=15)
            took["added"] = time.monotonic() - t0

            with factory() as s, s.begin():
                update_nas(s, live_box, "nas-b", secret=SECRET_B2)
            t0 = time.monotonic()
            wait_for(lambda: answered(live, SECRET_B2), timeout=15)
            took["changed"] = time.monotonic() - t0
            assert not answered(live, SECRET_B)  # the old secret is gone

            with factory() as s, s.begin():
                delete_nas(s, "nas-b")
            t0 = time.monotonic()
            wait_for(lambda: not answered(live, SECRET_B2), timeout=15)
            took["removed"] = time.monotonic() - t0
            cycles = load.cycles
            wait_for(lambda: load.cycles >= cycles + 2, timeout=60)
        print(f"NAS change reached FreeRADIUS after (s): {took}; NAS A ran {load.cycles} "
              f"cycles of {len(USERS)} logins")
        # NAS A never missed an answer: every login accepted, every accounting request answered
        assert load.refused == 0
        assert sim.counters.acct_lost == 0
        assert sim.counters.failovers == 0
    finally:
        sim.stop()
    assert "NAS clients: added 127.0.0.2" in live.log
    assert "removed 127.0.0.2" in live.log
