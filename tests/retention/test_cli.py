"""`radbill retention run [--dry-run]` and `radbill retention status`, and the scheduler's
retention job run once."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from radbill.db import session_factory, utcnow
from radbill.ops import JobRun
from radius.models import PostAuth, PostAuthDay


def _old_logins(db, n: int = 3) -> None:  # type: ignore[no-untyped-def]
    old = utcnow() - dt.timedelta(days=60)
    with session_factory(db)() as s, s.begin():
        s.add_all([PostAuth(at=old + dt.timedelta(minutes=i), username="alice",
                            decision="accept", reason="active") for i in range(n)])


def test_dry_run_then_run(cli, db) -> None:  # type: ignore[no-untyped-def]
    _old_logins(db)
    dry = json.loads(cli("retention", "run", "--dry-run", "--json").output)
    assert dry["dry_run"] is True
    assert {k["kind"]: k["rows"] for k in dry["kinds"]}["postauth"] == 3
    with session_factory(db)() as s:
        assert s.scalar(select(func.count(PostAuth.id))) == 3
    out = cli("retention", "run").output
    assert "postauth" in out and "sessions" in out
    with session_factory(db)() as s:
        assert s.scalar(select(func.count(PostAuth.id))) == 0
        assert s.scalar(select(func.sum(PostAuthDay.accepts))) == 3
    again = json.loads(cli("retention", "run", "--json").output)
    assert sum(k["rows"] for k in again["kinds"]) == 0


def test_status_shows_the_settings_and_how_far_back(cli, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADBILL_KEEP_POSTAUTH_DAYS", "14")
    _old_logins(db, 1)
    data = json.loads(cli("retention", "status", "--json").output)
    values = {r["setting"]: r["value"] for r in data["settings"]}
    assert values["RADBILL_KEEP_POSTAUTH_DAYS"] == 14
    assert values["RADBILL_KEEP_SESSIONS_MONTHS"] == 6
    assert data["oldest"]["postauth"] is not None and data["oldest"]["sessions"] is None
    assert "RADBILL_KEEP_AUDIT_DAYS" in cli("retention", "status").output


def test_scheduler_runs_retention_once_and_records_it(cli, db) -> None:  # type: ignore[no-untyped-def]
    _old_logins(db, 2)
    assert "retention: ok" in cli("scheduler", "--run-now", "retention").output
    with session_factory(db)() as s:
        run = s.scalars(select(JobRun).where(JobRun.job == "retention")).one()
        assert (run.status, (run.counts or {})["postauth"]) == ("ok", 2)


def test_a_run_waits_for_none_while_another_holds_the_lock(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from radbill.scheduler import job_lock

    _old_logins(db, 1)
    with job_lock(db, "retention", tmp_path / "locks") as got:
        assert got
        result = cli("retention", "run", ok=False)
    assert result.exit_code != 0 and "retention run is under way" in result.output
    with session_factory(db)() as s:
        assert s.scalar(select(func.count(PostAuth.id))) == 1  # nothing was done


def test_doctor_says_when_old_records_were_last_pruned(cli, db) -> None:  # type: ignore[no-untyped-def]
    def finding() -> tuple[str, str]:
        [row] = [r for r in json.loads(cli("doctor", "--json", ok=False).output)
                 if r["check"] == "retention"]
        return row["level"], row["message"]

    level, message = finding()
    assert level == "warn" and message.startswith("old records were never pruned")
    assert "post-auth 30 d, sessions 6 months" in message
    cli("scheduler", "--run-now", "retention")
    level, message = finding()
    assert level == "ok" and message.startswith("old records pruned ")
