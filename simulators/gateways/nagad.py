"""A Nagad checkout sandbox (API ``v-0.2.0``) on 127.0.0.1, over real HTTP.

It makes its own RSA key pairs (Nagad's, and the merchant's that Nagad's portal would have
registered) and serves, under ``{url}/api/dfs/``:

* ``check-out/initialize/{merchantId}/{orderId}``: checks the ``X-KM-*`` headers, decrypts
  ``sensitiveData`` with Nagad's private key, verifies the merchant's SHA256withRSA signature,
  the merchant id and order id (a reused order id is refused), and answers a ``sensitiveData``
  encrypted for the merchant with Nagad's signature;
* ``check-out/complete/{paymentReferenceId}``: the same checks, plus Nagad's challenge, the
  currency code (050) and the amount; answers ``{"status": "Success", "callBackUrl": ...}``
  (a small hosted page this server also serves);
* ``verify/payment/{paymentReferenceId}``: the payment's state.

:meth:`NagadSimulator.pay` plays the subscriber on Nagad's page, then the browser redirect
``GET merchantCallbackURL?merchant=..&order_id=..&payment_ref_id=..&status=..`` as Nagad
sends it. Faults: ``fail_queries`` (verify answers 503), ``tamper_signature`` (Nagad's
signature on the initialize answer does not match its content).

Assumed where Nagad's public material says nothing: error answers are HTTP 400
``{"reason": ..., "message": ...}``; an unpaid payment verifies as ``Initiated``; a failed one
as ``Aborted`` with ``status_code`` ``01_0000_000`` in the callback; refunds (made outside
the checkout API) do not show in the verify answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulators.gateways.base import Delivery, GatewaySimulator, LocalHttpServer

PREFIX = "/remote-payment-gateway-1.0"
API = f"{PREFIX}/api/dfs/"
CENT = Decimal("0.01")
REQUIRED_HEADERS = ("x-km-api-version", "x-km-ip-v4", "x-km-client-type")
DHAKA = timezone(timedelta(hours=6))


# Nagad's side of the crypto, written here on its own (not borrowed from the adapter) so that
# a mistake in the adapter's RSA use cannot cancel itself out in the tests.
def _encrypt(public_key: rsa.RSAPublicKey, plain: bytes) -> str:
    return base64.b64encode(public_key.encrypt(plain, padding.PKCS1v15())).decode()


def _decrypt(private_key: rsa.RSAPrivateKey, text: str) -> bytes:
    return private_key.decrypt(base64.b64decode(text, validate=True), padding.PKCS1v15())


def _sign(private_key: rsa.RSAPrivateKey, plain: bytes) -> str:
    return base64.b64encode(private_key.sign(plain, padding.PKCS1v15(), hashes.SHA256())
                            ).decode()


def _signed_by(public_key: rsa.RSAPublicKey, plain: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), plain,
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _now_text() -> str:
    return datetime.now(DHAKA).strftime("%Y%m%d%H%M%S")


@dataclass
class SimPayment:
    """One payment as Nagad holds it."""

    reference: str
    order_id: str
    challenge: str
    created: str
    amount: Decimal | None = None  # set by complete
    callback_url: str = ""
    additional_info: object = None
    status: str = "Initiated"
    paid_amount: Decimal | None = None
    issuer_ref: str | None = None
    paid_at: str | None = None
    refunded: Decimal = Decimal(0)


class NagadError(Exception):
    """A refusal the simulated Nagad answers with HTTP 400."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NagadSimulator:
    """Nagad's checkout, for tests (see the module documentation)."""

    name = "nagad"

    def __init__(self, *, merchant_id: str = "683002007104225",
                 merchant_number: str = "01711428036") -> None:
        # Nagad's own key pair (public half in credentials), and the merchant's
        self.nagad_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.merchant_public_key = merchant_key.public_key()  # registered with Nagad
        self.merchant_id = merchant_id
        self.credentials: Mapping[str, str] = {
            "merchant_id": merchant_id,
            "merchant_number": merchant_number,
            "merchant_private_key": _pem_private(merchant_key),
            "nagad_public_key": _pem_public(self.nagad_key.public_key()),
        }
        self.fail_queries = False
        self.tamper_signature = False
        self.payments: dict[str, SimPayment] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self._lock = threading.Lock()
        self._http: LocalHttpServer | None = None
        self.url = ""

    # -- GatewaySimulator -------------------------------------------------------------------

    def start(self) -> NagadSimulator:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._http = LocalHttpServer(Handler, "nagad-simulator")
        self.url = f"{self._http.base}{PREFIX}"
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def pay(self, gateway_reference: str, *, amount: Decimal | None = None,
            succeed: bool = True, deliver: bool = True) -> Delivery:
        """The subscriber pays (or aborts) on Nagad's page; Nagad redirects the browser to
        the merchant callback URL with the outcome in the query string."""
        with self._lock:
            payment = self.payments[gateway_reference]
            if payment.amount is None:
                raise ValueError(f"{gateway_reference}: checkout was never completed")
            payment.paid_at = _now_text()
            if succeed:
                payment.status = "Success"
                payment.paid_amount = payment.amount if amount is None else amount
                payment.issuer_ref = secrets.token_hex(5).upper()
            else:
                payment.status = "Aborted"
            query = {
                "merchant": self.merchant_id,
                "order_id": payment.order_id,
                "payment_ref_id": payment.reference,
                "status": payment.status,
                "status_code": "00_0000_000" if succeed else "01_0000_000",
                "message": "Successful Transaction" if succeed else "Aborted by customer",
                "payment_dt": payment.paid_at,
                "issuer_payment_ref": payment.issuer_ref or "",
            }
            target = payment.callback_url
        split = urlsplit(target)
        merged = {**dict(parse_qsl(split.query)), **query}
        url = split._replace(query=urlencode(merged)).geturl()
        if not deliver:
            return Delivery(method="GET", url=url, query=merged)
        response = httpx.get(url, timeout=10.0, follow_redirects=False)
        return Delivery(method="GET", url=url, query=merged,
                        headers={"User-Agent": "nagad-simulator (browser redirect)"},
                        status=response.status_code)

    def refund(self, transaction_id: str, amount: Decimal, *, deliver: bool = True
               ) -> Delivery | None:
        """Record a refund of a paid payment. Nagad sends no notification for it and the
        verify answer does not show it (refunds go through Nagad's merchant portal)."""
        with self._lock:
            payment = next(p for p in self.payments.values() if p.issuer_ref == transaction_id)
            payment.refunded += amount
        return None

    # -- internals ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str],
               body: Mapping[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """Answer one API call: (HTTP status, JSON body)."""
        operation = path.removeprefix(API)
        with self._lock:
            self.requests.append((method, operation, dict(headers)))
            try:
                # Nagad's own sample calls verify with a bare GET: only check-out needs these
                missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
                if missing and operation.startswith("check-out/"):
                    raise NagadError("InvalidRequest", f"missing header {missing[0]}")
                parts = operation.split("/")
                if method == "POST" and parts[:2] == ["check-out", "initialize"] \
                        and len(parts) == 4:
                    return 200, self._initialize(parts[2], parts[3], body or {})
                if method == "POST" and parts[:2] == ["check-out", "complete"] \
                        and len(parts) == 3:
                    return 200, self._complete(parts[2], body or {})
                if method == "GET" and parts[:2] == ["verify", "payment"] and len(parts) == 3:
                    if self.fail_queries:
                        return 503, {"reason": "ServiceUnavailable",
                                     "message": "Service Unavailable"}
                    return 200, self._verify(parts[2])
                return 404, {"reason": "NotFound", "message": "No such API"}
            except NagadError as exc:
                return 400, {"reason": exc.reason, "message": exc.message}

    def _open(self, body: Mapping[str, Any]) -> dict[str, Any]:
        sealed, signature = body.get("sensitiveData"), body.get("signature")
        if not isinstance(sealed, str) or not isinstance(signature, str):
            raise NagadError("InvalidRequest", "sensitiveData and signature are required")
        try:
            plain = _decrypt(self.nagad_key, sealed)
            data = json.loads(plain)
        except (ValueError, binascii.Error) as exc:
            raise NagadError("DecryptionFailed", "sensitiveData cannot be decrypted") from exc
        if not _signed_by(self.merchant_public_key, plain, signature):
            raise NagadError("InvalidSignature", "Invalid merchant signature")
        if not isinstance(data, dict):
            raise NagadError("InvalidRequest", "sensitiveData is not a JSON object")
        if data.get("merchantId") != self.merchant_id:
            raise NagadError("InvalidMerchant", "Invalid merchant id")
        return data

    def _seal(self, data: Mapping[str, Any]) -> dict[str, str]:
        plain = json.dumps(data, separators=(",", ":")).encode()
        signed = plain + b" " if self.tamper_signature else plain
        return {"sensitiveData": _encrypt(self.merchant_public_key, plain),
                "signature": _sign(self.nagad_key, signed)}

    def _initialize(self, merchant_id: str, order_id: str, body: Mapping[str, Any]
                    ) -> dict[str, Any]:
        if merchant_id != self.merchant_id:
            raise NagadError("InvalidMerchant", "Invalid merchant id")
        data = self._open(body)
        if data.get("orderId") != order_id or not data.get("challenge") \
                or not data.get("datetime"):
            raise NagadError("InvalidRequest", "sensitiveData does not match the request")
        if any(p.order_id == order_id for p in self.payments.values()):
            raise NagadError("DuplicateOrderId", "Order id already used")
        reference = f"MDE{secrets.token_hex(12).upper()}"
        challenge = secrets.token_hex(20)
        self.payments[reference] = SimPayment(reference=reference, order_id=order_id,
                                              challenge=challenge, created=_now_text())
        return self._seal({"paymentReferenceId": reference, "challenge": challenge,
                           "acceptDateTime": _now_text()})

    def _complete(self, reference: str, body: Mapping[str, Any]) -> dict[str, Any]:
        payment = self.payments.get(reference)
        if payment is None:
            raise NagadError("InvalidPaymentRefId", "Invalid payment reference id")
        data = self._open(body)
        if data.get("orderId") != payment.order_id:
            raise NagadError("InvalidRequest", "Order id does not match the payment")
        if not secrets.compare_digest(str(data.get("challenge", "")), payment.challenge):
            raise NagadError("InvalidChallenge", "Challenge does not match")
        if data.get("currencyCode") != "050":
            raise NagadError("InvalidCurrency", "Invalid currency code")
        try:
            amount = Decimal(str(data.get("amount")))
        except InvalidOperation as exc:
            raise NagadError("InvalidAmount", "Invalid amount") from exc
        if amount <= 0 or amount != amount.quantize(CENT):
            raise NagadError("InvalidAmount", "Invalid amount")
        callback = body.get("merchantCallbackURL")
        if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
            raise NagadError("InvalidRequest", "Invalid merchantCallbackURL")
        if payment.amount is not None:
            raise NagadError("InvalidRequest", "Payment already completed")
        payment.amount = amount
        payment.callback_url = callback
        payment.additional_info = body.get("additionalMerchantInfo")
        return {"status": "Success",
                "callBackUrl": f"{self.url.removesuffix(PREFIX)}/check-out/{reference}"}

    def _verify(self, reference: str) -> dict[str, Any]:
        payment = self.payments.get(reference)
        if payment is None:
            raise NagadError("InvalidPaymentRefId", "Invalid payment reference id")
        amount = payment.paid_amount if payment.paid_amount is not None else payment.amount
        return {
            "merchantId": self.merchant_id,
            "orderId": payment.order_id,
            "paymentRefId": payment.reference,
            "amount": f"{amount or 0:.2f}",
            "clientMobileNo": "017****1234" if payment.status == "Success" else None,
            "merchantMobileNo": self.credentials["merchant_number"],
            "orderDateTime": payment.created,
            "issuerPaymentDateTime": payment.paid_at,
            "issuerPaymentRefNo": payment.issuer_ref,
            "additionalMerchantInfo": payment.additional_info,
            "status": payment.status,
            "statusCode": "000" if payment.status == "Success" else "001",
            "cancelIssuerDateTime": None,
            "cancelIssuerRefNo": None,
        }


class _Handler(BaseHTTPRequestHandler):
    sim: NagadSimulator
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per answer: headers and body apart trip Nagle + delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/check-out/"):
            page = (f"<!doctype html><title>Nagad payment</title><p>Pay {path[11:]} with your "
                    "Nagad account (simulated).").encode()
            self._send(200, page, "text/html; charset=utf-8")
            return
        self._api("GET", path, None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(400, b'{"reason":"InvalidRequest","message":"Invalid JSON"}',
                       "application/json")
            return
        self._api("POST", urlsplit(self.path).path, body)

    def _api(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        if not path.startswith(API):
            self._send(404, b'{"reason":"NotFound","message":"Not Found"}', "application/json")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.sim.handle(method, path, headers, body)
        self._send(status, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if TYPE_CHECKING:  # mypy checks that the simulator offers the common surface
    def _conforms(implementation: NagadSimulator) -> GatewaySimulator:
        return implementation
