"""RouterOS API adapter (librouteros, plain or API-SSL): the fallback when CoA fails, and the
reconciler's read-back of what a router really has.

One connection per router, reused and serialised (librouteros has no tagged concurrency);
every command has its own timeout (some RouterOS commands never answer ``!done``). ``.id``
values change across reboots, so items are looked up by name every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import librouteros
from librouteros.exceptions import LibRouterosError, TrapError
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


def _session_id(value: Any) -> str | None:
    # /ppp/active shows session-id as 0x81000001; accounting sends 81000001.
    if value is None:
        return None
    text = str(value)
    return text[2:] if text.lower().startswith("0x") else text


class RouterOsController:
    """A :class:`~coa.controller.SessionController` over the RouterOS API."""

    def __init__(self, *, timeout: float = 5.0, walled_garden_list: str = "radbill-suspended",
                 tls_context: ssl.SSLContext | None = None, down_for: float = 30.0) -> None:
        self.timeout = timeout
        self.walled_garden_list = walled_garden_list
        self._tls = tls_context
        self._conns: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # A router that failed to connect or answer is skipped for a while: commands to it are
        # serialised, so a dead router would otherwise hold a whole burst for hours.
        self._down_until: dict[str, float] = {}
        self.down_for = down_for

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            # RouterOS API-SSL ships with a self-signed certificate; operators who install
            # a real one pass a verifying context instead.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    async def _api(self, nas: NasRef) -> Any:
        if not nas.has_api:
            raise EnforcementError(f"NAS {nas.ip} has no RouterOS API credentials")
        api = self._conns.get(nas.ip)
        if api is None:
            assert nas.api_username is not None
            assert nas.api_password is not None
            try:
                api = await asyncio.wait_for(librouteros.async_connect(
                    nas.ip, nas.api_username, nas.api_password, port=nas.api_port or 8728,
                    timeout=self.timeout,
                    ssl_wrapper=self._tls_context() if nas.api_tls else None), self.timeout)
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
            for row in await self._rows(api, menu, **{key: ref.username}):
                sid = _session_id(row.get("session-id"))
                if sid and ref.acct_session_id and sid != ref.acct_session_id:
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
                want = change.rate_limit.split(" ")[0]
                if not queues or any(q.get("max-limit") != want for q in queues):
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
                        address=row.get("address"), session_id=_session_id(row.get("session-id")),
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
