"""What every gateway simulator offers the tests (one per gateway, each a real HTTP server on
127.0.0.1 speaking that gateway's documented API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Delivery:
    """One notification or callback the simulated gateway sent (or would have sent) to us,
    byte for byte, so a test can replay or tamper with it."""

    method: str  # GET | POST
    url: str  # where it went (our return/notify URL, with its query string)
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    status: int | None = None  # our HTTP answer, if it was delivered


class GatewaySimulator(Protocol):
    """The common surface of the gateway simulators."""

    name: str
    url: str  # the API root to configure the adapter with (GatewayConfig.base_url)
    credentials: Mapping[str, str]  # what the adapter needs (GatewayConfig.credentials)
    fail_queries: bool  # fault: the query/validation API answers 503

    def start(self) -> GatewaySimulator:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""

    def stop(self) -> None:
        """Stop serving."""

    def pay(self, gateway_reference: str, *, amount: Decimal | None = None,
            succeed: bool = True, deliver: bool = True) -> Delivery:
        """The subscriber completes (or abandons) the payment on the hosted page. The gateway
        then notifies us as it really does (webhook/IPN and/or the browser redirect to the
        return URL); with ``deliver=False`` the notification is lost (never sent) but the
        gateway's own state still records the outcome. ``amount`` lets a test make the
        gateway record a different amount than was ordered."""

    def refund(self, transaction_id: str, amount: Decimal, *, deliver: bool = True
               ) -> Delivery | None:
        """Refund (part of) a captured payment; returns the notification if the gateway
        sends one for refunds (None if it only shows in the query API)."""
