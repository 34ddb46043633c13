"""bKash tokenized checkout (API v1.2.0-beta) behind :class:`PaymentGateway`.

The flow, as bKash documents it (developer.bka.sh, "Tokenized Checkout"):

1. ``POST /tokenized/checkout/token/grant`` with the ``username``/``password`` headers and
   ``app_key``/``app_secret`` in the body gives an ``id_token`` (valid ``expires_in`` = 3600 s)
   and a ``refresh_token``. Every other call sends ``Authorization: <id_token>`` and
   ``X-App-Key: <app_key>``. bKash blocks an account that grants more than twice an hour, so
   the token is cached until shortly before it expires and then renewed with
   ``POST /tokenized/checkout/token/refresh`` (``refresh_token`` in the body), never re-granted
   while a refresh token works.
2. ``POST /tokenized/checkout/create`` (mode ``0011``: checkout without agreement) returns a
   ``paymentID`` and the ``bkashURL`` the subscriber's browser goes to.
3. bKash sends the browser back to our ``callbackURL`` with ``?paymentID=..&status=success``
   (or ``failure`` / ``cancel``) appended by concatenation, so the callback URL must carry
   no query string of its own (radbill's carries the reference in its path). Nothing is
   captured until we call
   ``POST /tokenized/checkout/execute``; its answer carries ``trxID`` and
   ``transactionStatus == "Completed"``.
4. ``POST /tokenized/checkout/payment/status`` tells a payment's state at any time; it names
   the invoice ``merchantInvoice`` where create and execute say ``merchantInvoiceNumber``.

What authenticates a callback: nothing in it. The query string has no signature, so anyone can
forge one. :meth:`BkashGateway.confirm_notification` therefore believes only bKash's own
server-to-server answers (execute, then payment/status): status, amount, currency, trxID and
invoice number come from bKash, never from the callback. A callback naming a paymentID bKash
does not know (statusCode 2002, "Invalid Payment ID") raises :class:`SignatureError`; a
genuine but unpaid paymentID comes back PENDING or FAILED, whatever the callback's ``status``
says. Executing on a forged ``success`` callback is harmless: bKash completes a payment only
if its payer has authorised it on bKash's page.

Refunds: ``payment/status`` does not report them, and bKash's refund-status API answers per
refund transaction; :meth:`query` therefore never returns REFUNDED for bKash (refund
reconciliation belongs with the refund feature, which can use ``payment/refund``).

Checked against bKash's developer documentation as mirrored publicly (endpoints, headers,
fields, token lifetime and the grant limit, the error-code table: 2001 Invalid App Key, 2002
Invalid Payment ID, 2056 Invalid Payment State, 2062/2117 already completed). Not confirmed
publicly, and so handled generically: the HTTP status and body of a refused token grant (we
treat any answer without an ``id_token`` as a refusal), the exact answer to an expired token
(we treat HTTP 401/403 on an API call as "renew the token and retry once"), and the complete
list of ``transactionStatus`` values (unknown ones map to PENDING, never to PAID).

SDK: bKash publishes no official Python SDK. PyPI has community clients (``pybkash``,
``bkash-pgw-tokenized`` (async only), the older ``bkash-client``), none from bKash; this adapter
needs five calls, explicit timeouts and full control of the token cache (the grant limit), so it
speaks the HTTP API directly with ``httpx``.

Token cache scope: one cache per :class:`BkashGateway` instance. Run one instance per process;
with many worker processes each grants its own token, which counts against the same limit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import httpx

from payments.gateways.base import (
    Checkout,
    Confirmation,
    GatewayConfig,
    GatewayError,
    PaymentGateway,
    PaymentOrder,
    SignatureError,
    Status,
    TokenStore,
)

SUCCESS = "0000"
INVALID_PAYMENT_ID = "2002"
CHECKOUT = "/tokenized/checkout"
# Renew this long before bKash's stated expiry ("refresh around the 50th-55th minute").
REFRESH_MARGIN = 300.0
CENT = Decimal("0.01")

_STATUS = {
    "Completed": Status.PAID,
    "Initiated": Status.PENDING,
    "Authorized": Status.PENDING,
    "Pending Authorized": Status.PENDING,
    "Failed": Status.FAILED,
    "Failure": Status.FAILED,
    "Cancelled": Status.FAILED,
    "Expired": Status.FAILED,
    "Declined": Status.FAILED,
}
CALLBACK_STATUSES = frozenset({"success", "failure", "cancel"})


class BkashApiError(GatewayError):
    """bKash answered with a non-success ``statusCode`` (or ``errorCode``)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"bKash {operation} refused: {code} {message}".strip())
        self.code = code


class _NoAnswer(GatewayError):
    """The request may or may not have reached bKash (timeout, dropped connection)."""


