"""Job runs are recorded, and one job never runs twice at once."""

import threading

from sqlalchemy import select

from radbill import scheduler
from radbill.config import Settings
from radbill.db import session_factory
from radbill.ops import JobRun


def settings_for(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path)})


def runs(db):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s:
        return [(r.job, r.status, r.counts, r.error) for r in s.scalars(
            select(JobRun).order_by(JobRun.id))]


def test_runs_are_recorded_with_counts_and_errors(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(tmp_path)

    def ok(_factory, counts) -> None:  # type: ignore[no-untyped-def]
        counts["done"] = 3

    def broken(_factory, _counts) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("gateway down")

    assert scheduler.run_job(db, settings, "demo", ok) == "ok"
    assert scheduler.run_job(db, settings, "demo", broken) == "failed"
    assert runs(db) == [("demo", "ok", {"done": 3}, None),
                        ("demo", "failed", {}, "RuntimeError: gateway down")]


def test_the_same_job_never_runs_twice_at_once(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(tmp_path)
    inside, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def slow(_factory, counts) -> None:  # type: ignore[no-untyped-def]
        inside.set()
        assert release.wait(10)
        counts["slow"] = True

    first = threading.Thread(target=lambda: outcomes.append(
        scheduler.run_job(db, settings, "billing-run", slow)))
    first.start()
    assert inside.wait(10)
    # a second scheduler (here: another connection / file handle) finds the lock taken
    assert scheduler.run_job(db, settings, "billing-run", lambda f, c: None) == "skipped"
    # a different job is not blocked
    assert scheduler.run_job(db, settings, "stale-sessions", lambda f, c: None) == "ok"
    release.set()
    first.join(10)
    assert outcomes == ["ok"]
    assert scheduler.run_job(db, settings, "billing-run", lambda f, c: None) == "ok"


def test_billing_job_runs_billing_and_archives(db, box, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(tmp_path)
    assert scheduler.run_job(db, settings, "billing-run", scheduler.billing_job(settings)) == "ok"
    job, status, counts, _ = runs(db)[-1]
    assert (job, status) == ("billing-run", "ok")
    assert counts["pdfs"] == 0 and "as_of" in counts


def test_scheduler_builds_with_every_job(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sched = scheduler.build(db, settings_for(tmp_path), "00:15")
    assert sorted(j.id for j in sched.get_jobs()) == ["billing-run", "olt-poll",
                                                      "payment-poll", "retention",
                                                      "stale-sessions"]
