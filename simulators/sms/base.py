"""What the SMS and chat simulators share: a JSON/form HTTP server on 127.0.0.1 (HTTP/1.1
keep-alive, as the providers serve), a record of what was accepted, and fault injection."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notify.rules import sms_size

Route = Callable[[str, str, dict[str, str], Any, str], tuple[int, Any]]


@dataclass(frozen=True)
class Accepted:
    """One message the provider accepted (and, in the real world, would deliver)."""

    to: str
    text: str
    client_id: str | None
    reference: str
    encoding: str
    parts: int
    at: float


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class SimulatorBase:
    """A provider simulator: subclasses implement :meth:`route`."""

    name = "sim"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.requests = 0
        self.delay = 0.0  # seconds before each answer
        self.drop_replies = 0  # the next N requests are processed, then the line is cut
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> SimulatorBase:
        self._server = Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def accept(self, to: str, text: str, client_id: str | None) -> Accepted:
        """Record an accepted message; the caller holds ``self.lock``."""
        size = sms_size(text)
        item = Accepted(to, text, client_id, f"{self.name}-{len(self.accepted) + 1}",
                        size.encoding.value, size.segments, time.monotonic())
        self.accepted.append(item)
        return item

    def route(self, method: str, path: str, headers: dict[str, str], body: Any,
              client: str) -> tuple[int, Any]:
        raise NotImplementedError


def _handler(sim: SimulatorBase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # one segment per answer, sent at once (no Nagle wait for the client's delayed ACK)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            body: Any
            if "json" in kind:
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
            else:
                body = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
            if method == "GET":
                body = dict(urllib.parse.parse_qsl(parsed.query))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with sim.lock:
                sim.requests += 1
            if sim.delay:
                time.sleep(sim.delay)
            status, payload = sim.route(method, parsed.path, headers, body,
                                        self.client_address[0])
            with sim.lock:
                drop = sim.drop_replies > 0
                if drop:
                    sim.drop_replies -= 1
            if drop:  # processed, but the answer never arrives
                self.close_connection = True
                self.connection.close()
                return
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
