"""The batch's session writes overlapping usage metering's arithmetic (issue 14): on
PostgreSQL the ingester hands the sessions' UPDATE and INSERT to a thread of their own while
metering computes the batch's marks and deltas in Python, and waits for them before the next
statement. What must hold: they do overlap (measured in ``bench/accounting_ingest.py``; here
made certain by making each side wait for the other), the rows are those of the sequential
path, a write that fails is the batch's failure (the record is found and set aside as
before), and a failure on both sides reports metering's and logs the writes'."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius import accounting
from radius.ingest import apply_accounting, describe, isolate
from radius.models import RadiusSession
from tests.conftest import BACKEND, wipe
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import G, acct
from usage import service as usage
from usage.models import UsageDay

AT = dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
USERS = ("ann", "bob", "cat")


def batch() -> list[dict[str, str]]:
    """Each user's session: a Start, an Interim and a Stop; and one of an unknown user."""
    out = []
    for i, user in enumerate((*USERS, "nobody")):
        out.append(acct("Start", f"s-{user}", user, AT))
        out.append(acct("Interim-Update", f"s-{user}", user, AT + dt.timedelta(minutes=5),
                        300, (i + 1) * G, 2 * (i + 1) * G))
        out.append(acct("Stop", f"s-{user}", user, AT + dt.timedelta(minutes=9), 540,
                        (i + 1) * G + 7, 2 * (i + 1) * G + 9))
    return out


@pytest.fixture
def metered(engine: Engine, box: SecretBox) -> Engine:
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        make_plan(s, data_cap="1000G", fup_rate="1M/1M")
        for user in USERS:
            make_subscriber(s, box, username=user, password="pw-12345",
                            activated_on=dt.date(2026, 11, 1))
    return engine


def stored(engine: Engine) -> tuple[dict[str, tuple[Any, ...]], dict[int, tuple[int, int]]]:
    with session_factory(engine)() as s:
        rows = {r.acct_session_id: (r.input_octets, r.output_octets, r.stopped_at is None)
                for r in s.scalars(select(RadiusSession))}
        days = {d.subscriber_id: (d.download, d.upload) for d in s.scalars(select(UsageDay))}
    return rows, days


def test_the_sessions_are_written_while_metering_computes(
        metered: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    computing, writing = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    # the statements that write the sessions: run as they are on PostgreSQL, built and run
    # by _write_states elsewhere
    hook = "_execute" if BACKEND == "postgresql" else "_write_states"
    real_write, real_changes = getattr(accounting, hook), usage._changes

    def write_states(*args: Any) -> None:
        seen["writer"] = threading.current_thread()
        writing.set()
        # on PostgreSQL metering computes meanwhile: wait for it to have begun
        seen["met_metering"] = computing.wait(10 if BACKEND == "postgresql" else 0)
        real_write(*args)

    def changes(*args: Any) -> Any:
        computing.set()
        seen["writes_under_way"] = writing.wait(10 if BACKEND == "postgresql" else 0)
        return real_changes(*args)

    monkeypatch.setattr(accounting, hook, write_states)
    monkeypatch.setattr(usage, "_changes", changes)
    with session_factory(metered)() as s, s.begin():
        assert apply_accounting(s, batch()) == {}

    if BACKEND == "postgresql":
        assert seen["writer"] is not threading.current_thread()
        assert seen["met_metering"] and seen["writes_under_way"]
    else:  # SQLite: one thread, the sessions first
        assert seen["writer"] is threading.current_thread()
        assert not seen["met_metering"] and seen["writes_under_way"]
    rows, days = stored(metered)
    assert rows == {f"s-{u}": ((i + 1) * G + 7, 2 * (i + 1) * G + 9, False)
                    for i, u in enumerate((*USERS, "nobody"))}
    assert sorted(days.values()) == [(2 * (i + 1) * G + 9, (i + 1) * G + 7)
                                     for i in range(len(USERS))]


def test_a_batch_of_unknown_users_still_writes_its_sessions(metered: Engine) -> None:
    # metering finds nothing to read and never enters its overlap: written after it
    records = [r for r in batch() if r["User-Name"] == "nobody"]
    with session_factory(metered)() as s, s.begin():
        assert apply_accounting(s, records) == {}
    rows, days = stored(metered)
    assert rows == {"s-nobody": (4 * G + 7, 8 * G + 9, False)} and days == {}


def test_a_write_that_fails_meanwhile_fails_the_batch_and_its_record_is_set_aside(
        metered: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # bob's new row is refused: on PostgreSQL by the database, on the writing thread (a
    # statement that fails as a refused value does: DataError), elsewhere by _write_states
    if BACKEND == "postgresql":
        real_writes = accounting._pg_writes

        def pg_writes(updates: Any, inserts: Any, ids: Any) -> Any:
            out = real_writes(updates, inserts, ids)
            bob = any(k[1] == "s-bob" for k, _, _ in inserts)
            return [*out, ("SELECT 1 / 0 AS bobs_row_refused", ())] if bob else out

        monkeypatch.setattr(accounting, "_pg_writes", pg_writes)
    else:
        real_write = accounting._write_states

        def write_states(session: Any, updates: Any, inserts: Any, ids: Any) -> None:
            if any(k[1] == "s-bob" for k, _, _ in inserts):
                raise ValueError("bobs_row_refused")
            real_write(session, updates, inserts, ids)

        monkeypatch.setattr(accounting, "_write_states", write_states)

    applied: list[int] = []
    refused: dict[int, str] = {}
    records = batch()

    def attempt(items: Any) -> None:
        with session_factory(metered)() as s, s.begin():
            refused.update(apply_accounting(s, [records[i] for i in items]))
        applied.extend(items)

    isolate(list(range(len(records))), attempt,
            lambda i, exc: refused.__setitem__(i, describe(exc)))
    bob = [i for i, r in enumerate(records) if r["User-Name"] == "bob"]
    # bob's first record alone opens his row (refused); his later two, each alone, too
    assert sorted(refused) == bob
    why = ("DivisionByZero: division by zero" if BACKEND == "postgresql" else
           "ValueError: bobs_row_refused")
    assert set(refused.values()) == {f"could not be applied: {why}"}
    rows, days = stored(metered)
    assert "s-bob" not in rows and set(rows) == {"s-ann", "s-cat", "s-nobody"}
    assert len(days) == 2  # ann and cat metered; bob's usage went with his records


def test_when_both_fail_metering_s_error_is_raised_and_the_writes_logged(
        metered: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if BACKEND != "postgresql":
        pytest.skip("the overlap runs on PostgreSQL only")

    def execute(*args: Any) -> None:
        raise ValueError("writes broke")

    def changes(*args: Any) -> Any:
        raise RuntimeError("metering broke")

    monkeypatch.setattr(accounting, "_execute", execute)
    monkeypatch.setattr(usage, "_changes", changes)
    caplog.set_level(logging.ERROR, logger="radbill.ingest")
    with pytest.raises(RuntimeError, match="metering broke"), \
            session_factory(metered)() as s, s.begin():
        apply_accounting(s, batch())
    assert any("the session writes failed" in r.getMessage() and "writes broke" in
               r.getMessage() for r in caplog.records)
    assert stored(metered) == ({}, {})
