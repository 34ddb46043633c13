"""Batched accounting (what the ingester uses) writes exactly what applying the records one
at a time writes, for any sequence of records: Start, Interim, Stop, duplicates, reordering,
Accounting-On in the middle, several sessions and users in one batch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from radbill.db import session_factory
from radius import accounting
from radius.accounting import ACCOUNTING_ON, INTERIM, START, STOP, AcctRecord
from radius.models import RadiusSession
from tests.conftest import wipe

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
RECORD = st.tuples(st.sampled_from([START, INTERIM, STOP, STOP, ACCOUNTING_ON]),
                   st.sampled_from(["s1", "s2", "s3"]), st.sampled_from(["ann", "bob"]),
                   st.integers(0, 30))


def make(status: str, sid: str, user: str, minute: int) -> AcctRecord:
    if status == ACCOUNTING_ON:
        return AcctRecord(status=status, nas_ip="10.0.0.1",
                          event_time=T0 + dt.timedelta(minutes=minute))
    return AcctRecord(status=status, nas_ip="10.0.0.1", username=user, acct_session_id=sid,
                      event_time=T0 + dt.timedelta(minutes=minute), session_time=minute * 60,
                      input_octets=minute * 1000, output_octets=minute * 5000,
                      terminate_cause="User-Request" if status == STOP else None)


def snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    with session_factory(engine)() as s:
        return [(r.acct_session_id, r.username, r.started_at, r.updated_at, r.stopped_at,
                 r.session_time, r.input_octets, r.output_octets, r.terminate_cause,
                 r.stopped_at is None)
                for r in s.scalars(select(RadiusSession).order_by(
                    RadiusSession.acct_session_id, RadiusSession.username))]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(RECORD, min_size=1, max_size=12), min_size=1, max_size=3))
def test_batched_equals_one_by_one(db: Engine, batches: list[list[tuple[Any, ...]]]) -> None:
    wipe(db)
    one_by_one = []
    for batch in batches:
        with session_factory(db)() as s, s.begin():
            one_by_one += [accounting.apply(s, make(*r)) for r in batch]
    expected = snapshot(db)
    wipe(db)
    batched = []
    for batch in batches:
        with session_factory(db)() as s, s.begin():
            batched += accounting.apply_many(s, [make(*r) for r in batch], {})
    assert snapshot(db) == expected
    assert [o.split(":")[0] for o in batched] == [o.split(":")[0] for o in one_by_one]


def test_a_batch_bumps_the_session_feed_once(db: Engine) -> None:
    with session_factory(db)() as s, s.begin():
        outcomes = accounting.apply_many(
            s, [make(START, f"s{i}", "ann", 1) for i in range(50)], {"ann": 7})
    assert outcomes == ["opened"] * 50
    with session_factory(db)() as s:
        seqs = {r.state_seq for r in s.scalars(select(RadiusSession))}
        ids = {r.subscriber_id for r in s.scalars(select(RadiusSession))}
    assert len(seqs) == 1 and ids == {7}


def test_a_session_closed_by_accounting_on_mid_batch_is_read_fresh(db: Engine) -> None:
    """Accounting-On closes sessions with a bulk UPDATE; a session object the ORM still holds
    from earlier in the batch must not be folded from its stale (open) state."""
    recs = [make(START, "s1", "ann", 1), make(ACCOUNTING_ON, "", "", 2),
            make(INTERIM, "s1", "ann", 3), make(ACCOUNTING_ON, "", "", 4)]
    with session_factory(db)() as s, s.begin():
        for r in recs:
            accounting.apply(s, r)
    expected = snapshot(db)
    assert expected[0][4] == T0 + dt.timedelta(minutes=4)  # reopened, closed by the 2nd On
    wipe(db)
    with session_factory(db)() as s, s.begin():
        accounting.apply_many(s, recs[:1], {})
        held = list(s.scalars(select(RadiusSession)))  # what a caller may keep referenced
        accounting.apply_many(s, recs[1:], {})
        assert held
    assert snapshot(db) == expected
