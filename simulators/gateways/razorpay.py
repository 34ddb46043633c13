"""A local Razorpay for the tests: payment links, payments, orders, refunds and webhooks.

Real HTTP on 127.0.0.1 speaking Razorpay's documented API (razorpay.com/docs/api): HTTP basic
auth ``key_id:key_secret`` on every call (401 ``BAD_REQUEST_ERROR`` "Authentication failed"
otherwise), JSON in and out, errors as ``{"error": {"code", "description", ...}}``:

* ``POST /v1/payment_links``, ``GET /v1/payment_links/{id}``, ``GET /v1/payment_links``
  (``?reference_id=``); the hosted page at ``/i/{short code}`` (:attr:`short_url`).
* ``GET /v1/payments/{id}``, ``GET /v1/orders/{id}``, ``GET /v1/orders/{id}/payments``,
  ``GET /v1/refunds/{id}``.

The subscriber paying (:meth:`RazorpaySimulator.pay`) creates the link's order (its ``notes``
copied from the link's, as in Razorpay's ``payment_link.paid`` sample payload) and a payment,
then sends the account's webhooks: ``payment.captured``, ``order.paid`` and
``payment_link.paid`` (or ``payment.failed``), each a separate POST with its own
``X-Razorpay-Event-Id`` and an ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with
the webhook secret. Like on Razorpay, the webhook URL is account configuration, not part of a
payment: set :attr:`RazorpaySimulator.webhook_url` (and :attr:`subscribed` to choose events).

A paid link with a ``callback_url`` also sends the payer's browser back there with
``razorpay_payment_id``, ``razorpay_payment_link_id``, ``razorpay_payment_link_reference_id``,
``razorpay_payment_link_status`` and ``razorpay_signature`` = hex HMAC-SHA256(key_secret,
``link_id|reference_id|status|payment_id``) (Razorpay, "Payment Links: verify the signature").
That redirect is recorded in :attr:`redirects`, not followed: the browser is the test's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from simulators.gateways.base import Delivery, LocalHttpServer

# ISO 4217 exponents of the currencies the simulator takes (Razorpay: smallest unit).
EXPONENTS = {"INR": 2, "USD": 2, "EUR": 2, "GBP": 2, "SGD": 2, "MYR": 2, "JPY": 0, "KWD": 3}
ALL_EVENTS = frozenset({"payment.captured", "payment.failed", "order.paid",
                        "payment_link.paid", "refund.processed"})


def _id(prefix: str) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(14))


def _error(code: str, description: str, **extra: object) -> dict[str, Any]:
    return {"error": {"code": code, "description": description, "source": "business",
                      "step": "payment_initiation", "reason": "input_validation_failed",
                      "metadata": {}, **extra}}


class RazorpaySimulator:
    """Razorpay's API and webhooks on a free port of 127.0.0.1 (see the module docs)."""

    name = "razorpay"

    def __init__(self, key_id: str = "rzp_test_radbill00000001",
                 key_secret: str = "radbill-test-key-secret",  # noqa: S107 - test mode keys
                 webhook_secret: str = "radbill-webhook-secret") -> None:  # noqa: S107
        self.credentials: Mapping[str, str] = {
            "key_id": key_id, "key_secret": key_secret, "webhook_secret": webhook_secret}
        self.webhook_url = ""  # the dashboard's webhook URL; empty: no webhooks are sent
        self.subscribed: set[str] = set(ALL_EVENTS)
        self.fail_queries = False
        self.url = ""
        self.deliveries: list[Delivery] = []
        self.redirects: list[Delivery] = []  # payers' browsers sent back to callback_url
        self.requests: list[tuple[str, str]] = []
        self.links: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._http: LocalHttpServer | None = None

    # -- GatewaySimulator -------------------------------------------------------------------

    def start(self) -> RazorpaySimulator:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        self._http = LocalHttpServer(_handler(self), "razorpay-sim")
        self.url = self._http.base
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def pay(self, gateway_reference: str, *, amount: Decimal | None = None,
            succeed: bool = True, deliver: bool = True) -> Delivery:
        """The subscriber pays payment link *gateway_reference* (``plink_...``). Returns the
        last webhook sent (``payment_link.paid``, or ``payment.failed``); every one sent is in
        :attr:`deliveries`."""
        now = int(time.time())
        with self._lock:
            link = self.links[gateway_reference]
            if link["status"] != "created":
                raise ValueError(f"payment link {gateway_reference} is {link['status']}")
            currency = link["currency"]
            minor = link["amount"] if amount is None else _minor(amount, currency)
            order = self._link_order(link, now)
            order["attempts"] += 1
            payment: dict[str, Any] = {
                "id": _id("pay_"), "entity": "payment", "amount": minor, "currency": currency,
                "status": "captured" if succeed else "failed", "order_id": order["id"],
                "invoice_id": None, "international": False, "method": "upi",
                "amount_refunded": 0, "refund_status": None, "captured": succeed,
                "description": f"#{link['id'][6:]}", "card_id": None, "bank": None,
                "wallet": None, "vpa": "subscriber@okaxis", "email": "void@razorpay.com",
                "contact": link["customer"].get("contact", ""), "notes": [],
                "fee": minor * 2 // 100 if succeed else None,
                "tax": minor * 36 // 10000 if succeed else None,
                "error_code": None if succeed else "BAD_REQUEST_ERROR",
                "error_description": None if succeed else "Payment failed",
                "error_source": None if succeed else "customer",
                "error_step": None if succeed else "payment_authorization",
                "error_reason": None if succeed else "payment_failed",
                "acquirer_data": {"rrn": str(secrets.randbelow(10**12)).zfill(12)},
                "created_at": now,
            }
            self.payments[payment["id"]] = payment
            events: list[tuple[str, dict[str, Any]]]
            if succeed:
                order["amount_paid"] += minor
                order["amount_due"] = max(order["amount"] - order["amount_paid"], 0)
                order["status"] = "paid" if order["amount_due"] == 0 else "attempted"
                link["amount_paid"] += minor
                link["status"] = "paid" if link["amount_paid"] >= link["amount"] \
                    else "partially_paid"
                link["payments"].append({
                    "amount": minor, "created_at": now, "method": "upi",
                    "payment_id": payment["id"], "plink_id": link["id"],
                    "status": "captured", "updated_at": now})
                link["updated_at"] = now
                events = [("payment.captured", {"payment": payment}),
                          ("order.paid", {"payment": payment, "order": order}),
                          ("payment_link.paid", {"payment_link": link, "order": order,
                                                 "payment": payment})]
            else:
                order["status"] = "attempted"
                events = [("payment.failed", {"payment": payment})]
            snapshots = [(name, json.loads(json.dumps(entities))) for name, entities in events]
        sent = [self._webhook(name, entities, deliver) for name, entities in snapshots]
        if succeed and link.get("callback_url"):
            self.redirects.append(self._callback(link, payment["id"]))
        return sent[-1]

    def _callback(self, link: Mapping[str, Any], payment_id: str) -> Delivery:
        query = {"razorpay_payment_id": payment_id,
                 "razorpay_payment_link_id": link["id"],
                 "razorpay_payment_link_reference_id": link["reference_id"],
                 "razorpay_payment_link_status": link["status"]}
        message = "|".join((link["id"], link["reference_id"], link["status"], payment_id))
        query["razorpay_signature"] = hmac.new(self.credentials["key_secret"].encode(),
                                               message.encode(), hashlib.sha256).hexdigest()
        target = str(link["callback_url"])
        joiner = "&" if "?" in target else "?"
        return Delivery(method="GET", url=f"{target}{joiner}{urlencode(query)}", query=query)

    def refund(self, transaction_id: str, amount: Decimal, *, deliver: bool = True
               ) -> Delivery | None:
        """Refund *amount* of payment *transaction_id* (``pay_...``), processed at once
        (normal speed, as in test mode); sends ``refund.processed``."""
        now = int(time.time())
        with self._lock:
            payment = self.payments[transaction_id]
            minor = _minor(amount, payment["currency"])
            if not payment["captured"] or \
                    payment["amount_refunded"] + minor > payment["amount"] or minor <= 0:
                raise ValueError(f"cannot refund {amount} of {transaction_id}")
            refund = {
                "id": _id("rfnd_"), "entity": "refund", "amount": minor,
                "currency": payment["currency"], "payment_id": payment["id"], "notes": {},
                "receipt": None, "acquirer_data": {"arn": None}, "created_at": now,
                "batch_id": None, "status": "processed", "speed_processed": "normal",
                "speed_requested": "normal"}
            self.refunds[refund["id"]] = refund
            payment["amount_refunded"] += minor
            full = payment["amount_refunded"] == payment["amount"]
            payment["refund_status"] = "full" if full else "partial"
            if full:
                payment["status"] = "refunded"
            entities = json.loads(json.dumps({"refund": refund, "payment": payment}))
        return self._webhook("refund.processed", entities, deliver)

    # -- webhooks -------------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        """``X-Razorpay-Signature`` for *body* (to build a webhook only the holder of the
        webhook secret could send)."""
        secret = self.credentials["webhook_secret"].encode()
        return hmac.new(secret, body, hashlib.sha256).hexdigest()

    def _webhook(self, event: str, entities: Mapping[str, Any], deliver: bool) -> Delivery:
        payload = {name: {"entity": entity} for name, entity in entities.items()}
        body = json.dumps({
            "entity": "event", "account_id": "acc_RadbillSim0001", "event": event,
            "contains": list(entities), "payload": payload, "created_at": int(time.time()),
        }).encode()
        headers = {"Content-Type": "application/json",
                   "X-Razorpay-Signature": self.sign(body),
                   "X-Razorpay-Event-Id": _id("evt_"),
                   "User-Agent": "Razorpay-Webhook/v1"}
        status = None
        if deliver and self.webhook_url and event in self.subscribed:
            status = _post(self.webhook_url, body, headers)
        delivery = Delivery(method="POST", url=self.webhook_url, headers=headers, body=body,
                            status=status)
        self.deliveries.append(delivery)
        return delivery

    # -- the API -------------------------------------------------------------------------------

    def _link_order(self, link: dict[str, Any], now: int) -> dict[str, Any]:
        """The order behind a payment link, created when first paid (notes copied)."""
        if link.get("order_id"):
            return self.orders[link["order_id"]]
        order = {"id": _id("order_"), "entity": "order", "amount": link["amount"],
                 "amount_paid": 0, "amount_due": link["amount"], "currency": link["currency"],
                 "receipt": None, "offer_id": None, "status": "created", "attempts": 0,
                 "notes": dict(link["notes"]), "created_at": now}
        self.orders[order["id"]] = order
        link["order_id"] = order["id"]
        return order

    def api_create_link(self, data: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/payment_links``."""
        amount, currency = data.get("amount"), data.get("currency", "INR")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 100:
            return 400, _error("BAD_REQUEST_ERROR",
                               "The amount must be atleast INR 1.00.", field="amount")
        if currency not in EXPONENTS:
            return 400, _error("BAD_REQUEST_ERROR", "The currency is invalid.",
                               field="currency")
        reference = data.get("reference_id")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 40):
            return 400, _error("BAD_REQUEST_ERROR",
                               "The reference id may not be greater than 40 characters.",
                               field="reference_id")
        notes = data.get("notes") or {}
        if not isinstance(notes, dict) or len(notes) > 15:
            return 400, _error("BAD_REQUEST_ERROR", "notes: at most 15 keys", field="notes")
        now = int(time.time())
        with self._lock:
            if reference and any(link["reference_id"] == reference
                                 for link in self.links.values()):
                return 400, _error("BAD_REQUEST_ERROR",
                                   f"Payment Link with reference {reference} already exists")
            code = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                           for _ in range(8))
            link = {
                "id": _id("plink_"), "accept_partial": bool(data.get("accept_partial")),
                "amount": amount, "amount_paid": 0, "currency": currency,
                "callback_method": data.get("callback_method", ""),
                "callback_url": data.get("callback_url", ""), "cancelled_at": 0,
                "created_at": now, "customer": data.get("customer") or {},
                "description": data.get("description", ""),
                "expire_by": data.get("expire_by", 0), "expired_at": 0,
                "first_min_partial_amount": 0, "notes": notes,
                "notify": data.get("notify") or {"sms": False, "email": False},
                "payments": [], "reference_id": reference or "",
                "reminder_enable": bool(data.get("reminder_enable")), "reminders": [],
                "short_url": f"{self.url}/i/{code}", "status": "created",
                "updated_at": now, "upi_link": False, "user_id": "",
            }
            self.links[link["id"]] = link
            return 200, json.loads(json.dumps(link))

    def api_get(self, path: str, params: Mapping[str, str]) -> tuple[int, object]:
        """Every ``GET /v1/...`` fetch."""
        parts = path.strip("/").split("/")
        with self._lock:
            if parts == ["v1", "payment_links"]:
                links = [link for link in self.links.values()
                         if "reference_id" not in params
                         or link["reference_id"] == params["reference_id"]]
                return 200, {"payment_links": links}
            tables = {"payment_links": self.links, "payments": self.payments,
                      "orders": self.orders, "refunds": self.refunds}
            if len(parts) == 3 and parts[0] == "v1" and parts[1] in tables:
                found = tables[parts[1]].get(parts[2])
                if found is None:
                    return 400, _error("BAD_REQUEST_ERROR",
                                       "The id provided does not exist")
                return 200, found
            if len(parts) == 4 and parts[:2] == ["v1", "orders"] and parts[3] == "payments":
                items = [p for p in self.payments.values() if p["order_id"] == parts[2]]
                return 200, {"entity": "collection", "count": len(items), "items": items}
        return 404, _error("BAD_REQUEST_ERROR", "The requested URL was not found on the server.")


