"""RouterOS API adapter (librouteros, plain or API-SSL): the fallback when CoA fails, and the
reconciler's read-back of what a router really has.

One connection per router, reused and serialised (librouteros has no tagged concurrency);
every command has its own timeout (some RouterOS commands never answer ``!done``). ``.id``
values change across reboots, so items are looked up by name every time.

What a router prints is not what we write, and comparisons go through the router's own
notation (checked with an independent client, tests/conformance):

* ``/queue/simple`` ``max-limit`` is printed in bits per second (``5000000/20000000``) whatever
  was written (``5M/20M``): RouterOS converts k/M/G to numbers on input (MikroTik manual,
  RADIUS client, "Rate-Limit examples": ``64k/128M - rx-rate=64000, tx-rate=128000000``; the
  Queue manual's ``/queue simple print`` shows ``max-limit=64000/128000``). Both sides are
  parsed to numbers before comparing (:func:`max_limit_bps`).
* ``/ppp active`` prints ``session-id=0x81C00002`` (upper-case hex, as in published
  ``/ppp active print`` outputs), while the router's RADIUS accounting carries
  ``Acct-Session-Id = "81c00002"``: ids are compared without the ``0x`` and case-insensitively
  (:func:`session_id`).
* API-SSL has two modes (MikroTik manual, Developer Guides, API,
  https://manual.mikrotik.com/docs/Developer%20Guides/API/): "Without a certificate provided
  in the /ip service settings, the client must use an anonymous Diffie-Hellman cipher to
  establish a connection. If the service uses a certificate, the client can establish a TLS
  session." The NAS's ``api_tls`` setting says which (:func:`tls_context`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import librouteros
from librouteros.exceptions import LibRouterosError, TrapError
from librouteros.login import async_plain
from librouteros.query import Key

from coa.controller import (
    EnforcementError,
    NasRef,
    Outcome,
    PolicyChange,
    SessionRef,
    StepResult,
)

T = TypeVar("T")

ACTIVE_MENUS = {"pppoe": ("/ppp/active", "name"), "hotspot": ("/ip/hotspot/active", "user")}


class _Mismatch(Exception):
    """A read-back found the router not as it should be."""


@dataclass(frozen=True)
class ActiveEntry:
    """One subscriber online at a router, as the API lists it."""

    username: str
    service: str
    address: str | None
    session_id: str | None
    item: str


@dataclass(frozen=True)
class RouterView:
    """What a router reports: who is online, and which addresses are in the suspended list."""

    active: list[ActiveEntry]
    listed: dict[str, str]  # address -> .id in the walled-garden address list


TLS_MODES = ("none", "anon", "verify")
# Anonymous (EC)DH first, for a router without a certificate; then certificate suites, for a
# router that has one (left unchecked in "anon" mode). No NULL encryption. SECLEVEL=0 is what
# lets OpenSSL offer unauthenticated suites at all.
ANON_CIPHERS = ("ADH+AESGCM:ADH+AES:AECDH+AES:ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:"
                "ECDHE+AES:!eNULL:@SECLEVEL=0")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")
_RATE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def session_id(value: Any) -> str | None:
    """A session id as accounting spells it: ``0x81B0000A`` (``/ppp active``) and
    ``81b0000a`` (``Acct-Session-Id``) are the same session."""
    if value is None:
        return None
    text = str(value).strip().lower()
    text = text.removeprefix("0x")
    return text or None


def max_limit_bps(value: object) -> tuple[int, int] | None:
    """A ``max-limit`` (``upload/download``) in bits per second, from RouterOS's printed
    numbers (``5000000/20000000``) or our k/M/G notation (``5M/20M``, the first pair of a
    Mikrotik-Rate-Limit). None if it is neither."""
    parts = str(value or "").strip().split(" ")[0].split("/")
    if len(parts) == 1:
        parts = parts * 2  # "10M" means the same limit both ways
    if len(parts) != 2:
        return None
    out = []
    for part in parts:
        m = _RATE_RE.fullmatch(part.strip())
        if m is None:
            return None
        number, unit = m.groups()
        out.append(round(float(number) * _RATE_UNITS[unit.lower()]))
    return out[0], out[1]


def tls_context(mode: str, ca_pem: str | None = None) -> ssl.SSLContext | None:
    """The client TLS context for a NAS's ``api_tls`` mode (None: plain API).

    ``anon`` encrypts without authenticating the router: it offers anonymous DH suites (a
    router without a certificate has nothing else) and certificate suites (not checked),
    at most TLS 1.2 since TLS 1.3 has no anonymous key exchange. ``verify`` accepts only a
    certificate that chains to *ca_pem* (or the system's CAs) and names the NAS's address;
    a pinned fingerprint is checked by :func:`_pinned_login` instead of a chain."""
    if mode == "none":
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode == "anon":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ANON_CIPHERS)
        return ctx
    if mode != "verify":
        raise EnforcementError(f"unknown API TLS mode {mode!r}: use {', '.join(TLS_MODES)}")
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    else:
        ctx.load_default_certs()
    return ctx


def _pinned_context() -> ssl.SSLContext:
    """TLS for a router pinned by fingerprint: the certificate is compared to the pin before
    the password is sent, not validated against a CA (a router's self-signed one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _pinned_login(fingerprint: str) -> Callable[[Any, str, str], Awaitable[None]]:
    """A librouteros login that refuses to send the credentials unless the router's
    certificate has the SHA-256 *fingerprint*."""
    async def login(api: Any, username: str, password: str) -> None:
        ssl_object = api.protocol.transport.writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        seen = hashlib.sha256(der).hexdigest() if der else "no certificate"
        if not hmac.compare_digest(seen, fingerprint):
            raise EnforcementError(f"the router's certificate is not the pinned one "
                                   f"(SHA-256 {seen})")
        await async_plain(api, username, password)

    return login


class RouterOsController:
    """A :class:`~coa.controller.SessionController` over the RouterOS API."""

    def __init__(self, *, timeout: float = 5.0, walled_garden_list: str = "radbill-suspended",
                 down_for: float = 30.0) -> None:
        self.timeout = timeout
        self.walled_garden_list = walled_garden_list
        self._tls: dict[tuple[str, str | None, bool], ssl.SSLContext | None] = {}
        self._conns: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # A router that failed to connect or answer is skipped for a while: commands to it are
        # serialised, so a dead router would otherwise hold a whole burst for hours.
        self._down_until: dict[str, float] = {}
        self.down_for = down_for

    def _tls_context(self, nas: NasRef) -> ssl.SSLContext | None:
        pinned = nas.api_tls == "verify" and bool(nas.api_tls_fingerprint)
        key = (nas.api_tls, nas.api_tls_ca, pinned)
        if key not in self._tls:
            try:
                self._tls[key] = _pinned_context() if pinned else tls_context(
                    nas.api_tls, nas.api_tls_ca)
            except (ssl.SSLError, ValueError) as exc:
                raise EnforcementError(f"NAS {nas.ip}: unusable API TLS CA: {exc}") from None
        return self._tls[key]

    async def _api(self, nas: NasRef) -> Any:
        if not nas.has_api:
            raise EnforcementError(f"NAS {nas.ip} has no RouterOS API credentials")
        api = self._conns.get(nas.ip)
        if api is None:
            assert nas.api_username is not None
            assert nas.api_password is not None
            context = self._tls_context(nas)
            extra: dict[str, Any] = {}
            if nas.api_tls == "verify" and nas.api_tls_fingerprint:
                extra["login_method"] = _pinned_login(nas.api_tls_fingerprint)
            try:
                api = await asyncio.wait_for(librouteros.async_connect(
                    nas.ip, nas.api_username, nas.api_password, port=nas.api_port or 8728,
                    timeout=self.timeout, ssl_wrapper=context, **extra), self.timeout)
            except (OSError, TimeoutError, LibRouterosError, ssl.SSLError) as exc:
                raise EnforcementError(f"RouterOS API {nas.ip}:{nas.api_port}: {exc!r}") from None
            self._conns[nas.ip] = api
        return api

    async def _run(self, nas: NasRef, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run *work* on the router's connection with a timeout; a broken connection is
        dropped (and re-opened by the next command)."""
        lock = self._locks.setdefault(nas.ip, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            if loop.time() < self._down_until.get(nas.ip, 0.0):
                raise EnforcementError(f"RouterOS API {nas.ip}: failed moments ago, skipped "
                                       f"for {self.down_for:.0f} s")
            try:
                api = await self._api(nas)
                return await asyncio.wait_for(work(api), self.timeout)
            except TrapError:
                raise
            except EnforcementError:
                self._down_until[nas.ip] = loop.time() + self.down_for
                raise
            except (OSError, TimeoutError, LibRouterosError, ssl.SSLError) as exc:
                await self._drop(nas.ip)
                self._down_until[nas.ip] = loop.time() + self.down_for
                raise EnforcementError(f"RouterOS API {nas.ip}: {exc!r}") from None

    async def _drop(self, ip: str) -> None:
        api = self._conns.pop(ip, None)
        if api is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                await asyncio.wait_for(api.close(), 1)

    async def close(self) -> None:
        for ip in list(self._conns):
            await self._drop(ip)

    async def identity(self, nas: NasRef) -> str:
        """The router's name (``/system/identity print``): proves the API login and its
        credentials; changes nothing on the router."""
        rows = await self._run(nas, lambda api: self._rows(api, "/system/identity"))
        return str(rows[0].get("name", "")) if rows else ""

    async def _rows(self, api: Any, menu: str, **where: str) -> list[dict[str, Any]]:
        query = api.path(menu).select()
        if where:
            query = query.where(*(Key(k) == v for k, v in where.items()))
        return [row async for row in query]

    async def _timed(self, channel: str, nas: NasRef, work: Callable[[Any], Awaitable[Outcome]]
                     ) -> StepResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcome = await self._run(nas, work)
        except EnforcementError as exc:
            return StepResult(Outcome.ERROR, channel, detail=str(exc),
                              latency=loop.time() - started)
        except TrapError as exc:
            return StepResult(Outcome.NAK, channel, detail=f"trap: {exc}",
                              latency=loop.time() - started)
        return StepResult(outcome, channel, latency=loop.time() - started)

    async def disconnect(self, nas: NasRef, ref: SessionRef) -> StepResult:
        """Remove the session from ``/ppp/active`` or ``/ip/hotspot/active``; for a router that
        keeps the user locally (``/ppp/secret``) the secret is left alone: disabling is
        :meth:`set_local_user`'s job."""
        async def work(api: Any) -> Outcome:
            found = await self._find(api, ref)
            if not found:
                return Outcome.GONE
            for menu, item in found:
                await _drain(api.path(menu)("remove", **{".id": item}))
            return Outcome.ACK

        return await self._timed("api-disconnect", nas, work)

    async def _find(self, api: Any, ref: SessionRef) -> list[tuple[str, str]]:
        found = []
        for service in (ref.service, *(s for s in ACTIVE_MENUS if s != ref.service)):
            menu, key = ACTIVE_MENUS.get(service, ACTIVE_MENUS["pppoe"])
            wanted = session_id(ref.acct_session_id)
            for row in await self._rows(api, menu, **{key: ref.username}):
                sid = session_id(row.get("session-id"))
                if sid and wanted and sid != wanted:
                    continue
                if ref.framed_ip and row.get("address") and row["address"] != ref.framed_ip:
                    continue
                found.append((menu, str(row[".id"])))
            if found:
                break
        return found

    async def change(self, nas: NasRef, ref: SessionRef, change: PolicyChange) -> StepResult:
        """Set the session's dynamic queue (``/queue/simple``) and the walled-garden
        address-list entry for its address."""
        async def work(api: Any) -> Outcome:
            if not await self._find(api, ref):
                return Outcome.GONE
            if change.rate_limit is not None:
                queues = await self._rows(api, "/queue/simple",
                                          name=f"<{ref.service}-{ref.username}>")
                up_down = change.rate_limit.split(" ")[0]
                for q in queues:
                    await _drain(api.path("/queue/simple")("set", **{
                        ".id": q[".id"], "max-limit": up_down}))
            if change.address_list is not None and ref.framed_ip:
                await self._set_listed(api, ref.framed_ip, change.address_list, ref.username)
            return Outcome.ACK

        return await self._timed("api-change", nas, work)

    async def read_back(self, nas: NasRef, ref: SessionRef, change: PolicyChange
                        ) -> StepResult:
        """Check on the router that a live change took: the session's dynamic queue has the
        new rate and its address is in (or out of) the walled-garden list. ACK if it matches,
        NAK (with what differs) if not, GONE if the session is not there."""
        async def work(api: Any) -> Outcome:
            if not await self._find(api, ref):
                return Outcome.GONE
            wrong = []
            if change.rate_limit is not None:
                queues = await self._rows(api, "/queue/simple",
                                          name=f"<{ref.service}-{ref.username}>")
                want = max_limit_bps(change.rate_limit)
                if not queues or any(max_limit_bps(q.get("max-limit")) != want
                                     for q in queues):
                    wrong.append("rate")
            if change.address_list is not None and ref.framed_ip:
                listed = bool(await self._rows(api, "/ip/firewall/address-list",
                                               list=self.walled_garden_list,
                                               address=ref.framed_ip))
                if listed != (change.address_list == self.walled_garden_list):
                    wrong.append("address list")
            if wrong:
                raise _Mismatch(" and ".join(wrong))
            return Outcome.ACK

        try:
            return await self._timed("api-readback", nas, work)
        except _Mismatch as exc:
            return StepResult(Outcome.NAK, "api-readback",
                              detail=f"the router does not show the new {exc}")

    async def _set_listed(self, api: Any, address: str, wanted: str, comment: str) -> None:
        rows = await self._rows(api, "/ip/firewall/address-list", list=self.walled_garden_list,
                                address=address)
        if wanted == self.walled_garden_list:
            if not rows:
                await api.path("/ip/firewall/address-list").add(
                    list=self.walled_garden_list, address=address, comment=f"radbill {comment}")
            return
        for row in rows:
            await _drain(api.path("/ip/firewall/address-list")("remove", **{".id": row[".id"]}))

    async def set_local_user(self, nas: NasRef, username: str, disabled: bool) -> StepResult:
        """Disable or enable a ``/ppp/secret`` kept on the router (GONE if there is none).
        Disabling does not drop a live session: disconnect it as well."""
        async def work(api: Any) -> Outcome:
            rows = await self._rows(api, "/ppp/secret", name=username)
            for row in rows:
                await _drain(api.path("/ppp/secret")("set", **{
                    ".id": row[".id"], "disabled": "yes" if disabled else "no"}))
            return Outcome.ACK if rows else Outcome.GONE

        return await self._timed("api-secret", nas, work)

    async def view(self, nas: NasRef) -> RouterView:
        """Everyone online and every walled-garden entry. Raises :class:`EnforcementError`."""
        async def work(api: Any) -> RouterView:
            active = []
            for service, (menu, key) in ACTIVE_MENUS.items():
                for row in await self._rows(api, menu):
                    active.append(ActiveEntry(
                        username=str(row.get(key, "")), service=service,
                        address=row.get("address"), session_id=session_id(row.get("session-id")),
                        item=str(row[".id"])))
            listed = {str(r["address"]): str(r[".id"]) for r in await self._rows(
                api, "/ip/firewall/address-list", list=self.walled_garden_list)}
            return RouterView(active, listed)

        try:
            return await self._run(nas, work)
        except TrapError as exc:
            raise EnforcementError(f"RouterOS API {nas.ip}: {exc}") from None

    async def remove_listed(self, nas: NasRef, item: str) -> StepResult:
        """Take one entry out of the walled-garden address list."""
        async def work(api: Any) -> Outcome:
            await _drain(api.path("/ip/firewall/address-list")("remove", **{".id": item}))
            return Outcome.ACK

        return await self._timed("api-list", nas, work)


async def _drain(responses: Any) -> None:
    async for _ in responses:
        pass
