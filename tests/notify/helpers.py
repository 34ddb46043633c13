"""A small world for the delivery tests: an ISP on a simulated clock, channels pointed at
the simulators, a worker on a frozen clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select

from notify.config import save
from notify.models import Delivery
from notify.worker import NotifyWorker, WorkerConfig
from radbill.db import session_factory
from tests.billing.sim import Sim

D = dt.date


class Clock:
    """A frozen clock the test moves."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def dhaka(self, day: dt.date, hour: int, minute: int = 0) -> None:
        """Set to a wall-clock time in Dhaka (UTC+6)."""
        self.at = dt.datetime(day.year, day.month, day.day, hour, minute,
                              tzinfo=dt.UTC) - dt.timedelta(hours=6)

    def advance(self, **kw: float) -> None:
        self.at += dt.timedelta(**kw)


START = D(2026, 11, 1)


def world(db: Any, box: Any, start: dt.date = START) -> Sim:
    sim = Sim(db, box, start)
    sim.isp(postpaid_due_days=7, name="Dhaka Net", phone="09610000000",
            payment_link_base="https://isp.example")
    from decimal import Decimal

    sim.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=3, late_fee="50")
    return sim


def sms_channel(sim: Sim, ssl: Any, **settings: Any) -> None:
    with sim.factory() as s, s.begin():
        save(s, sim.box, "sms", "sslwireless",
             {"base_url": ssl.url, "sid": ssl.sid, "price_per_segment": "0.35",
              "currency": "BDT", **settings}, {"api_token": ssl.api_token})


def email_channel(sim: Sim, smtp: Any, **settings: Any) -> None:
    with sim.factory() as s, s.begin():
        save(s, sim.box, "email", "smtp",
             {"host": smtp.host, "port": smtp.port, "security": "none", "user": smtp.user,
              "sender": "billing@isp.example", **settings}, {"password": smtp.password})


def worker(sim: Sim, clock: Clock, **config: Any) -> NotifyWorker:
    return NotifyWorker(sim.factory, sim.box, WorkerConfig(alerts_every=0, **config),
                        clock=clock)


def tick(w: NotifyWorker) -> dict[str, int]:
    async def go() -> dict[str, int]:
        try:
            return await w.tick()
        finally:
            await w.close()

    return asyncio.run(go())


def deliveries(sim: Sim, **where: Any) -> list[Delivery]:
    with sim.factory() as s:
        stmt = select(Delivery).order_by(Delivery.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Delivery, k) == v)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


__all__ = [
    "Clock",
    "D",
    "deliveries",
    "email_channel",
    "session_factory",
    "sms_channel",
    "tick",
    "worker",
    "world",
]
