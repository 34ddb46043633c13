"""NagadGateway against the Nagad simulator, over real sockets: the encrypted, signed
initialize and complete, the browser's return confirmed through the verify API, forged and
tampered callbacks, bad signatures, query."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.gateways.base import (
    Confirmation,
    GatewayConfig,
    GatewayError,
    PaymentOrder,
    SignatureError,
    Status,
)
from payments.gateways.nagad import NagadGateway
from simulators.gateways.nagad import NagadSimulator
from tests.payments.return_receiver import ReturnReceiver


@pytest.fixture(scope="module")
def sim() -> Iterator[NagadSimulator]:
    simulator = NagadSimulator().start()  # RSA key generation: once per module
    yield simulator
    simulator.stop()


@pytest.fixture(autouse=True)
def _healthy(sim: NagadSimulator) -> Iterator[None]:
    yield
    sim.fail_queries = sim.tamper_signature = False


@pytest.fixture
def receiver() -> Iterator[ReturnReceiver]:
    server = ReturnReceiver()
    yield server
    server.stop()


def make_gateway(sim: NagadSimulator, **credentials: str) -> NagadGateway:
    return NagadGateway(GatewayConfig(name="nagad", base_url=sim.url, timeout=5.0,
                                      credentials={**sim.credentials, **credentials}))


@pytest.fixture
def gateway(sim: NagadSimulator) -> Iterator[NagadGateway]:
    adapter = make_gateway(sim)
    yield adapter
    adapter.close()


_orders = iter(range(1, 10_000))


@pytest.fixture
def order(receiver: ReturnReceiver) -> PaymentOrder:
    # Nagad refuses a reused order id, and the simulator lives for the whole module
    return PaymentOrder(
        reference=f"PI{next(_orders):06d}", invoice_number="INV-2025-0042",
        amount=Decimal("750.50"), currency="BDT", customer_name="Karim Ahmed",
        customer_phone="01711000000", description="Internet 30 Mbps, December",
        return_url=f"{receiver.url}/pay/nagad/return", notify_url=f"{receiver.url}/notify")


def confirm_last(gateway: NagadGateway, receiver: ReturnReceiver) -> Confirmation:
    got = receiver.received[-1]
    return gateway.confirm_notification(got.method, got.headers, got.query, got.body)


def test_start_initializes_and_completes_with_encrypted_signed_data(
        gateway: NagadGateway, sim: NagadSimulator, order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    payment = sim.payments[checkout.gateway_reference]
    assert payment.order_id == order.reference
    assert payment.amount == Decimal("750.50")
    assert payment.callback_url == order.return_url
    assert payment.status == "Initiated"
    assert checkout.redirect_url.endswith(f"/check-out/{checkout.gateway_reference}")
    assert httpx.get(checkout.redirect_url, timeout=5).status_code == 200
    init = next(r for r in sim.requests if r[1].startswith("check-out/initialize/"))
    assert init[1] == f"check-out/initialize/{sim.merchant_id}/{order.reference}"
    assert init[2]["x-km-api-version"] == "v-0.2.0"
    assert init[2]["x-km-client-type"] == "PC_WEB"


def test_sensitive_data_is_pkcs1v15_for_nagad_and_signed_sha256_by_the_merchant(
        sim: NagadSimulator, order: PaymentOrder) -> None:
    """The wire format itself, checked with keys the adapter never sees: a capturing
    transport in front of the simulator's real HTTP server."""
    seen: list[dict[str, str]] = []
    real = httpx.HTTPTransport()

    class Capture(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                seen.append(json.loads(request.read()))
            return real.handle_request(request)

    gateway = NagadGateway(GatewayConfig(name="nagad", base_url=sim.url,
                                         credentials=sim.credentials), transport=Capture())
    gateway.start(order)

    nagad_private = sim.nagad_key
    merchant_public = serialization.load_pem_private_key(
        sim.credentials["merchant_private_key"].encode(), password=None).public_key()
    assert isinstance(merchant_public, rsa.RSAPublicKey)
    initialize, complete = seen
    for body in (initialize, complete):
        plain = nagad_private.decrypt(base64.b64decode(body["sensitiveData"]),
                                      padding.PKCS1v15())
        merchant_public.verify(base64.b64decode(body["signature"]), plain,
                               padding.PKCS1v15(), hashes.SHA256())
        body["plain"] = json.loads(plain)
    assert set(initialize["plain"]) == {"merchantId", "datetime", "orderId", "challenge"}
    assert initialize["plain"]["orderId"] == order.reference
    assert initialize["dateTime"] == initialize["plain"]["datetime"]
    assert len(initialize["dateTime"]) == 14
    assert initialize["accountNumber"] == sim.credentials["merchant_number"]
    assert complete["plain"]["currencyCode"] == "050"
    assert complete["plain"]["amount"] == "750.50"
    assert complete["merchantCallbackURL"] == order.return_url


def test_paid_callback_is_confirmed_through_the_verify_api(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    delivery = sim.pay(checkout.gateway_reference)

    assert delivery.status == 200
    got = receiver.received[-1]
    assert got.path == "/pay/nagad/return"
    assert got.query["payment_ref_id"] == checkout.gateway_reference
    assert got.query["order_id"] == order.reference
    assert got.query["status"] == "Success"

    confirmation = confirm_last(gateway, receiver)

    payment = sim.payments[checkout.gateway_reference]
    assert confirmation.status is Status.PAID
    assert confirmation.amount == Decimal("750.50")
    assert confirmation.currency == "BDT"
    assert confirmation.transaction_id == payment.issuer_ref
    assert confirmation.transaction_id
    assert confirmation.reference == order.reference
    assert confirmation.gateway_reference == checkout.gateway_reference
    assert confirmation.event_id == f"callback:{checkout.gateway_reference}"
    assert sim.requests[-1][:2] == ("GET", f"verify/payment/{checkout.gateway_reference}")


def test_confirmation_carries_the_amount_nagad_recorded(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference, amount=Decimal("750.00"))

    assert confirm_last(gateway, receiver).amount == Decimal("750.00")


def test_callback_status_is_never_believed_over_the_verify_api(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    unpaid = gateway.start(order)
    forged = gateway.confirm_notification("GET", {}, {
        "merchant": sim.merchant_id, "order_id": order.reference,
        "payment_ref_id": unpaid.gateway_reference, "status": "Success",
        "status_code": "00_0000_000", "issuer_payment_ref": "FAKE123"}, b"")
    assert forged.status is Status.PENDING
    assert forged.transaction_id is None

    aborted = gateway.start(replace(order, reference=order.reference + "B"))
    sim.pay(aborted.gateway_reference, succeed=False)
    got = dict(receiver.received[-1].query, status="Success", status_code="00_0000_000")
    tampered = gateway.confirm_notification("GET", {}, got, b"")
    assert tampered.status is Status.FAILED
    assert tampered.transaction_id is None


def test_forged_callback_for_an_unknown_reference_is_rejected(gateway: NagadGateway) -> None:
    with pytest.raises(SignatureError, match="does not verify payment_ref_id"):
        gateway.confirm_notification("GET", {}, {"payment_ref_id": "MDEFORGED0000",
                                                 "status": "Success"}, b"")


def test_callback_with_another_order_id_is_tampered(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    got = dict(receiver.received[-1].query, order_id="PI999999")

    with pytest.raises(SignatureError, match="tampered"):
        gateway.confirm_notification("GET", {}, got, b"")


def test_a_payment_of_another_merchant_is_not_ours(
        sim: NagadSimulator, receiver: ReturnReceiver, order: PaymentOrder) -> None:
    gateway = make_gateway(sim)
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    other = make_gateway(sim, merchant_id="683002007999999")

    with pytest.raises(SignatureError, match="not ours"):
        confirm_last(other, receiver)


@pytest.mark.parametrize("query", [{}, {"status": "Success"}, {"payment_ref_id": "MDE1"}])
def test_malformed_callback_is_rejected_without_asking_nagad(
        gateway: NagadGateway, sim: NagadSimulator, query: dict[str, str]) -> None:
    before = len(sim.requests)
    with pytest.raises(SignatureError, match="not a Nagad callback"):
        gateway.confirm_notification("GET", {}, query, b"")
    assert len(sim.requests) == before


def test_bad_nagad_signature_on_initialize_stops_the_checkout(
        gateway: NagadGateway, sim: NagadSimulator, order: PaymentOrder) -> None:
    sim.tamper_signature = True

    with pytest.raises(SignatureError, match="does not verify with Nagad's public key"):
        gateway.start(order)
    started = [p for p in sim.payments.values() if p.order_id == order.reference]
    assert len(started) == 1
    assert started[0].amount is None  # complete was never called


def test_wrong_nagad_public_key_is_a_clear_gateway_error(
        sim: NagadSimulator, order: PaymentOrder) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = impostor.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    # our request is then encrypted for a key Nagad does not hold: it cannot read it
    with pytest.raises(GatewayError, match=r"initialize refused \(HTTP 400\): DecryptionFailed"):
        make_gateway(sim, nagad_public_key=pem).start(order)


def test_wrong_merchant_key_is_a_clear_gateway_error(
        sim: NagadSimulator, order: PaymentOrder) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    with pytest.raises(GatewayError, match="InvalidSignature Invalid merchant signature"):
        make_gateway(sim, merchant_private_key=pem).start(order)


def test_wrong_merchant_id_is_a_clear_gateway_error(
        sim: NagadSimulator, order: PaymentOrder) -> None:
    with pytest.raises(GatewayError, match="InvalidMerchant"):
        make_gateway(sim, merchant_id="683002007000000").start(order)


def test_keys_in_bare_base64_as_nagad_hands_them_out(
        sim: NagadSimulator, order: PaymentOrder) -> None:
    def bare(pem: str) -> str:
        return "".join(line for line in pem.splitlines() if not line.startswith("-----"))

    gateway = make_gateway(sim, merchant_private_key=bare(sim.credentials["merchant_private_key"]),
                           nagad_public_key=bare(sim.credentials["nagad_public_key"]))
    assert gateway.start(order).gateway_reference in sim.payments


def test_unreadable_keys_and_missing_credentials_are_refused_up_front(
        sim: NagadSimulator) -> None:
    with pytest.raises(GatewayError, match="keys unreadable"):
        make_gateway(sim, nagad_public_key="not a key")
    with pytest.raises(GatewayError, match="credentials missing: merchant_private_key"):
        NagadGateway(GatewayConfig(name="nagad", base_url=sim.url, credentials={
            "merchant_id": "1", "nagad_public_key": "x"}))


def test_query_paid_pending_and_failed(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    paid = gateway.start(order)
    sim.pay(paid.gateway_reference)
    pending = gateway.start(replace(order, reference=order.reference + "P"))
    lost = gateway.start(replace(order, reference=order.reference + "L"))
    undelivered = sim.pay(lost.gateway_reference, deliver=False)
    failed = gateway.start(replace(order, reference=order.reference + "F"))
    sim.pay(failed.gateway_reference, succeed=False)

    got_paid = gateway.query(order.reference, paid.gateway_reference)
    assert got_paid.status is Status.PAID
    assert (got_paid.amount, got_paid.currency) == (Decimal("750.50"), "BDT")
    assert got_paid.transaction_id == sim.payments[paid.gateway_reference].issuer_ref
    assert got_paid.event_id is None
    assert gateway.query("x", pending.gateway_reference).status is Status.PENDING
    # the redirect was lost but Nagad took the money: polling finds it
    assert undelivered.status is None
    assert len(receiver.received) == 2
    got_lost = gateway.query("x", lost.gateway_reference)
    assert got_lost.status is Status.PAID
    assert got_lost.reference == order.reference + "L"
    got_failed = gateway.query("x", failed.gateway_reference)
    assert got_failed.status is Status.FAILED
    assert got_failed.transaction_id is None


def test_query_needs_the_payment_reference(gateway: NagadGateway) -> None:
    with pytest.raises(GatewayError, match="paymentReferenceId needed"):
        gateway.query("PI000001", None)


def test_failing_verify_api_is_a_gateway_error_not_a_verdict(
        gateway: NagadGateway, sim: NagadSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    sim.fail_queries = True

    with pytest.raises(GatewayError, match="HTTP 503") as raised:
        confirm_last(gateway, receiver)
    assert not isinstance(raised.value, SignatureError)
    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.query(order.reference, checkout.gateway_reference)


def test_reused_order_id_is_refused(gateway: NagadGateway, order: PaymentOrder) -> None:
    gateway.start(order)
    with pytest.raises(GatewayError, match="DuplicateOrderId"):
        gateway.start(order)


@pytest.mark.parametrize(("amount", "currency", "message"), [
    (Decimal("1.001"), "BDT", "at most 2 decimals"),
    (Decimal("-5"), "BDT", "positive"),
    (Decimal("10.00"), "INR", "BDT only"),
])
def test_orders_nagad_cannot_take_are_refused_before_calling_it(
        gateway: NagadGateway, sim: NagadSimulator, order: PaymentOrder,
        amount: Decimal, currency: str, message: str) -> None:
    before = len(sim.requests)
    with pytest.raises(GatewayError, match=message):
        gateway.start(replace(order, amount=amount, currency=currency))
    assert len(sim.requests) == before
