"""Messages in the admin app: the Messages page and the dead-letter queue, retry, the
subscriber page's list, channel settings (secrets never shown back), templates with a
preview (one that does not render is not saved), and the same through /api/v1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from notify.config import save
from notify.models import Channel, Delivery, Template
from radbill.db import utcnow
from tests.admin.conftest import csrf
from tests.factories import make_plan, make_subscriber


def seed(factory: Any, box: Any) -> int:
    now = utcnow()
    with factory() as s, s.begin():
        make_plan(s)
        sub = make_subscriber(s, box, "mia", full_name="Mia", phone="01711000001")
        for i, (status, dead) in enumerate([("sent", False), ("failed", True)]):
            s.add(Delivery(subscriber_id=sub.id, kind="reminder", channel="sms",
                           recipient="8801711000001", idempotency_key=f"k{i}",
                           provider_id=f"rbtest{i}", status=status, dead_letter=dead,
                           reason="gave up after 8 attempts" if dead else None,
                           body=f"text number {i}", segments=1, cost=Decimal("0.35"),
                           currency="BDT", attempts=8 if dead else 1, created_at=now,
                           next_attempt_at=now, expires_at=now + dt.timedelta(days=3)))
        s.flush()
        failed = s.scalars(select(Delivery).where(Delivery.status == "failed")).one()
        return failed.id


def test_messages_page_dead_letter_and_retry(client_for: Any, factory: Any, box: Any) -> None:
    failed = seed(factory, box)
    noc = client_for("noc")
    page = noc.get("/messages/?dead=1").get_data(as_text=True)
    assert "text number 1" in page and "text number 0" not in page
    assert "Retry</button>" not in page  # the NOC reads, does not act
    assert noc.post(f"/messages/{failed}/retry", data={"csrf_token": csrf(noc)}
                    ).status_code == 403
    billing = client_for("billing")
    resp = billing.post(f"/messages/{failed}/retry?dead=1",
                        data={"csrf_token": csrf(billing)})
    assert resp.status_code == 302
    with factory() as s:
        d = s.get(Delivery, failed)
        assert d is not None and (d.status, d.dead_letter, d.attempts) == ("queued", False, 0)
    # the subscriber page lists what was sent to them
    page = billing.get("/subscribers/mia").get_data(as_text=True)
    assert "text number 0" in page and "0.35 BDT" in page


def test_channel_secrets_are_write_only(client_for: Any, factory: Any, box: Any,
                                        settings: Any) -> None:
    admin = client_for("admin")
    assert client_for("billing").get("/messages/channels").status_code == 403
    resp = admin.post("/messages/channels/telegram", data={
        "token": "123:SECRET-TOKEN", "noc_chat": "-1001", "finance_chat": "-1002",
        "csrf_token": csrf(admin)})
    assert resp.status_code == 302
    page = admin.get("/messages/channels").get_data(as_text=True)
    assert "SECRET-TOKEN" not in page and "token=********" in page
    # saving again without the secret keeps it
    admin.post("/messages/channels/telegram", data={
        "noc_chat": "-1005", "finance_chat": "-1002", "csrf_token": csrf(admin)})
    from radbill.crypto import secret_box

    with factory() as s:
        row = s.get(Channel, "telegram")
        assert row is not None and row.settings["noc_chat"] == "-1005"
        assert "SECRET-TOKEN" in secret_box(settings).decrypt(row.secrets_enc or "")
    # bad input: one error, nothing written
    resp = admin.post("/messages/channels/email", data={
        "host": "smtp.example", "port": "99999", "sender": "a@b", "csrf_token": csrf(admin)})
    assert resp.status_code == 422 and "out of range" in resp.get_data(as_text=True)
    with factory() as s:
        assert s.get(Channel, "email") is None


def test_template_preview_for_a_subscriber_and_no_saving_a_broken_one(
        client_for: Any, factory: Any, box: Any) -> None:
    seed(factory, box)
    admin = client_for("admin")
    resp = admin.post("/messages/templates", data={
        "kind": "reminder", "channel": "sms", "locale": "en", "username": "mia",
        "body": "Hi {{ name }}, pay {{ amount }}", "action": "preview",
        "csrf_token": csrf(admin)})
    page = resp.get_data(as_text=True)
    assert "Hi Mia, pay ৳1,050.00" in page and "UCS2, 1 SMS part" in page
    resp = admin.post("/messages/templates", data={
        "kind": "reminder", "channel": "sms", "locale": "en", "body": "Hi {{ nmae }}",
        "action": "save", "csrf_token": csrf(admin)})
    assert resp.status_code == 422 and "nmae" in resp.get_data(as_text=True)
    with factory() as s:
        assert s.scalars(select(Template)).all() == []
    resp = admin.post("/messages/templates", data={
        "kind": "reminder", "channel": "sms", "locale": "en", "body": "Pay {{ amount }}",
        "action": "save", "csrf_token": csrf(admin)})
    assert resp.status_code == 302
    with factory() as s:
        [t] = s.scalars(select(Template)).all()
        assert (t.kind, t.channel, t.locale, t.body) == ("reminder", "sms", "en",
                                                         "Pay {{ amount }}")


def test_api_messages_retry_and_status(app: Any, factory: Any, box: Any,
                                       token_for: Any) -> None:
    failed = seed(factory, box)
    client = app.test_client()
    rows = client.get("/api/v1/messages?dead_letter=true",
                      headers=token_for("noc")).get_json()
    assert [(r["id"], r["subscriber"], r["status"]) for r in rows] == [(failed, "mia",
                                                                         "failed")]
    assert client.post(f"/api/v1/messages/{failed}/retry",
                       headers=token_for("noc")).status_code == 403
    done = client.post(f"/api/v1/messages/{failed}/retry", headers=token_for("billing"))
    assert done.status_code == 200 and done.get_json()["status"] == "queued"
    again = client.post(f"/api/v1/messages/{failed}/retry", headers=token_for("billing"))
    assert again.status_code == 409
    status = client.get("/api/v1/notify/status", headers=token_for("noc")).get_json()
    assert status["deliveries"] == {"sms": {"queued": 1, "sent": 1}}
    assert status["cost"] == [{"currency": "BDT", "cost": "0.35"}]


def test_channel_saved_from_the_service_is_listed_masked(factory: Any, box: Any) -> None:
    from notify.config import listing

    with factory() as s, s.begin():
        save(s, box, "sms", "sslwireless", {"sid": "RADBILL"}, {"api_token": "tok-123"})
    with factory() as s:
        [row] = listing(s)
        assert row["secrets"] == {"api_token": "********"}
        assert "tok-123" not in str(row)


def test_api_queues_a_test_message(app: Any, factory: Any, box: Any, token_for: Any) -> None:
    with factory() as s, s.begin():
        save(s, box, "sms", "sslwireless", {"sid": "RADBILL"}, {"api_token": "tok"})
    client = app.test_client()
    assert client.post("/api/v1/notify/test", json={"channel": "sms", "to": "01711000001"},
                       headers=token_for("billing")).status_code == 403
    made = client.post("/api/v1/notify/test", json={"channel": "sms", "to": "01711000001"},
                       headers=token_for("admin"))
    assert made.status_code == 201
    assert (made.get_json()["status"], made.get_json()["recipient"]) == ("queued",
                                                                         "8801711000001")
    bad = client.post("/api/v1/notify/test", json={"channel": "sms", "to": "12345"},
                      headers=token_for("admin"))
    assert bad.status_code == 422 and "not a valid mobile" in bad.get_json()["message"]
    with factory() as s:
        assert len(s.scalars(select(Delivery)).all()) == 1
