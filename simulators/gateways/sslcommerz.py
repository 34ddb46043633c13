"""A local SSLCommerz (API v4) for the tests: session, hosted page, IPN, validation, query.

It speaks what SSLCommerz documents (developer.sslcommerz.com/doc/v4) over real HTTP on
127.0.0.1: ``POST /gwprocess/v4/api.php`` (form in, JSON out), the hosted page at
``/gwprocess/v4/gw.php?Q=pay&SESSIONKEY=...``, ``GET /validator/api/validationserverAPI.php``
and ``GET /validator/api/merchantTransIDvalidationAPI.php`` (transaction query by
``tran_id``, refund initiation by ``bank_tran_id`` and refund status by ``refund_ref_id``).
Credentials are checked on every call. The IPN it POSTs is signed the way SSLCommerz signs
it (``verify_key``/``verify_sign``, md5) with the field set of a real sandbox IPN.

What SSLCommerz does not document and this simulator assumes (see
:mod:`payments.gateways.sslcommerz`): wrong credentials on the validation/query APIs answer
``APIConnect: FAILED``; a refunded transaction's query element carries ``refund_ref_id``,
``refund_amount`` (cumulative) and ``refund_status`` "refunded". Non-BDT payments settle in
BDT at :attr:`SslcommerzSimulator.bdt_rate`; ``currency_type``/``currency_amount`` keep the
ordered currency, as the documentation describes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from simulators.gateways.base import Delivery, LocalHttpServer

CENT = Decimal("0.01")
# The signed fields of a real sandbox IPN (in SSLCommerz's order).
IPN_KEYS = (
    "amount", "bank_tran_id", "base_fair", "card_brand", "card_issuer", "card_issuer_country",
    "card_issuer_country_code", "card_no", "card_sub_brand", "card_type", "currency",
    "currency_amount", "currency_rate", "currency_type", "error", "risk_level", "risk_title",
    "status", "store_amount", "store_id", "tran_date", "tran_id", "val_id", "value_a",
    "value_b", "value_c", "value_d",
)
SESSION_REQUIRED = (
    "total_amount", "currency", "tran_id", "success_url", "fail_url", "cancel_url",
    "cus_name", "cus_email", "cus_phone", "cus_add1", "cus_city", "cus_country",
    "shipping_method", "product_name", "product_category", "product_profile",
)


def sign(fields: Mapping[str, str], store_passwd: str) -> str:
    """``verify_sign`` over the fields named in ``fields["verify_key"]`` (SSLCommerz's
    algorithm, written independently of the adapter's so that one cannot hide the other's
    mistake)."""
    keys = sorted([*fields["verify_key"].split(","), "store_passwd"])
    values = dict(fields)
    values["store_passwd"] = hashlib.md5(store_passwd.encode()).hexdigest()  # noqa: S324
    text = "&".join(f"{k}={values[k]}" for k in keys if k in values)
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class _Session:
    """One session (one attempt at paying a ``tran_id``)."""

    key: str
    form: dict[str, str]
    status: str = "PENDING"  # PENDING until paid: VALID, FAILED; VALIDATED once validated
    val_id: str = ""
    bank_tran_id: str = ""
    amount: Decimal = Decimal("0")  # what the payer paid, in the ordered currency
    tran_date: str = ""
    validated: bool = False
    refunds: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def tran_id(self) -> str:
        return self.form["tran_id"]

    @property
    def currency(self) -> str:
        return self.form["currency"]


class SslcommerzSimulator:
    """SSLCommerz's sandbox on a free port of 127.0.0.1 (see the module documentation)."""

    name = "sslcommerz"

    def __init__(self, store_id: str = "radbi0000000000test",
                 store_passwd: str = "radbi0000000000test@ssl",  # noqa: S107 - a sandbox's
                 bdt_rate: Decimal = Decimal("110.0000")) -> None:
        self.credentials: Mapping[str, str] = {"store_id": store_id, "store_passwd": store_passwd}
        self.bdt_rate = bdt_rate
        self.fail_queries = False
        # SSLCommerz's fraud screen marks payments "risky" (risk_level 1): money taken, the
        # merchant decides whether to deliver
        self.risky = False
        self.url = ""
        self.deliveries: list[Delivery] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API call
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._http: LocalHttpServer | None = None

    # -- GatewaySimulator -------------------------------------------------------------------

    def start(self) -> SslcommerzSimulator:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        self._http = LocalHttpServer(_handler(self), "sslcommerz-sim")
        self.url = self._http.base
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def pay(self, gateway_reference: str, *, amount: Decimal | None = None,
            succeed: bool = True, deliver: bool = True) -> Delivery:
        """The subscriber pays (or fails to) on the hosted page of session *gateway_reference*
        (the ``sessionkey``); SSLCommerz then POSTs the IPN to the session's ``ipn_url``."""
        with self._lock:
            session = self._sessions[gateway_reference]
            if session.status != "PENDING":
                raise ValueError(f"session {gateway_reference} is already {session.status}")
            session.tran_date = _now()
            session.amount = Decimal(session.form["total_amount"]) if amount is None else amount
            if succeed:
                session.status = "VALID"
                session.val_id = _token(27)
                session.bank_tran_id = _token(27)
            else:
                session.status = "FAILED"
            fields = self._ipn_fields(session)
        target = session.form.get("ipn_url", "")
        body = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status = _post(target, body, headers) if deliver and target else None
        delivery = Delivery(method="POST", url=target, headers=headers, body=body,
                            status=status)
        self.deliveries.append(delivery)
        return delivery

    def refund(self, transaction_id: str, amount: Decimal, *, deliver: bool = True
               ) -> Delivery | None:
        """Refund *amount* of the payment with ``bank_tran_id`` *transaction_id*. SSLCommerz
        sends no notification for refunds: it shows in the transaction query."""
        answer = self._initiate_refund(transaction_id, amount)
        if answer.get("status") != "success":
            raise ValueError(f"refund refused: {answer.get('errorReason')}")
        return None

    # -- for tests ----------------------------------------------------------------------------

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        """*fields* with ``verify_key``/``verify_sign`` as SSLCommerz would sign them (to
        build an IPN only someone holding the store password could send)."""
        signed = {k: v for k, v in fields.items() if k not in ("verify_sign", "verify_key")}
        signed["verify_key"] = ",".join(k for k in IPN_KEYS if k in signed)
        signed["verify_sign"] = sign(signed, self.credentials["store_passwd"])
        return signed

    def session(self, gateway_reference: str) -> dict[str, str]:
        """The form the merchant opened session *gateway_reference* with."""
        with self._lock:
            return dict(self._sessions[gateway_reference].form)

    # -- the API ------------------------------------------------------------------------------

    def _authorised(self, params: Mapping[str, str]) -> bool:
        return (params.get("store_id") == self.credentials["store_id"]
                and params.get("store_passwd") == self.credentials["store_passwd"])

    def api_session(self, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /gwprocess/v4/api.php``."""
        failed: dict[str, Any] = {"status": "FAILED", "sessionkey": "", "GatewayPageURL": ""}
        if not self._authorised(form):
            return {**failed, "failedreason": "Store Credential Error Or Store is De-active"}
        missing = [k for k in SESSION_REQUIRED if not form.get(k)]
        if missing:
            return {**failed, "failedreason": f"Invalid Information: {missing[0]} is missing"}
        try:
            amount = Decimal(form["total_amount"])
        except InvalidOperation:
            return {**failed, "failedreason": "Invalid Information: total_amount"}
        if amount != amount.quantize(CENT) or amount <= 0:
            return {**failed, "failedreason": "Invalid Information: total_amount"}
        if len(form["tran_id"]) > 30 or len(form["currency"]) != 3:
            return {**failed, "failedreason": "Invalid Information: tran_id or currency"}
        key = _token(32).upper()
        with self._lock:
            self._sessions[key] = _Session(key=key, form=dict(form))
        page = f"{self.url}/gwprocess/v4/gw.php?Q=pay&SESSIONKEY={key}"
        return {"status": "SUCCESS", "failedreason": "", "sessionkey": key, "gw": {},
                "redirectGatewayURL": f"{page}&cardname=", "directPaymentURL": "",
                "GatewayPageURL": page, "storeBanner": "", "storeLogo": "", "desc": [],
                "is_direct_pay_enable": "0"}

    def api_validation(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /validator/api/validationserverAPI.php``."""
        if not self._authorised(params):
            return {"APIConnect": "FAILED", "status": "INVALID_REQUEST"}
        with self._lock:
            found = [s for s in self._sessions.values()
                     if s.val_id and s.val_id == params.get("val_id")]
            if not found:
                return {"APIConnect": "DONE", "status": "INVALID_TRANSACTION"}
            session = found[0]
            answer = self._record(session)
            # VALID the first time it is validated, VALIDATED after that.
            answer["status"] = "VALIDATED" if session.validated else "VALID"
            session.validated = True
            answer.update({"APIConnect": "DONE", "validated_on": _now(), "gw_version": "v4"})
            return answer

    def api_merchant_trans(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /validator/api/merchantTransIDvalidationAPI.php``: query by ``tran_id``,
        refund by ``bank_tran_id`` + ``refund_amount``, refund status by ``refund_ref_id``."""
        if not self._authorised(params):
            return {"APIConnect": "FAILED"}
        if "refund_amount" in params and "bank_tran_id" in params:
            try:
                amount = Decimal(params["refund_amount"])
            except InvalidOperation:
                return {"APIConnect": "INVALID_REQUEST", "errorReason": "refund_amount"}
            return self._initiate_refund(params["bank_tran_id"], amount)
        if "refund_ref_id" in params:
            return self._refund_status(params["refund_ref_id"])
        if "tran_id" in params:
            with self._lock:
                elements = [self._record(s) for s in self._sessions.values()
                            if s.tran_id == params["tran_id"] and s.status != "PENDING"]
            return {"APIConnect": "DONE", "no_of_trans_found": len(elements),
                    "element": elements}
        return {"APIConnect": "INVALID_REQUEST"}

    # -- state ---------------------------------------------------------------------------------

    def _settled(self, session: _Session) -> tuple[Decimal, str]:
        """What the store settles: BDT, converted when the payer paid another currency."""
        if session.currency == "BDT":
            return session.amount, "BDT"
        return (session.amount * self.bdt_rate).quantize(CENT), "BDT"

    def _record(self, session: _Session) -> dict[str, Any]:
        """The transaction as the validation/query APIs describe it."""
        settled, settled_currency = self._settled(session)
        record: dict[str, Any] = {
            "status": "VALIDATED" if session.validated else session.status,
            "tran_date": session.tran_date,
            "tran_id": session.tran_id,
            "val_id": session.val_id,
            "amount": f"{settled:.2f}",
            "store_amount": f"{(settled * Decimal('0.975')).quantize(CENT):.2f}",
            "bank_tran_id": session.bank_tran_id,
            "card_type": "BKASH-BKash",
            "card_no": "",
            "card_issuer": "BKash Mobile Banking",
            "card_brand": "MOBILEBANKING",
            "card_issuer_country": "Bangladesh",
            "card_issuer_country_code": "BD",
            "currency": settled_currency,
            "currency_type": session.currency,
            "currency_amount": f"{session.amount:.2f}",
            "currency_rate": "1.0000" if session.currency == "BDT" else f"{self.bdt_rate}",
            "base_fair": "0.00",
            "value_a": session.form.get("value_a", ""),
            "value_b": session.form.get("value_b", ""),
            "value_c": session.form.get("value_c", ""),
            "value_d": session.form.get("value_d", ""),
            "risk_level": "1" if self.risky else "0",
            "risk_title": "Risky" if self.risky else "Safe",
            "error": "" if session.status != "FAILED" else "Payment declined by the payer",
        }
        if session.refunds:
            record.update({
                "refund_ref_id": session.refunds[-1][0],
                "refund_amount": f"{sum(a for _, a in session.refunds):.2f}",
                "refund_status": "refunded",
            })
        return record

    def _ipn_fields(self, session: _Session) -> dict[str, str]:
        record = self._record(session)
        fields = {k: str(record.get(k, "")) for k in IPN_KEYS if k != "store_id"}
        fields["status"] = session.status
        fields["store_id"] = self.credentials["store_id"]
        fields["card_sub_brand"] = "Classic"
        return self.sign(fields)

    def _initiate_refund(self, bank_tran_id: str, amount: Decimal) -> dict[str, Any]:
        with self._lock:
            found = [s for s in self._sessions.values()
                     if s.bank_tran_id and s.bank_tran_id == bank_tran_id]
            if not found or found[0].status not in ("VALID", "VALIDATED"):
                return {"APIConnect": "DONE", "bank_tran_id": bank_tran_id,
                        "status": "failed", "errorReason": "Invalid bank_tran_id"}
            session = found[0]
            already = sum((a for _, a in session.refunds), Decimal("0"))
            if amount <= 0 or already + amount > session.amount:
                return {"APIConnect": "DONE", "bank_tran_id": bank_tran_id,
                        "status": "failed", "errorReason": "Refund amount exceeds the payment"}
            ref = _token(20)
            session.refunds.append((ref, amount))
            return {"APIConnect": "DONE", "bank_tran_id": bank_tran_id,
                    "trans_id": session.tran_id, "refund_ref_id": ref, "status": "success",
                    "errorReason": ""}

    def _refund_status(self, refund_ref_id: str) -> dict[str, Any]:
        with self._lock:
            for session in self._sessions.values():
                for ref, _amount in session.refunds:
                    if ref == refund_ref_id:
                        return {"APIConnect": "DONE", "bank_tran_id": session.bank_tran_id,
                                "tran_id": session.tran_id, "refund_ref_id": ref,
                                "initiated_on": _now(), "refunded_on": _now(),
                                "status": "refunded", "errorReason": ""}
        return {"APIConnect": "DONE", "refund_ref_id": refund_ref_id, "status": "",
                "errorReason": "Invalid refund_ref_id"}


def _token(n: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> int | None:
    """POST like the gateway's notifier; our HTTP status, or None if it did not connect."""
    # Only ever the http(s) notify URL the merchant (a test) gave us.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _handler(sim: SslcommerzSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read :attr:`SslcommerzSimulator.requests` instead."""

        def _reply(self, status: int, payload: object, content_type: str = "application/json"
                   ) -> None:
            body = (json.dumps(payload) if content_type == "application/json"
                    else str(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            sim.requests.append(("GET", parts.path))
            if parts.path == "/gwprocess/v4/gw.php":
                with sim._lock:
                    known = params.get("SESSIONKEY", "") in sim._sessions
                page = "<html><body>SSLCommerz (simulated) checkout</body></html>"
                self._reply(200 if known else 404, page if known else "Invalid session",
                            "text/html")
            elif parts.path in ("/validator/api/validationserverAPI.php",
                                "/validator/api/merchantTransIDvalidationAPI.php"):
                if sim.fail_queries:
                    self._reply(503, "Service Unavailable", "text/html")
                elif parts.path.endswith("validationserverAPI.php"):
                    self._reply(200, sim.api_validation(params))
                else:
                    self._reply(200, sim.api_merchant_trans(params))
            else:
                self._reply(404, "Not Found", "text/html")

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            sim.requests.append(("POST", parts.path))
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            if parts.path == "/gwprocess/v4/api.php":
                self._reply(200, sim.api_session(form))
            else:
                self._reply(404, "Not Found", "text/html")

    return Handler


if TYPE_CHECKING:
    from simulators.gateways.base import GatewaySimulator

    def _implements(candidate: SslcommerzSimulator) -> GatewaySimulator:
        """mypy checks that this class offers the whole protocol."""
        return candidate
