"""Operators hear of each alert kind once per change of state (raised, resolved), grouped
when several arrive together, on the NOC chat and by e-mail; the daily summary reaches the
finance chat once a day at its time."""

from __future__ import annotations

from sqlalchemy import update

from notify.config import save
from radbill.ops import Alert, raise_alert
from tests.notify.helpers import Clock, D, tick, worker, world


def _telegram(sim, chat, **settings) -> None:  # type: ignore[no-untyped-def]
    with sim.factory() as s, s.begin():
        save(s, sim.box, "telegram", "telegram",
             {"base_url": chat.url, "noc_chat": "-1001", "finance_chat": "-1002", **settings},
             {"token": chat.token})


def _alert(sim, kind: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with sim.factory() as s, s.begin():
        raise_alert(s, kind, message)


def test_alerts_once_per_state_change_grouped(db, box, telegram_sim, smtp_server) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    _telegram(sim, telegram_sim, summary_time="23:59")
    with sim.factory() as s, s.begin():
        save(s, box, "email", "smtp", {"host": smtp_server.host, "port": smtp_server.port,
                                       "security": "none", "user": smtp_server.user,
                                       "sender": "radbill@isp.example",
                                       "operator_email": "noc@isp.example"},
             {"password": smtp_server.password})
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 11, 1), 10)
    for i in range(3):
        _alert(sim, "enforcement_failed", f"NAS <core-{i}> did not answer")
    _alert(sim, "payment_held", "bKash paid 990 for 1000 & co")
    tick(worker(sim, clock))
    [first] = [a for a in telegram_sim.accepted if a.to == "-1001"]
    assert "2 alert(s) raised" in first.text
    assert "enforcement_failed: NAS &lt;core-2&gt; did not answer (+2 more)" in first.text
    assert "payment_held: bKash paid 990 for 1000 &amp; co" in first.text
    [mail] = smtp_server.inbox.messages
    assert mail["To"] == "noc@isp.example" and "2 alert(s) raised" in mail["Subject"]
    # the same kinds again: no news
    _alert(sim, "enforcement_failed", "NAS core-9 did not answer")
    tick(worker(sim, clock))
    assert len(telegram_sim.accepted) == 1
    # all resolved: one message; raised again later: one more
    with sim.factory() as s, s.begin():
        s.execute(update(Alert).values(resolved_at=clock.at, resolved_by="noc"))
    tick(worker(sim, clock))
    assert "enforcement_failed: resolved" in telegram_sim.accepted[-1].text
    assert "payment_held: resolved" in telegram_sim.accepted[-1].text
    _alert(sim, "payment_held", "again")
    tick(worker(sim, clock))
    assert len(telegram_sim.accepted) == 3 and "payment_held: again" in \
        telegram_sim.accepted[-1].text


def test_daily_summary_once_at_its_time(db, box, telegram_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("amy", "Home", phone="01711000001")
    _telegram(sim, telegram_sim, summary_time="20:00")
    sim.days_until(D(2026, 12, 1))
    from billing import payments

    with sim.factory() as s, s.begin():  # received on 1 Dec (entered the day after)
        payments.record_payment(s, "amy", "1050", method="cash", reference="R-1",
                                on=D(2026, 12, 1), today=D(2026, 12, 2), actor="cashier")
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 1), 19, 59)
    tick(worker(sim, clock))
    assert [a for a in telegram_sim.accepted if a.to == "-1002"] == []
    clock.dhaka(D(2026, 12, 1), 20, 0)
    tick(worker(sim, clock))
    tick(worker(sim, clock))
    [summary] = [a for a in telegram_sim.accepted if a.to == "-1002"]
    assert "radbill daily summary 2026-12-01" in summary.text
    assert "Collected 2026-12-01: cash 1050.00 BDT" in summary.text
    assert "Invoiced: 1050.00 BDT" in summary.text
    assert "Renewals in the next 7 days:" in summary.text and "Overdue: nothing" in summary.text
