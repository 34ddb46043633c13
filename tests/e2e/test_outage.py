"""No accounting record is lost while PostgreSQL is down (20 s by default, long enough for
four bursts of interims, both alarms and the ingester's longest back-off;
RADBILL_TEST_OUTAGE_SECONDS=60 for a minute) or FreeRADIUS restarts, and authorization carries
on from the snapshot meanwhile.

Runs against a private PostgreSQL cluster this test starts and stops itself (only in the
PostgreSQL pass of the suite: it is about the production database)."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import func, select

from radbill import migrate
from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import make_engine, session_factory
from radius.models import RadiusSession
from radius.nas import create_nas
from tests import pgserver
from tests.conftest import BACKEND
from tests.e2e.server import SECRET, RadiusServer, wait_for
from tests.factories import make_plan, make_subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL pass only")]
OUTAGE_SECONDS = float(os.environ.get("RADBILL_TEST_OUTAGE_SECONDS", "20"))
USERS = 20


def send_until_answered(client, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    # What a NAS does: retransmit an accounting request until the server answers it.
    for _ in range(200):
        if client.account(*args, **kwargs):
            return
        time.sleep(0.1)
    raise AssertionError("accounting request never answered")


def test_database_outage_and_radius_restart_lose_no_byte(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cluster = pgserver.PrivateCluster().init()
    cluster.start()
    try:
        _scenario(cluster, tmp_path)
    finally:
        cluster.destroy()


def _scenario(cluster: pgserver.PrivateCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = pgserver.sqlalchemy_url(cluster.url())
    engine = make_engine(url)
    migrate.upgrade(engine)
    box = SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path)})))
    with session_factory(engine)() as s, s.begin():
        create_nas(s, box, name="nas", ip="127.0.0.1", secret=SECRET)
        make_plan(s)
        for i in range(USERS):
            make_subscriber(s, box, username=f"u{i}")
    engine.dispose()

    server = RadiusServer(url, tmp_path).start()
    c = server.client(timeout=0.5, retries=1)
    expected = {}  # session id -> (input, output) of its last record
    step = 1_000_003

    def burst(round_: int, status: str = "Interim-Update") -> None:
        for i in range(USERS):
            inp, out = round_ * step * (i + 1) + 3 * 2**32 * round_, round_ * 7 * (i + 1)
            send_until_answered(c, status, f"u{i}", f"S{i}", input_bytes=inp, output_bytes=out,
                                session_time=round_ * 60)
            expected[f"S{i}"] = (inp, out)

    try:
        for i in range(USERS):
            send_until_answered(c, "Start", f"u{i}", f"S{i}")
        burst(1)
        # the snapshot has caught up with the open sessions before the database goes
        wait_for(lambda: c.authenticate("u0", "s3cret").rejected, timeout=5)
        # PostgreSQL goes away while the NAS keeps sending
        cluster.stop("immediate")
        outage_started = time.monotonic()
        round_ = 2
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            burst(round_)
            # authorization carries on from the snapshot: active users still get in
            assert c.authenticate("u0", "s3cret").rejected  # simultaneous-use: S0 is open
            assert c.authenticate("nobody", "s3cret").get("Reply-Message") == "Login failed"
            round_ += 1
            time.sleep(5)
        assert "ACCOUNTING NOT REACHING THE DATABASE" in server.log
        assert "DATABASE UNREACHABLE" in server.log, server.log
        # FreeRADIUS restarts while the database is still down
        server.stop()
        server = RadiusServer(url, tmp_path, ports=(server.auth_port, server.acct_port)).start()
        assert "DATABASE UNREACHABLE at start" in server.log
        burst(round_)  # spooled to disk by the new process
        # with no snapshot at all, the server stays silent instead of saying "unknown user"
        assert c.authenticate("u1", "s3cret").timed_out
        cluster.start()
        round_ += 1
        burst(round_)
        for i in range(USERS):
            inp, out = expected[f"S{i}"]
            send_until_answered(c, "Stop", f"u{i}", f"S{i}", input_bytes=inp + 5,
                                output_bytes=out + 5, session_time=9999,
                                terminate_cause="User-Request")
            expected[f"S{i}"] = (inp + 5, out + 5)

        engine = make_engine(url)

        def all_closed() -> bool:
            with session_factory(engine)() as s:
                return s.scalar(select(func.count()).where(
                    RadiusSession.stopped_at.is_not(None))) == USERS

        wait_for(all_closed, timeout=30)
        # the restarted server's snapshot loaded by itself once the database came back
        wait_for(lambda: "database reachable again" in server.log, timeout=5)
        wait_for(lambda: c.authenticate("u1", "s3cret").accepted, timeout=2)  # session closed
        with session_factory(engine)() as s:
            rows = {r.acct_session_id: (r.input_octets, r.output_octets)
                    for r in s.scalars(select(RadiusSession))}
        engine.dispose()
        assert rows == expected
        assert sum(v[0] + v[1] for v in rows.values()) == sum(
            v[0] + v[1] for v in expected.values())
    finally:
        server.stop()
