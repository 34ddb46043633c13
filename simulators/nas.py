"""A MikroTik-like NAS for tests, the demo and the benchmarks, over real sockets.

* Logs subscribers in over PPPoE or Hotspot against a RADIUS server (PAP, CHAP, MS-CHAPv2),
  applies the reply (``Mikrotik-Rate-Limit``, ``Mikrotik-Address-List``, Framed-IP-Address or
  an address from the pool) and sends Accounting Start / Interim-Update / Stop with Gigawords.
* Listens for CoA-Request and Disconnect-Request (RFC 5176) on its CoA port: checks the
  Request Authenticator, the Message-Authenticator and the Event-Timestamp window (anything
  failing is silently discarded, as the RFC says), finds the session by User-Name,
  Acct-Session-Id and Framed-IP-Address, answers ACK or NAK with Error-Cause (503 when there
  is no such session), applies rate and address-list changes, and ends disconnected sessions
  with an Accounting-Stop ``Admin-Reset``.
* Serves the RouterOS API (plain and TLS) on the same state: ``/ppp/active``,
  ``/ip/hotspot/active``, ``/ip/firewall/address-list``, ``/ppp/secret``, ``/queue/simple``,
  printed as RouterOS prints them: ``session-id=0x8100000A`` (upper-case hex; accounting's
  Acct-Session-Id is ``8100000a``), ``max-limit`` in bits per second (``5000000/20000000``)
  whatever notation was written. API-SSL without a certificate (``tls=None``) takes only
  anonymous Diffie-Hellman, as RouterOS does; with a certificate context, ordinary TLS.
* Faults: drop a share of CoA packets, delay answers, NAK everything, ignore CoA, go silent
  (CoA and API), reboot (Accounting-On, with or without the sessions surviving).

Everything runs on one asyncio loop in a background thread; the public methods are
thread-safe wrappers the tests call.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pyrad import packet

from coa.dictionary import dictionary
from coa.transport import Exchange, RadiusTransport
from simulators.radius_client import fill_login
from simulators.routeros import ApiServer, ApiTrap, anonymous_tls_context

if TYPE_CHECKING:
    from simulators.garden import Garden

T = TypeVar("T")

SESSION_NOT_FOUND = 503
UNSUPPORTED_ATTRIBUTE = 401
MISSING_ATTRIBUTE = 402
EVENT_WINDOW = 300  # seconds either side, RFC 5176 section 3.5 suggests a configurable window


@dataclass
class SimSession:
    """One subscriber online at the simulated NAS."""

    number: int
    username: str
    service: str  # pppoe | hotspot
    framed_ip: str
    mac: str | None
    rate_limit: str | None
    address_list: str | None
    started: float = field(default_factory=time.time)
    input_bytes: int = 0
    output_bytes: int = 0

    @property
    def session_id(self) -> str:
        return f"81{self.number:06x}"

    @property
    def item(self) -> str:
        return f"*{self.number:X}"


@dataclass(frozen=True)
class LoginResult:
    """A login attempt: accepted or not, the session if one opened, the reply attributes."""

    accepted: bool
    session: SimSession | None
    reply: dict[str, str]


@dataclass
class Faults:
    """What the simulated NAS gets wrong, on purpose."""

    drop: float = 0.0  # share of CoA/Disconnect packets ignored
    delay: float = 0.0  # seconds before answering a CoA/Disconnect
    nak: int | None = None  # answer every CoA/Disconnect with this Error-Cause
    ignore_coa: bool = False  # CoA port open, nothing ever answered
    silent: bool = False  # neither CoA nor API answers
    coa_no_effect: bool = False  # ACK CoA/Disconnect-Requests without applying them


@dataclass
class Counters:
    """What the simulated NAS has seen (tests assert on these)."""

    disconnects: int = 0
    coas: int = 0
    naks: int = 0
    dropped: int = 0
    discarded: int = 0  # failed authenticator / Message-Authenticator / Event-Timestamp
    acct_lost: int = 0
    failovers: int = 0  # requests a server did not answer, sent to the next one


class NasSimulator:
    """A simulated MikroTik router. ``start()`` binds its sockets; ``stop()`` closes them."""

    def __init__(self, *, nas_ip: str = "127.0.0.1", server: str = "127.0.0.1",
                 auth_port: int = 1812, acct_port: int = 1813, secret: str,
                 coa_port: int = 0, api_port: int | None = None,
                 api_tls_port: int | None = None, tls: ssl.SSLContext | None = None,
                 api_user: str = "radbill", api_password: str = "api-secret",  # noqa: S107 - simulator
                 pool: str = "100.64.0.0", seed: int | None = None,
                 secondary: tuple[str, int, int] | None = None) -> None:
        self.nas_ip, self.server = nas_ip, server
        self.auth_port, self.acct_port = auth_port, acct_port
        # A secondary RADIUS server (address, auth port, acct port), as a router lists a
        # second /radius entry: a request the primary does not answer goes there, and the
        # primary is skipped for dead_time seconds after that (then tried again first).
        self.servers = [(server, auth_port, acct_port)] + ([secondary] if secondary else [])
        self.dead_time = 10.0
        self._down_until: dict[int, float] = {}
        self.secret = secret.encode()
        self.coa_port = coa_port
        self.api_port, self.api_tls_port, self.tls = api_port, api_tls_port, tls
        self.faults = Faults()
        # Seconds after which a disconnected subscriber's router dials in again (as PPPoE
        # clients and Hotspot logins do); None: they stay off.
        self.redial_after: float | None = None
        self._creds: dict[str, tuple[str, str, str, str | None]] = {}
        # username -> time.monotonic() of the last CoA/Disconnect it ACKed (benchmarks)
        self.acked_at: dict[str, float] = {}
        # username -> (time.monotonic(), Mikrotik-Rate-Limit) of its last accepted login
        self.logged_in_at: dict[str, tuple[float, str | None]] = {}
        self._redials: asyncio.Semaphore | None = None
        self.counters = Counters()
        self.sessions: dict[str, SimSession] = {}  # by Acct-Session-Id
        self.secrets: dict[str, dict[str, str]] = {}  # /ppp/secret, by .id
        self.static_lists: dict[str, dict[str, str]] = {}  # /ip/firewall/address-list
        self.static_queues: dict[str, dict[str, str]] = {}  # /queue/simple
        self.api = ApiServer(self, api_user, api_password)
        self._pool_base = int.from_bytes(socket.inet_aton(pool), "big")
        self._numbers = itertools.count(1)
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nas-{nas_ip}",
                                        daemon=True)
        self._transport: RadiusTransport | None = None
        self._coa: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.garden: Garden | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> NasSimulator:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._transport = await RadiusTransport(sockets=4, bind_ip=self.nas_ip).start()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((self.nas_ip, self.coa_port))
        self.coa_port = sock.getsockname()[1]
        self._coa, _ = await loop.create_datagram_endpoint(lambda: _CoaProtocol(self), sock=sock)
        if self.api_port is not None:
            self.api_port = await self.api.listen(self.nas_ip, self.api_port)
        if self.api_tls_port is not None:
            # no certificate configured: RouterOS then speaks anonymous DH only
            tls = self.tls if self.tls is not None else anonymous_tls_context()
            self.api_tls_port = await self.api.listen(self.nas_ip, self.api_tls_port, tls)

    def stop(self) -> None:
        if self.garden is not None:
            self.garden.close()
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.aclose()
        if self._coa is not None:
            self._coa.close()
        if self._transport is not None:
            self._transport.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- RADIUS client side -------------------------------------------------------------

    async def _send(self, pkt: packet.Packet, port: int, *, timeout: float, retries: int
                    ) -> Exchange:
        """Send *pkt* to the first server that is not marked down (*port*: 1 auth, 2 acct);
        without an answer, mark it down and try the next. The last server gets every retry,
        the others one send, as a router with two servers fails over after one timeout."""
        assert self._transport is not None
        now = time.monotonic()
        order = [i for i in range(len(self.servers)) if self._down_until.get(i, 0) <= now]
        order += [i for i in range(len(self.servers)) if i not in order]  # all down: try anyway
        ex = None
        for n, i in enumerate(order):
            host, auth_port, acct_port = self.servers[i]
            last = n == len(order) - 1
            addr = (host, auth_port if port == 1 else acct_port)
            ex = await self._transport.request(pkt, addr, timeout=timeout,
                                               retries=retries if last else 0)
            if ex.reply is not None:
                self._down_until.pop(i, None)
                return ex
            if not last:
                self._down_until[i] = time.monotonic() + self.dead_time
                self.counters.failovers += 1
        assert ex is not None
        return ex

    def _address(self, number: int) -> str:
        return socket.inet_ntoa((self._pool_base + number).to_bytes(4, "big"))

    def _auth_packet(self, username: str, password: str, method: str, service: str,
                     mac: str | None) -> packet.AuthPacket:
        pkt = packet.AuthPacket(secret=self.secret, dict=dictionary(),
                                message_authenticator=True)
        fill_login(pkt, username, password, method, service, mac, self.nas_ip)
        return pkt

    async def _login(self, username: str, password: str, method: str, service: str,
                     mac: str | None) -> LoginResult:
        assert self._transport is not None
        self._creds[username] = (password, method, service, mac)
        pkt = self._auth_packet(username, password, method, service, mac)
        ex = await self._send(pkt, 1, timeout=2, retries=2)
        if ex.reply is None or ex.reply.code != packet.AccessAccept:
            return LoginResult(False, None, _text_attrs(ex.reply) if ex.reply else {})
        reply = _text_attrs(ex.reply)
        number = next(self._numbers)
        sess = SimSession(number=number, username=username, service=service,
                          framed_ip=reply.get("Framed-IP-Address") or self._address(number),
                          mac=mac, rate_limit=reply.get("Mikrotik-Rate-Limit"),
                          address_list=reply.get("Mikrotik-Address-List"))
        with self._lock:
            self.sessions[sess.session_id] = sess
            self.logged_in_at[username] = (time.monotonic(), sess.rate_limit)
        await self._account("Start", sess)
        return LoginResult(True, sess, reply)

    async def _account(self, status: str, sess: SimSession | None = None,
                       cause: str | None = None) -> bool:
        assert self._transport is not None
        pkt = packet.AcctPacket(secret=self.secret, dict=dictionary())
        pkt["Acct-Status-Type"] = status
        pkt["NAS-IP-Address"] = self.nas_ip
        pkt["Event-Timestamp"] = int(time.time())
        if sess is not None:
            pkt["User-Name"] = sess.username
            pkt["Acct-Session-Id"] = sess.session_id
            pkt["Framed-IP-Address"] = sess.framed_ip
            if sess.mac:
                pkt["Calling-Station-Id"] = sess.mac
            pkt["NAS-Port-Id"] = f"{sess.service}-{sess.number}"
            pkt["Acct-Session-Time"] = int(time.time() - sess.started)
            pkt["Acct-Input-Octets"] = sess.input_bytes & 0xFFFFFFFF
            pkt["Acct-Input-Gigawords"] = sess.input_bytes >> 32
            pkt["Acct-Output-Octets"] = sess.output_bytes & 0xFFFFFFFF
            pkt["Acct-Output-Gigawords"] = sess.output_bytes >> 32
            if cause:
                pkt["Acct-Terminate-Cause"] = cause
        ex = await self._send(pkt, 2, timeout=1, retries=5)
        if ex.reply is None:
            self.counters.acct_lost += 1
        return ex.reply is not None

    def login(self, username: str, password: str, method: str = "pap", service: str = "pppoe",
              mac: str | None = None) -> LoginResult:
        """Log one subscriber in (Access-Request, then Accounting-Start if accepted)."""
        return self._call(self._login(username, password, method, service, mac))

    def login_many(self, logins: Iterable[tuple[str, str]], method: str = "pap",
                   service: str = "pppoe", concurrency: int = 200) -> list[LoginResult]:
        """Log many (username, password) pairs in, *concurrency* at a time."""
        async def run() -> list[LoginResult]:
            gate = asyncio.Semaphore(concurrency)

            async def one(name: str, password: str) -> LoginResult:
                async with gate:
                    return await self._login(name, password, method, service, None)

            return list(await asyncio.gather(*(one(n, p) for n, p in logins)))

        return self._call(run())

    def attach(self, username: str, service: str = "pppoe", *, rate_limit: str | None = None,
               address_list: str | None = None, mac: str | None = None) -> SimSession:
        """Put a session online without RADIUS (no Access-Request, no Accounting-Start): a
        session the NAS has and the server does not know of."""
        number = next(self._numbers)
        sess = SimSession(number=number, username=username, service=service,
                          framed_ip=self._address(number), mac=mac, rate_limit=rate_limit,
                          address_list=address_list)
        with self._lock:
            self.sessions[sess.session_id] = sess
        return sess

    def logout(self, username: str) -> int:
        """The subscriber hangs up: sessions end with Accounting-Stop ``User-Request``."""
        async def run() -> int:
            ended = self.online(username)
            for sess in ended:
                self._end(sess)
                await self._account("Stop", sess, "User-Request")
            return len(ended)

        return self._call(run())

    def interim(self, grow: int = 1_000_000) -> None:
        """Every session sends an Interim-Update (counters grown by *grow* bytes)."""
        async def run() -> None:
            sessions = list(self.sessions.values())
            for sess in sessions:
                sess.input_bytes += grow
                sess.output_bytes += 10 * grow
            await asyncio.gather(*(self._account("Interim-Update", s) for s in sessions))

        self._call(run())

    def reboot(self, keep_sessions: bool = False) -> None:
        """Accounting-On, as after a reboot. Sessions are lost, unless *keep_sessions*:
        a router whose RADIUS client restarted while its PPPoE sessions stayed up."""
        async def run() -> None:
            if not keep_sessions:
                with self._lock:
                    self.sessions.clear()
            await self._account("Accounting-On")

        self._call(run())

    def power_cut(self) -> None:
        """The router loses power: every session is gone, and it says nothing (no Stop, no
        Accounting-On when it comes back), as many do."""
        with self._lock:
            self.sessions.clear()

    def garden_mode(self, landing: str, allow: Iterable[str],
                    address_list: str = "radbill-suspended") -> Garden:
        """Redirect the web traffic of sessions on *address_list* to *landing*, except to the
        ``host:port`` pairs in *allow*; ``.line(username)`` is a subscriber's line (an HTTP
        proxy whose requests leave from their session's address). See
        :mod:`simulators.garden`."""
        from simulators.garden import Garden

        self.garden = Garden(self, landing, allow, address_list)
        return self.garden

    def online(self, username: str | None = None) -> list[SimSession]:
        """Sessions online now (of *username*, or all)."""
        with self._lock:
            return [s for s in self.sessions.values() if username in (None, s.username)]

    def _end(self, sess: SimSession) -> bool:
        with self._lock:
            return self.sessions.pop(sess.session_id, None) is not None

    def _disconnect(self, sess: SimSession) -> None:
        if self._end(sess):
            self._spawn(self._stop_and_redial(sess))

    async def _stop_and_redial(self, sess: SimSession) -> None:
        await self._account("Stop", sess, "Admin-Reset")
        creds = self._creds.get(sess.username)
        if self.redial_after is None or creds is None:
            return
        await asyncio.sleep(self.redial_after)
        if self._redials is None:
            self._redials = asyncio.Semaphore(64)
        for _ in range(5):  # a rejected or unanswered redial is tried again, as routers do
            async with self._redials:  # a burst of redials must not starve the CoA port
                if (await self._login(sess.username, *creds)).accepted:
                    return
            await asyncio.sleep(max(self.redial_after, 0.5))

    # -- CoA / Disconnect server side (RFC 5176) ----------------------------------------

    def _find(self, req: packet.Packet) -> SimSession | None:
        sid = _first(req, "Acct-Session-Id")
        user = _first(req, "User-Name")
        ip = _first(req, "Framed-IP-Address")
        with self._lock:
            candidates = [self.sessions[sid]] if sid in self.sessions else (
                list(self.sessions.values()) if sid is None else [])
        for sess in candidates:
            if user is not None and sess.username != user:
                continue
            if ip is not None and sess.framed_ip != ip:
                continue
            return sess
        return None

    def _handle(self, data: bytes, addr: tuple[str, int], transport: asyncio.DatagramTransport
                ) -> None:
        if self.faults.silent or self.faults.ignore_coa:
            return
        if self.faults.drop and self._rng.random() < self.faults.drop:
            self.counters.dropped += 1
            return
        try:
            req = packet.CoAPacket(packet=data, secret=self.secret, dict=dictionary())
        except packet.PacketError:
            self.counters.discarded += 1
            return
        if req.code not in (packet.CoARequest, packet.DisconnectRequest) or not _authentic(req):
            self.counters.discarded += 1
            return
        reply = self._decide(req)
        raw = reply.ReplyPacket()
        if self.faults.delay:
            self._loop.call_later(self.faults.delay, transport.sendto, raw, addr)
        else:
            transport.sendto(raw, addr)

    def _decide(self, req: packet.CoAPacket) -> packet.Packet:
        reply = req.CreateReply()
        reply.message_authenticator = True
        nak = packet.DisconnectNAK if req.code == packet.DisconnectRequest else packet.CoANAK
        cause: int | None = self.faults.nak
        sess = None
        if cause is None:
            if not any(_first(req, a) for a in ("User-Name", "Acct-Session-Id",
                                                  "Framed-IP-Address")):
                cause = MISSING_ATTRIBUTE
            else:
                sess = self._find(req)
                cause = SESSION_NOT_FOUND if sess is None else None
        if cause is not None or sess is None:
            reply.code = nak
            reply["Error-Cause"] = cause or SESSION_NOT_FOUND
            self.counters.naks += 1
            return reply
        self.acked_at[sess.username] = time.monotonic()
        if self.faults.coa_no_effect:
            return reply
        if req.code == packet.DisconnectRequest:
            self.counters.disconnects += 1
            self._disconnect(sess)
        else:
            self.counters.coas += 1
            rate = _first(req, "Mikrotik-Rate-Limit")
            if rate is not None:
                sess.rate_limit = rate
            if "Mikrotik-Address-List" in req:
                sess.address_list = _first(req, "Mikrotik-Address-List") or None
        return reply

    # -- RouterOS API tables ------------------------------------------------------------

    def api_print(self, path: str) -> list[dict[str, str]]:
        with self._lock:
            sessions = list(self.sessions.values())
        if path == "/system/identity":
            return [{"name": "sim-nas"}]
        if path == "/ppp/active":
            return [{".id": s.item, "name": s.username, "service": "pppoe",
                     "caller-id": s.mac or "", "address": s.framed_ip,
                     "session-id": f"0x{s.session_id.upper()}",
                     "uptime": f"{int(time.time() - s.started)}s"}
                    for s in sessions if s.service == "pppoe"]
        if path == "/ip/hotspot/active":
            return [{".id": s.item, "user": s.username, "address": s.framed_ip,
                     "mac-address": s.mac or "", "session-id": f"0x{s.session_id.upper()}"}
                    for s in sessions if s.service == "hotspot"]
        if path == "/ip/firewall/address-list":
            dynamic = [{".id": f"*D{s.number:X}", "list": s.address_list, "address": s.framed_ip,
                        "dynamic": "true", "comment": s.username}
                       for s in sessions if s.address_list]
            static = ({**row, "dynamic": "false"} for row in self.static_lists.values())
            return [*static, *dynamic]
        if path == "/queue/simple":
            dynamic = [{".id": f"*Q{s.number:X}", "name": f"<{s.service}-{s.username}>",
                        "target": f"{s.framed_ip}/32", "max-limit": _max_limit(s.rate_limit),
                        "dynamic": "true", "disabled": "false"}
                       for s in sessions if s.rate_limit]
            return [*self.static_queues.values(), *dynamic]
        if path == "/ppp/secret":
            return list(self.secrets.values())
        raise ApiTrap("no such command prefix")

    def _static(self, path: str) -> dict[str, dict[str, str]]:
        tables = {"/ip/firewall/address-list": self.static_lists,
                  "/queue/simple": self.static_queues, "/ppp/secret": self.secrets}
        if path not in tables:
            raise ApiTrap("no such command")
        return tables[path]

    def api_add(self, path: str, attrs: dict[str, str]) -> str:
        table = self._static(path)
        if path == "/ip/firewall/address-list" and not (attrs.get("list") and attrs.get("address")):
            raise ApiTrap("failure: list and address must be set")
        item = f"*S{next(self._numbers):X}"
        table[item] = {".id": item, **attrs}
        return item

    def _session_by_item(self, item: str) -> SimSession | None:
        with self._lock:
            for sess in self.sessions.values():
                if item in (sess.item, f"*D{sess.number:X}", f"*Q{sess.number:X}"):
                    return sess
        return None

    def api_set(self, path: str, item: str, attrs: dict[str, str]) -> None:
        if path == "/queue/simple" and item.startswith("*Q"):
            sess = self._session_by_item(item)
            if sess is None:
                raise ApiTrap("no such item")
            if "max-limit" in attrs:
                if _bps_pair(attrs["max-limit"]) is None:
                    raise ApiTrap("invalid value for argument max-limit")
                up, _, down = attrs["max-limit"].partition("/")
                sess.rate_limit = f"{up}/{down or up}"
            return
        table = self._static(path)
        if item not in table:
            raise ApiTrap("no such item")
        table[item].update(attrs)

    def api_remove(self, path: str, item: str) -> None:
        if path in ("/ppp/active", "/ip/hotspot/active"):
            sess = self._session_by_item(item)
            if sess is None:
                raise ApiTrap("no such item")
            self._disconnect(sess)
            return
        if path == "/ip/firewall/address-list" and item.startswith("*D"):
            sess = self._session_by_item(item)
            if sess is None:
                raise ApiTrap("no such item")
            sess.address_list = None
            return
        table = self._static(path)
        if table.pop(item, None) is None:
            raise ApiTrap("no such item")

    @property
    def api_silent(self) -> bool:
        return self.api.silent

    @api_silent.setter
    def api_silent(self, value: bool) -> None:
        self.api.silent = value


class _CoaProtocol(asyncio.DatagramProtocol):
    def __init__(self, nas: NasSimulator) -> None:
        self.nas = nas
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.nas._handle(data, addr, self.transport)


def _authentic(req: packet.CoAPacket) -> bool:
    """Request Authenticator, Message-Authenticator (required, BlastRADIUS) and the
    Event-Timestamp window (required, replay protection)."""
    if not req.VerifyCoARequest() or not req.message_authenticator:
        return False
    if not req.verify_message_authenticator():
        return False
    stamp = _first(req, "Event-Timestamp")
    return isinstance(stamp, int) and abs(time.time() - stamp) <= EVENT_WINDOW


def _first(pkt: packet.Packet, name: str) -> Any:
    try:
        values = pkt[name]
    except KeyError:
        return None
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else value


def _text_attrs(reply: packet.Packet) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("Mikrotik-Rate-Limit", "Mikrotik-Address-List", "Framed-IP-Address",
                 "Framed-Pool", "Reply-Message", "Session-Timeout", "Acct-Interim-Interval"):
        value = _first(reply, name)
        if value is not None:
            out[name] = str(value)
    return out


_UNITS = {"": 1, "k": 1_000, "M": 1_000_000, "G": 1_000_000_000}


def _bps(text: str) -> int | None:
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
    try:
        value = float(number)
    except ValueError:
        return None
    return round(value * _UNITS[unit]) if value >= 0 else None


def _bps_pair(text: str) -> tuple[int, int] | None:
    up, _, down = text.strip().partition("/")
    pair = _bps(up), _bps(down or up)
    return None if pair[0] is None or pair[1] is None else (pair[0], pair[1])


def _max_limit(rate: str | None) -> str:
    """A queue's max-limit (upload/download) from a Rate-Limit's first pair (rx/tx), printed
    as RouterOS prints it: bits per second (``5M/20M`` -> ``5000000/20000000``; the MikroTik
    manual's Rate-Limit examples: ``64k/128M - rx-rate=64000, tx-rate=128000000``)."""
    pair = _bps_pair((rate or "0/0").split(" ")[0])
    return "0/0" if pair is None else f"{pair[0]}/{pair[1]}"

