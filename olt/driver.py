"""The OLT adapter: :class:`OltDriver` (the protocol) and :class:`SnmpOltDriver`, which reads
a vendor :class:`~olt.profiles.Profile` and talks SNMP through :class:`~olt.snmp.SnmpClient`.

An ONU is always named by its serial or MAC. Its row index is looked up on the OLT right
before the SETs (indexes move after a reboot or a re-registration), and the read-back reads
the identity column at that index again, so an ONU that moved in between is never reported
as done. Every SET is read back: SNMP can answer noError and change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from olt import codec
from olt.profiles import IF_DESCR, SYS_UPTIME, Profile
from olt.snmp import (
    Credentials,
    OltAuthError,
    OltError,
    OltReadOnly,
    OltTimeout,
    OltUnsupported,
    OltWrongValue,
    SnmpClient,
)

T = TypeVar("T")
SET_BATCH = 16  # varbinds per SET PDU: one PDU is atomic on the agent; a refused one is split
GET_BATCH = 24
IN_FLIGHT = 8  # PDUs in flight per OLT


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class OnuReading:
    """One ONU as an OLT reports it now."""

    index: str
    ident: str
    pon: str | None
    onu_no: int | None
    name: str | None
    online: bool
    rx_dbm: float | None
    blocked: bool | None


@dataclass(frozen=True)
class BlockResult:
    """What became of one ONU's block or unblock: ``outcome`` is ``ack`` only when the
    OLT was read back in the wanted state at the ONU's current index."""

    ident: str
    block: bool
    outcome: str  # ack | not-applied | not-found | moved | timeout | auth | read-only |
    #               wrong-value | unsupported | error
    index: str | None = None
    detail: str = ""
    latency: float = 0.0
    saved: bool | None = None  # None: the profile has no save OID


def outcome_of(exc: OltError) -> str:
    """The attempt outcome an OltError stands for."""
    if isinstance(exc, OltTimeout):
        return "timeout"
    if isinstance(exc, OltAuthError):
        return "auth"
    if isinstance(exc, OltReadOnly):
        return "read-only"
    if isinstance(exc, OltWrongValue):
        return "wrong-value"
    if isinstance(exc, OltUnsupported):
        return "unsupported"
    return "error"


class OltDriver(Protocol):
    """One OLT. Implementations may block or unblock only the ONUs they are asked about, and
    must never report ``ack`` without having read the OLT back."""

    async def uptime(self) -> int:
        """sysUpTime in hundredths of a second (it goes backwards when the OLT rebooted)."""

    async def discover(self) -> list[OnuReading]:
        """Every ONU on the OLT with status, Rx power and admin state."""

    async def apply(self, wants: dict[str, bool]) -> list[BlockResult]:
        """Block (True) or unblock (False) each ONU named by serial/MAC; read every one back;
        save the configuration once where the profile can."""

    async def read_states(self, idents: Sequence[str]) -> dict[str, bool | None]:
        """Whether each ONU is blocked now (None: not on the OLT)."""

    async def aclose(self) -> None:
        """Release the SNMP engine."""


