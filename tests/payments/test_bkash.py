"""BkashGateway against the bKash simulator, over real sockets: token grant/refresh, create,
the browser's return with execute (and the query fallback), forged callbacks, query."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from payments.gateways.base import (
    Confirmation,
    GatewayConfig,
    GatewayError,
    PaymentOrder,
    SignatureError,
    Status,
)
from payments.gateways.bkash import BkashGateway
from simulators.gateways.bkash import BkashSimulator
from tests.payments.return_receiver import ReturnReceiver


class FakeClock:
    """Seconds, moved by hand; shared by the simulator and the adapter."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[BkashSimulator]:
    simulator = BkashSimulator(clock=clock).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def receiver() -> Iterator[ReturnReceiver]:
    server = ReturnReceiver()
    yield server
    server.stop()


def make_gateway(sim: BkashSimulator, clock: FakeClock, **credentials: str) -> BkashGateway:
    config = GatewayConfig(name="bkash", base_url=sim.url,
                           credentials={**sim.credentials, **credentials}, timeout=5.0)
    return BkashGateway(config, clock=clock)


@pytest.fixture
def gateway(sim: BkashSimulator, clock: FakeClock) -> Iterator[BkashGateway]:
    adapter = make_gateway(sim, clock)
    yield adapter
    adapter.close()


@pytest.fixture
def order(receiver: ReturnReceiver) -> PaymentOrder:
    return PaymentOrder(
        reference="PI-000123", invoice_number="INV-2025-0042", amount=Decimal("500.00"),
        currency="BDT", customer_name="Rahim Uddin", customer_phone="01770618575",
        description="Internet 20 Mbps, December", return_url=f"{receiver.url}/pay/bkash/return",
        notify_url=f"{receiver.url}/pay/bkash/notify")


def confirm_last(gateway: BkashGateway, receiver: ReturnReceiver) -> Confirmation:
    """Hand what reached our return URL to the adapter, as the webhook endpoint will."""
    got = receiver.received[-1]
    return gateway.confirm_notification(got.method, got.headers, got.query, got.body)


def operations(sim: BkashSimulator) -> list[str]:
    return [operation for operation, _ in sim.requests]


