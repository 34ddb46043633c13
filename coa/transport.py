"""Many RADIUS requests in flight at once over a few UDP sockets (asyncio).

A bulk suspension is a burst of thousands of Disconnect-Requests; a NAS booting up sends
thousands of Accounting-Starts. Each socket carries up to 256 outstanding identifiers, so a
handful of sockets give a thousand requests in flight without head-of-line waiting. A
request that gets no answer is retransmitted byte for byte (same identifier and
authenticator, RFC 5080 section 2.2.1) after a timeout that doubles each time.

Encoding and verification are pyrad's; this module only moves bytes and matches answers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from pyrad import packet

_IDS = 256
_RCVBUF = 4 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """How a request went: the verified reply (None if every try timed out), how many times
    it was sent, and the seconds from the first send to the answer (or to giving up)."""

    reply: packet.Packet | None
    sends: int
    elapsed: float


_Reply = asyncio.Future[tuple[packet.Packet, bytes]]


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, owner: RadiusTransport, index: int) -> None:
        self.owner, self.index = owner, index
        self.transport: asyncio.DatagramTransport | None = None
        self.free = collections.deque(range(_IDS))
        self.pending: dict[int, tuple[packet.Packet, _Reply]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20:
            return
        entry = self.pending.get(data[1])
        if entry is None:
            return  # a late duplicate answer to a request already settled
        request, future = entry
        if future.done():
            return
        try:
            reply = request.CreateReply(packet=data)
        except packet.PacketError:
            return
        if request.VerifyReply(reply, data):
            future.set_result((reply, data))
        # A reply that fails verification is ignored, as RFC 2865 requires: the genuine
        # answer (or the timeout) still settles the request.


class RadiusTransport:
    """An asyncio RADIUS client: ``await request(pkt, (host, port))`` with retransmission.

    Packets are pyrad packets with their secret and dictionary set; the identifier is
    assigned here. Safe to share between many concurrent tasks of one event loop.
    """

    def __init__(self, *, sockets: int = 4, bind_ip: str | None = None) -> None:
        self._count = sockets
        self._bind_ip = bind_ip
        self._sockets: list[_Socket] = []
        self._next = 0
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> RadiusTransport:
        loop = asyncio.get_running_loop()
        # one permit per identifier: a request waits only when every identifier of every
        # socket is in flight, and one freed identifier wakes one waiter (not all of them)
        self._slots = asyncio.Semaphore(self._count * _IDS)
        family = socket.AF_INET6 if self._bind_ip and ":" in self._bind_ip else socket.AF_INET
        for index in range(self._count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((self._bind_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))  # noqa: S104 - an ephemeral client port; the bind address is the caller's
            sock.setblocking(False)
            proto = _Socket(self, index)
            await loop.create_datagram_endpoint(lambda p=proto: p, sock=sock)  # type: ignore[misc]
            self._sockets.append(proto)
        return self

    def close(self) -> None:
        for sock in self._sockets:
            if sock.transport is not None:
                sock.transport.close()
            for _, future in sock.pending.values():
                if not future.done():
                    future.cancel()
        self._sockets.clear()

    async def _slot(self) -> tuple[_Socket, int]:
        assert self._slots is not None, "call start() first"
        await self._slots.acquire()
        for _ in range(len(self._sockets)):
            sock = self._sockets[self._next % len(self._sockets)]
            self._next += 1
            if sock.free:
                return sock, sock.free.popleft()
        raise AssertionError("a permit without a free identifier")

    async def request(self, pkt: packet.Packet, addr: tuple[str, int], *, timeout: float = 1.0,
                      retries: int = 3, encode: Callable[[packet.Packet], bytes] | None = None
                      ) -> Exchange:
        """Send *pkt* to *addr* until a verified reply comes or ``1 + retries`` sends have
        each timed out (timeout doubling after every send)."""
        sock, ident = await self._slot()
        pkt.id = ident
        raw = encode(pkt) if encode else pkt.RequestPacket()
        future: asyncio.Future[tuple[packet.Packet, bytes]] = (
            asyncio.get_running_loop().create_future())
        sock.pending[ident] = (pkt, future)
        started = time.monotonic()
        sends, wait = 0, timeout
        try:
            while sends <= retries:
                assert sock.transport is not None
                sock.transport.sendto(raw, addr)
                sends += 1
                with contextlib.suppress(TimeoutError):
                    reply, _ = await asyncio.wait_for(asyncio.shield(future), wait)
                    return Exchange(reply, sends, time.monotonic() - started)
                wait *= 2
            return Exchange(None, sends, time.monotonic() - started)
        finally:
            del sock.pending[ident]
            if not future.done():
                future.cancel()
            sock.free.append(ident)
            assert self._slots is not None
            self._slots.release()
