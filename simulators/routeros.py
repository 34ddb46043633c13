"""The RouterOS API wire protocol, server side, for the NAS simulator.

A sentence is a list of words ended by an empty word; each word is prefixed with its length
(1 to 5 bytes, see :func:`encode_length`). The client sends a command word
(``/ppp/active/print``), attribute words (``=name=value``), query words (``?name=value``) and
an optional ``.tag=``; the router answers ``!re`` per row, then ``!done`` (with ``=ret=`` for an
add), or ``!trap =message=...`` then ``!done``; RouterOS 7.18+ answers an empty print with
``!empty`` before ``!done``. ``/login =name= =password=`` (RouterOS >= 6.43) must come first.
TLS (API-SSL) is the same protocol inside TLS, in RouterOS's two modes (MikroTik manual,
Developer Guides, API, https://manual.mikrotik.com/docs/Developer%20Guides/API/): a service
without a certificate takes only anonymous Diffie-Hellman (:func:`anonymous_tls_context`), a
service with one an ordinary TLS session (the caller's context with the certificate).

The tables themselves live in the simulator (:class:`Tables`); this module only speaks the
protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger("radbill.sim.routeros")


# The RFC 7919 ffdhe2048 group (a published standard group, not a secret): anonymous DH needs
# server parameters and OpenSSL picks none by itself.
FFDHE2048_PEM = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def anonymous_tls_context() -> ssl.SSLContext:
    """API-SSL as a router without a certificate serves it: anonymous Diffie-Hellman only
    (TLS 1.2, which is the last version with anonymous key exchange). A client that insists
    on a certificate gets a handshake failure, as from the router."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ADH+AESGCM:ADH+AES:@SECLEVEL=0")
    # load_dh_params reads a file only
    with tempfile.NamedTemporaryFile(suffix=".pem") as params:
        params.write(FFDHE2048_PEM)
        params.flush()
        ctx.load_dh_params(params.name)
    return ctx


class ApiTrap(Exception):
    """A command the router refuses; becomes ``!trap =message=...``."""


class Tables(Protocol):
    """What the API server reads and changes (the simulated router's state)."""

    def api_print(self, path: str) -> list[dict[str, str]]:
        """Every row of a menu (each with its ``.id``)."""

    def api_add(self, path: str, attrs: dict[str, str]) -> str:
        """Add a row; return its ``.id``. Raise :class:`ApiTrap` to refuse."""

    def api_set(self, path: str, item: str, attrs: dict[str, str]) -> None:
        """Change the row *item*. Raise :class:`ApiTrap` if there is none."""

    def api_remove(self, path: str, item: str) -> None:
        """Remove the row *item*. Raise :class:`ApiTrap` if there is none."""


def encode_length(n: int) -> bytes:
    """The word-length prefix of the RouterOS API."""
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return (n | 0x8000).to_bytes(2, "big")
    if n < 0x200000:
        return (n | 0xC00000).to_bytes(3, "big")
    if n < 0x10000000:
        return (n | 0xE0000000).to_bytes(4, "big")
    return b"\xf0" + n.to_bytes(4, "big")


def encode_sentence(words: Iterable[str]) -> bytes:
    out = bytearray()
    for word in words:
        data = word.encode()
        out += encode_length(len(data)) + data
    return bytes(out + b"\x00")


async def read_length(reader: asyncio.StreamReader) -> int:
    first = (await reader.readexactly(1))[0]
    if first < 0x80:
        return first
    if first < 0xC0:
        return ((first & 0x3F) << 8) | (await reader.readexactly(1))[0]
    if first < 0xE0:
        return ((first & 0x1F) << 16) | int.from_bytes(await reader.readexactly(2), "big")
    if first < 0xF0:
        return ((first & 0x0F) << 24) | int.from_bytes(await reader.readexactly(3), "big")
    return int.from_bytes(await reader.readexactly(4), "big")


async def read_sentence(reader: asyncio.StreamReader) -> list[str]:
    words: list[str] = []
    while True:
        n = await read_length(reader)
        if n == 0:
            return words
        words.append((await reader.readexactly(n)).decode())


