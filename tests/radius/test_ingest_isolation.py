"""One record never stops ingestion: what the issue's inputs do on the real database, how a
record the database refuses is found by halving the batch, and why a database outage is never
mistaken for a bad record."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
    StatementError,
)
from sqlalchemy.orm import Session, sessionmaker

from radbill.db import session_factory
from radbill.ops import Alert
from radius import accounting, rejects
from radius.accounting import InvalidRecord, Limits
from radius.ingest import Ingester, is_record_fault
from radius.models import DetailCursor, PostAuth
from tests.conftest import BACKEND
from tests.radius.test_ingest import BASE, record, sessions, set_aside, write

G = 2**32
FILE = "detail-20261124-20"


def test_the_issue_inputs_are_set_aside_or_stored_and_the_rest_applied(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csid = "AA:BB:CC:DD:EE:FF/" + "c" * 70
    port = "ether1-vlan100 pppoe-server " + "p" * 60
    write(tmp_path, FILE, "".join([
        record("Start", "ok1", 0),
        record("Interim-Update", "gw", 60, 2**31 * G),  # Gigawords 2^31
        record("Start", "nul-user", 0, user="al\\000ice"),
        record("Start", "nul\\000sid", 0),
        record("Start", "latin1", 0, user="jos\\351"),  # "josé" in Latin-1, not UTF-8
        record("Start", "c-string\\000", 0, user="bob\\000"),  # a NUL-terminating NAS
        record("Start", "long", 0, extra=f'\tCalling-Station-Id = "{csid}"\n'
               f'\tNAS-Port-Id = "{port}"\n'),
        record("Interim-Update", "ok1", 60, 7 * G + 5),
    ]))
    ing = Ingester(session_factory(db), tmp_path)
    assert ing.run_once() == 4
    rows = sessions(db)
    assert set(rows) == {"ok1", "long", "c-string"}
    assert rows["c-string"].username == "bob"
    assert rows["ok1"].input_octets == 7 * G + 5
    assert (rows["long"].calling_station_id, rows["long"].nas_port_id) == (csid, port)
    reasons = {e["acct_session_id"]: e["reason"] for e in set_aside(db)}
    assert reasons == {
        "gw": "Acct-Input-Gigawords=2147483648 makes a counter of 9223372036854775808 bytes "
              "(at most 2^63-1)",
        "nul-user": "User-Name='al\\x00ice' contains a NUL byte",
        "nul\x00sid": "Acct-Session-Id='nul\\x00sid' contains a NUL byte",
        "latin1": "User-Name='jos\\udce9' is not UTF-8",
    }
    with session_factory(db)() as s:
        cursor = s.get(DetailCursor, ("", "acct"))
        assert cursor is not None
        assert cursor.offset == (tmp_path / "acct" / FILE).stat().st_size


def test_the_set_aside_record_keeps_every_byte(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "s\\000\\377x", 0, user="\\000\\001é"))
    Ingester(session_factory(db), tmp_path).run_once()
    [entry] = set_aside(db)
    assert entry["record"]["User-Name"] == "\x00\x01é"
    # \377 alone is not UTF-8: kept as the very byte
    assert entry["record"]["Acct-Session-Id"].encode("utf-8", "surrogateescape") == b"s\0\xffx"
    with session_factory(db)() as s:
        stored = s.scalars(select(rejects.RejectedRecord.record)).one()
    assert stored.isascii() and "\x00" not in stored


def test_postauth_with_bad_text_is_stored_bounded(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def decision(user: str, extra: str = "", ts: str = str(BASE)) -> str:
        return ("Tue Nov 24 20:15:55 2026\n\tPacket-Type = Access-Reject\n"
                f'\tRadbill-User-Name = "{user}"\n\tRadbill-NAS-Address = "127.0.0.1"\n'
                f'\tRadbill-Reason = "unknown-user"\n\tRadbill-Decision = "reject"\n{extra}'
                f"\tTimestamp = {ts}\n\n")

    write(tmp_path, FILE, "".join([
        decision("before"),
        decision("ev\\000il", f'\tRadbill-Calling-Station = "{"c" * 300}"\n'),
        decision("corrupt", ts="soon"),
        decision("x" * 253 + "\\000"),
        decision("after"),
    ]), stream="postauth")
    ing = Ingester(session_factory(db), tmp_path)
    assert ing.run_once() == 4
    with session_factory(db)() as s:
        rows = {r.username: r for r in s.scalars(select(PostAuth))}
    assert set(rows) == {"before", "ev\ufffdil", "x" * 253, "after"}
    assert rows["ev\ufffdil"].calling_station_id == "c" * 253
    [entry] = set_aside(db)
    assert (entry["stream"], entry["reason"]) == ("postauth", "Timestamp='soon' is not a time")


@pytest.fixture
def loose(monkeypatch: pytest.MonkeyPatch) -> Limits:
    """Validation switched off for counters, so an overflowing value reaches the database
    and the database refuses it (OverflowError on SQLite, DataError on PostgreSQL): the
    case of a record that passes every check and still fails."""
    monkeypatch.setattr(accounting, "MAX_I64", 2**64)
    return Limits(max_bits_per_second=2**80)


class CountingFactory:
    """A session factory that counts the transactions opened, and can go dead after *alive*
    of them (a real connection refused from then on)."""

    def __init__(self, good: sessionmaker[Session], alive: int | None = None) -> None:
        self.good, self.alive, self.opened = good, alive, 0
        self.dead = session_factory(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/x",
                                                  connect_args={"connect_timeout": 1}))

    def __call__(self) -> Session:
        self.opened += 1
        if self.alive is not None and self.opened > self.alive:
            return self.dead()
        return self.good()


def _file_with_poison(tmp_path: Path, n: int, poison_at: set[int]) -> None:
    write(tmp_path, FILE, "".join(
        record("Interim-Update", f"s{i}", 60, 2**63 if i in poison_at else (i + 1) * 1000)
        for i in range(n)))


def test_a_record_the_database_refuses_is_found_by_halving_and_set_aside(db, tmp_path, loose
                                                                          ) -> None:  # type: ignore[no-untyped-def]
    _file_with_poison(tmp_path, 64, {37})
    factory = CountingFactory(session_factory(db))
    ing = Ingester(factory, tmp_path, limits=loose)  # type: ignore[arg-type]
    assert ing.run_once() == 63
    rows = sessions(db)
    assert set(rows) == {f"s{i}" for i in range(64)} - {"s37"}
    assert all(rows[f"s{i}"].input_octets == (i + 1) * 1000 for i in range(64) if i != 37)
    [entry] = set_aside(db)
    assert entry["acct_session_id"] == "s37"
    assert entry["reason"] == ("could not be applied: OverflowError: Python int too large to "
                               "convert to SQLite INTEGER" if BACKEND == "sqlite" else
                               "could not be applied: NumericValueOutOfRange: bigint out of "
                               "range"), entry["reason"]
    # halving, not one by one: the failed batch, 2 halves per level (6 levels), the set-aside,
    # plus the cursor reads of the drain loop
    assert factory.opened <= 20, factory.opened


def test_two_poisoned_records_in_one_batch(db, tmp_path, loose) -> None:  # type: ignore[no-untyped-def]
    _file_with_poison(tmp_path, 50, {0, 49})
    assert Ingester(session_factory(db), tmp_path, limits=loose).run_once() == 48
    assert [e["acct_session_id"] for e in set_aside(db)] == ["s0", "s49"]


def test_an_outage_while_narrowing_down_sets_nothing_aside_and_loses_nothing(db, tmp_path,
                                                                             loose) -> None:  # type: ignore[no-untyped-def]
    _file_with_poison(tmp_path, 16, {5})
    # the cursor read and the failed batch work, then the database goes away
    flaky = CountingFactory(session_factory(db), alive=2)
    with pytest.raises(OperationalError):
        Ingester(flaky, tmp_path, limits=loose).run_once()  # type: ignore[arg-type]
    assert set_aside(db) == [] and sessions(db) == {}
    # back: everything is applied, and only the poisoned record set aside
    assert Ingester(session_factory(db), tmp_path, limits=loose).run_once() == 15
    assert [e["acct_session_id"] for e in set_aside(db)] == ["s5"]
    assert len(sessions(db)) == 15


def test_a_database_outage_never_sets_anything_aside(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "s1", 0) + record("Start", "b\\000ad", 0))
    dead = CountingFactory(session_factory(db), alive=0)
    for _ in range(3):
        with pytest.raises(OperationalError):
            Ingester(dead, tmp_path).run_once()  # type: ignore[arg-type]
    assert set_aside(db) == []
    assert Ingester(session_factory(db), tmp_path).run_once() == 1
    assert len(set_aside(db)) == 1


@pytest.mark.parametrize(("exc", "record_fault"), [
    (DataError("INSERT", {}, Exception("bigint out of range")), True),
    (IntegrityError("INSERT", {}, Exception("duplicate key")), True),
    (InvalidRecord("garbage"), True),
    (ValueError("bad"), True),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    (StatementError("wrapped", "INSERT", {}, OverflowError("too large")), True),
    (OperationalError("SELECT", {}, Exception("connection refused")), False),
    (OperationalError("UPDATE", {}, Exception("database is locked")), False),
    (InterfaceError("SELECT", {}, Exception("connection already closed")), False),
    (ProgrammingError("SELECT", {}, Exception('relation "radius_sessions" does not exist')),
     False),
    (InternalError("SELECT", {}, Exception("current transaction is aborted")), False),
    (DataError("INSERT", {}, Exception("server closed the connection"),
               connection_invalidated=True), False),
    (StatementError("wrapped", "INSERT", {}, TimeoutError("timed out")), False),
    (OSError("disk I/O error"), False),
    # raised by the driver itself (psycopg's COPY), not wrapped by SQLAlchemy
    (psycopg.errors.UniqueViolation("duplicate key"), True),
    (psycopg.errors.NumericValueOutOfRange("bigint out of range"), True),
    (psycopg.OperationalError("server closed the connection unexpectedly"), False),
    (psycopg.errors.AdminShutdown("terminating connection"), False),
    (sqlite3.OperationalError("database is locked"), False),
    (sqlite3.IntegrityError("UNIQUE constraint failed"), True),
])
def test_what_counts_as_one_records_fault(exc: BaseException, record_fault: bool) -> None:
    assert is_record_fault(exc) is record_fault


def test_a_file_read_twice_sets_each_record_aside_once(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = record("Start", "b\\000ad", 0)
    path = write(tmp_path, FILE, bad + record("Start", "s1", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    path.write_text(bad)  # the file replaced by a shorter one: read again from the start
    Ingester(session_factory(db), tmp_path).run_once()
    assert len(set_aside(db)) == 1
    assert alerts(db)[0].data["count"] == 1


def alerts(db) -> list[Alert]:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == rejects.ALERT_KIND)
                              .order_by(Alert.id)))


def test_one_alert_per_burst_not_per_record(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "a\\000x", 0) + record("Start", "b\\000x", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    write(tmp_path, FILE, record("Start", "c\\000x", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    [alert] = alerts(db)
    assert alert.resolved_at is None
    assert alert.data is not None and alert.data["count"] == 3
    assert alert.data["latest_reason"] == "Acct-Session-Id='c\\x00x' contains a NUL byte"
    assert alert.message.startswith("3 accounting/post-auth record(s) set aside")
    with session_factory(db)() as s, s.begin():
        s.execute(update(Alert).values(resolved_at=dt.datetime.now(dt.UTC),
                                       resolved_by="noc"))
    write(tmp_path, FILE, record("Start", "d\\000x", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    assert [(a.data or {}).get("count") for a in alerts(db)] == [3, 1]


def test_ingest_cli_reports_set_aside_records(db, tmp_path, database_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from radbill.cli import main

    write(tmp_path / "radius" / "spool", FILE, record("Start", "s1", 0)
          + record("Start", "b\\000ad", 0))
    env: dict[str, Any] = {"RADBILL_DATABASE_URL": database_url,
                           "RADBILL_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["accounting", "ingest"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "applied 1 records, set aside 1"


@pytest.mark.skipif(BACKEND != "postgresql", reason="a lock timeout that leaves the rest of "
                    "the database writable is PostgreSQL's")
def test_a_lock_timeout_is_the_databases_problem_not_the_records(db, tmp_path, database_url
                                                                 ) -> None:  # type: ignore[no-untyped-def]
    """While sessions are locked by someone else, every batch fails with OperationalError
    but the set-aside table is writable: the records must still wait, not be set aside."""
    write(tmp_path, FILE, "".join(record("Start", f"s{i}", 0) for i in range(8)))
    impatient = create_engine(database_url, connect_args={"options": "-c lock_timeout=200"})
    holder = db.connect()
    txn = holder.begin()
    holder.exec_driver_sql("LOCK TABLE radius_sessions IN ACCESS EXCLUSIVE MODE")
    try:
        with pytest.raises(OperationalError, match="lock timeout"):
            Ingester(session_factory(impatient), tmp_path).run_once()
    finally:
        txn.rollback()
        holder.close()
    assert set_aside(db) == []
    assert Ingester(session_factory(impatient), tmp_path).run_once() == 8
    impatient.dispose()
