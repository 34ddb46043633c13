"""Razorpay: Standard Payment Links, signed webhooks, payment/order/refund fetches.

The wire, from Razorpay's API reference (razorpay.com/docs/api) and webhook docs:

* **Start**: ``POST /v1/payment_links`` (JSON, HTTP basic auth ``key_id:key_secret``) with
  ``amount`` in the currency's smallest unit (paise), ``currency``, ``reference_id`` (ours,
  unique, <= 40 chars), ``customer``, ``notes``, ``callback_url``/``callback_method``. The
  answer's ``id`` (``plink_...``) is the gateway reference and ``short_url`` the hosted page.
  We use payment links rather than bare orders because an order needs Checkout.js on a page
  of ours, while a link is a page of Razorpay's we can redirect (or SMS) the subscriber to.
* **Webhooks** are configured per account on the dashboard, not per payment: the
  ``notify_url`` of a :class:`~payments.gateways.base.PaymentOrder` is not sent to Razorpay.
  Each delivery is signed: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with the
  webhook secret (compared in constant time before anything is parsed) and carries
  ``X-Razorpay-Event-Id`` (our ``event_id``, for de-duplication: Razorpay retries, and sends
  events out of order). Handled: ``payment.captured``, ``payment.failed``, ``order.paid``,
  ``payment_link.paid`` (and the other ``payment_link.*``), ``refund.processed`` (and the other
  ``refund.*``).
* **Confirmation**: whatever the event says, the state comes from ``GET /v1/payments/{id}``
  (status, amount, currency, ``amount_refunded``), the refund from ``GET /v1/refunds/{id}``,
  and our reference from ``GET /v1/orders/{order_id}``: Razorpay copies a link's ``notes`` to
  the order it creates for it (the ``payment_link.paid`` sample payload shows both with the
  same notes), and we put our reference in ``notes.radbill_reference``.
* **Query**: ``GET /v1/payment_links/{id}`` (or ``?reference_id=`` when we have no id), then
  the captured payment with ``GET /v1/payments/{id}``.

Mapping: a captured payment (``captured`` true, status ``captured`` or later ``refunded``)
is PAID for payment/order/link events; ``refund.processed`` is REFUNDED with
``refunded_amount`` = the payment's cumulative ``amount_refunded`` (the same figure
:meth:`RazorpayGateway.query` reports, so a caller can post the difference idempotently);
``failed`` is FAILED; anything else PENDING. ``transaction_id`` is the payment id
(``pay_...``). A webhook for a payment that is not ours (no ``radbill_reference`` in its
order's notes: the account's other sales) is confirmed with an empty ``reference`` rather than
an error, because an error makes the endpoint answer non-2xx and Razorpay disables a webhook
that keeps failing for 24 hours.

Amounts: integers in the currency's minor unit (ISO 4217 exponent from
:func:`billing.money.exponent`), converted exactly with ``Decimal``; an amount finer than the
minor unit is refused, never rounded.

Why no SDK: ``razorpay`` (PyPI 2.0.1, official, maintained) is sound on the webhook signature
(``hmac.compare_digest``) and takes a ``base_url``, but it pins TLS verification to a CA bundle
it ships (Mozilla's, dated April 2015) instead of the system's, sets no timeout unless every
call passes one, prints to stdout on connection errors and re-raises raw ``requests``
exceptions, crashes with a JSON error on a non-JSON error page (a proxy's 502), has no type
information, and would add ``requests`` as a dependency. The five calls we need are plain
JSON over basic auth, so we speak them with ``httpx``: explicit timeouts, connection retries,
one error family.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from billing.money import exponent
from payments.gateways.base import (
    CREDENTIALS_PROBE,
    Checkout,
    Confirmation,
    GatewayConfig,
    GatewayError,
    PaymentOrder,
    SignatureError,
    Status,
)
from radbill.errors import InvalidInput

REFERENCE_NOTE = "radbill_reference"
MAX_REFERENCE = 40
SIGNATURE_HEADER = "x-razorpay-signature"
EVENT_ID_HEADER = "x-razorpay-event-id"


def to_minor(amount: Decimal, currency: str) -> int:
    """*amount* in *currency*'s smallest unit (paise for INR), exactly."""
    places = _places(currency)
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        raise GatewayError(f"{currency} {amount} is finer than the currency's minor unit")
    return int(minor)