def test_start_creates_the_payment_and_sends_the_browser_to_bkash(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    payment = sim.payments[checkout.gateway_reference]
    assert (payment.amount, payment.currency, payment.invoice) == (
        Decimal("500.00"), "BDT", "PI-000123")
    assert payment.callback_url == order.return_url
    assert payment.status == "Initiated"
    assert checkout.redirect_url.endswith(f"/payment/?paymentId={checkout.gateway_reference}")
    page = httpx.get(checkout.redirect_url, timeout=5)
    assert page.status_code == 200
    assert checkout.gateway_reference in page.text


def test_paid_callback_is_executed_and_confirmed_with_bkash_figures(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    delivery = sim.pay(checkout.gateway_reference)

    assert delivery.status == 200
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.method == "GET"
    assert got.path == "/pay/bkash/return"
    assert got.query == {"paymentID": checkout.gateway_reference, "status": "success"}
    assert sim.payments[checkout.gateway_reference].status == "Initiated"  # not captured yet

    confirmation = confirm_last(gateway, receiver)

    assert operations(sim)[-1] == "execute"  # execute's own answer was enough
    payment = sim.payments[checkout.gateway_reference]
    assert payment.status == "Completed"
    assert payment.trx_id
    assert confirmation.status is Status.PAID
    assert confirmation.amount == Decimal("500.00")
    assert str(confirmation.amount) == "500.00"
    assert confirmation.currency == "BDT"
    assert confirmation.transaction_id == payment.trx_id
    assert confirmation.reference == "PI-000123"
    assert confirmation.gateway_reference == checkout.gateway_reference
    assert confirmation.event_id == f"callback:{checkout.gateway_reference}"


def test_confirmation_carries_the_amount_bkash_recorded_not_the_ordered_one(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference, amount=Decimal("499.50"))

    confirmation = confirm_last(gateway, receiver)

    assert confirmation.status is Status.PAID
    assert confirmation.amount == Decimal("499.50")


def test_replayed_callback_gives_the_same_payment_without_a_second_capture(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    first = confirm_last(gateway, receiver)

    second = confirm_last(gateway, receiver)

    assert second.status is Status.PAID
    assert second.transaction_id == first.transaction_id
    assert second.event_id == first.event_id
    assert second.amount == Decimal("500.00")
    # the second execute was refused (already completed) and the answer came from the query
    assert operations(sim)[-2:] == ["execute", "payment/status"]


def test_execute_without_answer_falls_back_to_the_query(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    sim.drop_execute_response = True

    confirmation = confirm_last(gateway, receiver)

    assert confirmation.status is Status.PAID
    assert confirmation.transaction_id == sim.payments[checkout.gateway_reference].trx_id
    assert confirmation.amount == Decimal("500.00")
    assert operations(sim)[-2:] == ["execute", "payment/status"]


def test_unanswered_execute_and_failing_query_is_a_gateway_error_not_a_verdict(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference)
    sim.drop_execute_response = True
    sim.fail_queries = True

    with pytest.raises(GatewayError, match="503") as raised:
        confirm_last(gateway, receiver)
    assert not isinstance(raised.value, SignatureError)


def test_forged_callback_for_an_unknown_payment_is_rejected(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder) -> None:
    gateway.start(order)

    with pytest.raises(SignatureError, match="does not know paymentID"):
        gateway.confirm_notification("GET", {}, {"paymentID": "TR0011forged00000",
                                                 "status": "success"}, b"")


def test_forged_success_for_an_unpaid_payment_is_not_paid_and_captures_nothing(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    confirmation = gateway.confirm_notification(
        "GET", {}, {"paymentID": checkout.gateway_reference, "status": "success"}, b"")

    assert confirmation.status is Status.PENDING
    assert confirmation.transaction_id is None
    assert sim.payments[checkout.gateway_reference].status == "Initiated"


def test_callback_status_is_never_believed_over_bkash(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    # a paid payment whose callback is tampered to "cancel" stays paid ...
    paid = gateway.start(order)
    sim.pay(paid.gateway_reference)
    confirm_last(gateway, receiver)
    tampered = gateway.confirm_notification(
        "GET", {}, {"paymentID": paid.gateway_reference, "status": "cancel"}, b"")
    assert tampered.status is Status.PAID
    assert tampered.transaction_id == sim.payments[paid.gateway_reference].trx_id

    # ... and a failed one tampered to "success" is not paid
    failed = gateway.start(replace(order, reference="PI-000124"))
    sim.pay(failed.gateway_reference, succeed=False)
    forged = gateway.confirm_notification(
        "GET", {}, {"paymentID": failed.gateway_reference, "status": "success"}, b"")
    assert forged.status is Status.FAILED
    assert sim.payments[failed.gateway_reference].trx_id is None


@pytest.mark.parametrize("query", [
    {}, {"paymentID": "TR0011abc"}, {"status": "success"},
    {"paymentID": "TR0011abc", "status": "Completed"},
])
def test_malformed_callback_is_rejected_without_asking_bkash(
        gateway: BkashGateway, sim: BkashSimulator, query: dict[str, str]) -> None:
    with pytest.raises(SignatureError, match="not a bKash callback"):
        gateway.confirm_notification("GET", {}, query, b"")
    assert sim.requests == []


def test_failed_payment_callback_is_failed_and_never_executed(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)

    delivery = sim.pay(checkout.gateway_reference, succeed=False)
    confirmation = confirm_last(gateway, receiver)

    assert delivery.query["status"] == "failure"
    assert confirmation.status is Status.FAILED
    assert confirmation.transaction_id is None
    assert "execute" not in operations(sim)


def test_query_paid_pending_and_failed(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    paid = gateway.start(order)
    sim.pay(paid.gateway_reference)
    confirm_last(gateway, receiver)
    pending = gateway.start(replace(order, reference="PI-000124"))
    lost = gateway.start(replace(order, reference="PI-000125"))
    undelivered = sim.pay(lost.gateway_reference, deliver=False)
    failed = gateway.start(replace(order, reference="PI-000126"))
    sim.pay(failed.gateway_reference, succeed=False)

    got_paid = gateway.query("PI-000123", paid.gateway_reference)
    assert got_paid.status is Status.PAID
    assert got_paid.transaction_id == sim.payments[paid.gateway_reference].trx_id
    assert (got_paid.amount, got_paid.currency, got_paid.reference) == (
        Decimal("500.00"), "BDT", "PI-000123")
    assert got_paid.event_id is None

    assert gateway.query("PI-000124", pending.gateway_reference).status is Status.PENDING
    # the redirect was lost: the payer authorised but nobody executed, nothing was captured
    assert undelivered.status is None
    assert len(receiver.received) == 2
    # polling executes an authorised payment whose callback was lost, exactly once
    got_lost = gateway.query("PI-000125", lost.gateway_reference)
    assert got_lost.status is Status.PAID and got_lost.transaction_id
    again = gateway.query("PI-000125", lost.gateway_reference)
    assert (again.status, again.transaction_id) == (Status.PAID, got_lost.transaction_id)
    got_failed = gateway.query("PI-000126", failed.gateway_reference)
    assert got_failed.status is Status.FAILED
    assert got_failed.reference == "PI-000126"


def test_query_needs_the_payment_id(gateway: BkashGateway) -> None:
    with pytest.raises(GatewayError, match="paymentID needed"):
        gateway.query("PI-000123", None)


def test_token_is_cached_then_refreshed_never_granted_twice(
        gateway: BkashGateway, sim: BkashSimulator, clock: FakeClock,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    for _ in range(3):
        gateway.query(order.reference, checkout.gateway_reference)
    assert (sim.grants, sim.refreshes) == (1, 0)
    first_token = sim.requests[-1][1]

    clock.now += 3600 - 200  # inside the renewal margin before the hour is up
    gateway.query(order.reference, checkout.gateway_reference)
    assert (sim.grants, sim.refreshes) == (1, 1)
    assert sim.requests[-1][1] != first_token

    clock.now += 3600 * 5  # hours later: still one refresh per renewal, no new grant
    for _ in range(5):
        gateway.query(order.reference, checkout.gateway_reference)
        clock.now += 3600
    assert (sim.grants, sim.refreshes) == (1, 6)
    assert [op for op in operations(sim) if op.startswith("token/")] == (
        ["token/grant"] + ["token/refresh"] * 6)


def test_token_refused_by_bkash_is_refreshed_and_the_call_retried(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.expire_tokens()

    confirmation = gateway.query(order.reference, checkout.gateway_reference)

    assert confirmation.status is Status.PENDING
    assert (sim.grants, sim.refreshes) == (1, 1)
    assert operations(sim)[-3:] == ["payment/status", "token/refresh", "payment/status"]


def test_simulator_blocks_a_third_grant_within_the_hour(
        sim: BkashSimulator, clock: FakeClock, order: PaymentOrder) -> None:
    for _ in range(2):
        make_gateway(sim, clock).start(order)
    with pytest.raises(GatewayError, match="HTTP 429"):
        make_gateway(sim, clock).start(order)
    assert sim.grants == 2


@pytest.mark.parametrize(("field", "value"), [
    ("password", "wrong-password"), ("username", "someone-else"),
    ("app_key", "0000000000"), ("app_secret", "not-the-secret"),
])
def test_wrong_credentials_are_a_clear_gateway_error(
        sim: BkashSimulator, clock: FakeClock, order: PaymentOrder,
        field: str, value: str) -> None:
    gateway = make_gateway(sim, clock, **{field: value})

    with pytest.raises(GatewayError, match=r"bKash refused the token/grant \(check username"):
        gateway.start(order)
    assert sim.grants == 0
    assert sim.payments == {}


def test_missing_credentials_are_refused_up_front(sim: BkashSimulator) -> None:
    with pytest.raises(GatewayError, match="credentials missing: app_secret"):
        BkashGateway(GatewayConfig(name="bkash", base_url=sim.url, credentials={
            "username": "u", "password": "p", "app_key": "k"}))


def test_failing_query_api_is_a_gateway_error(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.fail_queries = True

    with pytest.raises(GatewayError, match="HTTP 503"):
        gateway.query(order.reference, checkout.gateway_reference)


def test_unreachable_bkash_is_a_gateway_error(clock: FakeClock, order: PaymentOrder) -> None:
    simulator = BkashSimulator(clock=clock).start()
    gateway = make_gateway(simulator, clock)
    simulator.stop()

    with pytest.raises(GatewayError, match="bKash token/grant"):
        gateway.start(order)


@pytest.mark.parametrize(("amount", "currency", "message"), [
    (Decimal("500.005"), "BDT", "at most 2 decimals"),
    (Decimal("0"), "BDT", "positive"),
    (Decimal("500.00"), "USD", "BDT only"),
])
def test_orders_bkash_cannot_take_are_refused_before_calling_it(
        gateway: BkashGateway, sim: BkashSimulator, order: PaymentOrder,
        amount: Decimal, currency: str, message: str) -> None:
    with pytest.raises(GatewayError, match=message):
        gateway.start(replace(order, amount=amount, currency=currency))
    assert sim.payments == {}


def test_processes_share_one_token_through_the_store(sim: BkashSimulator, order: PaymentOrder,
                                                     tmp_path: Path) -> None:
    """The web app, the scheduler and the CLI each build their own adapter: with the shared
    store only the first grants; the others reuse its token (bKash blocks > 2 grants/hour)."""
    from payments.config import adapter

    config = GatewayConfig(name="bkash", base_url=sim.url, credentials=sim.credentials,
                           timeout=5.0)
    for _ in range(5):  # five processes (or five scheduler runs) one after another
        gateway = adapter(config, tmp_path)
        gateway.start(order)
        gateway.close()  # type: ignore[attr-defined]
    assert sim.grants == 1
    assert (tmp_path / "bkash-token.json").stat().st_mode & 0o777 == 0o600


def test_query_payment_names_the_invoice_merchant_invoice_and_it_is_read(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(order)
    sim.pay(checkout.gateway_reference, deliver=False)  # the callback never came
    answer = gateway.query(order.reference, checkout.gateway_reference)  # polling executes
    assert (answer.status, answer.reference) == (Status.PAID, "PI-000123")
    again = gateway.query(order.reference, checkout.gateway_reference)  # payment/status only
    assert "merchantInvoiceNumber" not in again.raw  # bKash's Query Payment field names
    assert (again.raw["merchantInvoice"], again.reference) == ("PI-000123", "PI-000123")
    assert again.status is Status.PAID


def test_bkash_appends_its_query_to_the_callback_url_by_concatenation(
        gateway: BkashGateway, sim: BkashSimulator, receiver: ReturnReceiver,
        order: PaymentOrder) -> None:
    checkout = gateway.start(replace(order, return_url=f"{receiver.url}/pay/return?ref=PI-1"))
    delivery = sim.pay(checkout.gateway_reference)
    assert delivery.url.endswith(
        f"/pay/return?ref=PI-1?paymentID={checkout.gateway_reference}&status=success")
    # what a server parses from that: our ref swallowed bKash's paymentID
    assert receiver.received[-1].query == {
        "ref": f"PI-1?paymentID={checkout.gateway_reference}", "status": "success"}