class BkashGateway:
    """bKash tokenized checkout. ``config.credentials``: ``username``, ``password``,
    ``app_key``, ``app_secret``; ``config.base_url`` e.g.
    ``https://tokenized.sandbox.bka.sh/v1.2.0-beta``."""

    currencies = frozenset({"BDT"})  # create answers 2007 "Invalid currency" for any other

    def __init__(self, config: GatewayConfig, *,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.BaseTransport | None = None,
                 token_store: TokenStore | None = None) -> None:
        missing = [k for k in ("username", "password", "app_key", "app_secret")
                   if not config.credentials.get(k)]
        if missing:
            raise GatewayError(f"bKash credentials missing: {', '.join(missing)}")
        self.name = config.name
        self._config = config
        self._creds = config.credentials
        self._clock = clock
        self._store = token_store
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"),
                                    timeout=httpx.Timeout(config.timeout),
                                    transport=transport, follow_redirects=False)
        self._lock = threading.Lock()
        self._id_token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # -- PaymentGateway -------------------------------------------------------------------

    def start(self, order: PaymentOrder) -> Checkout:
        """Create the payment (``/create``, mode 0011); nothing is captured until execute."""
        if order.currency != "BDT":
            raise GatewayError(f"bKash collects BDT only, not {order.currency}")
        data = self._call("create", {
            "mode": "0011",
            "payerReference": order.customer_phone or order.reference,
            "callbackURL": order.return_url,
            "amount": _amount_text(order.amount),
            "currency": order.currency,
            "intent": "sale",
            "merchantInvoiceNumber": order.reference,
        })
        payment_id, url = data.get("paymentID"), data.get("bkashURL")
        if not isinstance(payment_id, str) or not isinstance(url, str):
            raise GatewayError(f"bKash create answered without paymentID/bkashURL: {data}")
        return Checkout(gateway_reference=payment_id, redirect_url=url)

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        """Handle the browser's return to ``callbackURL`` (see the module docstring for why
        only bKash's server-to-server answers are believed)."""
        payment_id = query.get("paymentID", "")
        status = query.get("status", "")
        if not payment_id or status not in CALLBACK_STATUSES:
            raise SignatureError("not a bKash callback: paymentID and status "
                                 "(success|failure|cancel) are required")
        event_id = f"callback:{payment_id}"
        if status == "success":
            try:
                executed = self._call("execute", {"paymentID": payment_id})
            except BkashApiError:
                # Already executed (a replayed callback), not authorised by the payer, unknown
                # paymentID: bKash's payment/status says what actually happened.
                pass
            except _NoAnswer:
                pass  # execute may have completed at bKash: ask, never execute twice blind
            else:
                if executed.get("paymentID") == payment_id and executed.get("trxID"):
                    return self._confirmation(executed, event_id)
        return self._status(payment_id, event_id, unknown_is_forged=True)

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        """The payment's state from ``payment/status`` (needs bKash's paymentID)."""
        if not gateway_reference:
            raise GatewayError(f"bKash payment {reference}: paymentID needed to query it")
        found = self._status(gateway_reference, None, unknown_is_forged=False)
        if found.status is Status.PENDING and found.raw.get("verificationStatus") == "Complete":
            # The payer authorised it but the callback never reached us (closed browser, lost
            # redirect): bKash captures only on execute, so polling must execute it, else the
            # authorisation lapses and a payer who did everything right stays suspended.
            try:
                executed = self._call("execute", {"paymentID": gateway_reference})
            except (BkashApiError, _NoAnswer):
                return self._status(gateway_reference, None, unknown_is_forged=False)
            if executed.get("paymentID") == gateway_reference and executed.get("trxID"):
                return self._confirmation(executed, None)
            return self._status(gateway_reference, None, unknown_is_forged=False)
        return found

    def check_credentials(self) -> str | None:
        """The shared token: reused while valid (bKash blocks a merchant granting more than
        two an hour), else refreshed or granted, which proves the app key and secret."""
        self._token()
        return "token granted to these credentials"

    # -- internals --------------------------------------------------------------------------

    def _status(self, payment_id: str, event_id: str | None, *,
                unknown_is_forged: bool) -> Confirmation:
        try:
            data = self._call("payment/status", {"paymentID": payment_id})
        except BkashApiError as exc:
            if unknown_is_forged and exc.code == INVALID_PAYMENT_ID:
                raise SignatureError(f"bKash does not know paymentID {payment_id!r}: "
                                     "forged or foreign callback") from exc
            raise
        if data.get("paymentID") != payment_id:
            raise GatewayError(f"bKash payment/status answered for another payment: {data}")
        return self._confirmation(data, event_id)

    def _confirmation(self, data: Mapping[str, Any], event_id: str | None) -> Confirmation:
        status = _STATUS.get(str(data.get("transactionStatus")), Status.PENDING)
        trx_id = data.get("trxID") or None
        if status is Status.PAID and not trx_id:
            raise GatewayError(f"bKash reports a completed payment without trxID: {data}")
        # create and execute answer merchantInvoiceNumber, Query Payment merchantInvoice
        invoice = data.get("merchantInvoiceNumber") or data.get("merchantInvoice") or ""
        return Confirmation(
            reference=str(invoice),
            status=status,
            amount=_parse_amount(data.get("amount")),
            currency=str(data.get("currency", "")),
            transaction_id=str(trx_id) if trx_id else None,
            gateway_reference=str(data["paymentID"]),
            event_id=event_id,
            raw=dict(data),
        )

    def _call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST an API call with the cached token; on 401/403 renew the token, retry once."""
        for attempt in (1, 2):
            token = self._token(force_renew=attempt == 2)
            response = self._post(operation, payload, {
                "Authorization": token, "X-App-Key": self._creds["app_key"]})
            if response.status_code in (401, 403) and attempt == 1:
                continue
            data = _json(operation, response)
            code = str(data.get("statusCode") or data.get("errorCode") or SUCCESS)
            if code != SUCCESS:
                raise BkashApiError(operation, code, str(
                    data.get("statusMessage") or data.get("errorMessage") or ""))
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, operation: str, payload: Mapping[str, Any],
              headers: Mapping[str, str]) -> httpx.Response:
        try:
            return self._client.post(f"{CHECKOUT}/{operation}", json=dict(payload),
                                     headers={"Accept": "application/json", **headers})
        except (httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
            raise _NoAnswer(f"bKash {operation}: no answer ({type(exc).__name__}: {exc})"
                            ) from exc
        except httpx.HTTPError as exc:
            raise GatewayError(f"bKash {operation}: {type(exc).__name__}: {exc}") from exc

    def _token(self, *, force_renew: bool = False) -> str:
        with self._lock, self._store.locked() if self._store else contextlib.nullcontext():
            now = self._clock()
            self._adopt_stored(now)
            if self._id_token and not force_renew and now < self._expires_at - REFRESH_MARGIN:
                return self._id_token
            if self._refresh_token:
                try:
                    return self._take_token("token/refresh", {
                        "app_key": self._creds["app_key"],
                        "app_secret": self._creds["app_secret"],
                        "refresh_token": self._refresh_token}, now)
                except _NoAnswer:
                    raise  # bKash may be slow, not refusing: granting now could waste a grant
                except GatewayError:
                    # A refresh token can expire or be revoked: fall back to one grant.
                    self._refresh_token = None
            return self._take_token("token/grant", {
                "app_key": self._creds["app_key"],
                "app_secret": self._creds["app_secret"]}, now)

    def _adopt_stored(self, now: float) -> None:
        """Take over a newer token another process stored (it refreshed or granted)."""
        data = self._store.load() if self._store else None
        if not data or not isinstance(data.get("id_token"), str):
            return
        left = float(str(data.get("expires_at", 0))) - time.time()
        if data["id_token"] != self._id_token and now + left > self._expires_at:
            self._id_token = str(data["id_token"])
            self._expires_at = now + left
        if isinstance(data.get("refresh_token"), str) and data["refresh_token"]:
            self._refresh_token = str(data["refresh_token"])

    def _take_token(self, operation: str, body: Mapping[str, str], now: float) -> str:
        response = self._post(operation, body, {"username": self._creds["username"],
                                                "password": self._creds["password"]})
        try:
            data = _json(operation, response)
        except GatewayError as exc:
            raise GatewayError(f"bKash refused the {operation} (check username, password, "
                               f"app_key, app_secret): {exc}") from exc
        id_token = data.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise GatewayError(
                f"bKash refused the {operation} (check username, password, app_key, "
                f"app_secret): {data.get('statusCode', '')} "
                f"{data.get('statusMessage') or data.get('message') or data}")
        self._id_token = id_token
        self._refresh_token = str(data.get("refresh_token") or self._refresh_token or "") or None
        try:
            lifetime = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._expires_at = now + lifetime
        if self._store is not None:
            self._store.save({"id_token": id_token, "refresh_token": self._refresh_token,
                              "expires_at": time.time() + lifetime})
        return id_token


def _json(operation: str, response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        detail = data if isinstance(data, dict) else response.text[:200]
        raise GatewayError(f"bKash {operation} answered HTTP {response.status_code}: {detail}")
    if not isinstance(data, dict):
        raise GatewayError(f"bKash {operation} answered something that is not a JSON object")
    return data


def _amount_text(amount: Decimal) -> str:
    if amount <= 0 or amount != amount.quantize(CENT):
        raise GatewayError(f"bKash amounts are positive with at most 2 decimals, not {amount}")
    return f"{amount:.2f}"


def _parse_amount(value: object) -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError) as exc:
        raise GatewayError(f"bKash answered an unreadable amount {value!r}") from exc


if TYPE_CHECKING:  # mypy checks that the adapter implements the interface
    def _conforms(implementation: BkashGateway) -> PaymentGateway:
        return implementation