def from_minor(minor: object, currency: str) -> Decimal:
    """An integer amount in *currency*'s smallest unit as a ``Decimal`` of major units."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise GatewayError(f"Razorpay sent a non-integer amount: {minor!r}")
    places = _places(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def _places(currency: str) -> int:
    try:
        return exponent(currency)
    except InvalidInput as exc:
        raise GatewayError(str(exc)) from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class RazorpayGateway:
    """:class:`~payments.gateways.base.PaymentGateway` for Razorpay.

    Credentials: ``key_id``, ``key_secret`` (API), ``webhook_secret`` (the secret set on the
    dashboard's webhook)."""

    name = "razorpay"
    # Other currencies need "international payments" enabled on the merchant account.
    currencies = frozenset({"INR"})

    def __init__(self, config: GatewayConfig, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        missing = {"key_id", "key_secret", "webhook_secret"} - set(config.credentials)
        if missing:
            raise GatewayError(f"Razorpay gateway {config.name!r} lacks credentials: "
                               f"{', '.join(sorted(missing))}")
        self.config = config
        self._webhook_secret = config.credentials["webhook_secret"].encode()
        # retries=2 repeats only connection attempts (the request never reached Razorpay),
        # so it cannot create a second payment link.
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"), timeout=config.timeout,
            auth=(config.credentials["key_id"], config.credentials["key_secret"]),
            transport=transport or httpx.HTTPTransport(retries=2),
            headers={"User-Agent": "radbill"})

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    # -- PaymentGateway ---------------------------------------------------------------------

    def start(self, order: PaymentOrder) -> Checkout:
        """Create a Standard Payment Link; the subscriber goes to its ``short_url``."""
        if len(order.reference) > MAX_REFERENCE:
            raise GatewayError(f"Razorpay reference_id is at most {MAX_REFERENCE} characters: "
                               f"{order.reference!r}")
        link = self._call("POST", "/v1/payment_links", json={
            "amount": to_minor(order.amount, order.currency),
            "currency": order.currency,
            "accept_partial": False,
            "reference_id": order.reference,
            "description": order.description,
            "customer": {"name": order.customer_name, "contact": order.customer_phone},
            # radbill sends its own SMS/e-mail; Razorpay's would duplicate them.
            "notify": {"sms": False, "email": False},
            "reminder_enable": False,
            "notes": {REFERENCE_NOTE: order.reference, "invoice_number": order.invoice_number},
            "callback_url": order.return_url,
            "callback_method": "get",
        })
        if not link.get("id") or not link.get("short_url"):
            raise GatewayError("Razorpay payment link answer lacks id or short_url")
        return Checkout(gateway_reference=str(link["id"]), redirect_url=str(link["short_url"]))

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        """Verify a webhook's signature, then confirm its payment/refund from the API."""
        signature = _header(headers, SIGNATURE_HEADER)
        if not signature:
            raise SignatureError("Razorpay webhook without X-Razorpay-Signature")
        expected = hmac.new(self._webhook_secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise SignatureError("Razorpay webhook signature does not match")
        try:
            event = json.loads(body)
        except ValueError:
            raise GatewayError("Razorpay webhook body is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("payload"), dict):
            raise GatewayError("Razorpay webhook without a payload")
        name = str(event.get("event", ""))
        payload = event["payload"]
        event_id = _header(headers, EVENT_ID_HEADER)
        link_id = _entity(payload, "payment_link").get("id")
        payment_id = (_entity(payload, "payment").get("id")
                      or _entity(payload, "refund").get("payment_id"))
        if payment_id:
            return self._confirm_payment(
                str(payment_id), refund_id=(_entity(payload, "refund").get("id")
                                            if name.startswith("refund.") else None),
                link_id=str(link_id) if link_id else None, event_id=event_id)
        if link_id:
            # payment_link.expired/cancelled carry no payment: the link's state is the answer.
            return self._query_link(self._call("GET", f"/v1/payment_links/{link_id}"),
                                    None, event_id=event_id)
        raise GatewayError(f"Razorpay event {name!r} names no payment or payment link")

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        """The payment's state from its payment link (by id, else by ``reference_id``)."""
        if gateway_reference:
            link = self._call("GET", f"/v1/payment_links/{gateway_reference}")
        else:
            found = self._call("GET", "/v1/payment_links", params={"reference_id": reference})
            links = found.get("payment_links") or []
            if not links:
                raise GatewayError(f"Razorpay has no payment link with reference_id {reference}")
            link = links[0]
        return self._query_link(link, reference, event_id=None)

    def check_credentials(self) -> str | None:
        """A payment-link search for a reference nobody uses (read-only)."""
        self._call("GET", "/v1/payment_links", params={"reference_id": CREDENTIALS_PROBE})
        return "API key accepted"

    # -- internals --------------------------------------------------------------------------

    def _query_link(self, link: Mapping[str, Any], reference: str | None,
                    event_id: str | None) -> Confirmation:
        link_reference = str(link.get("reference_id") or "")
        if reference is not None and link_reference != reference:
            raise GatewayError(f"Razorpay payment link {link.get('id')} is for "
                               f"{link_reference!r}, not {reference!r}")
        currency = str(link.get("currency", ""))
        captured = [p for p in link.get("payments") or []
                    if isinstance(p, dict) and p.get("status") in ("captured", "refunded")]
        if captured:
            return self._confirm_payment(
                str(captured[0]["payment_id"]), refund_id=None, link_id=str(link["id"]),
                event_id=event_id, report_refunds=True)
        state = {"expired": Status.FAILED, "cancelled": Status.FAILED}.get(
            str(link.get("status")), Status.PENDING)
        return Confirmation(
            reference=link_reference, status=state,
            amount=from_minor(link.get("amount"), currency), currency=currency,
            gateway_reference=str(link.get("id")), event_id=event_id, raw=dict(link))

    def _confirm_payment(self, payment_id: str, *, refund_id: object, link_id: str | None,
                         event_id: str | None, report_refunds: bool = False) -> Confirmation:
        payment = self._call("GET", f"/v1/payments/{payment_id}")
        currency = str(payment.get("currency", ""))
        amount = from_minor(payment.get("amount"), currency)
        refunded = from_minor(payment.get("amount_refunded", 0), currency)
        reference = self._reference(payment)
        status = (Status.PAID if payment.get("captured") is True
                  else Status.FAILED if payment.get("status") == "failed" else Status.PENDING)
        if status is Status.PAID and refunded > 0:
            if refund_id is not None:
                refund = self._call("GET", f"/v1/refunds/{refund_id}")
                if refund.get("payment_id") != payment_id:
                    raise GatewayError(f"Razorpay refund {refund_id} is not of {payment_id}")
                if refund.get("status") == "processed":
                    status = Status.REFUNDED
            elif report_refunds:
                status = Status.REFUNDED
        return Confirmation(
            reference=reference, status=status, amount=amount, currency=currency,
            transaction_id=payment_id if status in (Status.PAID, Status.REFUNDED) else None,
            gateway_reference=link_id, event_id=event_id,
            refunded_amount=refunded if status is Status.REFUNDED else Decimal("0"),
            raw=dict(payment))

    def _reference(self, payment: Mapping[str, Any]) -> str:
        """Our reference for *payment*: ``notes.radbill_reference`` of its order (copied
        there from the payment link's notes). Empty when the payment is not ours."""
        notes = payment.get("notes")
        if isinstance(notes, dict) and notes.get(REFERENCE_NOTE):
            return str(notes[REFERENCE_NOTE])
        order_id = payment.get("order_id")
        if not order_id:
            return ""
        order_notes = self._call("GET", f"/v1/orders/{order_id}").get("notes")
        if isinstance(order_notes, dict):
            return str(order_notes.get(REFERENCE_NOTE) or "")
        return ""

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(f"Razorpay {method} {path} unreachable: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 300:
            error = data.get("error") if isinstance(data, dict) else None
            detail = (error.get("description") if isinstance(error, dict) else None) \
                or response.reason_phrase
            hint = " (check key_id/key_secret)" if response.status_code == 401 else ""
            raise GatewayError(f"Razorpay {method} {path} answered HTTP "
                               f"{response.status_code}: {detail}{hint}")
        if not isinstance(data, dict):
            raise GatewayError(f"Razorpay {method} {path} answered something not a JSON object")
        return data


def _entity(payload: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``payload[kind]["entity"]`` of a webhook, or ``{}``."""
    wrapper = payload.get(kind)
    entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
    return entity if isinstance(entity, dict) else {}


if TYPE_CHECKING:
    from payments.gateways.base import PaymentGateway

    def _implements(candidate: RazorpayGateway) -> PaymentGateway:
        """mypy checks that this class offers the whole protocol."""
        return candidate
