"""Property: ingesting a spool with bad records mixed in leaves the database exactly as
ingesting only the good records would, and sets every bad record aside, whatever the batch
size. Checked with the validation in place (bad records refused before the database) and
with it switched off for counters (the database refuses them and the batch is halved)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from radbill.db import session_factory
from radius import accounting
from radius.accounting import Limits
from radius.ingest import Ingester
from radius.models import PostAuth, RadiusSession
from tests.conftest import wipe
from tests.radius.test_ingest import BASE, set_aside

G = 2**32
USERS = ["ann", "bob"]
STRICT_BAD = ["nul-user", "nul-sid", "overflow", "not-a-number", "bad-status", "long-sid",
              "bad-nas", "jump", "bad-timestamp", "postauth-bad-timestamp"]
LOOSE_BAD = ["overflow"]  # what only the database refuses once validation is off

EVENT = st.one_of(
    st.tuples(st.just("good"), st.integers(0, 4), st.integers(0, 2**31),
              st.integers(30, 900), st.sampled_from(["Interim-Update"] * 4 + ["Stop", "dup"])),
    st.tuples(st.just("on"), st.just(0), st.just(0), st.integers(1, 60), st.just("")),
    st.tuples(st.just("postauth"), st.integers(0, 4), st.just(0), st.integers(1, 60),
              st.sampled_from(["accept", "reject"])),
    st.tuples(st.just("bad"), st.integers(0, 4), st.just(0), st.integers(1, 60), st.text(
        alphabet="abcdefghij", min_size=1, max_size=1)),
)


def acct(status: str, sid: str, user: str, t: int, session_time: int, inp: int, out: int,
         extra: str = "", nas: str = "10.0.0.1", ts: str | None = None) -> str:
    return (f"Tue Nov 24 20:15:57 2026\n\tPacket-Src-IP-Address = {nas}\n"
            f'\tUser-Name = "{user}"\n\tAcct-Status-Type = {status}\n'
            f'\tAcct-Session-Id = "{sid}"\n'
            f"\tAcct-Input-Octets = {inp & 0xFFFFFFFF}\n\tAcct-Input-Gigawords = {inp >> 32}\n"
            f"\tAcct-Output-Octets = {out & 0xFFFFFFFF}\n"
            f"\tAcct-Output-Gigawords = {out >> 32}\n"
            f"\tAcct-Session-Time = {session_time}\n{extra}"
            f"\tTimestamp = {ts or BASE + t}\n\n")


def postauth(user: str, decision: str, t: int, ts: str | None = None) -> str:
    return (f'Tue Nov 24 20:15:55 2026\n\tRadbill-User-Name = "{user}"\n'
            f'\tRadbill-Decision = "{decision}"\n\tRadbill-Reason = "r-{decision}"\n'
            f"\tTimestamp = {ts or BASE + t}\n\n")


def bad_record(kind: str, sid: str, user: str, t: int, st: int, inp: int, out: int
               ) -> tuple[str, str]:
    """(stream, text) of one bad record of *kind* for session *sid* at time *t*."""
    if kind == "postauth-bad-timestamp":
        return "postauth", postauth(user, "reject", t, ts="99999999999")
    interim = acct("Interim-Update", sid, user, t, st, 0, 0)
    return "acct", {
        "nul-user": lambda: acct("Start", sid, "an\\000n", t, 0, 0, 0),
        "nul-sid": lambda: acct("Start", sid + "\\000x", user, t, 0, 0, 0),
        "overflow": lambda: acct("Interim-Update", sid, user, t, st, 2**63 + inp, 0),
        "not-a-number": lambda: interim.replace("Session-Time = ", "Session-Time = x"),
        "bad-status": lambda: interim.replace("Interim-Update", "Intrim"),
        "long-sid": lambda: acct("Start", "L" * 254, user, t, 0, 0, 0),
        "bad-nas": lambda: acct("Start", sid, user, t, 0, 0, 0, nas="nas-1"),
        # four pebibytes in a minute: no line carries that
        "jump": lambda: acct("Interim-Update", sid, user, t, st, inp + 2**52, out),
        "bad-timestamp": lambda: acct("Start", sid, user, t, 0, 0, 0, ts="soon"),
    }[kind]()


def build(events: list[tuple[Any, ...]], bad_kinds: list[str]
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(stream, text) records: all of them, and only the good ones."""
    state: dict[int, dict[str, Any]] = {
        i: {"t": 0, "st": 0, "in": 0, "out": 0, "last": "", "stopped": False} for i in range(5)}
    clock = 0
    everything: list[tuple[str, str]] = []
    good: list[tuple[str, str]] = []

    def add(stream: str, text: str, ok: bool) -> None:
        everything.append((stream, text))
        if ok:
            good.append((stream, text))

    for kind, i, grow, secs, what in events:
        clock += secs
        s = state[i]
        sid, user = f"s{i}", USERS[i % 2]
        if kind == "good":
            if what == "dup" and s["last"]:
                add("acct", s["last"], True)
                continue
            status = "Start" if not s["last"] else ("Stop" if what == "Stop" else
                                                     "Interim-Update")
            s["t"], s["st"] = clock, s["st"] + (secs if s["last"] else 0)
            s["in"] += grow
            s["out"] += grow // 3
            s["stopped"] = s["stopped"] or status == "Stop"
            s["last"] = acct(status, sid, user, clock, s["st"], s["in"], s["out"],
                             "\tAcct-Terminate-Cause = User-Request\n" if status == "Stop"
                             else "")
            add("acct", s["last"], True)
        elif kind == "on":
            add("acct", f"Tue Nov 24 20:15:57 2026\n\tPacket-Src-IP-Address = 10.0.0.1\n"
                f"\tAcct-Status-Type = Accounting-On\n\tTimestamp = {BASE + clock}\n\n", True)
        elif kind == "postauth":
            add("postauth", postauth(f"{user}{i}", what, clock), True)
        else:
            bad = bad_kinds[ord(what) % len(bad_kinds)]
            if bad == "jump" and (not s["last"] or s["stopped"]):
                # a session its NAS stopped takes nothing more: the record changes nothing,
                # so there is nothing to set aside
                bad = "nul-user"
            stream, text = bad_record(bad, sid, user, clock, s["st"] + 60, s["in"], s["out"])
            add(stream, text, False)
    return everything, good


