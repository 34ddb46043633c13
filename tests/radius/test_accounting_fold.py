"""The accounting fold: exact outcomes for every ordering the issue names, plus properties."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radius.accounting import (
    INTERIM,
    STALE,
    START,
    STOP,
    AcctRecord,
    InvalidRecord,
    fold,
    octets64,
    record_from_attrs,
)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def rec(status: str, minutes: int, inp: int = 0, out: int = 0, cause: str | None = None
        ) -> AcctRecord:
    return AcctRecord(status=status, nas_ip="10.1.1.1", username="alice",
                      acct_session_id="81a00001", event_time=T0 + dt.timedelta(minutes=minutes),
                      session_time=minutes * 60, input_octets=inp, output_octets=out,
                      terminate_cause=cause)


def run(*records: AcctRecord):  # type: ignore[no-untyped-def]
    state = None
    for r in records:
        state = fold(state, r)
    return state


def test_gigawords_make_64_bit_counters() -> None:
    attrs = {"Acct-Input-Octets": "5", "Acct-Input-Gigawords": "3"}
    assert octets64(attrs, "Acct-Input-Octets", "Acct-Input-Gigawords") == 3 * 2**32 + 5


def test_record_from_attrs_uses_receive_time_minus_delay_not_nas_clock() -> None:
    r = record_from_attrs({"Acct-Status-Type": "Interim-Update", "User-Name": "alice",
                           "Acct-Session-Id": "x", "Acct-Delay-Time": "30",
                           "Event-Timestamp": "Jan  1 1970 00:00:00 UTC",
                           "Acct-Output-Octets": "10", "Acct-Output-Gigawords": "1",
                           "Packet-Src-IP-Address": "10.1.1.1"}, T0)
    assert r.event_time == T0 - dt.timedelta(seconds=30)
    assert r.output_octets == 2**32 + 10
    assert r.nas_ip == "10.1.1.1"


@pytest.mark.parametrize(
    ("attrs", "message"),
    [({"Acct-Status-Type": "Bogus"}, "not handled"),
     ({"Acct-Status-Type": "Start", "User-Name": "a"}, "without"),
     ({"Acct-Status-Type": "Start", "User-Name": "a", "Acct-Session-Id": "s",
       "Acct-Input-Octets": "lots"}, "not a number"),
     ({"Acct-Status-Type": "Start", "User-Name": "a", "Acct-Session-Id": "s",
       "Acct-Input-Octets": "4294967296"}, "outside"),
     ({"Acct-Status-Type": "Start", "User-Name": "a", "Acct-Session-Id": "s" * 254},
      "254 characters long")],
)
def test_invalid_records(attrs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        record_from_attrs({"Packet-Src-IP-Address": "10.1.1.1", **attrs}, T0)


def test_start_interim_stop() -> None:
    s = run(rec(START, 0), rec(INTERIM, 5, 100, 1000), rec(STOP, 10, 200, 2000, "User-Request"))
    assert s.started_at == T0
    assert s.stopped_at == T0 + dt.timedelta(minutes=10)
    assert (s.input_octets, s.output_octets, s.session_time) == (200, 2000, 600)
    assert s.terminate_cause == "User-Request"


def test_duplicates_change_nothing() -> None:
    once = run(rec(START, 0), rec(INTERIM, 5, 100, 1000))
    assert fold(once, rec(INTERIM, 5, 100, 1000)) is once
    assert fold(once, rec(START, 0)) is once
    stopped = fold(once, rec(STOP, 9, 150, 1500, "Lost-Carrier"))
    assert fold(stopped, rec(STOP, 9, 150, 1500, "Lost-Carrier")) is stopped


def test_counters_never_go_backwards_on_reordered_interims() -> None:
    s = run(rec(START, 0), rec(INTERIM, 10, 500, 5000), rec(INTERIM, 5, 100, 1000))
    assert (s.input_octets, s.output_octets) == (500, 5000)
    assert s.updated_at == T0 + dt.timedelta(minutes=10)


def test_interim_without_start_creates_open_session_backdated_by_session_time() -> None:
    s = run(rec(INTERIM, 7, 10, 20))
    assert s.is_open and s.started_at == T0 and s.input_octets == 10


def test_stop_without_start_creates_closed_session() -> None:
    s = run(rec(STOP, 3, 1, 2, "Idle-Timeout"))
    assert not s.is_open and s.started_at == T0 and s.stopped_at == T0 + dt.timedelta(minutes=3)


def test_interim_after_stop_changes_nothing() -> None:
    stopped = run(rec(START, 0), rec(STOP, 5, 50, 60, "User-Request"))
    assert fold(stopped, rec(INTERIM, 6, 999, 999)) is stopped
    assert fold(stopped, rec(START, 0)) is stopped


def test_late_stop_brings_final_counters_to_a_session_closed_as_stale() -> None:
    open_ = run(rec(START, 0), rec(INTERIM, 5, 100, 100))
    stale = open_.__class__(**{**open_.__dict__, "stopped_at": open_.updated_at,
                               "terminate_cause": STALE})
    final = fold(stale, rec(STOP, 30, 900, 800, "User-Request"))
    assert final.stopped_at == T0 + dt.timedelta(minutes=30)
    assert (final.input_octets, final.output_octets) == (900, 800)
    assert final.terminate_cause == "User-Request"


def test_interim_reopens_a_session_wrongly_closed_as_stale() -> None:
    open_ = run(rec(START, 0), rec(INTERIM, 5, 100, 100))
    stale = open_.__class__(**{**open_.__dict__, "stopped_at": open_.updated_at,
                               "terminate_cause": STALE})
    alive = fold(stale, rec(INTERIM, 20, 300, 300))
    assert alive.is_open and alive.terminate_cause is None and alive.input_octets == 300


statuses = st.sampled_from([START, INTERIM, STOP])
events = st.lists(st.tuples(statuses, st.integers(0, 120), st.integers(0, 2**40),
                            st.integers(0, 2**40)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(events)
def test_properties_monotonic_idempotent_and_stop_is_final(evs) -> None:  # type: ignore[no-untyped-def]
    records = [rec(s, m, i, o, "User-Request" if s == STOP else None) for s, m, i, o in evs]
    state = None
    seen_in = 0
    for r in records:
        before = state
        state = fold(state, r)
        # replaying the same record is a no-op
        assert fold(state, r) == state
        if before is not None:
            assert state.input_octets >= before.input_octets
            assert state.output_octets >= before.output_octets
            assert state.updated_at >= before.updated_at
            if not before.is_open:
                assert state is before  # a session its NAS stopped is final
        seen_in = state.input_octets
    # counters never exceed what some record reported, and equal the largest up to the Stop
    assert seen_in <= max(r.input_octets for r in records)
    first_stop = next((k for k, r in enumerate(records) if r.status == STOP), len(records) - 1)
    assert seen_in == max(r.input_octets for r in records[: first_stop + 1])


def test_the_latest_framed_ip_wins_and_an_older_record_does_not_bring_back_the_old_one() -> None:
    from dataclasses import replace

    first = replace(rec(START, 0), framed_ip="100.64.0.10")
    readdressed = replace(rec(START, 1), framed_ip="100.64.0.99")  # a later Start, new address
    state = run(first, readdressed)
    assert state.framed_ip == "100.64.0.99"
    late_retransmission = replace(rec(INTERIM, 0), framed_ip="100.64.0.10")
    assert fold(state, late_retransmission).framed_ip == "100.64.0.99"
    no_address = rec(INTERIM, 2)
    assert fold(state, no_address).framed_ip == "100.64.0.99"
