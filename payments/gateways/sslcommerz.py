"""SSLCommerz (hosted checkout, API v4): session, IPN, validation and transaction query.

The wire, from SSLCommerz's v4 developer documentation (developer.sslcommerz.com/doc/v4) and
their own PHP library (github.com/sslcommerz/SSLCommerz-PHP, ``SslCommerzNotification``):

* **Session**: ``POST /gwprocess/v4/api.php`` (form) with ``store_id``, ``store_passwd``,
  ``total_amount`` (decimal 10,2), ``currency``, ``tran_id`` (ours, <= 30 chars), the
  ``success_url``/``fail_url``/``cancel_url`` browser returns, ``ipn_url``, ``cus_*`` and
  ``product_*`` fields. JSON answer: ``status`` SUCCESS with ``GatewayPageURL`` and
  ``sessionkey``, or FAILED with ``failedreason``.
* **IPN**: SSLCommerz POSTs a form to ``ipn_url``. ``verify_key`` names the signed fields;
  ``verify_sign`` = md5 of ``key=value`` pairs of those fields plus
  ``store_passwd=md5(password)``, sorted by key and joined with ``&``. We compare in constant
  time and only trust fields that ``verify_key`` covers.
* **Validation**: ``GET /validator/api/validationserverAPI.php?val_id&store_id&store_passwd
  &v=1&format=json``. Only ``status`` VALID (first validation) or VALIDATED (validated before)
  is a payment. ``amount``/``currency`` are what the store settles in (BDT); for another
  currency ``currency_type``/``currency_amount`` carry what we asked for, so we report those
  when present (the PHP library does the same).
* **Transaction query**: ``GET /validator/api/merchantTransIDvalidationAPI.php?tran_id&
  store_id&store_passwd&format=json`` answers ``APIConnect`` (DONE on success),
  ``no_of_trans_found`` and an ``element`` list, one per attempt, each with ``status`` VALID,
  VALIDATED, PENDING or FAILED.

Identifiers: ``tran_id`` is our intent reference; ``Checkout.gateway_reference`` is the
``sessionkey``; ``Confirmation.transaction_id`` is ``bank_tran_id`` ("the transaction ID at
bank's end"): it names the money movement, it is what SSLCommerz's refund API takes, and it
is what their merchant panel and settlement reports show. ``val_id`` names one validation of
an IPN, so it is the ``event_id`` (a re-delivered IPN carries the same ``val_id``). A VALID
answer without a ``bank_tran_id`` is refused (GatewayError) rather than keyed on another id.

Assumed, not confirmed by the documentation (check against the live sandbox):

* Refunds: the documented transaction query has no refund fields, and the refund status API
  needs the ``refund_ref_id`` returned when the refund was initiated, which an operator's
  panel refund never gives us. We read ``refund_status`` ("refunded", from the refund status
  API's vocabulary) and ``refund_amount`` on the query's element, which is what the simulator
  serves.
* A validation or query answer with ``APIConnect`` other than DONE (INVALID_REQUEST, FAILED,
  INACTIVE) is treated as refused credentials or a deactivated store.
* ``risk_level`` 1 ("risky"): the money is taken and the documentation leaves delivering
  to the merchant's judgement, so it is reported PAID with ``review`` set: radbill holds it
  for an operator with an alert (never posted on its own, never left to expire unnoticed).
* ``cus_email`` is mandatory for SSLCommerz but radbill does not collect subscribers' e-mail:
  we send the ``receipt_email`` credential (the ISP's billing address) or an ``.invalid``
  address (RFC 2606) that never delivers.

Why no SDK: ``sslcommerz-lib`` (PyPI 1.0, the official Python wrapper) hard-codes the
``sandbox``/``securepay`` hosts (it cannot reach a simulator or a proxy), calls ``requests``
without any timeout, prints and swallows every exception (returning ``None``), compares
``verify_sign`` with ``==``, and is unmaintained. The API is four form/JSON calls, so we speak
it with ``httpx`` directly: explicit timeouts, connection retries, typed results.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx

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

SESSION_PATH = "/gwprocess/v4/api.php"
VALIDATION_PATH = "/validator/api/validationserverAPI.php"
QUERY_PATH = "/validator/api/merchantTransIDvalidationAPI.php"

PAID_STATUSES = frozenset({"VALID", "VALIDATED"})
# Fields every IPN must sign before we read them; a VALID one must also sign val_id.
SIGNED_ALWAYS = frozenset({"status", "tran_id", "amount", "currency"})
CENT = Decimal("0.01")
MAX_TRAN_ID = 30


def verify_sign(fields: Mapping[str, str], store_passwd: str) -> str:
    """The ``verify_sign`` SSLCommerz computes over the fields named in ``verify_key``."""
    signed = {key: fields[key] for key in fields["verify_key"].split(",") if key in fields}
    # md5 is SSLCommerz's choice, not ours: the IPN carries no other signature we can check.
    signed["store_passwd"] = hashlib.md5(store_passwd.encode()).hexdigest()  # noqa: S324
    text = "&".join(f"{key}={signed[key]}" for key in sorted(signed))
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def _decimal(value: object, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise GatewayError(f"SSLCommerz sent an unreadable {what}: {value!r}") from None


class SslcommerzGateway:
    """:class:`~payments.gateways.base.PaymentGateway` for SSLCommerz.

    Credentials: ``store_id``, ``store_passwd``; optional ``receipt_email``."""

    name = "sslcommerz"
    # A store settles in taka; SSLCommerz would convert other currencies at its own rate,
    # so an invoice in another currency would not be paid at its face value.
    currencies = frozenset({"BDT"})

    def __init__(self, config: GatewayConfig, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        missing = {"store_id", "store_passwd"} - set(config.credentials)
        if missing:
            raise GatewayError(f"SSLCommerz gateway {config.name!r} lacks credentials: "
                               f"{', '.join(sorted(missing))}")
        self.config = config
        self._store_id = config.credentials["store_id"]
        self._store_passwd = config.credentials["store_passwd"]
        self._receipt_email = config.credentials.get("receipt_email", "billing@radbill.invalid")
        # retries=2 repeats only connection attempts (nothing reached SSLCommerz yet), so it
        # is safe for the session POST too.
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"), timeout=config.timeout,
            transport=transport or httpx.HTTPTransport(retries=2),
            headers={"User-Agent": "radbill"})

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    # -- PaymentGateway ---------------------------------------------------------------------

    def start(self, order: PaymentOrder) -> Checkout:
        """Open a hosted-checkout session; the subscriber goes to its ``GatewayPageURL``."""
        if len(order.reference) > MAX_TRAN_ID:
            raise GatewayError(f"SSLCommerz tran_id is at most {MAX_TRAN_ID} characters: "
                               f"{order.reference!r}")
        if order.amount != order.amount.quantize(CENT):
            raise GatewayError(f"SSLCommerz takes amounts in 2 decimals, not {order.amount}")
        form = {
            "store_id": self._store_id,
            "store_passwd": self._store_passwd,
            "total_amount": f"{order.amount:.2f}",
            "currency": order.currency,
            "tran_id": order.reference,
            "success_url": order.return_url,
            "fail_url": order.return_url,
            "cancel_url": order.return_url,
            "ipn_url": order.notify_url,
            "cus_name": order.customer_name,
            "cus_email": self._receipt_email,
            "cus_phone": order.customer_phone,
            # Not collected by radbill; SSLCommerz lists them as mandatory.
            "cus_add1": "N/A",
            "cus_city": "N/A",
            "cus_postcode": "0000",
            "cus_country": "Bangladesh",
            "shipping_method": "NO",
            "num_of_item": "1",
            "product_name": order.description,
            "product_category": "Internet service",
            "product_profile": "non-physical-goods",
            "value_a": order.invoice_number,
        }
        answer = self._json("POST", SESSION_PATH, data=form)
        if answer.get("status") != "SUCCESS":
            reason = answer.get("failedreason") or "no reason given"
            raise GatewayError(f"SSLCommerz refused the session for {order.reference}: {reason}")
        url, session = answer.get("GatewayPageURL"), answer.get("sessionkey")
        if not url or not session:
            raise GatewayError("SSLCommerz session answer lacks GatewayPageURL or sessionkey")
        return Checkout(gateway_reference=str(session), redirect_url=str(url))

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        """Verify an IPN (form POST) and confirm it with the validation or query API."""
        if method.upper() != "POST":
            raise SignatureError(f"SSLCommerz IPNs are POSTed, not sent by {method}")
        fields = self._verified_fields(body)
        status = fields["status"].upper()
        if status not in PAID_STATUSES:
            # FAILED/CANCELLED/UNATTEMPTED/EXPIRED carry no val_id to validate: ask the
            # transaction query instead (another attempt of the same tran_id may have paid).
            return self.query(fields["tran_id"], None)
        return self._validate(fields)

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        """The state of ``tran_id`` *reference* from the transaction query API."""
        answer = self._json("GET", QUERY_PATH, params={
            "tran_id": reference, "store_id": self._store_id,
            "store_passwd": self._store_passwd, "format": "json"})
        self._check_api_connect(answer, "transaction query")
        elements = answer.get("element") or []
        if not isinstance(elements, list):
            raise GatewayError("SSLCommerz transaction query: element is not a list")
        mine = [e for e in elements if isinstance(e, dict) and e.get("tran_id") == reference]
        paid = [e for e in mine if str(e.get("status", "")).upper() in PAID_STATUSES]
        if paid:
            return self._paid(paid[0], reference, gateway_reference, event_id=None)
        pending = [e for e in mine if str(e.get("status", "")).upper() == "PENDING"]
        if pending or not mine:
            # No element yet: the subscriber has not paid (or not finished paying).
            basis = pending[0] if pending else {}
            return self._unpaid(Status.PENDING, basis, reference, gateway_reference)
        return self._unpaid(Status.FAILED, mine[0], reference, gateway_reference)

    def check_credentials(self) -> str | None:
        """A transaction query for a tran_id nobody uses (read-only): APIConnect tells
        whether the store id and password are right."""
        answer = self._json("GET", QUERY_PATH, params={
            "tran_id": CREDENTIALS_PROBE, "store_id": self._store_id,
            "store_passwd": self._store_passwd, "format": "json"})
        self._check_api_connect(answer, "transaction query")
        return "store id and password accepted"

    # -- internals --------------------------------------------------------------------------

    def _verified_fields(self, body: bytes) -> dict[str, str]:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise SignatureError("SSLCommerz IPN body is not a form") from None
        fields = dict(pairs)
        if len(fields) != len(pairs):
            # Two values for one key: which one did SSLCommerz sign? Refuse to guess.
            raise SignatureError("SSLCommerz IPN repeats a field")
        sign, keys = fields.get("verify_sign", ""), fields.get("verify_key", "")
        if not sign or not keys:
            raise SignatureError("SSLCommerz IPN lacks verify_sign or verify_key")
        covered = set(keys.split(","))
        needed = set(SIGNED_ALWAYS)
        if fields.get("status", "").upper() in PAID_STATUSES:
            needed.add("val_id")
        if not needed <= covered or not needed <= fields.keys():
            raise SignatureError("SSLCommerz IPN does not sign "
                                 f"{', '.join(sorted(needed - (covered & fields.keys())))}")
        expected = verify_sign(fields, self._store_passwd)
        if not hmac.compare_digest(expected.encode(), sign.lower().encode()):
            raise SignatureError("SSLCommerz IPN verify_sign does not match")
        return fields

    def _validate(self, ipn: Mapping[str, str]) -> Confirmation:
        answer = self._json("GET", VALIDATION_PATH, params={
            "val_id": ipn["val_id"], "store_id": self._store_id,
            "store_passwd": self._store_passwd, "v": "1", "format": "json"})
        self._check_api_connect(answer, "validation")
        status = str(answer.get("status", "")).upper()
        if status not in PAID_STATUSES:
            # INVALID_TRANSACTION (unknown val_id), FAILED, ...: not a payment, whatever the
            # IPN said.
            state = Status.PENDING if status == "PENDING" else Status.FAILED
            return self._unpaid(state, answer, ipn["tran_id"], None, event_id=ipn["val_id"])
        if answer.get("tran_id") != ipn["tran_id"]:
            raise GatewayError(f"SSLCommerz validated val_id {ipn['val_id']} for tran_id "
                               f"{answer.get('tran_id')!r}, the IPN said {ipn['tran_id']!r}")
        amount, currency = self._ordered_amount(answer)
        ipn_amount, ipn_currency = self._ordered_amount(ipn)
        if (amount, currency) != (ipn_amount, ipn_currency):
            raise GatewayError(f"SSLCommerz validation says {currency} {amount}, the IPN "
                               f"said {ipn_currency} {ipn_amount}")
        return self._paid(answer, ipn["tran_id"], None, event_id=ipn["val_id"])

    def _paid(self, data: Mapping[str, Any], reference: str, gateway_reference: str | None,
              event_id: str | None) -> Confirmation:
        bank_tran_id = str(data.get("bank_tran_id") or "")
        if not bank_tran_id:
            raise GatewayError(f"SSLCommerz reports {reference} paid without a bank_tran_id")
        amount, currency = self._ordered_amount(data)
        status = Status.PAID
        refunded = Decimal("0")
        review = None
        if str(data.get("refund_status", "")).lower() == "refunded":
            refunded = _decimal(data.get("refund_amount"), "refund_amount")
            status = Status.REFUNDED if refunded > 0 else Status.PAID
        elif str(data.get("risk_level", "0")) == "1":
            title = str(data.get("risk_title") or "Risky")[:100]
            review = f"SSLCommerz flags the payment as risky (risk_level 1, {title!r})"
        return Confirmation(
            reference=reference, status=status, amount=amount, currency=currency,
            transaction_id=bank_tran_id, gateway_reference=gateway_reference,
            event_id=event_id, refunded_amount=refunded, review=review, raw=dict(data))

    def _unpaid(self, status: Status, data: Mapping[str, Any], reference: str,
                gateway_reference: str | None, event_id: str | None = None) -> Confirmation:
        if data.get("amount") or data.get("currency_amount"):
            amount, currency = self._ordered_amount(data)
        else:
            amount, currency = Decimal("0"), ""
        return Confirmation(reference=reference, status=status, amount=amount,
                            currency=currency, gateway_reference=gateway_reference,
                            event_id=event_id, raw=dict(data))

    @staticmethod
    def _ordered_amount(data: Mapping[str, Any]) -> tuple[Decimal, str]:
        """The amount and currency we asked for: ``currency_amount``/``currency_type`` when
        SSLCommerz sends them (they differ from ``amount``/``currency`` for non-BDT
        payments), else ``amount``/``currency``."""
        if data.get("currency_type") and data.get("currency_amount"):
            return (_decimal(data["currency_amount"], "currency_amount"),
                    str(data["currency_type"]))
        return _decimal(data.get("amount"), "amount"), str(data.get("currency", ""))

    @staticmethod
    def _check_api_connect(answer: Mapping[str, Any], api: str) -> None:
        connect = answer.get("APIConnect")
        if connect is not None and connect != "DONE":
            raise GatewayError(f"SSLCommerz {api} API refused the request: APIConnect="
                               f"{connect} (wrong store_id/store_passwd or inactive store?)")

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(f"SSLCommerz {path} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise GatewayError(f"SSLCommerz {path} answered HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise GatewayError(f"SSLCommerz {path} answered something not JSON") from None
        if not isinstance(data, dict):
            raise GatewayError(f"SSLCommerz {path} answered JSON that is not an object")
        return data


if TYPE_CHECKING:
    from payments.gateways.base import PaymentGateway

    def _implements(candidate: SslcommerzGateway) -> PaymentGateway:
        """mypy checks that this class offers the whole protocol."""
        return candidate
