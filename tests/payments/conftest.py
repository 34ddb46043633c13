"""Fixtures for the gateway adapter tests: a tiny HTTP receiver standing in for our
notification endpoint, so a simulated gateway's IPN/webhook travels over a real socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass(frozen=True)
class Received:
    """One request as our endpoint saw it, raw body and all."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Collects every request POSTed to :attr:`url` and answers :attr:`status`."""

    url: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)

    def last(self) -> Received:
        assert self.received, "the gateway sent us nothing"
        return self.received[-1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            box.received.append(Received(
                method="POST", path=parts.path, headers=dict(self.headers.items()),
                query=dict(parse_qsl(parts.query)), body=body))
            self.send_response(box.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
