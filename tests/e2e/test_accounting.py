"""Accounting through the real FreeRADIUS and the ingester, into the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from radbill.db import session_factory
from radius.models import RadiusSession
from tests.e2e.server import wait_for, wait_until
from tests.factories import make_subscriber

pytestmark = pytest.mark.e2e
G = 2**32


def session_row(engine, sid: str):  # type: ignore[no-untyped-def]
    with session_factory(engine)() as s:
        return s.scalars(select(RadiusSession).where(RadiusSession.acct_session_id == sid)
                         ).one_or_none()


def test_start_interims_with_gigawords_duplicates_reordering_and_stop(radius, seeded) -> None:  # type: ignore[no-untyped-def]
    c = radius.client()
    assert c.account("Start", "acct-a", "A1", framed_ip="10.9.0.1", mac="AA:BB:CC:00:01:01")
    assert c.account("Interim-Update", "acct-a", "A1", input_bytes=3 * G + 7,
                     output_bytes=5 * G + 11, session_time=300)
    assert c.account("Interim-Update", "acct-a", "A1", input_bytes=3 * G + 7,
                     output_bytes=5 * G + 11, session_time=300)  # duplicate
    assert c.account("Interim-Update", "acct-a", "A1", input_bytes=G, output_bytes=G,
                     session_time=150, delay=150)  # late, older one
    row = wait_until(lambda: session_row(seeded, "A1"), lambda r: r and r.session_time == 300)
    assert (row.input_octets, row.output_octets) == (3 * G + 7, 5 * G + 11)
    assert row.stopped_at is None and row.framed_ip == "10.9.0.1"
    assert row.calling_station_id == "AA:BB:CC:00:01:01" and row.nas_ip == "127.0.0.1"
    assert c.account("Stop", "acct-a", "A1", input_bytes=4 * G, output_bytes=6 * G,
                     session_time=600, terminate_cause="User-Request")
    assert c.account("Interim-Update", "acct-a", "A1", input_bytes=9 * G, output_bytes=9 * G,
                     session_time=900)  # after the Stop: changes nothing
    row = wait_until(lambda: session_row(seeded, "A1"), lambda r: r and r.stopped_at)
    wait_for(lambda: radius.spool.joinpath("acct").exists())
    # give the ingester a moment to apply the trailing Interim, then check it changed nothing
    import time

    time.sleep(0.6)
    row = session_row(seeded, "A1")
    assert (row.input_octets, row.output_octets) == (4 * G, 6 * G)
    assert row.terminate_cause == "User-Request" and row.session_time == 600


def test_interim_or_stop_without_start(radius, seeded) -> None:  # type: ignore[no-untyped-def]
    c = radius.client()
    c.account("Interim-Update", "acct-b", "B1", input_bytes=100, session_time=60)
    c.account("Stop", "acct-b", "B2", input_bytes=200, session_time=30,
              terminate_cause="Lost-Carrier")
    b1 = wait_for(lambda: session_row(seeded, "B1"))
    b2 = wait_for(lambda: session_row(seeded, "B2"))
    assert b1.stopped_at is None and b1.input_octets == 100
    assert b2.stopped_at is not None and b2.terminate_cause == "Lost-Carrier"
    assert (b2.stopped_at - b2.started_at).total_seconds() == 30


def test_accounting_on_closes_that_nas_sessions_and_frees_simultaneous_use(
        radius, seeded, server_box) -> None:  # type: ignore[no-untyped-def]
    with session_factory(seeded)() as s, s.begin():
        make_subscriber(s, server_box, username="roamer")
    c = radius.client()
    wait_for(lambda: c.authenticate("roamer", "s3cret").accepted)
    c.account("Start", "roamer", "R1")
    # the open session counts against simultaneous-use 1
    r = wait_until(lambda: c.authenticate("roamer", "s3cret"), lambda r: r.rejected)
    assert r.get("Reply-Message") == "Login failed"  # the reason is simultaneous-use, unsaid
    c.account("Accounting-On", "", "")  # NAS rebooted
    closed = wait_until(lambda: session_row(seeded, "R1"), lambda r: r and r.stopped_at)
    assert closed.terminate_cause == "NAS-Reboot"
    assert wait_for(lambda: c.authenticate("roamer", "s3cret").accepted, timeout=2)


def test_subscriber_show_lists_sessions_with_usage(radius, seeded, server_box, database_url,
                                                   data_dir) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys

    with session_factory(seeded)() as s, s.begin():
        make_subscriber(s, server_box, username="shown", simultaneous_use=3)
    c = radius.client()
    c.account("Start", "shown", "S1")
    c.account("Interim-Update", "shown", "S1", input_bytes=G + 1, output_bytes=2, session_time=5)
    c.account("Stop", "shown", "S0", input_bytes=10, output_bytes=20, session_time=9,
              terminate_cause="User-Request")
    wait_until(lambda: session_row(seeded, "S1"), lambda r: r and r.input_octets == G + 1)
    wait_for(lambda: session_row(seeded, "S0"))
    out = subprocess.run([sys.executable, "-m", "radbill.cli", "subscriber", "show", "shown",
                          "--json"], capture_output=True, text=True, check=True,
                         env={**os.environ, "RADBILL_DATABASE_URL": database_url,
                              "RADBILL_DATA_DIR": str(data_dir)}).stdout
    data = json.loads(out)
    assert [(x["acct_session_id"], x["input_bytes"], x["output_bytes"])
            for x in data["open_sessions"]] == [("S1", G + 1, 2)]
    assert [(x["acct_session_id"], x["input_bytes"]) for x in data["recent_sessions"]] == [
        ("S0", 10)]
