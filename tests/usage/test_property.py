"""Property: the usage the ingester keeps incrementally (per day and per period) equals a
recomputation from the raw records delivered, for random streams with records reordered,
duplicated, Starts and Stops lost, NAS reboots (the same session id counting from zero again,
its new run passing the old run's peak or not), 64-bit counters, sessions over midnight and
over the period's end, applied in random batches. The streams are the same on every run (the
"ci" Hypothesis profile derandomizes them)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.ingest import apply_accounting
from tests.conftest import BACKEND, wipe
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import G, acct
from usage import rules
from usage.models import UsageDay, UsageState

DHAKA = ZoneInfo("Asia/Dhaka")
USERS = ["ann", "bob"]
# 29 Nov 2026 20:00 Dhaka: sessions run over midnight and over the period's end (1 Dec)
BASE = dt.datetime(2026, 11, 29, 20, 0, tzinfo=DHAKA).astimezone(dt.UTC)

STEPS = st.lists(st.tuples(st.integers(300, 6 * 3600),  # seconds to the next record
                           st.integers(0, 3 * G), st.integers(0, 3 * G)),  # bytes up, down
                 min_size=1, max_size=6)
SESSION = st.tuples(
    st.sampled_from(USERS),
    st.integers(0, 48 * 3600),  # start, seconds after BASE
    STEPS,
    st.booleans(),  # Start delivered
    st.booleans(),  # Stop delivered
    # after the last record the NAS reboots and reuses the id: a second run counting from
    # zero (these steps; none: no reboot)
    st.one_of(st.just([]), STEPS),
)


def run_records(sid: str, user: str, t: dt.datetime, steps: list[tuple[int, int, int]],
                with_stop: bool) -> tuple[list[dict[str, str]], int]:
    """The Interims (and Stop) of one run started at *t*, and how long it ran."""
    out = []
    elapsed = up = down = 0
    for i, (gap, du, dd) in enumerate(steps):
        elapsed, up, down = elapsed + gap, up + du, down + dd
        last = i == len(steps) - 1
        status = "Stop" if last and with_stop else "Interim-Update"
        out.append(acct(status, sid, user, t + dt.timedelta(seconds=elapsed), elapsed, up, down))
    return out, elapsed


def session_records(n: int, s: tuple) -> list[dict[str, str]]:  # type: ignore[type-arg]
    user, start, steps, with_start, with_stop, rerun = s
    sid = f"{n:08x}"
    t = BASE + dt.timedelta(seconds=start)
    out = [acct("Start", sid, user, t)] if with_start else []
    records, elapsed = run_records(sid, user, t, steps, with_stop)
    out += records
    if rerun:  # the reboot a minute after the last record; the same id 40 s after it
        out.append(acct("Accounting-On", "", "", t + dt.timedelta(seconds=elapsed + 60)))
        again = t + dt.timedelta(seconds=elapsed + 100)
        out.append(acct("Start", sid, user, again))
        out += run_records(sid, user, again, rerun, False)[0]
    return out


STREAM = st.lists(SESSION, min_size=1, max_size=5).flatmap(lambda sessions: st.tuples(
    st.just(sessions),
    st.permutations(range(sum(len(session_records(i, s)) for i, s in enumerate(sessions)))),
    st.lists(st.integers(0, 60), max_size=8),  # records delivered twice (by position)
    st.lists(st.integers(1, 9), min_size=1, max_size=10),  # batch sizes
))


def recompute(records: list[dict[str, str]], tz: ZoneInfo
              ) -> dict[tuple[str, dt.date], tuple[int, int, int]]:
    """Usage per user and day from the raw records alone: per run of a session (the
    records that imply the same start), the highest counters of each day; a day's usage is
    how far the run's running maximum rose."""
    marks: dict[tuple[str, str, int], dict[dt.date, rules.Counters]] = {}
    for r in records:
        if r["Acct-Status-Type"] not in ("Start", "Interim-Update", "Stop"):
            continue
        day = dt.datetime.fromtimestamp(int(r["Timestamp"]), dt.UTC).astimezone(tz).date()
        up = int(r["Acct-Input-Gigawords"]) << 32 | int(r["Acct-Input-Octets"])
        down = int(r["Acct-Output-Gigawords"]) << 32 | int(r["Acct-Output-Octets"])
        began = int(r["Timestamp"]) - int(r["Acct-Session-Time"])
        per = marks.setdefault((r["User-Name"], r["Acct-Session-Id"], began), {})
        per[day] = rules.higher(per.get(day, rules.ZERO), (up, down, int(r["Acct-Session-Time"])))
    out: dict[tuple[str, dt.date], list[int]] = {}
    for (user, _, _), per in marks.items():
        for day, (up, down, secs) in rules.contributions(per).items():
            row = out.setdefault((user, day), [0, 0, 0])
            row[0] += down
            row[1] += up
            row[2] += secs
    return {k: (v[0], v[1], v[2]) for k, v in out.items() if any(v)}


@settings(max_examples=25 if BACKEND == "sqlite" else 8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(STREAM)
def test_incremental_usage_equals_a_recomputation_from_the_raw_records(
        engine: Engine, box: SecretBox, stream: tuple) -> None:  # type: ignore[type-arg]
    sessions, order, dups, sizes = stream
    wipe(engine)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        make_plan(s, data_cap="1000T", fup_rate="1M/1M")
        ids = {u: make_subscriber(s, box, username=u, password="pw-12345",
                                  activated_on=dt.date(2026, 11, 1)).id for u in USERS}
    records = [r for i, sess in enumerate(sessions) for r in session_records(i, sess)]
    delivered = [records[i] for i in order]
    for pos in dups:
        if pos < len(delivered):
            delivered.insert(min(len(delivered), pos + 3), delivered[pos])
    i = k = 0
    while i < len(delivered):
        batch = delivered[i : i + sizes[k % len(sizes)]]
        with factory() as s, s.begin():
            assert apply_accounting(s, batch) == {}
        i += len(batch)
        k += 1

    expected = recompute(delivered, DHAKA)
    with factory() as s:
        got = {(u, r.day): (r.download, r.upload, r.seconds)
               for u, sid in ids.items()
               for r in s.scalars(select(UsageDay).where(UsageDay.subscriber_id == sid)
                                  .order_by(UsageDay.day))
               if (r.download, r.upload, r.seconds) != (0, 0, 0)}
        assert got == expected
        for user, sid in ids.items():
            state = s.get(UsageState, sid)
            in_period = [v for (u, day), v in expected.items()
                         if u == user and dt.date(2026, 11, 1) <= day < dt.date(2026, 12, 1)]
            total = (sum(v[0] for v in in_period), sum(v[1] for v in in_period),
                     sum(v[2] for v in in_period))
            if state is None:
                assert total == (0, 0, 0) or not any(u == user for u, _ in expected)
            else:
                assert (state.period_start, state.download, state.upload, state.seconds) == (
                    dt.date(2026, 11, 1), *total)
