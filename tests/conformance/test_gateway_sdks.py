"""What radbill's gateway simulators send and its adapters accept, checked by the gateways'
own libraries: the ``razorpay`` SDK's signature checks and ``sslcommerz-lib``'s IPN hash
validation. Where the vendor's library and radbill's adapter are shown the same bytes, they
must agree (both accept the genuine, both refuse the tampered)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
import razorpay
from razorpay.errors import SignatureVerificationError
from sslcommerz_lib import SSLCOMMERZ

from payments.gateways.base import GatewayConfig, PaymentOrder, SignatureError, Status
from payments.gateways.razorpay import RazorpayGateway
from payments.gateways.sslcommerz import SslcommerzGateway, verify_sign
from simulators.gateways.razorpay import RazorpaySimulator
from simulators.gateways.sslcommerz import SslcommerzSimulator


def order(reference: str, currency: str, return_url: str = "https://isp.example/pay/return/x"
          ) -> PaymentOrder:
    return PaymentOrder(
        reference=reference, invoice_number="INV-000042", amount=Decimal("1050.00"),
        currency=currency, customer_name="Rahim Uddin", customer_phone="+8801711000000",
        description="Home 20 Mbps", return_url=return_url,
        notify_url="https://isp.example/webhooks/x")


# -- Razorpay ---------------------------------------------------------------------------------


@pytest.fixture
def rzp() -> Iterator[tuple[RazorpaySimulator, RazorpayGateway]]:
    sim = RazorpaySimulator().start()
    gateway = RazorpayGateway(GatewayConfig(name="razorpay", base_url=sim.url,
                                            credentials=sim.credentials, timeout=5))
    yield sim, gateway
    gateway.close()
    sim.stop()


def sdk(sim: RazorpaySimulator) -> razorpay.Client:
    return razorpay.Client(auth=(sim.credentials["key_id"], sim.credentials["key_secret"]))


def test_every_razorpay_webhook_verifies_with_the_sdk_and_the_adapter(rzp) -> None:  # type: ignore[no-untyped-def]
    sim, gateway = rzp
    checkout = gateway.start(order("RB1RZPCONF01", "INR"))
    sim.pay(checkout.gateway_reference, deliver=False)
    transaction = sim.refund(next(iter(sim.payments)), Decimal("50.00"), deliver=False)
    assert transaction is not None
    secret = sim.credentials["webhook_secret"]
    assert len(sim.deliveries) == 4  # payment.captured, order.paid, payment_link.paid, refund
    for delivery in sim.deliveries:
        signature = delivery.headers["X-Razorpay-Signature"]
        assert sdk(sim).utility.verify_webhook_signature(delivery.body.decode(), signature,
                                                         secret) is True
        confirmation = gateway.confirm_notification("POST", delivery.headers, {},
                                                    delivery.body)
        assert confirmation.reference == "RB1RZPCONF01"
        assert confirmation.status in (Status.PAID, Status.REFUNDED)


@pytest.mark.parametrize("tamper", ["body", "signature", "secret"])
def test_a_tampered_razorpay_webhook_is_refused_by_both(tamper: str, rzp) -> None:  # type: ignore[no-untyped-def]
    sim, gateway = rzp
    checkout = gateway.start(order("RB1RZPCONF02", "INR"))
    delivery = sim.pay(checkout.gateway_reference, deliver=False)
    body, signature = delivery.body, delivery.headers["X-Razorpay-Signature"]
    secret = sim.credentials["webhook_secret"]
    if tamper == "body":
        body = body.replace(b'"amount": 105000', b'"amount": 100')
        assert body != delivery.body
    elif tamper == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    else:
        secret = "someone-elses-secret"
        gateway = RazorpayGateway(GatewayConfig(
            name="razorpay", base_url=sim.url,
            credentials={**sim.credentials, "webhook_secret": secret}, timeout=5))
    with pytest.raises(SignatureVerificationError):
        sdk(sim).utility.verify_webhook_signature(body.decode(), signature, secret)
    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", {**delivery.headers,
                                              "X-Razorpay-Signature": signature}, {}, body)


def test_the_payment_link_callback_signature_verifies_with_the_sdk(rzp) -> None:  # type: ignore[no-untyped-def]
    sim, gateway = rzp
    checkout = gateway.start(order("RB1RZPCONF03", "INR"))
    sim.pay(checkout.gateway_reference, deliver=False)
    query = dict(sim.redirects[-1].query)
    assert query["razorpay_payment_link_status"] == "paid"
    params = {"razorpay_payment_id": query["razorpay_payment_id"],
              "payment_link_id": query["razorpay_payment_link_id"],
              "payment_link_reference_id": query["razorpay_payment_link_reference_id"],
              "payment_link_status": query["razorpay_payment_link_status"],
              "razorpay_signature": query["razorpay_signature"]}
    assert params["payment_link_reference_id"] == "RB1RZPCONF03"
    assert sdk(sim).utility.verify_payment_link_signature(params) is True
    with pytest.raises(SignatureVerificationError):
        sdk(sim).utility.verify_payment_link_signature({**params,
                                                        "payment_link_status": "partially_paid"})
    # and the adapter confirms what the callback names from Razorpay's API
    confirmation = gateway.query("RB1RZPCONF03", query["razorpay_payment_link_id"])
    assert (confirmation.status, confirmation.transaction_id) == (
        Status.PAID, query["razorpay_payment_id"])


# -- SSLCommerz -------------------------------------------------------------------------------


@pytest.fixture
def ssl_sim() -> Iterator[tuple[SslcommerzSimulator, SslcommerzGateway, SSLCOMMERZ]]:
    sim = SslcommerzSimulator().start()
    gateway = SslcommerzGateway(GatewayConfig(name="sslcommerz", base_url=sim.url,
                                              credentials=sim.credentials, timeout=5))
    lib = SSLCOMMERZ({"store_id": sim.credentials["store_id"],
                      "store_pass": sim.credentials["store_passwd"], "issandbox": True})
    yield sim, gateway, lib
    gateway.close()
    sim.stop()


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


@pytest.mark.parametrize("succeed", [True, False])
def test_the_simulators_ipn_passes_sslcommerz_libs_hash_validation(succeed: bool,
                                                                    ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim, gateway, lib = ssl_sim
    checkout = gateway.start(order("RB1SSLCONF01", "BDT"))
    delivery = sim.pay(checkout.gateway_reference, succeed=succeed, deliver=False)
    fields = form(delivery.body)
    assert lib.hash_validate_ipn(fields) is True
    confirmation = gateway.confirm_notification("POST", delivery.headers, {}, delivery.body)
    assert confirmation.reference == "RB1SSLCONF01"
    assert confirmation.status is (Status.PAID if succeed else Status.FAILED)


@pytest.mark.parametrize("field", ["amount", "tran_id", "status", "val_id"])
def test_a_tampered_ipn_is_refused_by_both(field: str, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    sim, gateway, lib = ssl_sim
    checkout = gateway.start(order("RB1SSLCONF02", "BDT"))
    fields = form(sim.pay(checkout.gateway_reference, deliver=False).body)
    fields[field] = {"amount": "1.00", "tran_id": "RB1SOMEONEELSE", "status": "VALIDATED",
                     "val_id": "0" * 27}[field]
    assert lib.hash_validate_ipn(fields) is False
    body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
    with pytest.raises(SignatureError):
        gateway.confirm_notification("POST", {}, {}, body)


def test_radbills_verify_sign_is_what_sslcommerz_lib_expects() -> None:
    fields = {"tran_id": "RB1X", "val_id": "v1", "amount": "1050.00", "currency": "BDT",
              "status": "VALID", "store_id": "radbill", "value_a": "INV-1",
              "card_type": "BKASH-BKash", "risk_level": "0"}
    fields["verify_key"] = ",".join(sorted(fields, reverse=True))
    fields["verify_sign"] = verify_sign(fields, "s3cret@ssl")
    lib = SSLCOMMERZ({"store_id": "radbill", "store_pass": "s3cret@ssl", "issandbox": True})
    assert lib.hash_validate_ipn(fields) is True
    assert lib.hash_validate_ipn({**fields, "verify_sign": verify_sign(fields, "other")}) is False