def _split(words: list[str]) -> tuple[str, dict[str, str], list[tuple[str, str]], str | None]:
    command, attrs, query, tag = words[0], {}, [], None
    for word in words[1:]:
        if word.startswith("="):
            key, _, value = word[1:].partition("=")
            attrs[key] = value
        elif word.startswith("?"):
            # ?name=value and ?=name=value are the same query (librouteros sends the latter)
            body = word[2:] if word.startswith("?=") else word[1:]
            key, _, value = body.partition("=")
            query.append((key, value))
        elif word.startswith(".tag="):
            tag = word[5:]
    return command, attrs, query, tag


def _matches(row: dict[str, str], query: list[tuple[str, str]]) -> bool:
    # Only the equality form (?name=value) and presence (?name) are simulated; RouterOS's
    # stack operators (?#|, ?#!) are not used by radbill.
    for key, value in query:
        if key.startswith("#"):
            continue
        if value == "" and key in row:
            continue
        if row.get(key) != value:
            return False
    return True


class ApiServer:
    """Serves the RouterOS API for one simulated router, plain and (optionally) TLS."""

    def __init__(self, tables: Tables, username: str, password: str) -> None:
        self.tables = tables
        self.username, self.password = username, password
        self.servers: list[asyncio.AbstractServer] = []
        self.commands = 0
        self.silent = False  # fault: accept connections and commands but never answer
        self._conns: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(self._serve, host, port, ssl=tls)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)
        logged_in = False
        try:
            while True:
                words = await read_sentence(reader)
                if not words:
                    continue
                command, attrs, query, tag = _split(words)
                self.commands += 1
                if self.silent:
                    continue
                suffix = [f".tag={tag}"] if tag is not None else []
                if command == "/quit":
                    writer.write(encode_sentence(
                        ["!fatal", "=message=session terminated on request"]))
                    await writer.drain()
                    return
                if command == "/login":
                    if (attrs.get("name"), attrs.get("password")) == (self.username,
                                                                       self.password):
                        logged_in = True
                        writer.write(encode_sentence(["!done", *suffix]))
                    else:
                        writer.write(encode_sentence(
                            ["!trap", "=message=invalid user name or password (6)", *suffix]))
                        writer.write(encode_sentence(["!done", *suffix]))
                    await writer.drain()
                    continue
                if not logged_in:
                    writer.write(encode_sentence(["!fatal", "=message=not logged in"]))
                    await writer.drain()
                    return
                writer.write(b"".join(self._run(command, attrs, query, suffix)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError,
                UnicodeDecodeError):  # a TLS client on the plain port, garbage: hang up
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _run(self, command: str, attrs: dict[str, str], query: list[tuple[str, str]],
             suffix: list[str]) -> list[bytes]:
        path, _, verb = command.rpartition("/")
        try:
            if verb == "print":
                rows = [row for row in self.tables.api_print(path) if _matches(row, query)]
                wanted = [k for k in attrs.get(".proplist", "").split(",") if k]
                out = [encode_sentence(["!re", *(f"={k}={v}" for k, v in row.items()
                                                 if not wanted or k in wanted), *suffix])
                       for row in rows]
                if not rows:
                    out.append(encode_sentence(["!empty", *suffix]))
                return [*out, encode_sentence(["!done", *suffix])]
            if verb == "add":
                new_id = self.tables.api_add(path, attrs)
                return [encode_sentence(["!done", f"=ret={new_id}", *suffix])]
            if verb in ("set", "remove"):
                items = [i for i in attrs.pop(".id", "").split(",") if i]
                if not items:
                    raise ApiTrap("no such item")
                for item in items:
                    if verb == "set":
                        self.tables.api_set(path, item, attrs)
                    else:
                        self.tables.api_remove(path, item)
                return [encode_sentence(["!done", *suffix])]
            raise ApiTrap("no such command")
        except ApiTrap as exc:
            return [encode_sentence(["!trap", f"=message={exc}", *suffix]),
                    encode_sentence(["!done", *suffix])]
