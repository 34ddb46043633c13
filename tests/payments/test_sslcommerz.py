"""SslcommerzGateway against the SSLCommerz simulator, over real sockets: session, IPN,
validation, transaction query, refunds and faults."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode
from urllib.request import urlopen

import pytest

from payments.gateways.base import (
    GatewayConfig,
    GatewayError,
    PaymentOrder,
    SignatureError,
    Status,
)
from payments.gateways.sslcommerz import SslcommerzGateway
from simulators.gateways.sslcommerz import SslcommerzSimulator
from tests.payments.conftest import Receiver

VALIDATION = "/validator/api/validationserverAPI.php"


@pytest.fixture
def sim() -> Iterator[SslcommerzSimulator]:
    simulator = SslcommerzSimulator().start()
    yield simulator
    simulator.stop()


def make_gateway(sim: SslcommerzSimulator, **credentials: str) -> SslcommerzGateway:
    return SslcommerzGateway(GatewayConfig(
        name="sslcommerz", base_url=sim.url, credentials={**sim.credentials, **credentials},
        timeout=5.0))


@pytest.fixture
def gateway(sim: SslcommerzSimulator) -> Iterator[SslcommerzGateway]:
    adapter = make_gateway(sim)
    yield adapter
    adapter.close()


def order(receiver: Receiver, reference: str = "PI-000123", amount: str = "1050.00",
          currency: str = "BDT") -> PaymentOrder:
    return PaymentOrder(
        reference=reference, invoice_number="INV-2025-0042", amount=Decimal(amount),
        currency=currency, customer_name="Rahim Uddin", customer_phone="01711000000",
        description="Home 20 Mbps, March", return_url=f"{receiver.url}/pay/return",
        notify_url=f"{receiver.url}/pay/ipn")


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def test_start_opens_a_session_and_returns_the_hosted_page(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order(receiver))

    assert checkout.redirect_url == (
        f"{sim.url}/gwprocess/v4/gw.php?Q=pay&SESSIONKEY={checkout.gateway_reference}")
    with urlopen(checkout.redirect_url, timeout=5) as page:  # noqa: S310 - the simulator
        assert page.status == 200
    sent = sim.session(checkout.gateway_reference)
    assert (sent["tran_id"], sent["total_amount"], sent["currency"]) == (
        "PI-000123", "1050.00", "BDT")
    assert sent["ipn_url"] == f"{receiver.url}/pay/ipn"
    assert sent["value_a"] == "INV-2025-0042"


def test_a_paid_ipn_is_validated_and_confirmed_paid(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order(receiver))

    delivery = sim.pay(checkout.gateway_reference)

    assert delivery.status == 200
    got = receiver.last()
    assert (got.path, got.body) == ("/pay/ipn", delivery.body)
    confirmation = gateway.confirm_notification(got.method, got.headers, got.query, got.body)
    ipn = form(got.body)
    assert confirmation.status is Status.PAID
    assert confirmation.reference == "PI-000123"
    assert (confirmation.amount, confirmation.currency) == (Decimal("1050.00"), "BDT")
    assert confirmation.transaction_id == ipn["bank_tran_id"] != ""
    assert confirmation.event_id == ipn["val_id"] != ""
    assert confirmation.raw["status"] == "VALID"
    assert ("GET", VALIDATION) in sim.requests


def test_a_redelivered_ipn_confirms_the_same_payment(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    got = receiver.last()

    first = gateway.confirm_notification("POST", got.headers, got.query, got.body)
    again = gateway.confirm_notification("POST", got.headers, got.query, got.body)

    assert again.raw["status"] == "VALIDATED"
    assert (again.status, again.transaction_id, again.event_id, again.amount) == (
        first.status, first.transaction_id, first.event_id, first.amount)


def test_the_amount_is_what_the_gateway_recorded_not_what_we_ordered(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference, amount=Decimal("1000.00"))
    got = receiver.last()

    confirmation = gateway.confirm_notification("POST", got.headers, got.query, got.body)

    assert (confirmation.status, confirmation.amount) == (Status.PAID, Decimal("1000.00"))


def test_a_foreign_currency_payment_reports_the_ordered_currency(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver, amount="12.50", currency="USD")).gateway_reference)
    got = receiver.last()

    confirmation = gateway.confirm_notification("POST", got.headers, got.query, got.body)

    assert (confirmation.amount, confirmation.currency) == (Decimal("12.50"), "USD")
    # SSLCommerz settles in BDT; the adapter must not report that as the payment.
    assert (confirmation.raw["amount"], confirmation.raw["currency"]) == ("1375.00", "BDT")


def test_a_wrong_verify_sign_is_refused(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    fields = form(receiver.last().body)
    fields["verify_sign"] = ("0" if fields["verify_sign"][0] != "0" else "1") + \
        fields["verify_sign"][1:]

    with pytest.raises(SignatureError, match="verify_sign does not match"):
        gateway.confirm_notification("POST", {}, {}, urlencode(fields).encode())
    assert ("GET", VALIDATION) not in sim.requests


@pytest.mark.parametrize("field", ["amount", "currency", "tran_id", "val_id", "status"])
def test_a_tampered_signed_field_is_refused(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver,
        field: str) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    fields = form(receiver.last().body)
    fields[field] = {"amount": "10.00", "currency": "USD", "tran_id": "PI-999999",
                     "val_id": "someone-elses-val-id", "status": "VALIDATED"}[field]

    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", {}, {}, urlencode(fields).encode())


def test_an_ipn_that_does_not_sign_what_we_read_is_refused(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    fields = form(receiver.last().body)
    # Dropping amount from verify_key would let anyone change it; the adapter must notice
    # before even computing the signature.
    fields["verify_key"] = ",".join(k for k in fields["verify_key"].split(",") if k != "amount")

    with pytest.raises(SignatureError, match="does not sign amount"):
        gateway.confirm_notification("POST", {}, {}, urlencode(fields).encode())


@pytest.mark.parametrize("body", [
    b"", b"not a form", b"status=VALID&tran_id=PI-000123",
])
def test_a_body_without_a_signature_is_refused(gateway: SslcommerzGateway, body: bytes) -> None:
    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", {}, {}, body)


def test_a_repeated_field_is_refused(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    body = receiver.last().body + b"&amount=10.00"

    with pytest.raises(SignatureError, match="repeats"):
        gateway.confirm_notification("POST", {}, {}, body)


def test_an_ipn_must_be_posted(gateway: SslcommerzGateway) -> None:
    with pytest.raises(SignatureError):
        gateway.confirm_notification("GET", {}, {"status": "VALID"}, b"")


def test_a_signed_ipn_the_validation_api_calls_invalid_is_not_paid(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    # Signed with the store password (as a leaked password would allow) but for a val_id
    # SSLCommerz never issued: only the validation API can tell.
    sim.pay(gateway.start(order(receiver)).gateway_reference, deliver=False)
    fields = dict(form(sim.deliveries[-1].body), val_id="2503011200000forgedVALID0")
    body = urlencode(sim.sign(fields)).encode()

    confirmation = gateway.confirm_notification("POST", {}, {}, body)

    assert confirmation.status is Status.FAILED
    assert confirmation.transaction_id is None
    assert confirmation.raw["status"] == "INVALID_TRANSACTION"


def test_a_failed_payment_ipn_is_confirmed_failed(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference, succeed=False)
    got = receiver.last()
    assert form(got.body)["status"] == "FAILED"

    confirmation = gateway.confirm_notification("POST", got.headers, got.query, got.body)

    assert (confirmation.status, confirmation.reference) == (Status.FAILED, "PI-000123")
    assert confirmation.transaction_id is None


def test_query_reports_pending_before_the_subscriber_pays(
        gateway: SslcommerzGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order(receiver))

    confirmation = gateway.query("PI-000123", checkout.gateway_reference)

    assert confirmation.status is Status.PENDING
    assert confirmation.gateway_reference == checkout.gateway_reference


def test_query_finds_a_payment_whose_ipn_was_lost(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    checkout = gateway.start(order(receiver))
    delivery = sim.pay(checkout.gateway_reference, deliver=False)

    confirmation = gateway.query("PI-000123", checkout.gateway_reference)

    assert delivery.status is None
    assert receiver.received == []
    assert confirmation.status is Status.PAID
    assert (confirmation.amount, confirmation.currency) == (Decimal("1050.00"), "BDT")
    assert confirmation.transaction_id == form(delivery.body)["bank_tran_id"]


def test_query_reports_a_failed_attempt(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference, succeed=False, deliver=False)

    assert gateway.query("PI-000123", None).status is Status.FAILED


def test_query_prefers_the_paid_attempt_after_a_failed_one(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference, succeed=False, deliver=False)
    sim.pay(gateway.start(order(receiver)).gateway_reference, deliver=False)

    assert gateway.query("PI-000123", None).status is Status.PAID


def test_refunds_show_in_the_query_with_the_exact_amount(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference, deliver=False)
    paid = gateway.query("PI-000123", None)
    assert paid.transaction_id is not None

    assert sim.refund(paid.transaction_id, Decimal("300.00")) is None
    first = gateway.query("PI-000123", None)
    sim.refund(paid.transaction_id, Decimal("200.50"))
    second = gateway.query("PI-000123", None)

    assert (first.status, first.refunded_amount) == (Status.REFUNDED, Decimal("300.00"))
    assert (second.status, second.refunded_amount) == (Status.REFUNDED, Decimal("500.50"))
    assert second.amount == Decimal("1050.00")
    assert second.transaction_id == paid.transaction_id


def test_wrong_credentials_are_a_clear_gateway_error(
        sim: SslcommerzSimulator, receiver: Receiver) -> None:
    gateway = make_gateway(sim, store_passwd="wrong")

    with pytest.raises(GatewayError, match="Store Credential Error"):
        gateway.start(order(receiver))
    with pytest.raises(GatewayError, match="APIConnect=FAILED"):
        gateway.query("PI-000123", None)


def test_a_paid_ipn_cannot_be_confirmed_while_validation_is_down(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.pay(gateway.start(order(receiver)).gateway_reference)
    got = receiver.last()
    sim.fail_queries = True

    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.confirm_notification("POST", got.headers, got.query, got.body)
    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.query("PI-000123", None)


def test_an_unreachable_gateway_is_a_gateway_error(receiver: Receiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    gateway = SslcommerzGateway(GatewayConfig(
        name="sslcommerz", base_url=f"http://127.0.0.1:{port}",
        credentials={"store_id": "x", "store_passwd": "y"}, timeout=2.0))

    with pytest.raises(GatewayError, match="unreachable"):
        gateway.start(order(receiver))


def test_amounts_finer_than_cents_are_refused_before_calling_the_gateway(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    with pytest.raises(GatewayError, match="2 decimals"):
        gateway.start(order(receiver, amount="10.005"))
    assert sim.requests == []


def test_missing_credentials_are_refused_at_configuration(sim: SslcommerzSimulator) -> None:
    with pytest.raises(GatewayError, match="store_passwd"):
        SslcommerzGateway(GatewayConfig(name="sslcommerz", base_url=sim.url,
                                        credentials={"store_id": "x"}))


def test_a_risky_payment_is_paid_but_flagged_for_review(
        sim: SslcommerzSimulator, gateway: SslcommerzGateway, receiver: Receiver) -> None:
    sim.risky = True
    checkout = gateway.start(order(receiver))
    sim.pay(checkout.gateway_reference)
    got = receiver.last()
    confirmation = gateway.confirm_notification(got.method, got.headers, got.query, got.body)
    assert confirmation.status is Status.PAID and confirmation.transaction_id
    assert confirmation.review == "SSLCommerz flags the payment as risky (risk_level 1, 'Risky')"
    polled = gateway.query("PI-000123", checkout.gateway_reference)
    assert (polled.status, polled.review) == (Status.PAID, confirmation.review)
    sim.risky = False
    assert gateway.query("PI-000123", checkout.gateway_reference).review is None
