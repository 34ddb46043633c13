"""Nagad online payment gateway (checkout API ``v-0.2.0``) behind :class:`PaymentGateway`.

The flow, as Nagad's own merchant integration sample (PHP, 2019-2020) does it:

1. ``POST /api/dfs/check-out/initialize/{merchantId}/{orderId}`` with ``dateTime``
   (``YYYYMMDDhhmmss``, Asia/Dhaka), ``sensitiveData`` = base64 of the JSON
   ``{merchantId, datetime, orderId, challenge}`` RSA-encrypted with **Nagad's public key**
   (PKCS#1 v1.5, what PHP's ``openssl_public_encrypt`` does) and ``signature`` = base64
   SHA256withRSA over the same JSON with the **merchant's private key**. Nagad answers its own
   ``sensitiveData`` (encrypted for the merchant's public key) and ``signature`` (Nagad's
   private key): we decrypt it with the merchant private key and verify the signature with
   Nagad's public key, giving ``paymentReferenceId`` and Nagad's ``challenge``.
2. ``POST /api/dfs/check-out/complete/{paymentReferenceId}`` with the order's
   ``{merchantId, orderId, currencyCode: "050", amount, challenge}`` encrypted and signed the
   same way, plus ``merchantCallbackURL``: Nagad answers ``{"status": "Success",
   "callBackUrl": ...}``, the hosted page the subscriber's browser goes to.
3. Nagad sends the browser back with ``GET merchantCallbackURL?merchant=..&order_id=..
   &payment_ref_id=..&status=Success&status_code=..&message=..&payment_dt=..
   &issuer_payment_ref=..``.
4. ``GET /api/dfs/verify/payment/{paymentReferenceId}`` gives the payment's state:
   ``merchantId``, ``orderId``, ``paymentRefId``, ``amount``, ``issuerPaymentRefNo`` (Nagad's
   transaction id), ``status`` (``Success`` when paid).

Every request carries ``X-KM-Api-Version: v-0.2.0``, ``X-KM-IP-V4`` and
``X-KM-Client-Type: PC_WEB``. Nagad's sample sends the customer's IP in ``X-KM-IP-V4``;
:class:`PaymentOrder` has none, so we send ``credentials["client_ip"]`` (``127.0.0.1`` if
unset). Nagad's IP whitelisting concerns the ISP server's own address.

What authenticates a callback: nothing in it (no signature in the query string). Only the
verify API's answer is believed: status, amount, order id and transaction id come from Nagad,
and the answer must name our merchant id and the same payment reference (and the callback's
``order_id``, when present), else :class:`SignatureError`. A reference Nagad refuses to
verify (HTTP 4xx) is a :class:`SignatureError` too. What Nagad signs is the initialize answer:
a bad signature there (or one that does not decrypt) raises :class:`SignatureError` and no
payment is started.

Checked against Nagad's integration sample and public integrations: paths, headers, the
sensitiveData fields, PKCS#1 v1.5 + SHA256withRSA, currency code 050, the callback's query
names, the verify answer's fields. Not confirmed publicly, so handled generically: the error
body (we report ``reason``/``message`` if present), every ``status`` value besides ``Success``
(``Aborted``, ``Cancelled``, ``Failed`` map to FAILED; anything else to PENDING, never PAID),
limits on ``orderId`` (we send our reference unchanged), and refunds (the verify API shows no
refund we could rely on, so :meth:`NagadGateway.query` never returns REFUNDED).

SDK: Nagad publishes no Python SDK (only the PHP sample above). PyPI's ``nagadpy`` (0.0.2,
2024) is a small community package; we speak the HTTP API with ``httpx`` and do the RSA with
``cryptography``, which keeps timeouts explicit and the signature checks in our hands.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.gateways.base import (
    Checkout,
    Confirmation,
    GatewayConfig,
    GatewayError,
    PaymentGateway,
    PaymentOrder,
    SignatureError,
    Status,
)

API_VERSION = "v-0.2.0"
BDT = "050"  # ISO 4217 numeric: Nagad takes taka only
DHAKA = timezone(timedelta(hours=6))  # Bangladesh has had no daylight saving since 2009
CENT = Decimal("0.01")
_STATUS = {
    "Success": Status.PAID,
    "Aborted": Status.FAILED,
    "Cancelled": Status.FAILED,
    "Failed": Status.FAILED,
}


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM, or from the bare base64 DER Nagad's portal hands out."""
    key = (serialization.load_pem_private_key(text.encode(), password=None)
           if "-----BEGIN" in text
           else serialization.load_der_private_key(base64.b64decode(text), password=None))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GatewayError("Nagad merchant private key is not an RSA key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM, or from bare base64 DER (SubjectPublicKeyInfo)."""
    key = (serialization.load_pem_public_key(text.encode())
           if "-----BEGIN" in text
           else serialization.load_der_public_key(base64.b64decode(text)))
    if not isinstance(key, rsa.RSAPublicKey):
        raise GatewayError("Nagad public key is not an RSA key")
    return key


def encrypt(public_key: rsa.RSAPublicKey, plain: bytes) -> str:
    """base64(RSA PKCS#1 v1.5 encryption), as Nagad expects ``sensitiveData``."""
    return base64.b64encode(public_key.encrypt(plain, padding.PKCS1v15())).decode()


def decrypt(private_key: rsa.RSAPrivateKey, text: str) -> bytes:
    """The plaintext of a base64 PKCS#1 v1.5 ``sensitiveData``."""
    return private_key.decrypt(base64.b64decode(text, validate=True), padding.PKCS1v15())


def sign(private_key: rsa.RSAPrivateKey, plain: bytes) -> str:
    """base64 SHA256withRSA (PKCS#1 v1.5) signature."""
    return base64.b64encode(
        private_key.sign(plain, padding.PKCS1v15(), hashes.SHA256())).decode()


def signature_valid(public_key: rsa.RSAPublicKey, plain: bytes, signature: str) -> bool:
    """Whether ``signature`` is a valid SHA256withRSA signature of ``plain``."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), plain,
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


_REF = re.compile(r"[A-Za-z0-9_-]{1,128}")

class NagadGateway:
    """Nagad checkout. ``config.credentials``: ``merchant_id``, ``merchant_private_key`` and
    ``nagad_public_key`` (PEM or bare base64), optionally ``merchant_number`` (the account
    number) and ``client_ip``; ``config.base_url`` e.g.
    ``http://sandbox.mynagad.com:10080/remote-payment-gateway-1.0``."""

    currencies = frozenset({"BDT"})  # currencyCode is fixed at 050 (taka)

    def __init__(self, config: GatewayConfig, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        creds = config.credentials
        missing = [k for k in ("merchant_id", "merchant_private_key", "nagad_public_key")
                   if not creds.get(k)]
        if missing:
            raise GatewayError(f"Nagad credentials missing: {', '.join(missing)}")
        try:
            self._merchant_key = load_private_key(creds["merchant_private_key"])
            self._nagad_key = load_public_key(creds["nagad_public_key"])
        except (ValueError, TypeError, binascii.Error) as exc:
            raise GatewayError(f"Nagad keys unreadable: {exc}") from exc
        self.name = config.name
        self._merchant_id = creds["merchant_id"]
        self._merchant_number = creds.get("merchant_number", "")
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"), timeout=httpx.Timeout(config.timeout),
            transport=transport, follow_redirects=False,
            headers={"X-KM-Api-Version": API_VERSION,
                     "X-KM-IP-V4": creds.get("client_ip", "127.0.0.1"),
                     "X-KM-Client-Type": "PC_WEB",
                     "Accept": "application/json"})

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # -- PaymentGateway -------------------------------------------------------------------

    def start(self, order: PaymentOrder) -> Checkout:
        """Initialize (signed, encrypted; Nagad's signed answer verified), then complete the
        order with its amount; returns Nagad's hosted page. Moves no money."""
        if order.currency != "BDT":
            raise GatewayError(f"Nagad collects BDT only, not {order.currency}")
        amount = _amount_text(order.amount)
        now = datetime.now(DHAKA).strftime("%Y%m%d%H%M%S")
        init_body: dict[str, Any] = {"dateTime": now, **self._sealed({
            "merchantId": self._merchant_id, "datetime": now, "orderId": order.reference,
            "challenge": secrets.token_hex(20)})}
        if self._merchant_number:
            init_body["accountNumber"] = self._merchant_number
        answer = self._request(
            "POST", f"/api/dfs/check-out/initialize/{self._merchant_id}/{order.reference}",
            "initialize", init_body)
        opened = self._open(answer)
        reference, challenge = opened.get("paymentReferenceId"), opened.get("challenge")
        if not isinstance(reference, str) or not isinstance(challenge, str):
            raise GatewayError(f"Nagad initialize answered without paymentReferenceId/"
                               f"challenge: {sorted(opened)}")
        completed = self._request("POST", f"/api/dfs/check-out/complete/{reference}",
                                  "complete", {
            **self._sealed({"merchantId": self._merchant_id, "orderId": order.reference,
                            "currencyCode": BDT, "amount": amount, "challenge": challenge}),
            "merchantCallbackURL": order.return_url,
            "additionalMerchantInfo": {"invoiceNumber": order.invoice_number},
        })
        url = completed.get("callBackUrl")
        if completed.get("status") != "Success" or not isinstance(url, str):
            raise GatewayError(f"Nagad complete refused: {completed.get('status')} "
                               f"{completed.get('message', '')}".strip())
        return Checkout(gateway_reference=reference, redirect_url=url)

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        """Handle the browser's return (``payment_ref_id``, ``status``, ``order_id``): only
        the verify API's answer is believed (see the module docstring)."""
        reference = query.get("payment_ref_id", "")
        if not reference or not query.get("status"):
            raise SignatureError("not a Nagad callback: payment_ref_id and status are required")
        if not _REF.fullmatch(reference):  # it goes into the verify URL's path
            raise SignatureError(f"not a Nagad payment_ref_id: {reference[:80]!r}")
        try:
            data = self._verify(reference)
        except _Refused as exc:
            raise SignatureError(f"Nagad does not verify payment_ref_id {reference!r}: "
                                 f"forged or foreign callback ({exc})") from exc
        order_id = query.get("order_id")
        if order_id is not None and order_id != data.get("orderId"):
            raise SignatureError(f"Nagad callback order_id {order_id!r} is not the order "
                                 f"Nagad verified ({data.get('orderId')!r}): tampered")
        return self._confirmation(data, f"callback:{reference}")

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        """The payment's state from the verify API (needs Nagad's payment reference id)."""
        if not gateway_reference:
            raise GatewayError(f"Nagad payment {reference}: paymentReferenceId needed to "
                               "query it")
        return self._confirmation(self._verify(gateway_reference), None)

    def check_credentials(self) -> str | None:
        """Nagad answers its merchant keys only by starting a checkout: nothing to call."""
        return None

    # -- internals --------------------------------------------------------------------------

    def _sealed(self, sensitive: Mapping[str, str]) -> dict[str, str]:
        plain = json.dumps(sensitive, separators=(",", ":")).encode()
        try:
            return {"sensitiveData": encrypt(self._nagad_key, plain),
                    "signature": sign(self._merchant_key, plain)}
        except ValueError as exc:  # longer than one RSA block
            raise GatewayError(f"Nagad sensitiveData too long to encrypt: {exc}") from exc

    def _open(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        sealed, signature = answer.get("sensitiveData"), answer.get("signature")
        if not isinstance(sealed, str) or not isinstance(signature, str):
            raise SignatureError("Nagad answered without sensitiveData/signature")
        try:
            plain = decrypt(self._merchant_key, sealed)
        except (ValueError, binascii.Error) as exc:
            raise SignatureError("Nagad's sensitiveData does not decrypt with our merchant "
                                 "key") from exc
        if not signature_valid(self._nagad_key, plain, signature):
            raise SignatureError("Nagad's signature on its answer does not verify with "
                                 "Nagad's public key")
        try:
            data = json.loads(plain)
        except ValueError as exc:
            raise SignatureError("Nagad's sensitiveData is not JSON") from exc
        if not isinstance(data, dict):
            raise SignatureError("Nagad's sensitiveData is not a JSON object")
        return data

    def _verify(self, reference: str) -> dict[str, Any]:
        data = self._request("GET", f"/api/dfs/verify/payment/{reference}", "verify", None)
        if data.get("merchantId") != self._merchant_id:
            raise SignatureError(f"Nagad verified {reference!r} for merchant "
                                 f"{data.get('merchantId')!r}, not ours")
        if data.get("paymentRefId") != reference:
            raise SignatureError(f"Nagad verified another payment ({data.get('paymentRefId')!r})"
                                 f" than {reference!r}")
        return data

    def _confirmation(self, data: Mapping[str, Any], event_id: str | None) -> Confirmation:
        status = _STATUS.get(str(data.get("status")), Status.PENDING)
        trx = data.get("issuerPaymentRefNo") or None
        if status is Status.PAID and not trx:
            raise GatewayError(f"Nagad reports a paid payment without issuerPaymentRefNo: {data}")
        try:
            amount = Decimal(str(data.get("amount"))).quantize(CENT)
        except InvalidOperation as exc:
            raise GatewayError(f"Nagad answered an unreadable amount {data.get('amount')!r}"
                               ) from exc
        return Confirmation(
            reference=str(data.get("orderId", "")),
            status=status,
            amount=amount,
            currency="BDT",  # the verify answer names none: Nagad settles taka only
            transaction_id=str(trx) if status is Status.PAID else None,
            gateway_reference=str(data["paymentRefId"]),
            event_id=event_id,
            raw=dict(data),
        )

    def _request(self, method: str, path: str, operation: str,
                 body: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            response = self._client.request(method, path,
                                            json=dict(body) if body is not None else None)
        except httpx.HTTPError as exc:
            raise GatewayError(f"Nagad {operation}: {type(exc).__name__}: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if 400 <= response.status_code < 500:
            detail = (f"{data.get('reason', '')} {data.get('message', '')}".strip()
                      if isinstance(data, dict) else response.text[:200])
            raise _Refused(f"Nagad {operation} refused (HTTP {response.status_code}): "
                           f"{detail}")
        if response.status_code >= 500:
            raise GatewayError(f"Nagad {operation} answered HTTP {response.status_code}")
        if not isinstance(data, dict):
            raise GatewayError(f"Nagad {operation} answered something that is not a JSON "
                               "object")
        return data


class _Refused(GatewayError):
    """Nagad answered 4xx: it refuses this request (bad signature, unknown reference...)."""


def _amount_text(amount: Decimal) -> str:
    if amount <= 0 or amount != amount.quantize(CENT):
        raise GatewayError(f"Nagad amounts are positive with at most 2 decimals, not {amount}")
    return f"{amount:.2f}"


if TYPE_CHECKING:  # mypy checks that the adapter implements the interface
    def _conforms(implementation: NagadGateway) -> PaymentGateway:
        return implementation
