"""Pausing Python's cyclic garbage collector around a batch that makes many small objects.

The accounting ingester and usage metering build thousands of small dicts and tuples per
batch (none of them in a cycle); each collection they set off walks every object the process
holds. Pausing the collector for the batch saved about a third of metering's Python CPU and
about a sixth of the clean apply's (issue 14, ``bench/accounting_ingest.py``). Garbage in
cycles waits for the next collection after the batch.

The collector is one switch for the whole process, and the ingester pauses it on two threads
at once (the batch being applied, the next one being read ahead): pauses are counted, and the
collector comes back on when the last one ends, not when the first one does.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_restore = False  # whether the collector was on when the first pause began


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside, back on after the last pause ends (left alone if it was
    off when the first one began)."""
    global _pauses, _restore  # noqa: PLW0603 - the collector itself is process-wide
    with _lock:
        if _pauses == 0:
            _restore = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _restore:
                gc.enable()
