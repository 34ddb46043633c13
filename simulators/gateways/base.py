"""What every gateway simulator offers the tests (one per gateway, each a real HTTP server on
127.0.0.1 speaking that gateway's documented API)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class LocalHttpServer:
    """An HTTP server on a free port of 127.0.0.1, serving in a background thread (what every
    gateway simulator runs on)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval keeps close() (and so every test's teardown) quick.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name=name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
