"""Reading ahead: while one batch is applied, the next is read and parsed on the ingester's
reading thread (issue 14). What it must not change: records of a session applied in order,
the cursor moved only by a commit, a record that fails still set aside on its own, nothing
lost when the database goes away with a batch read ahead."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from radbill.db import session_factory
from radius.ingest import Ahead, Ingester, Stream, ahead_handlers, apply_accounting
from radius.models import DetailCursor
from tests.conftest import wipe
from tests.radius.test_ingest import record, sessions, set_aside, write
from tests.radius.test_ingest_isolation import CountingFactory

FILE = "detail-20261124-20"
G = 2**32


def spool(n: int = 6) -> tuple[str, dict[str, int]]:
    """*n* sessions of a Start, two Interims and a Stop, interleaved round by round (a
    session's records in different batches), and each one's final input counter."""
    text, final = [], {}
    for k in range(4):
        for i in range(n):
            status = ("Start", "Interim-Update", "Interim-Update", "Stop")[k]
            inp = k * (i + 1) * G + k * 1000 + i
            text.append(record(status, f"s{i}", 60 * k, inp))
            final[f"s{i}"] = inp
    return "".join(text), final


class Probe:
    """The accounting stream's two steps, watched: which thread prepared each record, and
    the first batch's transaction held open until a record of a later batch has been
    prepared (so that preparing overlaps a batch being applied, whatever the scheduling);
    a record with the session id *boom* raises in its preparation."""

    def __init__(self) -> None:
        self.real = ahead_handlers()["acct"]
        self.threads: dict[str, set[str]] = {}
        self.later_prepared = threading.Event()
        self.batches = 0
        self.overlapped = False

    def prepare(self, attrs: Mapping[str, str]) -> object:
        sid = attrs.get("Acct-Session-Id", "")
        self.threads.setdefault(sid, set()).add(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            self.later_prepared.set()
        if sid == "boom":
            raise RuntimeError("boom")
        return self.real.prepare(attrs)

    def apply(self, session: Session, prepared: Sequence[Any]) -> dict[int, str]:
        self.batches += 1
        if self.batches == 1:
            self.overlapped = self.later_prepared.wait(10)
        return self.real.apply(session, prepared)

    def stream(self, spool_dir: Path) -> Stream:
        return Stream("acct", spool_dir / "acct", apply_accounting, Ahead(self.prepare,
                                                                        self.apply))


def cursor(db: Any) -> tuple[str, int, int]:
    with session_factory(db)() as s:
        c = s.scalars(select(DetailCursor).where(DetailCursor.stream == "acct")).one()
        return c.file_name, c.offset, c.records


def test_a_record_failing_in_the_batch_read_ahead_is_set_aside_and_nothing_else_lost(
        db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text, final = spool()
    boom = record("Interim-Update", "boom", 60, 5)
    # the 24 records in batches of 5: the bad one is the 8th, in the second batch
    at = len("".join(text.split("\n\n")[i] + "\n\n" for i in range(7)))
    path = write(tmp_path, FILE, text[:at] + boom + text[at:])
    probe = Probe()
    ing = Ingester(session_factory(db), tmp_path, streams=[probe.stream(tmp_path)],
                   batch_size=5, read_ahead=True)
    assert ing.run_once() == 24
    # the second batch was prepared on the reading thread while the first was applied
    assert probe.overlapped
    assert probe.threads["boom"] == {"radbill-ingest-acct_0"}
    [entry] = set_aside(db)
    assert (entry["record"]["Acct-Session-Id"], entry["reason"], entry["offset"]) == (
        "boom", "could not be applied: RuntimeError: boom", at)
    rows = sessions(db)
    assert {sid: rows[sid].input_octets for sid in final} == final
    assert all(rows[sid].stopped_at is not None for sid in final)
    assert "boom" not in rows
    assert cursor(db) == (FILE, path.stat().st_size, 24)


def test_the_database_gone_with_a_batch_read_ahead_loses_nothing_and_keeps_order(
        db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text, final = spool()
    path = write(tmp_path, FILE, text)
    # the cursor read and the first batch work; the second batch (read ahead) meets the
    # database gone
    flaky = CountingFactory(session_factory(db), alive=3)
    with pytest.raises(OperationalError):
        Ingester(flaky, tmp_path, batch_size=5,  # type: ignore[arg-type]
                 read_ahead=True).run_once()
    assert cursor(db)[2] == 5
    assert Ingester(session_factory(db), tmp_path, batch_size=5,
                    read_ahead=True).run_once() == 19
    rows = sessions(db)
    assert {sid: rows[sid].input_octets for sid in final} == final
    assert set_aside(db) == []
    assert cursor(db) == (FILE, path.stat().st_size, 24)


def snapshot(db: Any) -> tuple[object, ...]:
    rows = sessions(db)
    return (sorted((sid, r.input_octets, r.session_time, r.started_at, r.updated_at,
                    r.stopped_at, r.terminate_cause) for sid, r in rows.items()),
            [(e["offset"], e["reason"]) for e in set_aside(db)], cursor(db))


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_reading_ahead_or_not_gives_the_same_database(db, tmp_path, batch) -> None:  # type: ignore[no-untyped-def]
    text, _ = spool(5)
    bad = record("Interim-Update", "s1", 90, 7).replace("Acct-Input-Octets = 7",
                                                        "Acct-Input-Octets = lots")
    parts = text.split("\n\n")
    write(tmp_path, FILE, "\n\n".join([*parts[:9], bad.rstrip("\n"), *parts[9:]]))
    seen = []
    for ahead in (False, True):
        wipe(db)
        assert Ingester(session_factory(db), tmp_path, batch_size=batch,
                        read_ahead=ahead).run_once() == 20
        seen.append(snapshot(db))
    assert seen[0] == seen[1]
    assert len(seen[0][1]) == 1


def test_radbill_radius_run_reads_ahead_unless_told_not_to(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from radbill.config import Settings

    base = {"RADBILL_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).ingest_read_ahead is True
    assert Settings.from_env({**base, "RADBILL_INGEST_READ_AHEAD": "no"}).ingest_read_ahead is False
