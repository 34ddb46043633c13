"""The interface every payment gateway adapter implements, and the values it speaks.

The flow is the same for every gateway, only the wire differs:

1. :meth:`PaymentGateway.start` creates the payment at the gateway for one of our payment
   intents and returns where to send the subscriber's browser. It must NOT move money, and it
   must not touch the database (the caller records the intent and the gateway's reference).
2. The gateway tells us the outcome: a server-to-server notification (Razorpay webhook,
   SSLCommerz IPN) or the subscriber's browser coming back (bKash callback, Nagad callback).
   :meth:`PaymentGateway.confirm_notification` checks it is genuine (signature over the raw
   body, constant-time compare), completes the payment where the gateway requires it (bKash
   execute), confirms it with the gateway's own query/validation API where there is one, and
   returns a :class:`Confirmation`. It never trusts amounts or statuses from the notification
   alone when the gateway has a query API.
3. :meth:`PaymentGateway.query` asks the gateway for the current state of a payment we started
   (polling, when no notification came).

Matching the confirmation against the intent (invoice, amount, currency), de-duplicating and
posting to the ledger is the caller's job (:mod:`payments.intents`), never the adapter's.
Adapters raise only :class:`GatewayError` (and its subclass :class:`SignatureError`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

#: The reference a credentials check asks about: no payment ever has it.
CREDENTIALS_PROBE = "radbill-credentials-check"


class GatewayError(Exception):
    """The gateway could not be reached, refused, or answered something unusable."""


class SignatureError(GatewayError):
    """A notification that is not genuine (bad or missing signature): never post it."""


class Status(enum.StrEnum):
    """A payment's state at the gateway."""

    PAID = "paid"  # money captured/completed
    PENDING = "pending"  # started, not finished (or not yet known)
    FAILED = "failed"  # cancelled, declined, expired
    REFUNDED = "refunded"  # (partly) given back: ``refunded_amount`` says how much


@dataclass(frozen=True)
class GatewayConfig:
    """One gateway account of the ISP, from configuration (``RADBILL_GATEWAY_<NAME>_*``)."""

    name: str
    base_url: str  # the gateway's API root (sandbox or live)
    credentials: Mapping[str, str]
    sandbox: bool = True
    timeout: float = 10.0


@dataclass(frozen=True)
class PaymentOrder:
    """What we ask a gateway to collect."""

    reference: str  # our intent reference, unique: the gateway's merchant invoice / order id
    invoice_number: str
    amount: Decimal
    currency: str
    customer_name: str
    customer_phone: str
    description: str
    return_url: str  # where the subscriber's browser comes back to (our callback)
    notify_url: str  # where server-to-server notifications go (IPN/webhook), if separate


@dataclass(frozen=True)
class Checkout:
    """Where to send the subscriber, and the gateway's id for this payment."""

    gateway_reference: str
    redirect_url: str


@dataclass(frozen=True)
class Confirmation:
    """What the gateway says about one payment, after verification.

    ``event_id`` identifies the notification itself (for de-duplication of deliveries);
    ``transaction_id`` is the gateway's id of the money movement (unique per gateway, the
    payment's reference in our ledger)."""

    reference: str  # our intent reference
    status: Status
    amount: Decimal
    currency: str
    transaction_id: str | None = None
    gateway_reference: str | None = None
    event_id: str | None = None
    refunded_amount: Decimal = Decimal("0")
    # Set when the gateway took the money but asks the merchant to decide (SSLCommerz's
    # risk_level 1): the payment is held for an operator, never posted on its own.
    review: str | None = None
    raw: Mapping[str, object] = field(default_factory=dict)


class TokenStore(Protocol):
    """A place to keep a gateway's access token that every radbill process shares (the web
    app, the scheduler, the CLI): bKash blocks a merchant that grants more than two tokens an
    hour, so a process must reuse (or refresh) the token another one obtained."""

    def locked(self) -> AbstractContextManager[None]:
        """Exclude the other processes while a token is read, refreshed or granted."""

    def load(self) -> Mapping[str, object] | None:
        """The stored token fields, or None."""

    def save(self, data: Mapping[str, object]) -> None:
        """Store the token fields."""


class PaymentGateway(Protocol):
    """A payment gateway adapter (see the module documentation for the flow)."""

    name: str
    #: ISO 4217 codes the gateway collects for the ISP: the payment page offers it, and a
    #: checkout may start on it, only for invoices in one of them.
    currencies: frozenset[str]

    def start(self, order: PaymentOrder) -> Checkout:
        """Create the payment at the gateway. You may NOT capture or move money here."""

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        """Verify a notification or callback (raw body, constant-time), complete and confirm
        it with the gateway's API where it has one. Raises :class:`SignatureError` when it is
        not genuine, :class:`GatewayError` when the gateway cannot confirm it now."""

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        """The payment's current state, from the gateway's query/validation API."""

    def check_credentials(self) -> str | None:
        """Prove the credentials with a call the gateway answers only to its merchant (for
        `radbill doctor`): what it proved, or None when the gateway has no such call. Raises
        :class:`GatewayError` when they are refused. You may NOT create a payment or move
        money here."""
