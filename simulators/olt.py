"""A simulated OLT: an SNMP agent (pysnmp's agent side) over real UDP that serves one vendor
profile's tables and accepts its block SETs, with the faults real OLTs show.

Written from the vendor facts in shared FIELD-NOTES ("OLTs over SNMP") and RFC 3416, not from
radbill's driver: the tables are laid out the way each model's MIB lays them out (index
schemes, Huawei's 8-byte serial, VSOL's command scalars and Rx strings, ZTE's Rx wrap-around,
BDCOM's ifDescr "EPON0/1:N" and UNI port rows).

Each simulated OLT runs its own thread and event loop, so a slow one (a fault) never slows
another, as on a real network. Faults, settable at any time:

- ``drop``: answer nothing (an unreachable OLT; also what a wrong community gets);
- ``read_only_write``: the write community may only read: ``"noAccess"`` (an error answer) or
  ``"drop"`` (silence, as many OLTs do);
- ``silent_set``: a SET answers noError and changes nothing;
- ``walk_delay``: seconds to sleep on every GETNEXT/GETBULK (a slow walk);
- :meth:`SimOlt.reboot`: sysUpTime starts again from 0, ONU ids are handed out anew (indexes
  move) and every admin state is forgotten (all ONUs unblocked), as after a power cycle
  without a saved configuration (a saved block survives).
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c
from pysnmp.smi import error as smi_error
from pysnmp.smi import exval, instrum

from olt import codec
from olt.profiles import IF_DESCR, SYS_UPTIME, Profile, profile

OidT = tuple[int, ...]


def _oid(text: str) -> OidT:
    return tuple(int(x) for x in text.split("."))


@dataclass
class SimOnu:
    """One ONU as the OLT knows it."""

    ident: str  # serial (HWTC1A2B3C4D) or MAC (aa:bb:cc:dd:ee:ff)
    slot: int = 0
    pon: int = 1
    onu: int = 1
    name: str = ""
    online: bool = True
    rx_dbm: float = -21.5
    blocked: bool = False
    saved_blocked: bool = False  # what survives a reboot (written by the save OID)
    if_index: int = 0


@dataclass
class Faults:
    drop: bool = False
    read_only_write: str | None = None  # None | "noAccess" | "drop"
    silent_set: bool = False
    walk_delay: float = 0.0


@dataclass
class Counters:
    gets: int = 0
    walks: int = 0
    sets: int = 0
    saves: int = 0
    dropped: int = 0


@dataclass
class SimOlt:
    """One simulated OLT of *vendor* on 127.0.0.1 (port chosen when 0)."""

    vendor: str
    onus: list[SimOnu] = field(default_factory=list)
    community: str = "public"
    write_community: str = "private"
    v3_user: str | None = None
    v3_auth_key: str | None = None
    v3_priv_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    faults: Faults = field(default_factory=Faults)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self.profile: Profile = profile(self.vendor)
        self._lock = threading.RLock()
        self._rows: list[OidT] = []
        self._values: dict[OidT, Any] = {}
        self._dirty = True
        # an OLT found in the field has been up for a while (here: 40 days before start)
        self._boot = time.monotonic() - 40 * 86400
        self._cmd: dict[str, int] = {}  # VSOL command scalars written so far
        self._delayed = -1  # the request id of the last PDU held back by walk_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: engine.SnmpEngine | None = None
        self._index_onus()

    # -- the tables ------------------------------------------------------------------------

    def _index_onus(self) -> None:
        """Hand out ONU ids and ifIndexes in list order, per PON (what registration does)."""
        per_pon: dict[tuple[int, int], int] = {}
        for n, o in enumerate(self.onus):
            key = (o.slot, o.pon)
            per_pon[key] = per_pon.get(key, 0) + 1
            o.onu = per_pon[key]
            o.if_index = 10 + n
        self._dirty = True

    def index_of(self, o: SimOnu) -> str:
        return codec.index_for(self.profile.index_scheme, o.slot, o.pon, o.onu, o.if_index)

    def by_ident(self, ident: str) -> SimOnu:
        with self._lock:
            return next(o for o in self.onus if o.ident == ident)

    def _state_value(self, o: SimOnu) -> int:
        p = self.profile
        if p.block_mode == "command":  # VSOL: the phase column; deactivated is not working(3)
            return 1 if o.blocked or not o.online else 3
        return p.blocked_value if o.blocked else p.unblocked_value

    def _build(self) -> None:  # noqa: PLR0912 - one branch per column a profile may have
        p = self.profile
        values: dict[OidT, Any] = {}
        uptime = int((time.monotonic() - self._boot) * 100)
        values[_oid(SYS_UPTIME)] = rfc1902.TimeTicks(uptime % 2**32)
        for o in self.onus:
            idx = self.index_of(o)
            if p.index_scheme == "ifdescr":
                kind = "EPON" if p.ident_kind == "mac" else "GPON"
                values[_oid(f"{IF_DESCR}.{idx}")] = rfc1902.OctetString(
                    f"{kind}0/{o.pon}:{o.onu}")
            if p.ident_oid:
                values[_oid(f"{p.ident_oid}.{idx}")] = rfc1902.OctetString(
                    codec.ident_to_snmp(o.ident, p.ident_encoding))
            if p.name_oid:
                values[_oid(f"{p.name_oid}.{idx}")] = rfc1902.OctetString(o.name.encode())
            if p.status_oid and p.status_oid != p.state_oid:
                values[_oid(f"{p.status_oid}.{idx}")] = rfc1902.Integer32(
                    p.online_values[0] if o.online else 2 if 2 not in p.online_values else 4)
            if p.rx_oid:
                raw: Any
                if o.online and not (o.blocked and p.block_mode == "command"):
                    raw = codec.rx_to_snmp(o.rx_dbm, p.rx_encoding, p.rx_scale)
                elif p.rx_encoding == "string":
                    raw = b"N/A"
                else:
                    raw = p.rx_absent[0] if p.rx_absent else 0
                values[_oid(f"{p.rx_oid}.{idx}{p.rx_suffix}")] = (
                    rfc1902.OctetString(raw) if isinstance(raw, bytes)
                    else rfc1902.Integer32(raw) if raw < 2**31 else rfc1902.Unsigned32(raw))
            if p.block_mode == "column" and p.block_oid:
                values[_oid(f"{p.block_oid}.{idx}{p.block_suffix}")] = rfc1902.Integer32(
                    self._state_value(o))
            if p.state_oid:
                values[_oid(f"{p.state_oid}.{idx}{p.state_suffix}")] = rfc1902.Integer32(
                    self._state_value(o))
        if p.block_mode == "command":
            for key in ("command_pon_oid", "command_onu_oid", "block_oid"):
                values[_oid(getattr(p, key))] = rfc1902.Integer32(self._cmd.get(key, 0))
        if p.save_oid:
            values[_oid(p.save_oid)] = rfc1902.Integer32(0)
        self._values = values
        self._rows = sorted(values)
        self._dirty = False

    def _table(self) -> None:
        if self._dirty:
            self._build()
        else:  # only the clock moves
            self._values[_oid(SYS_UPTIME)] = rfc1902.TimeTicks(
                int((time.monotonic() - self._boot) * 100) % 2**32)

    # -- SNMP operations (called by pysnmp's responders in this OLT's thread) --------------

    def _gate(self, write: bool, ctx: dict[str, Any]) -> None:
        if self.faults.drop:
            self.counters.dropped += 1
            raise PySnmpError("simulated: dropped")  # not an SmiError: no answer at all
        if write:
            execution = ctx["snmpEngine"].observer.get_execution_context(
                "rfc3412.receiveMessage:request")
            name = bytes(execution["securityName"]).decode()
            if name == "sim-read" or self.faults.read_only_write:
                if self.faults.read_only_write == "drop":
                    self.counters.dropped += 1
                    raise PySnmpError("simulated: read-only, dropped")
                raise smi_error.NoAccessError(name=None, idx=0)

    def read(self, binds: tuple[Any, ...], ctx: dict[str, Any]) -> list[tuple[Any, Any]]:
        with self._lock:
            self._gate(False, ctx)
            self.counters.gets += 1
            self._table()
            out = []
            for name, _ in binds:
                key = tuple(name)
                if key in self._values:
                    out.append((name, self._values[key]))
                else:
                    out.append((name, exval.noSuchInstance))
            return out

    def read_next(self, binds: tuple[Any, ...], ctx: dict[str, Any]) -> list[tuple[Any, Any]]:
        if self.faults.walk_delay:
            # once per PDU (a GETBULK calls this once per repetition), in this OLT's own
            # thread: other OLTs go on
            pdu = ctx["snmpEngine"].observer.get_execution_context(
                "rfc3412.receiveMessage:request")["pdu"]
            request_id = int(v2c.apiPDU.get_request_id(pdu))
            if request_id != self._delayed:
                self._delayed = request_id
                time.sleep(self.faults.walk_delay)
        with self._lock:
            self._gate(False, ctx)
            self.counters.walks += 1
            self._table()
            out = []
            for name, _ in binds:
                i = bisect.bisect_right(self._rows, tuple(name))
                if i < len(self._rows):
                    key = self._rows[i]
                    out.append((rfc1902.ObjectName(key), self._values[key]))
                else:
                    out.append((name, exval.endOfMibView))
            return out

    def write(self, binds: tuple[Any, ...], ctx: dict[str, Any]) -> list[tuple[Any, Any]]:
        with self._lock:
            self._gate(True, ctx)
            self.counters.sets += 1
            self._table()
            changes = [self._plan(i, tuple(name), value) for i, (name, value) in
                       enumerate(binds)]  # every varbind checked before any applies (atomic)
            if not self.faults.silent_set:
                for change in changes:
                    change()
                self._dirty = True
            return list(binds)

    def _plan(self, i: int, key: OidT, value: Any) -> Any:
        p = self.profile
        if not isinstance(value, rfc1902.Integer32 | rfc1902.Integer):
            raise smi_error.WrongTypeError(name=key, idx=i)
        v = int(value)
        if p.save_oid and key == _oid(p.save_oid):
            if v != p.save_value:
                raise smi_error.WrongValueError(name=key, idx=i)
            return self._save
        if p.block_mode == "command":
            for attr in ("command_pon_oid", "command_onu_oid", "block_oid"):
                if key == _oid(getattr(p, attr)):
                    if attr == "block_oid" and v not in (1, 2, 3, 4):
                        raise smi_error.WrongValueError(name=key, idx=i)
                    return lambda attr=attr, v=v: self._command(attr, v)
            raise smi_error.NotWritableError(name=key, idx=i)
        if p.block_mode == "column" and key in self._values and p.block_oid and (
                key[:len(_oid(p.block_oid))] == _oid(p.block_oid)):
            if v not in (p.blocked_value, p.unblocked_value):
                raise smi_error.WrongValueError(name=key, idx=i)
            onu = self._onu_at_block_oid(key)
            return lambda: setattr(onu, "blocked", v == p.blocked_value)
        raise smi_error.NotWritableError(name=key, idx=i)

    def _onu_at_block_oid(self, key: OidT) -> SimOnu:
        p = self.profile
        assert p.block_oid
        for o in self.onus:
            if _oid(f"{p.block_oid}.{self.index_of(o)}{p.block_suffix}") == key:
                return o
        raise smi_error.NoSuchInstanceError(name=key, idx=0)

    def _command(self, attr: str, value: int) -> None:
        self._cmd[attr] = value
        if attr != "block_oid":
            return
        pon, onu = self._cmd.get("command_pon_oid"), self._cmd.get("command_onu_oid")
        for o in self.onus:
            if (o.pon, o.onu) == (pon, onu) and value in (3, 4):
                o.blocked = value == 4

    def _save(self) -> None:
        self.counters.saves += 1
        for o in self.onus:
            o.saved_blocked = o.blocked

    # -- faults ----------------------------------------------------------------------------

    def reboot(self) -> None:
        """Power cycle: uptime from 0, ONUs register again in another order (new indexes),
        admin states forgotten except what was saved."""
        with self._lock:
            self._boot = time.monotonic()
            self.onus.reverse()
            self._index_onus()
            for o in self.onus:
                o.blocked = o.saved_blocked
            self._cmd.clear()

    def set_onu(self, ident: str, **changes: Any) -> None:
        with self._lock:
            o = self.by_ident(ident)
            for k, v in changes.items():
                setattr(o, k, v)
            self._dirty = True

    # -- the agent -------------------------------------------------------------------------

    def start(self) -> SimOlt:
        """Start the agent in its own thread; returns when it answers."""
        if not self.port:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._setup_engine()
            except Exception as exc:  # noqa: BLE001 - reported to start(), which raises it
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"sim-olt-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def _setup_engine(self) -> None:
        eng = engine.SnmpEngine()
        config.add_transport(eng, udp.DOMAIN_NAME,
                             udp.UdpAsyncioTransport().open_server_mode((self.host, self.port)))
        config.add_v1_system(eng, "sim-read", self.community, securityName="sim-read")
        config.add_v1_system(eng, "sim-write", self.write_community, securityName="sim-write")
        if self.v3_user:
            config.add_v3_user(eng, self.v3_user, config.USM_AUTH_HMAC96_SHA, self.v3_auth_key,
                               config.USM_PRIV_CFB128_AES, self.v3_priv_key)
        ctx = context.SnmpContext(eng)
        ctx.unregister_context_name(b"")
        ctx.register_context_name(b"", _Instrum(self))
        cmdrsp.GetCommandResponder(eng, ctx)
        cmdrsp.NextCommandResponder(eng, ctx)
        cmdrsp.BulkCommandResponder(eng, ctx)
        cmdrsp.SetCommandResponder(eng, ctx)
        self._engine = eng

    def stop(self) -> None:
        loop, eng = self._loop, self._engine
        if loop is None or eng is None:
            return

        def close() -> None:
            eng.close_dispatcher()
            loop.stop()

        loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> SimOlt:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Instrum(instrum.AbstractMibInstrumController):
    """pysnmp's hook into the simulated tables."""

    def __init__(self, olt: SimOlt) -> None:
        self.olt = olt

    def read_variables(self, *binds: Any, **ctx: Any) -> Any:
        return self.olt.read(binds, ctx)

    def read_next_variables(self, *binds: Any, **ctx: Any) -> Any:
        return self.olt.read_next(binds, ctx)

    def write_variables(self, *binds: Any, **ctx: Any) -> Any:
        return self.olt.write(binds, ctx)


def demo_onus(vendor: str, count: int, *, pons: int = 4, seed: int = 0) -> list[SimOnu]:
    """*count* ONUs spread over *pons* PON ports with made-up but well-formed identities."""
    p = profile(vendor)
    out = []
    for n in range(count):
        number = seed * 100000 + n
        ident = (f"02:00:{number >> 24 & 0xFF:02x}:{number >> 16 & 0xFF:02x}:"
                 f"{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}" if p.ident_kind == "mac"
                 else f"SIMU{number:08X}")
        out.append(SimOnu(ident=ident, pon=1 + n % pons, name=f"onu-{n}",
                          rx_dbm=-18.0 - (n % 13) * 0.5))
    return out


def main() -> None:  # pragma: no cover - manual use
    import argparse

    ap = argparse.ArgumentParser(description="Run a simulated OLT.")
    ap.add_argument("vendor")
    ap.add_argument("--port", type=int, default=16100)
    ap.add_argument("--onus", type=int, default=32)
    args = ap.parse_args()
    sim = SimOlt(args.vendor, demo_onus(args.vendor, args.onus), port=args.port).start()
    print(f"{args.vendor} OLT on 127.0.0.1:{sim.port} (communities public/private)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
