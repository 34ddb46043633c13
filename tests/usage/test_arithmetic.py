"""Usage arithmetic: the day split of a session by its interim records, a period boundary,
64-bit counters (Gigawords), a counter reset, duplicates and late records."""

from __future__ import annotations

import datetime as dt
import gc
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from radbill.crypto import SecretBox
from radius.ingest import apply_accounting
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import G, acct
from usage import rules
from usage.models import UsageDay, UsageState

DHAKA = ZoneInfo("Asia/Dhaka")  # the ISP's time zone (the default)
D = dt.date


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    """A moment in Dhaka time, in UTC."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=DHAKA).astimezone(dt.UTC)


@pytest.fixture
def alice(session: Session, box: SecretBox) -> int:
    make_plan(session)
    sub = make_subscriber(session, box, activated_on=dt.date(2026, 11, 1))
    session.commit()
    assert (sub.period_start, sub.period_end) == (D(2026, 11, 1), D(2026, 12, 1))
    return sub.id


def days(session: Session, sid: int) -> dict[dt.date, tuple[int, int, int]]:
    return {r.day: (r.download, r.upload, r.seconds) for r in session.scalars(
        select(UsageDay).where(UsageDay.subscriber_id == sid).order_by(UsageDay.day))}


def feed(session: Session, *records: dict[str, str]) -> None:
    assert apply_accounting(session, list(records)) == {}
    session.commit()


def test_contributions_are_the_rise_of_the_running_maximum() -> None:
    marks = {D(2026, 11, 1): (100, 1000, 60), D(2026, 11, 2): (50, 3000, 120),
             D(2026, 11, 3): (400, 2500, 180)}
    assert rules.contributions(marks) == {D(2026, 11, 1): (100, 1000, 60),
                                          D(2026, 11, 2): (0, 2000, 60),
                                          D(2026, 11, 3): (300, 0, 60)}
    assert rules.contributions({}) == {}


def test_a_session_over_midnight_is_split_by_its_interims(session: Session, alice: int) -> None:
    feed(session,
         acct("Start", "s1", "alice", at(10, 23, 0)),
         acct("Interim-Update", "s1", "alice", at(10, 23, 55), 3300, 1_000, 40_000),
         acct("Interim-Update", "s1", "alice", at(11, 0, 50), 6600, 3_000, 100_000),
         acct("Stop", "s1", "alice", at(11, 1, 0), 7200, 3_500, 120_000))
    assert days(session, alice) == {D(2026, 11, 10): (40_000, 1_000, 3300),
                                    D(2026, 11, 11): (80_000, 2_500, 3900)}


def test_a_late_interim_moves_bytes_back_to_its_day(session: Session, alice: int) -> None:
    feed(session, acct("Interim-Update", "s1", "alice", at(11, 0, 50), 6600, 3_000, 100_000))
    assert days(session, alice) == {D(2026, 11, 11): (100_000, 3_000, 6600)}
    feed(session, acct("Interim-Update", "s1", "alice", at(10, 23, 55), 3300, 1_000, 40_000))
    assert days(session, alice) == {D(2026, 11, 10): (40_000, 1_000, 3300),
                                    D(2026, 11, 11): (60_000, 2_000, 3300)}


def test_duplicates_change_nothing(session: Session, alice: int) -> None:
    rec = acct("Interim-Update", "s1", "alice", at(12, 10), 600, 5_000, 70_000)
    feed(session, rec, rec)
    feed(session, rec)
    assert days(session, alice) == {D(2026, 11, 12): (70_000, 5_000, 600)}


def test_gigawords_make_64_bit_counters(session: Session, alice: int) -> None:
    feed(session,
         acct("Interim-Update", "s1", "alice", at(12, 10), 3600, 3 * G + 5, 2 * G + 7),
         acct("Stop", "s1", "alice", at(12, 11), 7200, 5 * G + 1, 9 * G))
    assert days(session, alice) == {D(2026, 11, 12): (9 * G, 5 * G + 1, 7200)}


def test_a_counter_reset_is_not_negative_usage(session: Session, alice: int) -> None:
    # the NAS rebooted and reused the session id: its counters start again from zero, and
    # what the new run carries counts in full (not only what passes the old run's peak)
    feed(session,
         acct("Interim-Update", "s1", "alice", at(12, 10), 3600, 5_000, 900_000),
         acct("Accounting-On", "", "", at(12, 11)),
         acct("Interim-Update", "s1", "alice", at(12, 12), 300, 100, 2_000),
         # and a new session after the reboot counts from zero
         acct("Interim-Update", "s2", "alice", at(12, 12), 300, 700, 8_000))
    assert days(session, alice) == {D(2026, 11, 12): (910_000, 5_800, 4200)}
    assert all(v >= 0 for row in days(session, alice).values() for v in row)


@pytest.mark.parametrize("order", ["in order", "new run first", "interleaved"])
def test_a_reused_session_id_counts_both_runs_in_full(session: Session, alice: int,
                                                      order: str) -> None:
    # run 1 from 10:00 to 12:00 (6G down); the NAS reboots at 12:02 and the same id runs
    # again from 12:05, passing the old run's peak (9G > 6G): all of it was used
    old = [acct("Interim-Update", "s1", "alice", at(12, 11), 3600, 1 * G, 2 * G),
           acct("Interim-Update", "s1", "alice", at(12, 12), 7200, 2 * G, 6 * G)]
    new = [acct("Interim-Update", "s1", "alice", at(12, 12, 10), 300, 10, 1 * G),
           acct("Interim-Update", "s1", "alice", at(12, 13, 5), 3600, 3 * G, 9 * G),
           acct("Stop", "s1", "alice", at(12, 14, 5), 7200, 4 * G, 9 * G + 5)]
    reboot = acct("Accounting-On", "", "", at(12, 12, 2))
    stream = {"in order": [*old, reboot, *new], "new run first": [*new, reboot, *old],
              "interleaved": [new[1], old[1], new[2], reboot, old[0], new[0]]}[order]
    for rec in stream:  # one record per batch: each arrives on its own
        feed(session, rec)
    assert days(session, alice) == {D(2026, 11, 12): (15 * G + 5, 6 * G, 14400)}
    feed(session, *stream)  # delivered again: nothing changes
    assert days(session, alice) == {D(2026, 11, 12): (15 * G + 5, 6 * G, 14400)}


def test_a_run_over_midnight_after_a_reset_splits_by_day(session: Session, alice: int) -> None:
    feed(session,
         acct("Interim-Update", "s1", "alice", at(10, 22), 3600, 500, 50_000),
         # reboot at 22:30; the same id again from 22:40, over midnight
         acct("Interim-Update", "s1", "alice", at(10, 23, 40), 3600, 100, 30_000),
         acct("Interim-Update", "s1", "alice", at(11, 0, 40), 7200, 300, 80_000))
    assert days(session, alice) == {D(2026, 11, 10): (80_000, 600, 7200),
                                    D(2026, 11, 11): (50_000, 200, 3600)}


def test_an_interim_the_nas_held_back_stays_in_its_run(session: Session, alice: int) -> None:
    # Interims held back by the NAS arrive with their Acct-Delay-Time: same run, no reset
    late = acct("Interim-Update", "s1", "alice", at(12, 11), 3600, 1_000, 10_000)
    feed(session,
         acct("Interim-Update", "s1", "alice", at(12, 12), 7200, 2_000, 20_000),
         {**late, "Timestamp": str(int(at(12, 12, 30).timestamp())),
          "Acct-Delay-Time": "5400"})
    assert days(session, alice) == {D(2026, 11, 12): (20_000, 2_000, 7200)}


def test_runs_are_told_apart_by_the_start_records_imply() -> None:
    runs = {1000: 8200}  # started at 1000, last reported at 8200
    assert rules.run_of(runs, 1002, 9000, 7998) == 1000  # jitter: the same run
    assert rules.run_of(runs, 8600, 8900, 300) is None  # started after it ended: a new run
    assert rules.run_of(runs, 8250, 8550, 300) == 1000  # within the slack: the same run
    assert rules.run_of({**runs, 8600: 9500}, 8601, 9800, 1199) == 8600
    assert rules.run_of(runs, 9000, 9000, 0) == 1000  # no session time: the run under way
    assert rules.run_of({}, 9000, 9000, 0) is None


def test_a_period_boundary_splits_the_period_usage(session: Session, alice: int) -> None:
    feed(session,
         acct("Interim-Update", "s1", "alice", at(30, 23, 50), 600, 10, 1_000),
         acct("Interim-Update", "s1", "alice", at(1, 0, 10, month=12), 1800, 30, 5_000))
    assert days(session, alice) == {D(2026, 11, 30): (1_000, 10, 600),
                                    D(2026, 12, 1): (4_000, 20, 1200)}
    state = session.get(UsageState, alice)
    assert state is not None
    assert (state.period_start, state.download, state.upload) == (D(2026, 11, 1), 1_000, 10)


def test_unknown_users_count_for_nobody(session: Session, alice: int) -> None:
    feed(session, acct("Interim-Update", "x1", "mallory", at(12, 10), 60, 10, 10))
    assert session.scalars(select(UsageDay)).all() == []


def test_the_longest_session_id_a_nas_may_send_is_metered(session: Session, alice: int) -> None:
    sid = "8" * 253  # radius_sessions keeps 253 characters: so do the daily marks
    feed(session, acct("Interim-Update", sid, "alice", at(12, 10), 60, 1, 2))
    assert days(session, alice) == {D(2026, 11, 12): (2, 1, 60)}


def test_a_period_state_held_in_the_session_reads_the_next_batch(session: Session,
                                                                 alice: int) -> None:
    # the metering writes period states as plain rows: an ORM copy the caller holds is
    # expired, not left with the old figures
    feed(session, acct("Interim-Update", "s1", "alice", at(12, 10), 600, 5_000, 70_000))
    state = session.get(UsageState, alice)
    assert state is not None and (state.download, state.upload) == (70_000, 5_000)
    assert apply_accounting(session, [
        acct("Interim-Update", "s1", "alice", at(12, 11), 4200, 6_000, 90_000)]) == {}
    assert (state.download, state.upload, state.seconds) == (90_000, 6_000, 4200)
    session.commit()


def test_metering_leaves_the_garbage_collector_as_it_found_it(session: Session,
                                                              alice: int) -> None:
    # record_usage pauses the cyclic collector for a batch (its CPU cost): it must come back
    # on afterwards, and stay off for a caller that had switched it off itself.
    rec = acct("Interim-Update", "s1", "alice", at(12, 10), 600, 5_000, 70_000)
    assert gc.isenabled()
    feed(session, rec)
    assert gc.isenabled()
    gc.disable()
    try:
        feed(session, acct("Interim-Update", "s1", "alice", at(12, 10, 1), 660, 6_000, 80_000))
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert days(session, alice) == {D(2026, 11, 12): (80_000, 6_000, 660)}
