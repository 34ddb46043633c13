"""A bKash tokenized checkout sandbox (API v1.2.0-beta) on 127.0.0.1, over real HTTP.

Serves, under ``{url}/tokenized/checkout/``: ``token/grant`` and ``token/refresh``
(``username``/``password`` headers, ``app_key``/``app_secret`` body; tokens expire after
``token_lifetime`` seconds on the simulator's clock; a third grant within an hour is refused,
as bKash blocks such accounts), ``create``, ``execute``, ``payment/status`` and
``payment/refund`` (refund, or refund status when no amount is given), each checking the
``Authorization`` token and the ``X-App-Key`` header and answering bKash's JSON shapes
(``statusCode``/``statusMessage``, ``paymentID``, ``trxID``, ``transactionStatus``,
``amount``, ``currency``, ``merchantInvoiceNumber``). ``bkashURL`` points at a small hosted page
this server also serves.

:meth:`BkashSimulator.pay` plays the subscriber on bKash's page: on success the payment becomes
payable (bKash captures only when the merchant calls ``execute``); on failure it is ``Failed``.
Then, as bKash does, the browser is sent to ``callbackURL + "?paymentID=..&status=.."``: bKash
concatenates (its create answer's ``successCallbackURL`` is ``yourURL.com?paymentID=...&
status=success`` for a ``callbackURL`` of ``yourURL.com``), so a callback URL that already has
a query string comes back with two ``?``. The simulator performs that GET and returns the
:class:`Delivery`.

Field names as bKash answers them: create and execute name the invoice
``merchantInvoiceNumber``, Query Payment (``payment/status``) names it ``merchantInvoice`` and
adds ``verificationStatus`` (published sandbox answers of the three calls).

Faults: ``fail_queries`` (``payment/status`` answers 503), ``drop_execute_response`` (execute
completes the payment and then closes the connection without answering, like a timeout).

Assumed where bKash's public documentation says nothing: the answer to wrong credentials
(HTTP 401 with a statusMessage), to an expired token (HTTP 401 ``{"message": "The incoming
token has expired"}``, what bKash's API gateway is reported to send) and to a blocked grant
(HTTP 429), and that a refresh keeps the same ``refresh_token``.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from simulators.gateways.base import Delivery, GatewaySimulator, LocalHttpServer

PREFIX = "/v1.2.0-beta"
CHECKOUT = f"{PREFIX}/tokenized/checkout/"
DHAKA = timezone(timedelta(hours=6))
GRANTS_PER_HOUR = 2
CENT = Decimal("0.01")


def _bkash_time(now: float) -> str:
    # bKash's format, e.g. "2025-12-09T16:12:43:828 GMT+0600"
    moment = datetime.fromtimestamp(now, UTC).astimezone(DHAKA)
    return moment.strftime("%Y-%m-%dT%H:%M:%S:") + f"{moment.microsecond // 1000:03d} GMT+0600"


@dataclass
class SimPayment:
    """One payment as bKash holds it."""

    payment_id: str
    amount: Decimal
    currency: str
    invoice: str
    payer_reference: str
    callback_url: str
    created: float
    status: str = "Initiated"
    authorised: bool = False  # the payer confirmed with PIN on bKash's page
    paid_amount: Decimal | None = None  # what bKash records (a test may make it differ)
    trx_id: str | None = None
    executed: float | None = None
    refunds: list[dict[str, str]] = field(default_factory=list)


class BkashSimulator:
    """bKash's tokenized checkout, for tests (see the module documentation)."""

    name = "bkash"

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 token_lifetime: int = 3600) -> None:
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.credentials: Mapping[str, str] = {
            "username": "sandboxTokenizedUser",
            "password": secrets.token_urlsafe(12),
            "app_key": secrets.token_hex(13),
            "app_secret": secrets.token_hex(26),
        }
        self.fail_queries = False
        self.drop_execute_response = False
        self.grants = 0  # successful token grants
        self.refreshes = 0  # successful token refreshes
        self.requests: list[tuple[str, str]] = []  # (path, Authorization) of every API call
        self.payments: dict[str, SimPayment] = {}
        self._grant_times: list[float] = []
        self._tokens: dict[str, float] = {}  # id_token -> expiry
        self._refresh_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._http: LocalHttpServer | None = None
        self.url = ""

    # -- GatewaySimulator -------------------------------------------------------------------

    def start(self) -> BkashSimulator:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._http = LocalHttpServer(Handler, "bkash-simulator")
        self.url = f"{self._http.base}{PREFIX}"
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def pay(self, gateway_reference: str, *, amount: Decimal | None = None,
            succeed: bool = True, deliver: bool = True) -> Delivery:
        """The payer confirms (or fails) on bKash's page; bKash redirects the browser to
        ``callbackURL?paymentID=..&status=success|failure``. Nothing is captured until the
        merchant executes the payment."""
        with self._lock:
            payment = self.payments[gateway_reference]
            if succeed:
                payment.authorised = True
                payment.paid_amount = payment.amount if amount is None else amount
            else:
                payment.status = "Failed"
            target = payment.callback_url
        query = {"paymentID": gateway_reference, "status": "success" if succeed else "failure"}
        return self._redirect(target, query, deliver)

    def refund(self, transaction_id: str, amount: Decimal, *, deliver: bool = True
               ) -> Delivery | None:
        """Refund part of a completed payment. bKash sends no notification for refunds: they
        show only in its refund-status API (``payment/refund`` without an amount)."""
        with self._lock:
            payment = next(p for p in self.payments.values() if p.trx_id == transaction_id)
            self._record_refund(payment, amount, "refund by test")
        return None

    # -- helpers for tests -------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every issued id_token expired now (refresh tokens stay valid)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    # -- internals ---------------------------------------------------------------------------

    def _redirect(self, target: str, query: Mapping[str, str], deliver: bool) -> Delivery:
        # concatenated, not merged: see the module documentation
        url = f"{target}?{urlencode(query)}"
        seen = dict(parse_qsl(urlsplit(url).query))  # what the merchant's server will parse
        if not deliver:
            return Delivery(method="GET", url=url, query=seen)
        response = httpx.get(url, timeout=10.0, follow_redirects=False)
        return Delivery(method="GET", url=url, query=seen,
                        headers={"User-Agent": "bkash-simulator (browser redirect)"},
                        status=response.status_code)

    def _record_refund(self, payment: SimPayment, amount: Decimal, reason: str
                       ) -> dict[str, str]:
        refund = {
            "originalTrxID": payment.trx_id or "",
            "refundTrxID": _trx_id(),
            "transactionStatus": "Completed",
            "amount": f"{amount:.2f}",
            "currency": payment.currency,
            "charge": "0.00",
            "completedTime": _bkash_time(self.clock()),
            "reason": reason,
        }
        payment.refunds.append(refund)
        return refund

    def handle(  # noqa: PLR0911 - one early answer per refusal, as bKash answers them
            self, path: str, headers: Mapping[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        """Answer one API call: (HTTP status, JSON body or None to drop the connection)."""
        operation = path.removeprefix(CHECKOUT)
        with self._lock:
            self.requests.append((operation, headers.get("authorization", "")))
            if operation == "token/grant":
                return self._grant(headers, body)
            if operation == "token/refresh":
                return self._refresh(headers, body)
            token = headers.get("authorization", "")
            expiry = self._tokens.get(token)
            if expiry is None:
                return 401, {"message": "Unauthorized"}
            if expiry <= self.clock():
                return 401, {"message": "The incoming token has expired"}
            if headers.get("x-app-key") != self.credentials["app_key"]:
                return 200, _error("2001", "Invalid App Key")
            handler = {"create": self._create, "execute": self._execute,
                       "payment/status": self._status, "payment/refund": self._refund_api
                       }.get(operation)
            if handler is None:
                return 404, {"message": "Not Found"}
            return handler(body)

    def _check_user(self, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]] | None:
        if (headers.get("username") != self.credentials["username"]
                or headers.get("password") != self.credentials["password"]):
            return 401, {"statusCode": "4001", "statusMessage": "Invalid username or password"}
        return None

    def _grant(self, headers: Mapping[str, str], body: Mapping[str, Any]
               ) -> tuple[int, dict[str, Any]]:
        refused = self._check_user(headers)
        if refused:
            return refused
        if (body.get("app_key") != self.credentials["app_key"]
                or body.get("app_secret") != self.credentials["app_secret"]):
            return 401, _error("2001", "Invalid App Key")
        now = self.clock()
        self._grant_times = [t for t in self._grant_times if now - t < 3600]
        if len(self._grant_times) >= GRANTS_PER_HOUR:
            return 429, _error("9999", "Too many token grants in an hour: account blocked")
        self._grant_times.append(now)
        self.grants += 1
        refresh_token = secrets.token_urlsafe(32)
        self._refresh_tokens.add(refresh_token)
        return 200, self._issue(refresh_token)

    def _refresh(self, headers: Mapping[str, str], body: Mapping[str, Any]
                 ) -> tuple[int, dict[str, Any]]:
        refused = self._check_user(headers)
        if refused:
            return refused
        if (body.get("app_key") != self.credentials["app_key"]
                or body.get("app_secret") != self.credentials["app_secret"]):
            return 401, _error("2001", "Invalid App Key")
        refresh_token = str(body.get("refresh_token", ""))
        if refresh_token not in self._refresh_tokens:
            return 401, _error("4002", "Invalid refresh token")
        self.refreshes += 1
        return 200, self._issue(refresh_token)

    def _issue(self, refresh_token: str) -> dict[str, Any]:
        id_token = "eyJ" + secrets.token_urlsafe(48)
        self._tokens[id_token] = self.clock() + self.token_lifetime
        return {"statusCode": "0000", "statusMessage": "Successful", "id_token": id_token,
                "token_type": "Bearer", "expires_in": self.token_lifetime,
                "refresh_token": refresh_token}

    def _create(  # noqa: PLR0911 - one bKash error code per invalid field
            self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        for name in ("mode", "payerReference", "callbackURL", "amount", "currency", "intent",
                     "merchantInvoiceNumber"):
            if not body.get(name):
                return 200, _error("2065", "Mendatory field missing")
        if body["mode"] != "0011":
            return 200, _error("2063", "Mode is not valid as per request data")
        if body["currency"] != "BDT":
            return 200, _error("2007", "Invalid currency")
        if body["intent"] != "sale":
            return 200, _error("2008", "Invalid intent")
        if not str(body["callbackURL"]).startswith(("http://", "https://")):
            return 200, _error("2049", "Invalid Merchant Callback URL")
        try:
            amount = Decimal(str(body["amount"]))
        except InvalidOperation:
            return 200, _error("2006", "Invalid amount")
        if amount <= 0 or amount != amount.quantize(CENT):
            return 200, _error("2006", "Invalid amount")
        payment_id = f"TR0011{secrets.token_hex(6)}{int(self.clock() * 1000)}"
        payment = SimPayment(payment_id=payment_id, amount=amount, currency="BDT",
                             invoice=str(body["merchantInvoiceNumber"]),
                             payer_reference=str(body["payerReference"]),
                             callback_url=str(body["callbackURL"]), created=self.clock())
        self.payments[payment_id] = payment
        callback = payment.callback_url
        return 200, {
            "paymentID": payment_id,
            "bkashURL": f"{self.url.removesuffix(PREFIX)}/payment/?paymentId={payment_id}",
            "callbackURL": callback,
            "successCallbackURL": f"{callback}?paymentID={payment_id}&status=success",
            "failureCallbackURL": f"{callback}?paymentID={payment_id}&status=failure",
            "cancelledCallbackURL": f"{callback}?paymentID={payment_id}&status=cancel",
            "amount": str(body["amount"]),
            "intent": "sale",
            "currency": "BDT",
            "paymentCreateTime": _bkash_time(payment.created),
            "transactionStatus": "Initiated",
            "merchantInvoiceNumber": payment.invoice,
            "statusCode": "0000",
            "statusMessage": "Successful",
        }

    def _execute(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any] | None]:
        payment = self.payments.get(str(body.get("paymentID", "")))
        if payment is None:
            return 200, _error("2002", "Invalid Payment ID")
        if payment.status == "Completed":
            return 200, _error("2117", "The payment execution has already been completed")
        if not payment.authorised or payment.status != "Initiated":
            return 200, _error("2056", "Invalid Payment State")
        payment.status = "Completed"
        payment.trx_id = _trx_id()
        payment.executed = self.clock()
        if self.drop_execute_response:
            return 200, None
        return 200, {**self._payment_fields(payment), "payerType": "Customer",
                     "customerMsisdn": "01770618575",
                     "statusCode": "0000", "statusMessage": "Successful"}

    def _status(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.fail_queries:
            return 503, {"message": "Service Unavailable"}
        payment = self.payments.get(str(body.get("paymentID", "")))
        if payment is None:
            return 200, _error("2002", "Invalid Payment ID")
        fields = self._payment_fields(payment)
        # Query Payment calls it merchantInvoice (create and execute: merchantInvoiceNumber)
        fields["merchantInvoice"] = fields.pop("merchantInvoiceNumber")
        return 200, {**fields, "mode": "0011",
                     "paymentCreateTime": _bkash_time(payment.created),
                     "userVerificationStatus": "Complete" if payment.authorised else "Incomplete",
                     "verificationStatus": "Complete" if payment.authorised else "Incomplete",
                     "statusCode": "0000", "statusMessage": "Successful"}

    def _refund_api(  # noqa: PLR0911 - one bKash error code per refusal
            self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        payment = self.payments.get(str(body.get("paymentID", "")))
        if payment is None:
            return 200, _error("2002", "Invalid Payment ID")
        if payment.status != "Completed" or body.get("trxID") != payment.trx_id:
            return 200, _error("2033", "Transaction not found")
        if "amount" not in body:  # refund status
            if not payment.refunds:
                return 200, _error("2033", "Transaction not found")
            return 200, {**payment.refunds[-1], "statusCode": "0000",
                         "statusMessage": "Successful"}
        try:
            amount = Decimal(str(body["amount"]))
        except InvalidOperation:
            return 200, _error("2006", "Invalid amount")
        refunded = sum((Decimal(r["amount"]) for r in payment.refunds), Decimal(0))
        if amount <= 0 or amount + refunded > (payment.paid_amount or payment.amount):
            return 200, _error("2026", "The reversal amount cannot be greater than the "
                                       "original transaction amount")
        refund = self._record_refund(payment, amount, str(body.get("reason", "")))
        return 200, {**refund, "statusCode": "0000", "statusMessage": "Successful"}

    @staticmethod
    def _payment_fields(payment: SimPayment) -> dict[str, Any]:
        amount = payment.amount if payment.paid_amount is None else payment.paid_amount
        fields: dict[str, Any] = {
            "paymentID": payment.payment_id,
            "payerReference": payment.payer_reference,
            "amount": f"{amount:.2f}",
            "currency": payment.currency,
            "intent": "sale",
            "merchantInvoiceNumber": payment.invoice,
            "transactionStatus": payment.status,
        }
        if payment.trx_id:
            fields["trxID"] = payment.trx_id
            fields["paymentExecuteTime"] = _bkash_time(payment.executed or payment.created)
        return fields


def _error(code: str, message: str) -> dict[str, Any]:
    return {"statusCode": code, "statusMessage": message}


def _trx_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


class _Handler(BaseHTTPRequestHandler):
    sim: BkashSimulator
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per answer: headers and body apart trip Nagle + delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if split.path == "/payment/":
            payment_id = dict(parse_qsl(split.query)).get("paymentId", "")
            page = (f"<!doctype html><title>bKash payment</title><p>Pay {payment_id} "
                    "with your bKash wallet (simulated).").encode()
            self._send(200, page, "text/html; charset=utf-8")
        else:
            self._send(404, b'{"message":"Not Found"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(400, json.dumps(_error("2025", "Invalid request body")).encode(),
                       "application/json")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not self.path.startswith(CHECKOUT):
            self._send(404, b'{"message":"Not Found"}', "application/json")
            return
        status, answer = self.sim.handle(self.path, headers, body)
        if answer is None:
            self.close_connection = True  # drop: the client sees no answer at all
            return
        self._send(status, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if TYPE_CHECKING:  # mypy checks that the simulator offers the common surface
    def _conforms(implementation: BkashSimulator) -> GatewaySimulator:
        return implementation
