"""Recording job runs (start, end, status, counts, error) around any job."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from radbill.db import utcnow
from radbill.ops import JobRun

log = logging.getLogger("radbill.jobs")


@contextmanager
def recorded(factory: sessionmaker[Session], job: str) -> Iterator[dict[str, Any]]:
    """Record a run of *job*; the caller fills the yielded counts. Failures are recorded with
    their error and re-raised."""
    with factory() as session, session.begin():
        run = JobRun(job=job)
        session.add(run)
        session.flush()
        run_id = run.id
    counts: dict[str, Any] = {}
    try:
        yield counts
    except BaseException as exc:
        with factory() as session, session.begin():
            row = session.get(JobRun, run_id)
            assert row is not None
            row.finished_at, row.status, row.counts = utcnow(), "failed", counts
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("job %s failed: %s", job, exc)
        raise
    with factory() as session, session.begin():
        row = session.get(JobRun, run_id)
        assert row is not None
        row.finished_at, row.status, row.counts = utcnow(), "ok", counts
