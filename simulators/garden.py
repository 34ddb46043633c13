"""The NAS simulator's walled-garden mode: what a MikroTik does for a subscriber's web
traffic, over real sockets.

Each subscriber's *line* is an HTTP proxy on 127.0.0.1 (a browser under test is pointed at
it, standing for the subscriber's router). For a request on the line, the router looks at the
subscriber's session on the NAS now:

* no session (hung up, or re-dialling): the connection is refused (502), as a line without
  PPP would be;
* the session is on the walled-garden address list and the destination is not on the allow
  list: ``302`` to the landing page (the firewall/NAT redirect the README configures);
* otherwise the request goes out *from the session's address* (``Framed-IP-Address``; give
  the NAS simulator a pool in 127/8, such as ``127.100.0.0``, so loopback can carry it), so
  the server sees the subscriber's address exactly as behind a real router.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from simulators.nas import NasSimulator

HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
       "trailers", "transfer-encoding", "upgrade"}


class Garden:
    """The walled-garden rules of a NAS: the address list, the landing page, the allow list
    (``host:port`` pairs reachable from the garden: radbill and the gateways)."""

    def __init__(self, nas: NasSimulator, landing: str, allow: Iterable[str],
                 address_list: str = "radbill-suspended") -> None:
        self.nas, self.landing, self.address_list = nas, landing, address_list
        self.allow = {a.lower() for a in allow}
        self.redirects = 0
        self._lines: dict[str, Line] = {}
        self._lock = threading.Lock()

    def line(self, username: str) -> str:
        """The proxy URL of *username*'s line (opened on first use)."""
        with self._lock:
            if username not in self._lines:
                self._lines[username] = Line(self, username)
            return self._lines[username].url

    def close(self) -> None:
        with self._lock:
            for line in self._lines.values():
                line.close()
            self._lines.clear()


class Line:
    """One subscriber's line: an HTTP proxy in a background thread."""

    def __init__(self, garden: Garden, username: str) -> None:
        line = self

        class Handler(_Handler):
            owner = line

        self.garden, self.username = garden, username
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name=f"line-{username}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    owner: Line
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        garden = self.owner.garden
        sessions = garden.nas.online(self.owner.username)
        if not sessions:
            self.send_error(502, "line down")
            return
        sess = sessions[-1]
        target = urlsplit(self.path)
        host = (target.hostname or "").lower()
        port = target.port or 80
        if (sess.address_list == garden.address_list
                and f"{host}:{port}" not in garden.allow):
            garden.redirects += 1
            self.send_response(302)
            self.send_header("Location", garden.landing)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        path = target.path or "/"
        if target.query:
            path += "?" + target.query
        conn = http.client.HTTPConnection(host, port, timeout=30,
                                          source_address=(sess.framed_ip, 0))
        try:
            conn.request(self.command, path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            conn.close()
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _relay
