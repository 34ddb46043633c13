"""Every gateway end to end, over real sockets: the payment link page, the checkout at the
simulated gateway, its notification or callback into the real web app, the ledger, the
reconnection; and everything a hostile or broken world sends: duplicates, replays with
another amount, bad signatures, unknown payments, mismatches, late and concurrent deliveries,
lost notifications (polling) and a gateway whose confirmations fail."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

from admin import create_app
from billing.models import EnforcementRequest, Invoice, Payment, Subscriber
from billing.payments import record_payment
from billing.run import run_days
from payments import intents
from payments.config import adapter
from payments.gateways.base import GatewayConfig, PaymentGateway, PaymentOrder
from payments.models import PaymentIntent
from payments.polling import poll
from radbill.audit import AuditLog
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radbill.ops import Alert
from simulators.gateways.base import Delivery, GatewaySimulator
from tests.factories import make_plan, make_subscriber
from tests.pgserver import free_tcp_port

SIMULATORS = {
    "bkash": "simulators.gateways.bkash:BkashSimulator",
    "nagad": "simulators.gateways.nagad:NagadSimulator",
    "sslcommerz": "simulators.gateways.sslcommerz:SslcommerzSimulator",
    "razorpay": "simulators.gateways.razorpay:RazorpaySimulator",
}
CURRENCY = {"razorpay": "INR"}  # the others bill in taka


def load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class Shop:
    """The web app serving one gateway, that gateway's simulator, and the billed subscriber."""

    name: str
    sim: GatewaySimulator
    gateway: PaymentGateway
    base: str
    engine: Engine
    settings: Settings
    number: str  # alice's invoice
    key: str  # its payment link's key

    def intent(self) -> PaymentIntent:
        with session_factory(self.engine)() as s:
            row = s.scalars(select(PaymentIntent).order_by(PaymentIntent.id.desc())).first()
            assert row is not None
            s.expunge(row)
            return row

    def checkout(self) -> PaymentIntent:
        """The subscriber opens the payment link and picks this gateway."""
        with httpx.Client(base_url=self.base, timeout=10) as client:
            page = client.get(f"/pay/{self.key}")
            assert page.status_code == 200 and "1000.00" in page.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            started = client.post(f"/pay/{self.key}/start",
                                  data={"gateway": self.name, "csrf_token": token.group(1)})
        assert started.status_code == 303, started.text
        assert started.headers["location"].startswith(self.sim.url.split("/", 3)[0] + "//"
                                                      + urlsplit(self.sim.url).netloc)
        intent = self.intent()
        assert intent.status == "pending" and intent.gateway_reference
        return intent

    def pay(self, **kw: Any) -> Delivery:
        return self.sim.pay(self.intent().gateway_reference or "", **kw)


def send(d: Delivery) -> httpx.Response:
    """Deliver (again) what the gateway sent, byte for byte."""
    return httpx.request(d.method, d.url, headers={k: v for k, v in d.headers.items()
                                                   if k.lower() not in ("host",
                                                                        "content-length")},
                         content=d.body or None, timeout=10)


def posted(engine: Engine) -> list[tuple[str, str, Decimal]]:
    with session_factory(engine)() as s:
        return [(p.method, p.reference, p.amount) for p in s.scalars(select(Payment))]


def status(engine: Engine) -> str:
    with session_factory(engine)() as s:
        return str(s.scalars(select(Subscriber.status).where(Subscriber.username == "alice"))
                   .one())


def alerts(engine: Engine) -> list[str]:
    with session_factory(engine)() as s:
        return [a.kind for a in s.scalars(select(Alert))]


