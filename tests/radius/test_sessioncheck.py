"""The check a Simultaneous-Use reject asks for: the router's own active list closes the
sessions it no longer has (RouterOS API of the NAS simulator), at most once per NAS a while."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from radbill.db import session_factory, utcnow
from radius.accounting import GONE
from radius.models import RadiusSession
from radius.sessioncheck import SessionCheck
from tests.coa.conftest import sim  # noqa: F401 - the simulated NAS fixture
from tests.coa.test_worker import online, seed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def closed(db, name: str):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s:
        return [(r.terminate_cause, r.stopped_at is not None)
                for r in s.scalars(select(RadiusSession).where(RadiusSession.username == name))]


def test_a_reject_closes_what_the_router_lost_and_nothing_it_still_has(
        db, box, sim) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seed(db, box, sim, "ann", "ben", api=True)
    lost = online(db, sim, "ann")
    online(db, sim, "ben")
    sim.sessions.pop(lost.session_id)  # power cut for ann's line only
    clock = Clock()
    check = SessionCheck(session_factory(db), box, clock=clock)
    postauth = check.watch(lambda _s, _r: {})
    postauth(None, [{"Radbill-User-Name": "ANN", "Radbill-Reason": "simultaneous-use",  # type: ignore[arg-type]
                     "Radbill-Decision": "reject"},
                    {"Radbill-User-Name": "ben", "Radbill-Reason": "bad-password",
                     "Radbill-Decision": "reject"}])
    assert check.check_once() == 1
    assert closed(db, "ann") == [(GONE, True)]
    assert closed(db, "ben") == [(None, False)]
    # asked again at once: the NAS is not read again before min_interval, the ask is kept
    sim.sessions.clear()
    check.request(["ben"])
    assert check.check_once() == 0 and check.checks == 1
    clock.now += check.min_interval
    assert check.check_once() == 1
    assert closed(db, "ben") == [(GONE, True)]


def test_a_session_younger_than_the_read_is_spared_and_looked_at_again(
        db, box, sim) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seed(db, box, sim, "cat", api=True)
    young = online(db, sim, "cat", at=utcnow() + dt.timedelta(seconds=1))
    sim.sessions.pop(young.session_id)
    clock = Clock()
    check = SessionCheck(session_factory(db), box, clock=clock)
    check.request(["cat"])
    assert check.check_once() == 0  # started within the skew of the read: not judged yet
    assert closed(db, "cat") == [(None, False)]
    assert check._pending == {"cat"}
