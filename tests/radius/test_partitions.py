"""Monthly partitions of radius_sessions (PostgreSQL) and the session keys (both databases):
months created ahead, whole old months dropped while a month with an open session is kept,
sessions across a month boundary, two ingesters creating one session at once, the
converting migration with data."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from radbill import migrate
from radbill.db import session_factory
from radius import accounting, partitions
from radius.accounting import INTERIM, START, STOP, AcctRecord
from radius.models import RadiusSession
from retention import service
from retention.policy import Policy
from tests.conftest import BACKEND
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture

PG = BACKEND == "postgresql"
# far from the test run's own months (the migration made those): nothing else uses them
JAN, FEB, MAR = (dt.datetime(2024, m, 1, tzinfo=dt.UTC) for m in (1, 2, 3))
NOW = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # 12:00 in Dhaka
POLICY = Policy(sessions_months=6, batch=2)  # cut-off: 1 May 2026, Dhaka


def rec(status: str, sid: str, at: dt.datetime, seconds: int, octets: int,
        user: str = "ann") -> AcctRecord:
    return AcctRecord(status=status, nas_ip="10.0.0.1", username=user, acct_session_id=sid,
                      event_time=at, session_time=seconds, input_octets=octets,
                      output_octets=2 * octets,
                      terminate_cause="User-Request" if status == STOP else None)


def apply_many(engine: Engine, recs: list[AcctRecord]) -> list[Any]:
    with session_factory(engine)() as s, s.begin():
        return accounting.apply_many(s, recs, {})


def partition_of(engine: Engine) -> dict[str, str]:
    """Each session's partition (PostgreSQL), by Acct-Session-Id."""
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT acct_session_id, tableoid::regclass::text FROM radius_sessions")).all())


def tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {m.strftime("radius_sessions_%Y_%m") for m in partitions.months(conn)}


def sessions(engine: Engine) -> list[tuple[Any, ...]]:
    with session_factory(engine)() as s:
        return [(r.acct_session_id, r.started_at, r.stopped_at, r.input_octets)
                for r in s.scalars(select(RadiusSession).order_by(RadiusSession.id))]


