"""A worker killed with SIGKILL mid-batch and restarted sends nothing twice to a provider
with idempotency ids (SSL Wireless: the same csms_id is refused as a duplicate)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import Engine

from notify.config import save
from notify.outbox import enqueue
from radbill.crypto import SecretBox
from radbill.db import session_factory
from tests.billing.sim import Sim
from tests.factories import make_plan, make_subscriber
from tests.notify.helpers import Clock, deliveries, tick, worker

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 400


def test_sigkill_mid_batch_then_restart_sends_each_message_once(
        db: Engine, ssl_sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = Fernet.generate_key()
    box = SecretBox(key)
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s, "Home")
        subs = [make_subscriber(s, box, f"k{i}", "Home", phone=f"0171100002{i}")
                for i in range(4)]
        for n in range(EVENTS):
            enqueue(s, subs[n % 4], "payment_received", f"pay:{n}", amount="500",
                    currency="BDT")
        # no quiet hours, whatever time of day the test runs; the token bucket lets one
        # batch of 100 go at once, the next ones 2 s apart: the kill lands between them
        save(s, box, "sms", "sslwireless", {"base_url": ssl_sim.url, "sid": ssl_sim.sid,
                                            "quiet_start": "00:00", "quiet_end": "00:00",
                                            "rate": 50, "burst": 100},
             {"api_token": ssl_sim.api_token})
    ssl_sim.delay = 0.5  # each request takes a while: the kill lands with requests out
    env = {**os.environ, "RADBILL_DATABASE_URL": str(db.url.render_as_string(
        hide_password=False)), "RADBILL_SECRET_KEY": key.decode(),
        "RADBILL_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "radbill.cli", "notify", "run"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ssl_sim.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ssl_sim.accepted, "the worker never sent anything"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(ssl_sim.delay + 0.2)  # requests already received finish on the provider
    first = len(ssl_sim.accepted)
    states = {d.status for d in deliveries(_sim(db, box))}
    assert 0 < first < EVENTS and "sending" in states  # killed mid-batch: claims leased
    # restarted once the lease ran out: everything goes, nothing twice
    ssl_sim.delay = 0
    clock = Clock(max(d.next_attempt_at for d in deliveries(_sim(db, box))))
    for _ in range(3):
        tick(worker(_sim(db, box), clock))
    ids = [a.client_id for a in ssl_sim.accepted]
    assert len(ids) == len(set(ids)) == EVENTS
    assert {d.status for d in deliveries(_sim(db, box))} == {"sent"}
    assert ssl_sim.duplicates > 0  # the re-sent ones were refused, not sent again


def _sim(db: Engine, box: SecretBox) -> Sim:
    import datetime as dt

    return Sim(db, box, dt.date(2026, 12, 1))
