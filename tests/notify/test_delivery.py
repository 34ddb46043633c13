"""Delivery through the real stack: billing runs write the outbox, the worker sends through
the provider simulators and a real SMTP server, on a frozen clock."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

from sqlalchemy import select

from billing.archive import render_pending
from billing.models import Invoice
from notify.links import resolve
from notify.models import Channel, Preference
from radbill.ops import Alert
from tests.notify.helpers import (
    Clock,
    D,
    deliveries,
    email_channel,
    sms_channel,
    tick,
    worker,
    world,
)


def test_reminder_reaches_the_sms_provider_in_bengali_with_amount_and_short_link(
        db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("alice", "Home", phone="01711000001", full_name="Alice")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 5))  # invoice on 1 Dec, reminder on 5 Dec
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 5), 10)
    counts = tick(worker(sim, clock))
    assert counts["sms_sent"] == 2
    texts = [a.text for a in ssl_sim.accepted]
    reminder = texts[1]
    assert reminder.startswith("Dhaka Net: alice এর ৳1,050.00 08-12-2026 এর মধ্যে পরিশোধ করুন:")
    assert all(a.to == "8801711000001" and a.encoding == "ucs2" for a in ssl_sim.accepted)
    link = re.search(r"https://isp\.example/p/(\S+)$", reminder)
    assert link is not None
    with sim.factory() as s:
        target = resolve(s, link.group(1))
        inv = s.scalars(select(Invoice)).first()
        assert inv is not None and target == inv.payment_link
    # the web app redirects the short link to the invoice's payment page
    from admin import create_app

    app = create_app(db_settings(sim), engine=db, config={"TESTING": True,
                                                           "RADBILL_GATEWAYS": {}})
    answer = app.test_client().get(f"/p/{link.group(1)}")
    assert answer.status_code == 302 and answer.headers["Location"] == target
    assert app.test_client().get("/p/nonexistent").status_code == 404
    # segments and cost recorded
    [_, rem] = deliveries(sim, channel="sms")
    assert (rem.kind, rem.status, rem.encoding) == ("reminder", "sent", "ucs2")
    assert rem.segments == 2 and rem.cost == Decimal("0.70") and rem.currency == "BDT"
    # running again sends nothing more
    assert tick(worker(sim, clock)).get("sms_sent") is None
    assert len(ssl_sim.accepted) == 2


def db_settings(sim):  # type: ignore[no-untyped-def]
    from radbill.config import Settings

    return Settings.from_env({"RADBILL_DATABASE_URL": "sqlite:///unused.db"})


def test_issued_invoice_arrives_by_email_with_its_archived_pdf(
        db, box, smtp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("bob", "Home", email="bob@example.net", full_name="Bob")
    email_channel(sim, smtp_server)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 1), 23)  # e-mail is never held for quiet hours
    # the PDF is not archived yet: the e-mail waits for it
    counts = tick(worker(sim, clock))
    assert counts.get("email_retrying") == 1 and smtp_server.inbox.messages == []
    assert render_pending(sim.factory, tmp_path) == 1
    clock.advance(hours=1)
    counts = tick(worker(sim, clock))
    assert counts.get("email_sent") == 1
    [msg] = smtp_server.inbox.messages
    assert msg["To"] == "bob@example.net" and "INV-000001" in msg["Subject"]
    assert "৳1,050.00" in msg.get_body(("plain",)).get_content()
    assert msg.get_body(("html",)) is not None
    [pdf] = list(msg.iter_attachments())
    with sim.factory() as s:
        inv = s.scalars(select(Invoice)).one()
        assert hashlib.sha256(pdf.get_content()).hexdigest() == inv.pdf_sha256
    assert smtp_server.inbox.envelopes == [("billing@isp.example", ["bob@example.net"])]


def test_payment_produces_one_payment_received_sms_at_night_too(
        db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("cat", "Home", phone="+8801811000002")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 1), 22)  # quiet hours: the invoice SMS waits, the receipt not
    sim.pay("cat", "1050")
    tick(worker(sim, clock))
    tick(worker(sim, clock))
    assert [a.text.split(":")[1].strip()[:20] for a in ssl_sim.accepted] == [
        "cat এর ৳1,050.00 পেয়েছি।"[:20]]
    held = deliveries(sim, kind="invoice_issued")
    assert held[0].status == "queued" and held[0].reason == "quiet hours"


def test_stale_reminder_and_suspension_notice_are_skipped(
        db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("dan", "Home", phone="01711000003")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 12))  # reminder, due, late fee, final, suspended: all queued
    sim.pay("dan", "1100")  # paid and reconnected before the worker ran
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 13), 9)
    tick(worker(sim, clock))
    by_kind = {d.kind: d for d in deliveries(sim, channel="sms")}
    for kind in ("reminder", "due_notice", "final_reminder", "suspended"):
        assert by_kind[kind].status == "skipped", kind
        assert by_kind[kind].reason.startswith("stale:")
    assert by_kind["reconnected"].status == "sent"
    assert by_kind["payment_received"].status == "sent"
    assert {a.text.split(":")[0] for a in ssl_sim.accepted} == {"Dhaka Net"}
    assert not any("পরিশোধ করুন" in a.text for a in ssl_sim.accepted)


def test_quiet_hours_hold_dunning_sms_until_morning(db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("eve", "Home", phone="01711000004")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 1), 21, 30)
    tick(worker(sim, clock))
    assert ssl_sim.accepted == []
    clock.dhaka(D(2026, 12, 2), 7, 59)
    tick(worker(sim, clock))
    assert ssl_sim.accepted == []
    clock.dhaka(D(2026, 12, 2), 8, 0)
    tick(worker(sim, clock))
    assert len(ssl_sim.accepted) == 1


def test_opt_out_per_channel(db, box, ssl_sim, smtp_server) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("fay", "Home", phone="01711000005", email="fay@example.net")
    sms_channel(sim, ssl_sim)
    email_channel(sim, smtp_server)
    with sim.factory() as s, s.begin():
        s.add(Preference(subscriber_id=sim.sub("fay").id, locale="en", sms_opt_out=True,
                         email_opt_out=False))
    sim.days_until(D(2026, 12, 1))
    sim.pay("fay", "1050")
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    tick(worker(sim, clock))
    sms = deliveries(sim, channel="sms")
    assert {d.status for d in sms} == {"skipped"}
    assert sms[0].reason == "subscriber opted out of sms"
    assert ssl_sim.accepted == []
    assert [m["Subject"] for m in smtp_server.inbox.messages] == [
        "Payment received: ৳1,050.00"]  # English, her locale; invoice paid: not stale


def test_out_of_balance_pauses_the_channel_with_one_alert(db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    for i in range(3):
        sim.subscriber(f"g{i}", "Home", phone=f"0171100001{i}")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    ssl_sim.balance = 0
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    tick(worker(sim, clock))
    tick(worker(sim, clock))
    assert ssl_sim.accepted == []
    with sim.factory() as s:
        channel = s.get(Channel, "sms")
        assert channel is not None and channel.paused_at is not None
        assert "balance" in (channel.pause_reason or "").lower()
        alerts = s.scalars(select(Alert).where(Alert.kind == "notify_channel_paused")).all()
        assert len(alerts) == 1
    # nothing failed: the messages wait for the channel
    assert {d.status for d in deliveries(sim, channel="sms")} == {"queued"}
    assert {d.attempts for d in deliveries(sim, channel="sms")} == {0}
    # topped up and resumed: all of them go, once
    ssl_sim.balance = 100
    from notify.config import resume

    with sim.factory() as s, s.begin():
        resume(s, "sms")
    tick(worker(sim, clock))
    assert len(ssl_sim.accepted) == 3
    assert {d.status for d in deliveries(sim, channel="sms")} == {"sent"}


def test_lost_answer_is_resent_with_the_same_csms_id_and_counted_once(
        db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("hal", "Home", phone="01711000006")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    ssl_sim.drop_replies = 1
    tick(worker(sim, clock))
    [d] = deliveries(sim, channel="sms")
    assert d.status == "retrying" and len(ssl_sim.accepted) == 1
    clock.advance(minutes=5)
    tick(worker(sim, clock))
    [d] = deliveries(sim, channel="sms")
    assert d.status == "sent" and d.reason == "already sent (duplicate csms_id)"
    assert len(ssl_sim.accepted) == 1 and ssl_sim.duplicates == 1


def test_lost_answer_from_a_provider_without_ids_is_never_resent(
        db, box, bulk_sim) -> None:  # type: ignore[no-untyped-def]
    from notify.config import save

    sim = world(db, box)
    sim.subscriber("ida", "Home", phone="01711000007")
    with sim.factory() as s, s.begin():
        save(s, box, "sms", "bulksmsbd", {"base_url": bulk_sim.url,
                                          "sender_id": bulk_sim.sender_id},
             {"api_key": bulk_sim.api_key})
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    bulk_sim.drop_replies = 1
    tick(worker(sim, clock))
    clock.advance(hours=2)
    tick(worker(sim, clock))
    [d] = deliveries(sim, channel="sms")
    assert d.status == "failed" and d.dead_letter
    assert d.reason.startswith("outcome unknown")
    assert len(bulk_sim.accepted) == 1


def test_transient_errors_back_off_then_dead_letter(db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("jon", "Home", phone="01711000008")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    ssl_sim.rps = 0  # every request answered 4029 (rate limit)
    waits = []
    for _ in range(3):
        tick(worker(sim, clock, max_attempts=3))
        [d] = deliveries(sim, channel="sms")
        if d.status == "retrying":
            waits.append((d.next_attempt_at - clock.at).total_seconds())
            clock.at = d.next_attempt_at
    [d] = deliveries(sim, channel="sms")
    assert d.status == "failed" and d.dead_letter and d.attempts == 3
    assert len(waits) == 2 and 15 <= waits[0] <= 30 and 30 <= waits[1] <= 60
    assert ssl_sim.accepted == []


def test_the_gateways_token_bucket_spaces_the_messages(db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    for i in range(4):
        sim.subscriber(f"r{i}", "Home", phone=f"0171100005{i}")
    sms_channel(sim, ssl_sim, rate=4, burst=2)  # 2 at once, then one every 0.25 s
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    tick(worker(sim, clock))
    times = sorted(a.at for a in ssl_sim.accepted)
    assert len(times) == 4
    assert times[2] - times[0] >= 0.2 and times[3] - times[0] >= 0.45


def test_an_invalid_number_fails_with_the_reason_and_the_rest_go(db, box, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim = world(db, box)
    sim.subscriber("bad", "Home", phone="12345")
    sim.subscriber("good", "Home", phone="01711000060")
    sms_channel(sim, ssl_sim)
    sim.days_until(D(2026, 12, 1))
    clock = Clock(sim.today)  # type: ignore[arg-type]
    clock.dhaka(D(2026, 12, 2), 10)
    tick(worker(sim, clock))
    by_to = {d.recipient: d for d in deliveries(sim, channel="sms")}
    assert by_to["12345"].status == "failed"
    assert by_to["12345"].reason.startswith("invalid number: '12345' is not a valid mobile")
    assert by_to["8801711000060"].status == "sent"
    assert [a.to for a in ssl_sim.accepted] == ["8801711000060"]