class SnmpOltDriver:
    """:class:`OltDriver` over SNMP, driven by a profile."""

    def __init__(self, profile: Profile, creds: Credentials) -> None:
        self.p = profile
        self.snmp = SnmpClient(creds)

    async def aclose(self) -> None:
        await self.snmp.aclose()

    async def __aenter__(self) -> SnmpOltDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def uptime(self) -> int:
        value = (await self.snmp.get([SYS_UPTIME]))[SYS_UPTIME]
        if not isinstance(value, int):
            raise OltError(f"{self.snmp.where}: no sysUpTime")
        return value

    async def resolve(self) -> dict[str, str]:
        """serial/MAC -> the ONU's row index, walked now."""
        if not self.p.ident_oid:
            raise OltUnsupported(f"profile {self.p.name} has no identity column: set "
                                 "ident_oid in the OLT's overrides")
        out: dict[str, str] = {}
        for index, raw in await self.snmp.walk(self.p.ident_oid):
            ident = codec.ident_from_snmp(raw, self.p.ident_encoding) if isinstance(
                raw, bytes) else None
            if ident is not None:
                out[ident] = index
        return out

    def _blocked(self, value: int | bytes | None) -> bool | None:
        if not isinstance(value, int):
            return None
        if self.p.state_unblocked_values:
            return value not in self.p.state_unblocked_values
        if value in self.p.state_blocked_values:
            return True
        return False if value == self.p.unblocked_value else None

    async def _column(self, oid: str | None, suffix: str = "") -> dict[str, int | bytes | None]:
        if not oid:
            return {}
        rows = await self.snmp.walk(oid)
        if suffix:
            return {i[: -len(suffix)]: v for i, v in rows if i.endswith(suffix)}
        return dict(rows)

    async def discover(self) -> list[OnuReading]:
        p = self.p
        idents = await self.resolve()
        descr = {k: v.decode("ascii", "replace") for k, v in
                 (await self._column(IF_DESCR)).items()
                 if isinstance(v, bytes)} if p.index_scheme == "ifdescr" else {}
        names = await self._column(p.name_oid)
        status = await self._column(p.status_oid)
        rx = await self._column(p.rx_oid, p.rx_suffix)
        state = await self._column(p.read_oid, p.read_suffix) if p.block_mode == "column" \
            or p.state_oid else {}
        out = []
        for ident, index in idents.items():
            where = codec.pon_onu(p.index_scheme, index, descr.get(index))
            dbm = codec.rx_dbm(rx.get(index), p.rx_encoding, p.rx_scale, p.rx_absent)
            st = status.get(index)
            online = (st in p.online_values) if p.status_oid else dbm is not None
            name = names.get(index)
            out.append(OnuReading(
                index=index, ident=ident, pon=where[0] if where else None,
                onu_no=where[1] if where else None,
                name=name.decode("utf-8", "replace")[:64] if isinstance(name, bytes) else None,
                online=bool(online), rx_dbm=dbm,
                blocked=self._blocked(state.get(index)) if p.block_mode != "none" else None))
        return out

    def _set_binds(self, index: str, block: bool) -> list[tuple[str, int | bytes]]:
        p = self.p
        value = p.blocked_value if block else p.unblocked_value
        assert p.block_oid is not None
        if p.block_mode == "command":
            pon, onu = (int(x) for x in index.split(".")[:2])
            assert p.command_pon_oid is not None
            assert p.command_onu_oid is not None
            return [(p.command_pon_oid, pon), (p.command_onu_oid, onu), (p.block_oid, value)]
        return [(f"{p.block_oid}.{index}{p.block_suffix}", value)]

    async def _set(self, items: Sequence[tuple[str, str, bool]], gate: asyncio.Semaphore,
                   errors: dict[str, OltError]) -> None:
        """SET (ident, index, block) items in one PDU; a refused PDU is tried item by item
        so one bad row does not fail the others."""
        binds = [b for _, index, block in items for b in self._set_binds(index, block)]
        try:
            async with gate:
                await self.snmp.set(binds)
        except OltError as exc:
            # what fails for the whole OLT (no answer, credentials, a read-only community)
            # fails every row alike: only a row-level refusal is worth splitting
            if len(items) == 1 or isinstance(exc, OltTimeout | OltAuthError | OltReadOnly):
                for ident, _, _ in items:
                    errors[ident] = exc
                return
            for item in items:
                await self._set([item], gate, errors)

    async def apply(  # noqa: PLR0912 - resolve, set, read back, save: one branch per outcome
            self, wants: dict[str, bool]) -> list[BlockResult]:
        p = self.p
        started = time.monotonic()
        if p.block_mode == "none":
            return [BlockResult(i, b, "unsupported", detail=f"{p.title}: no SNMP block; "
                                "enforced at the NAS only") for i, b in wants.items()]
        try:
            where = await self.resolve()  # indexes as of now, right before the SETs
        except OltError as exc:
            return [BlockResult(i, b, outcome_of(exc), detail=str(exc)[:300],
                                latency=time.monotonic() - started) for i, b in wants.items()]
        results: dict[str, BlockResult] = {}
        todo: list[tuple[str, str, bool]] = []
        for ident, block in wants.items():
            if ident in where:
                todo.append((ident, where[ident], block))
            else:
                results[ident] = BlockResult(ident, block, "not-found",
                                             detail=f"{ident} is not on the OLT")
        errors: dict[str, OltError] = {}
        gate = asyncio.Semaphore(IN_FLIGHT)
        if p.block_mode == "command":  # shared scalars: one ONU at a time
            for item in todo:
                await self._set([item], gate, errors)
        else:
            await asyncio.gather(*(self._set(chunk, gate, errors)
                                   for chunk in _batches(todo, SET_BATCH)))
        done = [t for t in todo if t[0] not in errors]
        for ident, index, block in todo:
            if ident in errors:
                results[ident] = BlockResult(ident, block, outcome_of(errors[ident]), index,
                                             str(errors[ident])[:300])
        read = await self._read_back(done, gate)
        saved: bool | None = None
        if p.save_oid and any(r.outcome == "ack" for r in read):
            try:
                await self.snmp.set([(p.save_oid, p.save_value)])
                saved = True
            except OltError:
                saved = False
        latency = time.monotonic() - started
        for r in read:
            results[r.ident] = BlockResult(r.ident, r.block, r.outcome, r.index, r.detail,
                                           latency, saved if r.outcome == "ack" else None)
        return [results[i] for i in wants]

    async def _read_back(self, done: list[tuple[str, str, bool]], gate: asyncio.Semaphore
                         ) -> list[BlockResult]:
        p = self.p
        assert p.ident_oid is not None
        assert p.read_oid is not None

        async def one(chunk: Sequence[tuple[str, str, bool]]) -> list[BlockResult]:
            oids = []
            for _, index, _ in chunk:
                oids += [f"{p.ident_oid}.{index}", f"{p.read_oid}.{index}{p.read_suffix}"]
            try:
                async with gate:
                    got = await self.snmp.get(oids)
            except OltError as exc:
                return [BlockResult(i, b, outcome_of(exc), x, f"read-back: {exc}"[:300])
                        for i, x, b in chunk]
            out = []
            for ident, index, block in chunk:
                raw = got.get(f"{p.ident_oid}.{index}")
                now_ident = codec.ident_from_snmp(raw, p.ident_encoding) if isinstance(
                    raw, bytes) else None
                state = self._blocked(got.get(f"{p.read_oid}.{index}{p.read_suffix}"))
                if now_ident != ident:
                    out.append(BlockResult(ident, block, "moved", index,
                                           f"index {index} now holds {now_ident}"))
                elif state is block:
                    out.append(BlockResult(ident, block, "ack", index))
                else:
                    out.append(BlockResult(
                        ident, block, "not-applied", index,
                        f"SET answered noError but {ident} reads back "
                        f"{'blocked' if state else 'unblocked' if state is False else 'unknown'}"))
            return out

        chunks = await asyncio.gather(*(one(c) for c in _batches(done, GET_BATCH // 2)))
        return [r for c in chunks for r in c]

    async def read_states(self, idents: Sequence[str]) -> dict[str, bool | None]:
        p = self.p
        if p.block_mode == "none":
            return dict.fromkeys(idents)
        where = await self.resolve()
        state = await self._column(p.read_oid, p.read_suffix)
        return {i: (self._blocked(state.get(where[i])) if i in where else None)
                for i in idents}
