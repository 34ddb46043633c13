"""The collector's pause is counted: the ingester pauses it on two threads at once (the batch
being applied, the next one being read ahead), and it must stay off until both are done."""

from __future__ import annotations

import gc
import threading

from radbill.gcpause import collector_paused


def test_overlapping_pauses_on_two_threads_end_with_the_last_one() -> None:
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)
            seen.append(gc.isenabled())

    worker = threading.Thread(target=other)
    with collector_paused():
        worker.start()
        assert inside.wait(10)
    # this thread's pause is over, the other's is not: still off
    assert not gc.isenabled()
    release.set()
    worker.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused(), collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
