"""A simulated OLT: an SNMP agent (pysnmp's agent side) over real UDP that serves one OLT
model's tables and accepts its block SETs, with the faults real OLTs show.

Written from the vendor facts in shared FIELD-NOTES ("OLTs over SNMP") and RFC 3416, not from
radbill's driver or profiles (nothing here imports ``olt``): the tables are laid out the way
each model's MIB lays them out (index schemes, Huawei's 8-byte serial, VSOL's command scalars
and Rx strings, ZTE's Rx wrap-around, BDCOM's ifDescr "EPON0/1:N" and UNI port rows).

Each simulated OLT runs its own thread and event loop, so a slow one (a fault) never slows
another, as on a real network. Faults, settable at any time:

- ``drop``: answer nothing (an unreachable OLT; also what a wrong community gets);
- ``read_only_write``: the write community may only read: ``"noAccess"`` (an error answer) or
  ``"drop"`` (silence, as many OLTs do);
- ``silent_set``: a SET answers noError and changes nothing;
- ``walk_delay``: seconds every GETNEXT/GETBULK PDU is held back (a slow walk);
- ``refuse``: ONUs whose block SET is refused (inconsistentValue), which fails a whole PDU;
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
from collections.abc import Callable
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

OidT = tuple[int, ...]
ENT = "1.3.6.1.4.1."
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"


def _oid(text: str) -> OidT:
    return tuple(int(x) for x in text.split("."))


# -- how each model encodes things (FIELD-NOTES "OLTs over SNMP"; written apart from radbill's
# olt/ package on purpose, so that a mistake there is not mirrored here) ---------------------


def _serial_text(serial: str) -> bytes:
    return serial.encode("ascii")


def _serial_8_bytes(serial: str) -> bytes:  # Huawei: 4 vendor letters + 4 raw bytes
    return serial[:4].encode("ascii") + bytes.fromhex(serial[4:])


def _mac_6_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _tenths(dbm: float) -> int:  # BDCOM: 0.1 dBm
    return round(dbm * 10)


def _hundredths(dbm: float) -> int:  # Huawei, C-Data: 0.01 dBm
    return round(dbm * 100)


def _vsol_string(dbm: float) -> bytes:  # VSOL: "-27.50(dBm)"
    return f"{dbm:.2f}(dBm)".encode()


def _zte_raw(dbm: float) -> int:  # ZTE: dBm = raw * 0.002 - 30; below -30 it wraps at 65535
    raw = round((dbm + 30) / 0.002)
    return raw + 65535 if raw < 0 else raw


@dataclass(frozen=True)
class Layout:
    """Where one OLT model keeps ONU facts and how it takes a block."""

    index: Callable[[int, int, int, int], str]  # (slot, pon, onu, ifIndex) -> row index
    ident_kind: str  # serial | mac
    ident_oid: str
    ident: Callable[[str], bytes]
    rx_oid: str
    rx: Callable[[float], int | bytes]
    rx_offline: int | bytes
    block: str  # column | command
    block_oid: str
    blocked: int
    unblocked: int
    rx_suffix: str = ""
    block_suffix: str = ""
    ifdescr: str | None = None  # BDCOM: "EPON0/1:N" rows in IF-MIB ifDescr
    name_oid: str | None = None
    status_oid: str | None = None
    status_online: int = 1
    status_offline: int = 2
    phase_oid: str | None = None  # VSOL: ONU phase, working(3)
    command_pon_oid: str | None = None  # VSOL command scalars
    command_onu_oid: str | None = None
    save_oid: str | None = None


BD = ENT + "3320."
VS = ENT + "37950.1.1.6.1.1."
HW = ENT + "2011.6.128.1.1.2."
ZT = ENT + "3902.1012.3."
CD = ENT + "17409.2.8.4."
LAYOUTS: dict[str, Layout] = {
    "bdcom-epon": Layout(
        index=lambda s, p, o, ifi: str(ifi), ifdescr="EPON", ident_kind="mac",
        ident_oid=BD + "101.10.4.1.1", ident=_mac_6_bytes, name_oid=BD + "101.11.1.1.4",
        status_oid=BD + "101.10.1.1.26", status_online=1, status_offline=4,  # reg / lost
        rx_oid=BD + "101.10.5.1.5", rx=_tenths, rx_offline=-(2**31),
        block="column", block_oid=BD + "101.12.1.1.7", block_suffix=".1", blocked=2,
        unblocked=1, save_oid=BD + "20.15.1.1.0"),
    "bdcom-gpon": Layout(
        index=lambda s, p, o, ifi: str(ifi), ifdescr="GPON", ident_kind="serial",
        ident_oid=BD + "10.3.3.1.2", ident=_serial_text, status_oid=BD + "10.3.3.1.4",
        rx_oid=BD + "10.3.4.1.2", rx=_tenths, rx_offline=-(2**31),
        block="column", block_oid=BD + "10.3.2.1.3", blocked=2, unblocked=1,
        save_oid=BD + "20.15.1.1.0"),
    "vsol-gpon": Layout(
        index=lambda s, p, o, ifi: f"{p}.{o}", ident_kind="serial", ident_oid=VS + "4.1.5",
        ident=_serial_text, name_oid=VS + "4.1.24", phase_oid=VS + "1.1.5",
        rx_oid=VS + "3.1.7", rx=_vsol_string, rx_offline=b"N/A",
        block="command", block_oid=VS + "5.3.0", command_pon_oid=VS + "5.1.0",
        command_onu_oid=VS + "5.2.0", blocked=4, unblocked=3,  # deactivate / activate
        save_oid=ENT + "37950.1.1.5.10.12.8.2.0"),
    "cdata-gpon": Layout(
        index=lambda s, p, o, ifi: str(1 << 24 | s << 16 | p << 8 | o), ident_kind="serial",
        ident_oid=CD + "1.1.3", ident=_serial_text, name_oid=CD + "1.1.2",
        rx_oid=CD + "4.1.4", rx=_hundredths, rx_offline=65535,
        block="column", block_oid=CD + "1.1.8", blocked=2, unblocked=1),
    "huawei-gpon": Layout(
        index=lambda s, p, o, ifi: f"{4194304000 + s * 8192 + p * 256}.{o}",
        ident_kind="serial", ident_oid=HW + "43.1.3", ident=_serial_8_bytes,
        status_oid=HW + "46.1.15", rx_oid=HW + "51.1.4", rx=_hundredths,
        rx_offline=2147483647, block="column", block_oid=HW + "46.1.1", blocked=2,
        unblocked=1),
    "zte-gpon": Layout(
        index=lambda s, p, o, ifi: f"{0x10000000 | s << 16 | p << 8}.{o}",
        ident_kind="serial", ident_oid=ZT + "28.1.1.5", ident=_serial_text,
        rx_oid=ZT + "50.12.1.1.10", rx_suffix=".1", rx=_zte_raw, rx_offline=0,
        block="column", block_oid=ZT + "28.2.1.1", blocked=2, unblocked=1),
}


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
    refuse: set[str] = field(default_factory=set)  # ONUs whose SETs get inconsistentValue


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
        if self.vendor not in LAYOUTS:
            raise ValueError(f"no simulated layout for {self.vendor!r}")
        self.layout = LAYOUTS[self.vendor]
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
        return self.layout.index(o.slot, o.pon, o.onu, o.if_index)

    def by_ident(self, ident: str) -> SimOnu:
        with self._lock:
            return next(o for o in self.onus if o.ident == ident)

    def _build(self) -> None:
        lay = self.layout
        values: dict[OidT, Any] = {}
        uptime = int((time.monotonic() - self._boot) * 100)
        values[_oid(SYS_UPTIME)] = rfc1902.TimeTicks(uptime % 2**32)
        for o in self.onus:
            idx = self.index_of(o)
            if lay.ifdescr:
                values[_oid(f"{IF_DESCR}.{idx}")] = rfc1902.OctetString(
                    f"{lay.ifdescr}0/{o.pon}:{o.onu}")
            values[_oid(f"{lay.ident_oid}.{idx}")] = rfc1902.OctetString(lay.ident(o.ident))
            if lay.name_oid:
                values[_oid(f"{lay.name_oid}.{idx}")] = rfc1902.OctetString(o.name.encode())
            if lay.status_oid:
                values[_oid(f"{lay.status_oid}.{idx}")] = rfc1902.Integer32(
                    lay.status_online if o.online else lay.status_offline)
            # a deactivated ONU (VSOL) is not ranged: no optical reading
            lit = o.online and not (o.blocked and lay.block == "command")
            raw = lay.rx(o.rx_dbm) if lit else lay.rx_offline
            values[_oid(f"{lay.rx_oid}.{idx}{lay.rx_suffix}")] = (
                rfc1902.OctetString(raw) if isinstance(raw, bytes)
                else rfc1902.Integer32(raw) if raw < 2**31 else rfc1902.Unsigned32(raw))
            if lay.block == "column":
                values[_oid(f"{lay.block_oid}.{idx}{lay.block_suffix}")] = rfc1902.Integer32(
                    lay.blocked if o.blocked else lay.unblocked)
            if lay.phase_oid:  # VSOL phase: working(3) when ranged, else los(1)
                values[_oid(f"{lay.phase_oid}.{idx}")] = rfc1902.Integer32(3 if lit else 1)
        if lay.block == "command":
            assert lay.command_pon_oid is not None
            assert lay.command_onu_oid is not None
            for key, oid in (("pon", lay.command_pon_oid), ("onu", lay.command_onu_oid),
                             ("action", lay.block_oid)):
                values[_oid(oid)] = rfc1902.Integer32(self._cmd.get(key, 0))
        if lay.save_oid:
            values[_oid(lay.save_oid)] = rfc1902.Integer32(0)
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
        lay = self.layout
        if not isinstance(value, rfc1902.Integer32 | rfc1902.Integer):
            raise smi_error.WrongTypeError(name=key, idx=i)
        v = int(value)
        if lay.save_oid and key == _oid(lay.save_oid):
            if v != 1:
                raise smi_error.WrongValueError(name=key, idx=i)
            return self._save
        if lay.block == "command":
            assert lay.command_pon_oid is not None
            assert lay.command_onu_oid is not None
            scalars = {_oid(lay.command_pon_oid): "pon", _oid(lay.command_onu_oid): "onu",
                       _oid(lay.block_oid): "action"}
            if key not in scalars:
                raise smi_error.NotWritableError(name=key, idx=i)
            if scalars[key] == "action" and v not in (1, 2, 3, 4):  # reboot, del, act, deact
                raise smi_error.WrongValueError(name=key, idx=i)
            return lambda name=scalars[key], v=v: self._command(name, v)
        onu = self._onu_at_block_oid(key)
        if onu is None:
            raise smi_error.NotWritableError(name=key, idx=i)
        if onu.ident in self.faults.refuse:  # e.g. an ONU in the middle of re-registering
            raise smi_error.InconsistentValueError(name=key, idx=i)
        if v not in (lay.blocked, lay.unblocked):
            raise smi_error.WrongValueError(name=key, idx=i)
        return lambda: setattr(onu, "blocked", v == lay.blocked)

    def _onu_at_block_oid(self, key: OidT) -> SimOnu | None:
        lay = self.layout
        for o in self.onus:
            if _oid(f"{lay.block_oid}.{self.index_of(o)}{lay.block_suffix}") == key:
                return o
        return None

    def _command(self, name: str, value: int) -> None:
        self._cmd[name] = value
        if name != "action":
            return
        pon, onu = self._cmd.get("pon"), self._cmd.get("onu")
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
    kind = LAYOUTS[vendor].ident_kind if vendor in LAYOUTS else "mac"
    out = []
    for n in range(count):
        number = seed * 100000 + n
        ident = (f"02:00:{number >> 24 & 0xFF:02x}:{number >> 16 & 0xFF:02x}:"
                 f"{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}" if kind == "mac"
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