@pytest.fixture(params=sorted(SIMULATORS))
def shop(request: pytest.FixtureRequest, db: Engine, box: SecretBox, tmp_path: Path
         ) -> Iterator[Shop]:
    name = request.param
    sim: Any = load(SIMULATORS[name])().start()
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    if hasattr(sim, "webhook_url"):
        sim.webhook_url = f"{base}/webhooks/{name}"  # account-level setting at Razorpay
    gateway = adapter(GatewayConfig(name=name, base_url=sim.url, credentials=sim.credentials,
                                    timeout=5))
    settings = Settings(data_dir=tmp_path, database_url=db.url.render_as_string(False),
                        public_url=base)
    app = create_app(settings, engine=db, config={"RADBILL_GATEWAYS": {name: gateway},
                                                  "SESSION_COOKIE_SECURE": False})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s, currency=CURRENCY.get(name, "BDT"))
        make_subscriber(s, box, activated_on=dt.date(2026, 10, 1), full_name="Alice Rahman",
                        phone="+8801711000001")
    # 1000 invoiced 1 Nov, due 8 Nov; suspended 9 Nov
    run_days(factory, dt.date(2026, 11, 1), dt.date(2026, 11, 9))
    with factory() as s:
        number, key = s.execute(select(Invoice.number, Invoice.pay_token)).one()
    assert status(db) == "suspended"
    yield Shop(name, sim, gateway, base, db, settings, number, key)
    server.shutdown()
    sim.stop()


def test_pay_and_be_reconnected(shop: Shop) -> None:
    shop.checkout()
    delivery = shop.pay()
    assert delivery.status == 200, delivery
    currency = CURRENCY.get(shop.name, "BDT")
    [(method, reference, amount)] = posted(shop.engine)
    assert (method, amount) == (shop.name, Decimal("1000.00")) and reference
    assert status(shop.engine) == "active"
    intent = shop.intent()
    assert (intent.status, intent.transaction_id, intent.confirmed_currency) == (
        "paid", reference, currency)
    with session_factory(shop.engine)() as s:
        last = s.scalars(select(EnforcementRequest).order_by(EnforcementRequest.id.desc())
                         ).first()
        assert last is not None and last.action == "reconnect"
        assert s.scalars(select(Invoice.status)).one() == "paid"
    page = httpx.get(f"{shop.base}/pay/{shop.key}")
    assert "This invoice is paid" in page.text


def test_the_same_notification_ten_times_posts_once(shop: Shop) -> None:
    shop.checkout()
    delivery = shop.pay()
    for _ in range(10):
        assert send(delivery).status_code == 200
    assert len(posted(shop.engine)) == 1