def ingest(db: Engine, records: list[tuple[str, str]], batch: int, limits: Limits) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp)
        for stream in ("acct", "postauth"):
            (spool / stream).mkdir()
            (spool / stream / "detail-20261124-20").write_text(
                "".join(text for s, text in records if s == stream))
        ing = Ingester(session_factory(db), spool, batch_size=batch, limits=limits)
        ing.run_once()
        return ing.rejected


def snapshot(db: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with session_factory(db)() as s:
        sessions = [(r.nas_ip, r.acct_session_id, r.username, r.started_at, r.updated_at,
                     r.stopped_at, r.session_time, r.input_octets, r.output_octets,
                     r.terminate_cause, r.state_seq > 0)
                    for r in s.scalars(select(RadiusSession).order_by(
                        RadiusSession.acct_session_id, RadiusSession.username))]
        log = [(r.at, r.username, r.decision, r.reason)
               for r in s.scalars(select(PostAuth).order_by(PostAuth.id))]
    return sessions, log


@pytest.mark.parametrize("mode", ["strict", "loose"])
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=1, max_size=60),
       batch=st.sampled_from([1, 3, 7, 2000]))
def test_bad_records_mixed_in_change_nothing_but_themselves(
        db: Engine, monkeypatch: pytest.MonkeyPatch, mode: str, events: list[tuple[Any, ...]],
        batch: int) -> None:
    if mode == "loose":
        monkeypatch.setattr(accounting, "MAX_I64", 2**64)
        limits, kinds = Limits(max_bits_per_second=2**80), LOOSE_BAD
    else:
        limits, kinds = Limits(), STRICT_BAD
    everything, good = build(events, kinds)
    wipe(db)
    assert ingest(db, good, batch, limits) == 0
    expected = snapshot(db)
    wipe(db)
    rejected = ingest(db, everything, batch, limits)
    assert snapshot(db) == expected
    assert rejected == len(set_aside(db))
    if mode == "strict":
        assert rejected == len(everything) - len(good)
    else:
        # an overflowing record for a session its NAS already stopped changes nothing, so
        # the database never sees it; every other one is refused by it and isolated
        assert rejected <= len(everything) - len(good)
