"""`radbill radius run` stops even when FreeRADIUS does not: FreeRADIUS 3.2.7 was seen hanging
at exit (its main thread joining a worker spinning in fr_atomic_queue_pop, after the
accounting fuzz), which left an orphan burning a CPU for an hour and a service that systemd
would have to kill. The server is asked, then killed after a grace period, and says so."""

from __future__ import annotations

import logging
import signal
import subprocess
import time

import pytest

from radius.server import Stopper


def test_a_server_that_ignores_the_stop_is_killed_after_the_grace(
        caplog: pytest.LogCaptureFixture) -> None:
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM INT; while :; do sleep 0.05; done"])
    stopper = Stopper(proc)
    time.sleep(0.2)  # the trap is set
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="radbill.radius"):
        stopper.forward(signal.SIGTERM, None)
        code = stopper.wait(grace=0.5)
    assert code == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10
    assert "FreeRADIUS did not exit 0.5 s after it was asked to stop" in caplog.text


def test_a_server_that_stops_keeps_its_exit_status() -> None:
    proc = subprocess.Popen(["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.05; done"])
    stopper = Stopper(proc)
    time.sleep(0.2)
    stopper.forward(signal.SIGTERM, None)
    assert stopper.wait(grace=30) == 3


def test_without_a_stop_request_it_waits_for_the_server_however_long() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 0.6; exit 7"])
    assert Stopper(proc).wait(grace=0.1) == 7  # nobody asked it to stop: no kill