def _tamper_amount(d: Delivery) -> Delivery:
    """The same notification with every amount-looking value changed (an attacker without
    the gateway's secret cannot re-sign it)."""
    def swap(text: str) -> str:
        return re.sub(r"1000(\.00?)?", "1", text)

    parts = urlsplit(d.url)
    query = urlencode([(k, swap(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return replace(d, url=urlunsplit(parts._replace(query=query)),
                   body=swap(d.body.decode()).encode() if d.body else d.body)


def test_a_replay_with_a_changed_amount_posts_nothing_wrong(shop: Shop) -> None:
    shop.checkout()
    genuine = shop.pay(deliver=False)
    answer = send(_tamper_amount(genuine))
    assert answer.status_code in (200, 400)
    # nothing is ever posted at the changed amount: either refused, or confirmed with the
    # gateway's own figures (callbacks that carry no amount)
    assert all(amount == Decimal("1000.00") for _, _, amount in posted(shop.engine))
    assert send(genuine).status_code == 200
    assert [amount for _, _, amount in posted(shop.engine)] == [Decimal("1000.00")]


FORGE = {
    # what a forger without the merchant's secrets can send
    "razorpay": lambda d: replace(d, headers={**d.headers, "X-Razorpay-Signature": "0" * 64}),
    "sslcommerz": lambda d: replace(d, body=re.sub(rb"verify_sign=[0-9a-f]+",
                                                   b"verify_sign=" + b"0" * 32, d.body)),
}
RETURN_ONLY = {  # gateways that only send the browser back, and a forged "success" for them
    "bkash": "paymentID=FORGED123&status=success",
    "nagad": "payment_ref_id=FORGED123&status=Success&order_id=X",
}


def test_a_forged_notification_posts_nothing(shop: Shop) -> None:
    intent = shop.checkout()
    if shop.name in RETURN_ONLY:
        # no signed notification exists: a forged return is answered from the gateway's own
        # records of our payment (unpaid here), whatever the forger put in the URL
        forged = Delivery("GET", f"{shop.base}/pay/return/{shop.name}/{intent.reference}?"
                          + RETURN_ONLY[shop.name])
        answer = send(forged)
        assert answer.status_code == 200 and "Thank you" not in answer.text
    else:
        answer = send(FORGE[shop.name](shop.pay(deliver=False)))
        assert answer.status_code == 400
        with session_factory(shop.engine)() as s:
            assert s.scalars(select(AuditLog).where(
                AuditLog.action == "payment.rejected")).first() is not None
    assert posted(shop.engine) == [] and status(shop.engine) == "suspended"


def test_a_browser_return_is_confirmed_with_the_gateway(shop: Shop) -> None:
    intent = shop.checkout()
    shop.pay(deliver=False)
    page = httpx.get(f"{shop.base}/pay/return/{shop.name}/{intent.reference}", timeout=10)
    assert page.status_code == 200 and "Thank you" in page.text
    assert len(posted(shop.engine)) == 1 and status(shop.engine) == "active"


def test_a_payment_for_an_unknown_invoice_posts_nothing(shop: Shop) -> None:
    order = PaymentOrder(
        reference="RB999NOTOURS", invoice_number="INV-999999", amount=Decimal("1000"),
        currency=CURRENCY.get(shop.name, "BDT"), customer_name="Mallory",
        customer_phone="+8801700000999", description="not ours",
        return_url=f"{shop.base}/pay/return/{shop.name}/RB999NOTOURS",
        notify_url=f"{shop.base}/webhooks/{shop.name}")
    checkout = shop.gateway.start(order)
    delivery = shop.sim.pay(checkout.gateway_reference)
    assert delivery.status == 200
    assert posted(shop.engine) == [] and "payment-unknown" in alerts(shop.engine)


def test_an_amount_mismatch_is_held_for_review(shop: Shop) -> None:
    shop.checkout()
    assert shop.pay(amount=Decimal("999")).status == 200
    assert posted(shop.engine) == [] and status(shop.engine) == "suspended"
    intent = shop.intent()
    assert intent.status == "held" and "999" in (intent.hold_reason or "")
    assert "payment-held" in alerts(shop.engine)


def test_a_late_notification_after_a_manual_payment_is_credit(shop: Shop) -> None:
    shop.checkout()
    with session_factory(shop.engine)() as s, s.begin():
        record_payment(s, "alice", "1000", method="cash", reference="CASH-1",
                       today=dt.date(2026, 11, 10), actor="op")
    assert status(shop.engine) == "active"
    assert shop.pay().status == 200
    assert sorted(m for m, _, _ in posted(shop.engine)) == sorted(["cash", shop.name])
    assert status(shop.engine) == "active"


def test_concurrent_duplicate_deliveries_post_exactly_once(shop: Shop) -> None:
    shop.checkout()
    delivery = shop.pay(deliver=False)
    codes: list[int] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        codes.append(send(delivery).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 8
    assert len(posted(shop.engine)) == 1 and status(shop.engine) == "active"


def test_a_lost_notification_is_found_by_polling(shop: Shop) -> None:
    shop.checkout()
    shop.pay(deliver=False)
    assert posted(shop.engine) == []
    counts = poll(session_factory(shop.engine), {shop.name: shop.gateway},
                  min_age=dt.timedelta(0))
    assert counts == {"posted": 1}
    assert len(posted(shop.engine)) == 1 and status(shop.engine) == "active"


def test_a_failing_gateway_holds_suspensions_until_it_confirms(shop: Shop) -> None:
    shop.checkout()
    shop.pay(deliver=False)  # paid, but the notification is lost...
    shop.sim.fail_queries = True  # ...and the gateway's query API is down
    factory = session_factory(shop.engine)
    counts = poll(factory, {shop.name: shop.gateway}, min_age=dt.timedelta(0))
    assert counts == {"errors": 1} and posted(shop.engine) == []
    assert "gateway-failing" in alerts(shop.engine)
    with factory() as s:
        sub = s.scalars(select(Subscriber)).one()
        assert shop.name in intents.holds(s, [sub.id], dt.datetime.now(dt.UTC))[sub.id]
    shop.sim.fail_queries = False
    counts = poll(factory, {shop.name: shop.gateway}, min_age=dt.timedelta(0),
                  every=dt.timedelta(0))
    assert counts == {"posted": 1} and status(shop.engine) == "active"
    with factory() as s:
        assert intents.holds(s, [sub.id], dt.datetime.now(dt.UTC)) == {}


def test_junk_in_a_return_or_a_path_is_a_clean_error(shop: Shop) -> None:
    bad = httpx.get(f"{shop.base}/pay/return/{shop.name}?payment_ref_id=abc%0Adef&status=x&"
                    "paymentID=a%0Ab", timeout=10)
    assert bad.status_code in (200, 400, 404)
    assert httpx.get(f"{shop.base}/pay/INV%00X", timeout=10).status_code == 404
    assert posted(shop.engine) == []


def test_a_currency_mismatch_is_held_for_review(shop: Shop) -> None:
    intent = shop.checkout()
    # the intent was priced in another currency than the gateway collected (a plan's
    # currency changed, a misconfigured account): what the gateway confirms must not match
    from sqlalchemy import update

    with session_factory(shop.engine)() as s, s.begin():
        s.execute(update(PaymentIntent).where(PaymentIntent.id == intent.id)
                  .values(currency="USD"))
    assert shop.pay().status == 200
    assert posted(shop.engine) == [] and status(shop.engine) == "suspended"
    held = shop.intent()
    assert held.status == "held"
    assert held.hold_reason == f"currency {CURRENCY.get(shop.name, 'BDT')} instead of USD"
    assert "payment-held" in alerts(shop.engine)


@pytest.mark.parametrize("shop", ["bkash"], indirect=True)
def test_a_bkash_payment_started_with_the_old_return_url_still_posts_on_return(
        shop: Shop) -> None:
    intent = shop.checkout()
    sim: Any = shop.sim
    payment = sim.payments[intent.gateway_reference]
    # started before the reference moved into the path: "...?ref=RB..", to which bKash
    # appends "?paymentID=..&status=success"
    payment.callback_url = f"{shop.base}/pay/return/bkash?ref={intent.reference}"
    delivery = shop.pay()
    assert f"?ref={intent.reference}?paymentID=" in delivery.url
    assert delivery.status == 200
    assert len(posted(shop.engine)) == 1 and status(shop.engine) == "active"


@pytest.mark.parametrize("shop", ["sslcommerz"], indirect=True)
def test_a_risky_sslcommerz_payment_is_held_for_review_with_an_alert(shop: Shop) -> None:
    sim: Any = shop.sim
    sim.risky = True
    shop.checkout()
    assert shop.pay().status == 200
    assert posted(shop.engine) == [] and status(shop.engine) == "suspended"
    intent = shop.intent()
    assert intent.status == "held" and "risky" in (intent.hold_reason or "")
    assert intent.transaction_id  # the money movement is named for the operator
    assert alerts(shop.engine) == ["payment-held"]
    # polling does not let it slip away either: held is final until an operator decides
    counts = poll(session_factory(shop.engine), {shop.name: shop.gateway},
                  min_age=dt.timedelta(0), max_age=dt.timedelta(0))
    assert counts == {} and shop.intent().status == "held"


def _expire(shop: Shop) -> dict[str, int]:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    return poll(session_factory(shop.engine), {shop.name: shop.gateway}, now=later)


@pytest.mark.parametrize("shop", ["bkash"], indirect=True)
def test_an_intent_expiring_after_an_unconfirmed_return_raises_an_alert(shop: Shop) -> None:
    intent = shop.checkout()
    # the payer's browser comes back saying "success", bKash never confirms it
    page = httpx.get(f"{shop.base}/pay/return/bkash/{intent.reference}?paymentID="
                     f"{intent.gateway_reference}&status=success", timeout=10)
    assert page.status_code == 200 and "Thank you" not in page.text
    assert shop.intent().declared_at is not None
    counts = _expire(shop)
    assert counts.get("expired") == 1 and shop.intent().status == "failed"
    assert alerts(shop.engine) == ["payment-expired-unconfirmed"]
    with session_factory(shop.engine)() as s:
        alert = s.scalars(select(Alert)).one()
        assert intent.reference in alert.message and "alice" in alert.message
        assert s.scalars(select(AuditLog).where(
            AuditLog.action == "payment.expired-unconfirmed")).one().entity_id == str(intent.id)


@pytest.mark.parametrize("shop", ["bkash"], indirect=True)
def test_a_return_while_the_gateway_is_down_also_counts_as_declared(shop: Shop) -> None:
    intent = shop.checkout()
    shop.sim.fail_queries = True  # payment/status answers 503
    page = httpx.get(f"{shop.base}/pay/return/bkash/{intent.reference}?paymentID="
                     f"{intent.gateway_reference}&status=success", timeout=10)
    assert page.status_code == 503
    assert shop.intent().declared_at is not None
    _expire(shop)
    assert "payment-expired-unconfirmed" in alerts(shop.engine)


@pytest.mark.parametrize("shop", ["bkash"], indirect=True)
def test_an_abandoned_intent_expires_quietly(shop: Shop) -> None:
    shop.checkout()  # the subscriber opened bKash's page and closed it: nothing came back
    assert shop.intent().declared_at is None
    assert _expire(shop).get("expired") == 1
    assert "payment-expired-unconfirmed" not in alerts(shop.engine)


@pytest.mark.parametrize("shop", ["bkash"], indirect=True)
def test_a_bkash_payment_whose_execute_answer_was_lost_is_posted_from_query_payment(
        shop: Shop) -> None:
    sim: Any = shop.sim
    sim.drop_execute_response = True  # bKash completes the payment, its answer never arrives
    shop.checkout()
    shop.pay(deliver=False)  # ...and the payer's browser never came back either
    counts = poll(session_factory(shop.engine), {shop.name: shop.gateway},
                  min_age=dt.timedelta(0))
    # polling executes (no answer), then Query Payment says Completed for merchantInvoice
    assert counts == {"posted": 1}
    assert len(posted(shop.engine)) == 1 and status(shop.engine) == "active"


def test_a_gateway_payment_sends_one_payment_received_sms(shop: Shop, box: SecretBox) -> None:
    import asyncio

    from notify.config import save
    from notify.models import Delivery as Message
    from notify.worker import NotifyWorker
    from simulators.sms.sslwireless import SslWirelessSimulator

    sms = SslWirelessSimulator()
    sms.start()
    try:
        factory = session_factory(shop.engine)
        with factory() as s, s.begin():  # no quiet hours: whatever time the test runs
            save(s, box, "sms", "sslwireless", {"base_url": sms.url, "sid": sms.sid,
                                                "quiet_start": "00:00", "quiet_end": "00:00"},
                 {"api_token": sms.api_token})
        shop.checkout()
        delivery = shop.pay()
        for _ in range(3):  # the gateway repeats its notification
            send(delivery)

        async def rounds() -> None:
            worker = NotifyWorker(factory, box)
            await worker.tick()
            await worker.tick()
            await worker.close()

        asyncio.run(rounds())
        with factory() as s:
            receipts = s.scalars(select(Message).where(Message.kind == "payment_received")
                                 ).all()
            assert [(m.status, m.recipient) for m in receipts] == [("sent", "8801711000001")]
            stale = {m.kind: m.status for m in s.scalars(select(Message).where(
                Message.kind.in_(("reminder", "suspended"))))}
        assert stale == {"reminder": "skipped", "suspended": "skipped"}
        texts = [a.text for a in sms.accepted if "পেয়েছি" in a.text]
        amount = "₹1,000.00" if shop.name == "razorpay" else "৳1,000.00"
        assert len(texts) == 1 and amount in texts[0]
    finally:
        sms.stop()