def keys(engine: Engine) -> list[tuple[Any, ...]]:
    """The key table joined to the rows it names (a key naming no row shows None)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT k.acct_session_id, s.acct_session_id FROM radius_session_keys k "
            "LEFT JOIN radius_sessions s ON s.id = k.session_id "
            "AND s.started_at = k.started_at ORDER BY k.acct_session_id"))]


@pytest.fixture
def months(db: Engine) -> Iterator[Engine]:
    """January to March 2024 as partitions (PostgreSQL), removed after the test."""
    if PG:
        partitions.ensure_months(db, JAN)
    yield db
    if PG:
        with db.begin() as conn:
            conn.execute(text("DELETE FROM radius_sessions WHERE started_at < :t"),
                         {"t": MAR + dt.timedelta(days=31)})
            for name in tables(db) & {"radius_sessions_2024_01", "radius_sessions_2024_02",
                                      "radius_sessions_2024_03"}:
                conn.execute(text(f"DROP TABLE {name}"))


@pytest.mark.skipif(not PG, reason="partitions are PostgreSQL's")
def test_months_ahead_created_and_default_rows_moved(db: Engine) -> None:
    now = dt.datetime(2040, 5, 20, tzinfo=dt.UTC)
    # a NAS clock in 2040: the row lands in the DEFAULT partition, no month for it yet
    apply_many(db, [rec(START, "future", now, 0, 1)])
    assert partition_of(db) == {"future": "radius_sessions_default"}
    try:
        created = partitions.ensure_months(db, now)
        assert created == ["radius_sessions_2040_05", "radius_sessions_2040_06",
                           "radius_sessions_2040_07"]
        assert set(created) <= tables(db)
        # moved into its month, its key still finds it, an Interim updates it in place
        assert partition_of(db) == {"future": "radius_sessions_2040_05"}
        assert partitions.ensure_months(db, now) == []  # a second run creates nothing
        apply_many(db, [rec(INTERIM, "future", now + dt.timedelta(minutes=5), 300, 7)])
        assert sessions(db) == [("future", now, None, 7)]
        assert keys(db) == [("future", "future")]
    finally:
        with db.begin() as conn:
            conn.execute(text("DELETE FROM radius_sessions"))
            for name in tables(db):
                if name.startswith("radius_sessions_2040"):
                    conn.execute(text(f"DROP TABLE {name}"))


def test_month_partitions_ahead_on_sqlite_are_nothing(db: Engine) -> None:
    if PG:
        # the migration made this month and two ahead
        start = partitions.month_start(dt.datetime.now(dt.UTC))
        want = {partitions.month_name(start), partitions.month_name(
            partitions.next_month(start)), partitions.month_name(partitions.next_month(
                partitions.next_month(start)))}
        assert want <= tables(db)
    else:
        assert partitions.ensure_months(db, NOW) == []


def test_old_month_dropped_month_with_open_session_kept(months: Engine) -> None:
    db = months
    day = dt.timedelta(days=1)
    apply_many(db, [
        rec(START, "jan-1", JAN + 2 * day, 0, 1), rec(STOP, "jan-1", JAN + 3 * day, 86400, 10),
        rec(STOP, "jan-2", JAN + 9 * day, 3600, 20),
        rec(STOP, "feb-closed", FEB + 5 * day, 3600, 30),
        rec(START, "feb-open", FEB + 6 * day, 0, 40),  # open: PPPoE for months
    ])
    report = service.run(session_factory(db), POLICY, NOW)
    assert {k.kind: k.rows for k in report.kinds}["sessions"] == 3
    # the open session is kept (and its key), the closed ones go with their keys
    assert [s[0] for s in sessions(db)] == ["feb-open"]
    assert keys(db) == [("feb-open", "feb-open")]
    if PG:  # January dropped whole; February kept for its open session
        assert "radius_sessions_2024_01" not in tables(db)
        assert "radius_sessions_2024_02" in tables(db)
        assert partition_of(db) == {"feb-open": "radius_sessions_2024_02"}
    # a late Stop (before the cut-off) closes it: February can go whole next night
    apply_many(db, [rec(STOP, "feb-open", FEB + 7 * day, 86400, 50)])
    report = service.run(session_factory(db), POLICY, NOW)
    assert {k.kind: k.rows for k in report.kinds}["sessions"] == 1
    assert sessions(db) == [] and keys(db) == []
    if PG:
        assert "radius_sessions_2024_02" not in tables(db)
        assert "radius_sessions_2024_03" not in tables(db)  # empty, ended before cut-off


@pytest.mark.skipif(not PG, reason="partitions are PostgreSQL's")
def test_month_with_a_session_stopped_after_the_cut_off_is_kept(months: Engine) -> None:
    cut = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    apply_many(months, [rec(STOP, "jan-late", JAN + dt.timedelta(days=40), 40 * 86400, 5),
                        rec(STOP, "jan-early", JAN + dt.timedelta(days=3), 3600, 5)])
    # jan-late started in January and stopped in February: January ends before the cut-off,
    # but a session of it stopped after: kept
    dropped = partitions.drop_old_months(months, dt.datetime(2024, 2, 10, tzinfo=dt.UTC))
    assert ("radius_sessions_2024_01" in dropped.kept, dropped.rows) == (True, 0)
    assert len(sessions(months)) == 2
    dropped = partitions.drop_old_months(months, cut)
    assert "radius_sessions_2024_01" in dropped.months and dropped.rows == 2
    assert sessions(months) == [] and keys(months) == []


@pytest.mark.parametrize("batched", [True, False])
def test_start_interim_stop_across_a_month_boundary(months: Engine, batched: bool) -> None:
    start = FEB - dt.timedelta(hours=1)  # 31 January, 23:00
    recs = [rec(START, "edge", start, 0, 0), rec(INTERIM, "edge", FEB, 3600, 100),
            rec(INTERIM, "edge", FEB + dt.timedelta(hours=1), 7200, 200),
            rec(STOP, "edge", FEB + dt.timedelta(hours=2), 10800, 300)]
    if batched:
        assert apply_many(months, recs[:2]) == ["opened", "updated"]
        assert apply_many(months, recs[2:]) == ["updated", "closed"]
    else:
        for r, want in zip(recs, ["opened", "updated", "updated", "closed"], strict=True):
            with session_factory(months)() as s, s.begin():
                assert accounting.apply(s, r) == want
    # one row, kept in the month it started in, with the Stop's counters
    assert sessions(months) == [("edge", start, FEB + dt.timedelta(hours=2), 300)]
    assert keys(months) == [("edge", "edge")]
    if PG:
        assert partition_of(months) == {"edge": "radius_sessions_2024_01"}


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar())


@pytest.mark.skipif(not PG, reason="SQLite has one writer at a time")
@pytest.mark.parametrize("batched", [True, False])
def test_two_ingesters_creating_one_session_make_one_row(db: Engine, batched: bool) -> None:
    at = NOW - dt.timedelta(hours=1)
    factory = session_factory(db)
    first, second = factory(), factory()
    outcome: dict[str, Any] = {}

    def apply(s: Any, r: AcctRecord) -> Any:
        return accounting.apply_many(s, [r], {})[0] if batched else accounting.apply(s, r)

    def other() -> None:
        try:
            with second.begin():
                outcome["second"] = apply(second, rec(START, "dup", at, 0, 5))
        except IntegrityError as exc:  # what the ingester sets aside and re-applies
            outcome["second"] = exc

    try:
        first.begin()
        assert apply(first, rec(START, "dup", at, 0, 1)) == "opened"  # not committed yet
        thread = threading.Thread(target=other)
        thread.start()
        for _ in range(6000):  # the second ingester waits on the first one's new key
            if _waiting_for_a_lock(db):
                break
            thread.join(0.01)
        else:
            pytest.fail("the second ingester never waited for the first")
        first.commit()
        thread.join()
    finally:
        first.close()
        second.close()
    assert isinstance(outcome["second"], IntegrityError)
    # re-applied (the ingester's isolation does this): an update of the one row
    with factory() as s, s.begin():
        assert accounting.apply_many(s, [rec(INTERIM, "dup", at + dt.timedelta(minutes=5),
                                             300, 9)], {}) == ["updated"]
    assert [(r[0], r[3]) for r in sessions(db)] == [("dup", 9)]
    assert keys(db) == [("dup", "dup")]


def test_migration_keeps_rows_counters_open_sessions_and_ids(fresh: Engine) -> None:  # noqa: F811
    migrate.upgrade(fresh, "0027")
    base = dt.datetime(2026, 6, 15, tzinfo=dt.UTC)
    rows = [(f"s{i}", f"u{i % 3}", base - dt.timedelta(days=37 * i),
             None if i % 4 == 0 else base - dt.timedelta(days=37 * i - 1), 2**40 + i)
            for i in range(8)]
    with fresh.begin() as conn:
        for sid, user, started, stopped, octets in rows:
            conn.execute(text(
                "INSERT INTO radius_sessions (nas_ip, acct_session_id, username, started_at, "
                "updated_at, stopped_at, session_time, input_octets, output_octets, "
                "input_packets, output_packets, state_seq) VALUES ('10.0.0.1', :sid, :u, :s, "
                ":s, :e, 60, :o, :o, 1, 2, 3)"),
                {"sid": sid, "u": user, "s": started, "e": stopped, "o": octets})
    cols = ("SELECT id, nas_ip, acct_session_id, username, started_at, stopped_at, "
            "input_octets, output_octets, state_seq FROM radius_sessions ORDER BY id")
    with fresh.connect() as conn:
        before = conn.execute(text(cols)).all()
    if PG:  # the copy is listed as a long lock (refused at 100,000 rows: tests/radbill)
        risks = migrate.lock_risks(fresh, big=len(rows))
        assert ("0028", "radius_sessions") in {(r.revision, r.table) for r in risks}
        assert any(r.why.startswith("copies the table's rows") for r in risks)
    migrate.upgrade(fresh, "head")
    with fresh.connect() as conn:
        assert conn.execute(text(cols)).all() == before
        assert conn.execute(text(
            "SELECT acct_session_id, session_id FROM radius_session_keys "
            "ORDER BY session_id")).all() == [(r[2], r[0]) for r in before]
        if PG:  # each row in its month; ids continue from the same sequence
            assert {r[0]: r[1] for r in conn.execute(text(
                "SELECT acct_session_id, tableoid::regclass::text FROM radius_sessions"))} == {
                sid: started.strftime("radius_sessions_%Y_%m")
                for sid, _, started, _, _ in rows}
    # the open sessions are still found by their key: an Interim updates them in place
    open_ = [(sid, user, started) for sid, user, started, stopped, _ in rows if stopped is None]
    with session_factory(fresh)() as s, s.begin():
        assert accounting.apply_many(s, [
            AcctRecord(status=INTERIM, nas_ip="10.0.0.1", username=user, acct_session_id=sid,
                       event_time=started + dt.timedelta(hours=1), session_time=3600,
                       input_octets=2**41, output_octets=2**41) for sid, user, started in open_],
            {}) == ["updated"] * len(open_)
        new = accounting.apply_many(s, [rec(START, "new", base, 0, 0)], {})
    assert new == ["opened"]
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM radius_sessions")).scalar() == 9
        assert conn.execute(text("SELECT max(id) FROM radius_sessions")).scalar() == 9
        assert conn.execute(text(
            "SELECT count(*) FROM radius_sessions WHERE input_octets = :o"),
            {"o": 2**41}).scalar() == len(open_)