def _minor(amount: Decimal, currency: str) -> int:
    minor = amount.scaleb(EXPONENTS[currency])
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} {amount} is finer than the minor unit")
    return int(minor)


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> int | None:
    """POST like Razorpay's webhook sender; our HTTP status, or None if it did not connect."""
    # Only ever the http(s) webhook URL a test configured.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _handler(sim: RazorpaySimulator) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(
        f"{sim.credentials['key_id']}:{sim.credentials['key_secret']}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read :attr:`RazorpaySimulator.requests` instead."""

        def _reply(self, status: int, payload: object, content_type: str = "application/json"
                   ) -> None:
            body = (json.dumps(payload) if content_type == "application/json"
                    else str(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), expected.encode()):
                return True
            self._reply(401, _error("BAD_REQUEST_ERROR", "Authentication failed",
                                    source="NA", step="NA", reason="NA"))
            return False

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            sim.requests.append(("GET", parts.path))
            if parts.path.startswith("/i/"):
                known = any(link["short_url"].endswith(parts.path)
                            for link in sim.links.values())
                page = "<html><body>Razorpay (simulated) payment page</body></html>"
                self._reply(200 if known else 404, page if known else "Not Found", "text/html")
                return
            if not self._authorised():
                return
            if sim.fail_queries:
                self._reply(503, _error("SERVER_ERROR", "The server is temporarily unavailable"))
                return
            self._reply(*sim.api_get(parts.path, dict(parse_qsl(parts.query))))

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            sim.requests.append(("POST", parts.path))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorised():
                return
            if parts.path.rstrip("/") != "/v1/payment_links":
                self._reply(404, _error("BAD_REQUEST_ERROR",
                                        "The requested URL was not found on the server."))
                return
            try:
                data = json.loads(raw)
            except ValueError:
                self._reply(400, _error("BAD_REQUEST_ERROR", "The request body is not JSON"))
                return
            if not isinstance(data, dict):
                self._reply(400, _error("BAD_REQUEST_ERROR", "The request body is not JSON"))
                return
            self._reply(*sim.api_create_link(data))

    return Handler


if TYPE_CHECKING:
    from simulators.gateways.base import GatewaySimulator

    def _implements(candidate: RazorpaySimulator) -> GatewaySimulator:
        """mypy checks that this class offers the whole protocol."""
        return candidate
