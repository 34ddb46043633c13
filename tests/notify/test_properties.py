"""Property: over any interleaving of events, payments, worker rounds, crashed workers, lost
answers and the clock moving, no subscriber gets a message twice and no reminder goes out
after the invoice it is about was paid."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.models import Invoice
from notify import delivery
from notify.channels.base import SmsMessage
from notify.channels.sslwireless import SslWirelessGateway
from notify.outbox import enqueue
from simulators.sms.sslwireless import SslWirelessSimulator
from tests.conftest import wipe
from tests.notify.helpers import Clock, D, deliveries, sms_channel, tick, worker, world

USERS = ("p0", "p1", "p2")

op = st.one_of(
    st.tuples(st.just("remind"), st.integers(0, 2)),
    st.tuples(st.just("pay"), st.integers(0, 2)),
    st.tuples(st.just("tick"), st.just(0)),
    st.tuples(st.just("crash"), st.just(0)),  # a worker claims, sends, dies before recording
    st.tuples(st.just("drop"), st.just(0)),  # the provider's next answer is lost
    st.tuples(st.just("advance"), st.integers(1, 30)),  # minutes
)


def _crash(sim: Any, ssl: SslWirelessSimulator, clock: Clock) -> None:
    with sim.factory() as s, s.begin():
        jobs = delivery.claim(s, "sms", clock(), 50, idempotent=True)

    async def send() -> None:
        gw = SslWirelessGateway(ssl.url, ssl.api_token, ssl.sid)
        try:
            await gw.send([SmsMessage(j.provider_id, j.recipient, j.body) for j in jobs])
        finally:
            await gw.close()

    if jobs:
        asyncio.run(send())


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=25))
def test_no_message_twice_and_none_for_a_paid_invoice(db, box, ops) -> None:  # type: ignore[no-untyped-def]
    wipe(db)
    ssl = SslWirelessSimulator()
    ssl.start()
    try:
        sim = world(db, box)
        for i, name in enumerate(USERS):
            sim.subscriber(name, "Home", phone=f"0171100003{i}")
        sim.today = D(2026, 12, 1)
        sim.run()
        sms_channel(sim, ssl, quiet_start="00:00", quiet_end="00:00")
        with sim.factory() as s:
            numbers = {inv.subscriber_id: inv.number for inv in s.scalars(select(Invoice))}
        ids = {name: sim.sub(name).id for name in USERS}
        clock = Clock(dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC))
        paid_at: dict[int, int] = {}  # subscriber -> messages accepted before the payment
        reminders: dict[str, int] = {}  # outbox key -> subscriber
        for n, (kind, arg) in enumerate(ops):
            if kind == "remind":
                sub = sim.sub(USERS[arg])
                key = f"reminder:test:{n}"
                with sim.factory() as s, s.begin():
                    enqueue(s, sub, "reminder", key, invoice=numbers[sub.id],
                            amount_due="1050.00", currency="BDT", due_on="2026-12-08")
                reminders[key] = sub.id
            elif kind == "pay" and ids[USERS[arg]] not in paid_at:
                paid_at[ids[USERS[arg]]] = len(ssl.accepted)
                sim.pay(USERS[arg], "1050")
            elif kind == "tick":
                tick(worker(sim, clock))
            elif kind == "crash":
                _crash(sim, ssl, clock)
            elif kind == "drop":
                ssl.drop_replies = 1
            elif kind == "advance":
                clock.advance(minutes=arg)
        for _ in range(4):  # drain: leases and back-offs run out
            clock.advance(hours=2)
            tick(worker(sim, clock))
        sent = [a.client_id for a in ssl.accepted]
        assert len(sent) == len(set(sent)), "a message went twice"
        rows = {d.provider_id: d for d in deliveries(sim, channel="sms")}
        for index, accepted in enumerate(ssl.accepted):
            d = rows[str(accepted.client_id)]
            if d.kind == "reminder" and d.subscriber_id in paid_at:
                assert index < paid_at[d.subscriber_id], "a reminder for a paid invoice"
        # and nothing is stuck: every delivery ended
        assert {d.status for d in rows.values()} <= {"sent", "skipped"}
    finally:
        ssl.stop()
