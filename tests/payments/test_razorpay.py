"""RazorpayGateway against the Razorpay simulator, over real sockets: payment links, signed
webhooks, fetches, refunds and faults."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from urllib.request import urlopen

import pytest

from payments.gateways.base import (
    GatewayConfig,
    GatewayError,
    PaymentOrder,
    SignatureError,
    Status,
)
from payments.gateways.razorpay import RazorpayGateway, from_minor, to_minor
from simulators.gateways.razorpay import RazorpaySimulator
from tests.payments.conftest import Receiver


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[RazorpaySimulator]:
    simulator = RazorpaySimulator().start()
    simulator.webhook_url = f"{receiver.url}/webhooks/razorpay"
    yield simulator
    simulator.stop()


def make_gateway(sim: RazorpaySimulator, **credentials: str) -> RazorpayGateway:
    return RazorpayGateway(GatewayConfig(
        name="razorpay", base_url=sim.url, credentials={**sim.credentials, **credentials},
        timeout=5.0))


@pytest.fixture
def gateway(sim: RazorpaySimulator) -> Iterator[RazorpayGateway]:
    adapter = make_gateway(sim)
    yield adapter
    adapter.close()


def order(reference: str = "PI-000777", amount: str = "499.50",
          currency: str = "INR") -> PaymentOrder:
    return PaymentOrder(
        reference=reference, invoice_number="INV-2025-0099", amount=Decimal(amount),
        currency=currency, customer_name="Priya Nair", customer_phone="+919876543210",
        description="Fibre 100 Mbps, March", return_url="https://isp.example/pay/return",
        notify_url="https://isp.example/pay/notify")


def event_of(body: bytes) -> str:
    return str(json.loads(body)["event"])


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("499.50", "INR", 49950), ("0.01", "INR", 1), ("1000000.00", "INR", 100000000),
    ("1500", "JPY", 1500), ("12.345", "KWD", 12345),
])
def test_amounts_convert_to_and_from_minor_units_exactly(
        amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor
    assert from_minor(minor, currency) == Decimal(amount)
    assert str(from_minor(minor, currency)) == amount


@pytest.mark.parametrize(("amount", "currency"), [("499.505", "INR"), ("10.5", "JPY")])
def test_amounts_finer_than_the_minor_unit_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(GatewayError, match="finer"):
        to_minor(Decimal(amount), currency)


def test_from_minor_refuses_floats() -> None:
    with pytest.raises(GatewayError):
        from_minor(499.5, "INR")


def test_start_creates_a_payment_link_and_returns_its_page(
        sim: RazorpaySimulator, gateway: RazorpayGateway) -> None:
    checkout = gateway.start(order())

    link = sim.links[checkout.gateway_reference]
    assert checkout.gateway_reference.startswith("plink_")
    assert checkout.redirect_url == link["short_url"]
    with urlopen(checkout.redirect_url, timeout=5) as page:  # noqa: S310 - the simulator
        assert page.status == 200
    assert (link["amount"], link["currency"], link["reference_id"]) == (49950, "INR", "PI-000777")
    assert link["notes"]["radbill_reference"] == "PI-000777"
    assert link["callback_url"] == "https://isp.example/pay/return"


def test_a_paid_link_sends_webhooks_that_confirm_paid(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order())

    delivery = sim.pay(checkout.gateway_reference)

    assert [event_of(r.body) for r in receiver.received] == [
        "payment.captured", "order.paid", "payment_link.paid"]
    got = receiver.last()
    assert (got.body, delivery.status) == (delivery.body, 200)
    confirmation = gateway.confirm_notification(got.method, got.headers, got.query, got.body)
    payment_id = json.loads(got.body)["payload"]["payment"]["entity"]["id"]
    assert confirmation.status is Status.PAID
    assert confirmation.reference == "PI-000777"
    assert (confirmation.amount, confirmation.currency) == (Decimal("499.50"), "INR")
    assert confirmation.transaction_id == payment_id
    assert confirmation.gateway_reference == checkout.gateway_reference
    assert confirmation.event_id == got.headers["X-Razorpay-Event-Id"]
    assert ("GET", f"/v1/payments/{payment_id}") in sim.requests


def test_every_event_of_one_payment_confirms_the_same_transaction(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference)

    confirmations = [gateway.confirm_notification("POST", r.headers, r.query, r.body)
                     for r in receiver.received]

    assert {(c.status, c.reference, c.amount, c.transaction_id) for c in confirmations} == {
        (Status.PAID, "PI-000777", Decimal("499.50"), confirmations[0].transaction_id)}
    assert len({c.event_id for c in confirmations}) == 3


def test_the_amount_comes_from_the_payment_not_the_link(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference, amount=Decimal("1.00"))
    got = receiver.last()

    confirmation = gateway.confirm_notification("POST", got.headers, {}, got.body)

    assert confirmation.amount == Decimal("1.00")


def test_a_failed_payment_confirms_failed(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference, succeed=False)
    got = receiver.last()
    assert event_of(got.body) == "payment.failed"

    confirmation = gateway.confirm_notification("POST", got.headers, {}, got.body)

    assert (confirmation.status, confirmation.reference) == (Status.FAILED, "PI-000777")
    assert confirmation.transaction_id is None


def test_a_wrong_signature_is_refused_before_any_api_call(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference)
    got = receiver.last()
    calls = len(sim.requests)
    headers = dict(got.headers)
    signature = headers["X-Razorpay-Signature"]
    headers["X-Razorpay-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]

    with pytest.raises(SignatureError, match="does not match"):
        gateway.confirm_notification("POST", headers, {}, got.body)
    assert len(sim.requests) == calls


def test_a_webhook_signed_with_another_secret_is_refused(
        sim: RazorpaySimulator, receiver: Receiver) -> None:
    gateway = make_gateway(sim, webhook_secret="not-the-dashboard-secret")
    sim.pay(gateway.start(order()).gateway_reference)
    got = receiver.last()

    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", got.headers, {}, got.body)


def test_a_tampered_body_is_refused(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference)
    got = receiver.last()
    tampered = got.body.replace(b'"amount": 49950', b'"amount": 4995000')
    assert tampered != got.body

    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", got.headers, {}, tampered)


def test_a_webhook_without_a_signature_is_refused(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference)
    got = receiver.last()
    headers = {k: v for k, v in got.headers.items() if k.lower() != "x-razorpay-signature"}

    with pytest.raises(SignatureError, match="without"):
        gateway.confirm_notification("POST", headers, {}, got.body)


def test_header_names_are_case_insensitive(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order()).gateway_reference)
    got = receiver.last()
    lowered = {k.lower(): v for k, v in got.headers.items()}

    confirmation = gateway.confirm_notification("POST", lowered, {}, got.body)

    assert confirmation.event_id == got.headers["X-Razorpay-Event-Id"]


def test_a_refund_sends_refund_processed_confirmed_refunded(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order())
    sim.pay(checkout.gateway_reference)
    paid = gateway.confirm_notification("POST", receiver.last().headers, {},
                                        receiver.last().body)
    assert paid.transaction_id is not None

    delivery = sim.refund(paid.transaction_id, Decimal("100.25"))

    assert delivery is not None
    got = receiver.last()
    assert (event_of(got.body), got.body) == ("refund.processed", delivery.body)
    refunded = gateway.confirm_notification("POST", got.headers, {}, got.body)
    assert refunded.status is Status.REFUNDED
    assert refunded.refunded_amount == Decimal("100.25")
    assert (refunded.amount, refunded.transaction_id, refunded.reference) == (
        Decimal("499.50"), paid.transaction_id, "PI-000777")
    assert refunded.event_id == got.headers["X-Razorpay-Event-Id"] != paid.event_id

    sim.refund(paid.transaction_id, Decimal("399.25"), deliver=False)
    polled = gateway.query("PI-000777", checkout.gateway_reference)
    assert (polled.status, polled.refunded_amount) == (Status.REFUNDED, Decimal("499.50"))


def test_a_late_capture_webhook_after_a_refund_still_confirms_the_capture(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    # Razorpay delivers out of order: payment.captured may arrive after the refund.
    sim.pay(gateway.start(order()).gateway_reference)
    captured = receiver.received[0]
    payment_id = json.loads(captured.body)["payload"]["payment"]["entity"]["id"]
    sim.refund(payment_id, Decimal("499.50"), deliver=False)

    confirmation = gateway.confirm_notification("POST", captured.headers, {}, captured.body)

    assert (confirmation.status, confirmation.amount) == (Status.PAID, Decimal("499.50"))
    assert confirmation.refunded_amount == Decimal("0")


def test_query_reports_pending_before_payment(
        gateway: RazorpayGateway) -> None:
    checkout = gateway.start(order())

    confirmation = gateway.query("PI-000777", checkout.gateway_reference)

    assert confirmation.status is Status.PENDING
    assert (confirmation.amount, confirmation.currency) == (Decimal("499.50"), "INR")


def test_query_finds_a_payment_whose_webhooks_were_lost(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order())
    delivery = sim.pay(checkout.gateway_reference, deliver=False)

    by_link = gateway.query("PI-000777", checkout.gateway_reference)
    by_reference = gateway.query("PI-000777", None)

    assert (receiver.received, delivery.status) == ([], None)
    payment_id = json.loads(delivery.body)["payload"]["payment"]["entity"]["id"]
    for confirmation in (by_link, by_reference):
        assert confirmation.status is Status.PAID
        assert (confirmation.amount, confirmation.currency) == (Decimal("499.50"), "INR")
        assert confirmation.transaction_id == payment_id
        assert confirmation.gateway_reference == checkout.gateway_reference


def test_query_keeps_a_link_with_a_failed_attempt_pending(
        sim: RazorpaySimulator, gateway: RazorpayGateway) -> None:
    # The subscriber can try again on the same link, so one failure is not the end.
    checkout = gateway.start(order())
    sim.pay(checkout.gateway_reference, succeed=False, deliver=False)

    assert gateway.query("PI-000777", checkout.gateway_reference).status is Status.PENDING


def test_query_reports_an_expired_link_failed(
        sim: RazorpaySimulator, gateway: RazorpayGateway) -> None:
    checkout = gateway.start(order())
    sim.links[checkout.gateway_reference]["status"] = "expired"

    assert gateway.query("PI-000777", checkout.gateway_reference).status is Status.FAILED


def test_query_refuses_a_link_of_another_reference(
        gateway: RazorpayGateway) -> None:
    checkout = gateway.start(order())

    with pytest.raises(GatewayError, match="not 'PI-000778'"):
        gateway.query("PI-000778", checkout.gateway_reference)


def test_a_payment_that_is_not_ours_confirms_with_no_reference(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    # Another sale on the same Razorpay account: a link created without our notes.
    status, link = sim.api_create_link({"amount": 20000, "currency": "INR"})
    assert status == 200
    sim.pay(link["id"])

    confirmation = gateway.confirm_notification("POST", receiver.last().headers, {},
                                                receiver.last().body)

    assert (confirmation.reference, confirmation.status) == ("", Status.PAID)


def test_wrong_api_keys_are_a_clear_gateway_error(sim: RazorpaySimulator) -> None:
    gateway = make_gateway(sim, key_secret="wrong")

    with pytest.raises(GatewayError, match=r"HTTP 401: Authentication failed \(check key_id"):
        gateway.start(order())
    with pytest.raises(GatewayError, match="HTTP 401"):
        gateway.query("PI-000777", "plink_doesnotmatter")


def test_a_refused_link_is_a_gateway_error_with_razorpay_s_reason(
        gateway: RazorpayGateway) -> None:
    gateway.start(order())

    with pytest.raises(GatewayError, match="already exists"):
        gateway.start(order())


def test_webhooks_cannot_be_confirmed_while_fetches_fail(
        sim: RazorpaySimulator, gateway: RazorpayGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order())
    sim.pay(checkout.gateway_reference)
    sim.fail_queries = True

    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.confirm_notification("POST", receiver.last().headers, {},
                                     receiver.last().body)
    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.query("PI-000777", checkout.gateway_reference)


def test_an_unreachable_gateway_is_a_gateway_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    gateway = RazorpayGateway(GatewayConfig(
        name="razorpay", base_url=f"http://127.0.0.1:{port}",
        credentials={"key_id": "k", "key_secret": "s", "webhook_secret": "w"}, timeout=2.0))

    with pytest.raises(GatewayError, match="unreachable"):
        gateway.start(order())


def test_missing_credentials_are_refused_at_configuration(sim: RazorpaySimulator) -> None:
    with pytest.raises(GatewayError, match="webhook_secret"):
        RazorpayGateway(GatewayConfig(name="razorpay", base_url=sim.url,
                                      credentials={"key_id": "k", "key_secret": "s"}))
