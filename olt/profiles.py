"""OLT vendor profiles: what to read and write on each OLT model, as data.

Every vendor difference lives here (Ubilling's per-model SNMP templates, Freeside's
broadband_snmp lines), never in a code path: the driver reads a :class:`Profile`. An operator
overrides any field per OLT (``olts.overrides``, JSON) because firmware differs; overrides are
validated like the built-in profiles.

``facts`` says, per field, where it comes from: ``device`` = seen in code that runs against
real devices (Ubilling templates, swtoolz-core, snmp-olt-zte), ``mib`` = the vendor MIB only
(unconfirmed on a device). Source: shared FIELD-NOTES "OLTs over SNMP".
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from radbill.errors import InvalidInput

E = "1.3.6.1.4.1."  # enterprises
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"

OID_RE = re.compile(r"^1(\.(0|[1-9]\d{0,9})){1,40}$")
INDEX_SCHEMES = ("ifdescr", "pon.onu", "packed", "huawei", "zte")
RX_ENCODINGS = ("int", "string", "zte")
IDENT_ENCODINGS = ("text", "hex", "mac")
BLOCK_MODES = ("column", "command", "none")
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Profile:
    """One OLT model's SNMP facts. Columns are numeric OIDs without the row index."""

    name: str
    title: str
    snmp_block: bool  # False: the MIB has no ONU/port disable; enforce at the NAS only
    index_scheme: str  # how a row index maps to PON port and ONU id (see olt.indexes)
    ident_kind: str  # serial | mac: what a subscriber is bound by
    ident_oid: str | None  # None: not known for this model (an override supplies it)
    ident_encoding: str  # text | hex (8 bytes: 4 vendor letters + 4 bytes) | mac (6 bytes)
    name_oid: str | None
    status_oid: str | None  # None: online when Rx power is present
    online_values: tuple[int, ...]
    rx_oid: str | None
    rx_suffix: str  # appended to the ONU index in the Rx column (ZTE: ".1")
    rx_encoding: str  # int (raw * rx_scale) | string ("-27.5(dBm)") | zte (raw*0.002-30)
    rx_scale: float
    rx_absent: tuple[int, ...]  # raw values that mean "no reading" (offline)
    block_mode: str  # column: SET <block_oid>.<index><block_suffix> | command: scalars | none
    block_oid: str | None
    block_suffix: str  # e.g. ".1" for UNI port 1
    blocked_value: int
    unblocked_value: int
    state_oid: str | None  # read back here; None: block_oid
    state_suffix: str
    # read-back: blocked when the state column holds one of these (or, when
    # state_unblocked_values is set, when it holds anything else)
    state_blocked_values: tuple[int, ...]
    state_unblocked_values: tuple[int, ...]
    command_pon_oid: str | None  # command mode: scalars that name the ONU, then the action
    command_onu_oid: str | None
    save_oid: str | None  # SET save_oid = save_value after a change; None: no SNMP save
    save_value: int
    facts: dict[str, str] = field(default_factory=dict)

    def fact(self, key: str) -> str:
        """``device`` or ``mib`` for one field (``unknown`` when the notes do not say)."""
        return self.facts.get(key, "unknown")

    @property
    def read_oid(self) -> str | None:
        return self.state_oid or self.block_oid

    @property
    def read_suffix(self) -> str:
        return self.state_suffix if self.state_oid else self.block_suffix


def _p(**kw: Any) -> Profile:
    base: dict[str, Any] = {
        "snmp_block": True, "name_oid": None, "status_oid": None, "online_values": (1,),
        "rx_oid": None, "rx_suffix": "", "rx_encoding": "int", "rx_scale": 0.1,
        "rx_absent": (), "block_suffix": "", "state_oid": None, "state_suffix": "",
        "state_blocked_values": (), "state_unblocked_values": (), "command_pon_oid": None,
        "command_onu_oid": None, "save_oid": None, "save_value": 1,
    }
    base.update(kw)
    if not base["state_blocked_values"] and not base["state_unblocked_values"]:
        base["state_blocked_values"] = (base["blocked_value"],)
    return Profile(**base)


PROFILES: dict[str, Profile] = {p.name: p for p in (
    _p(name="bdcom-epon", title="BDCOM EPON P3310/P3608", index_scheme="ifdescr",
       ident_kind="mac", ident_oid=E + "3320.101.10.4.1.1", ident_encoding="mac",
       name_oid=E + "3320.101.11.1.1.4",
       status_oid=E + "3320.101.10.1.1.26", online_values=(0, 1, 3),
       rx_oid=E + "3320.101.10.5.1.5", rx_scale=0.1, rx_absent=(-(2**31),),
       block_mode="column", block_oid=E + "3320.101.12.1.1.7", block_suffix=".1",
       blocked_value=2, unblocked_value=1, save_oid=E + "3320.20.15.1.1.0",
       facts={"index": "device", "ident": "device", "name": "device", "status": "mib",
              "rx": "device", "block": "device", "save": "device"}),
    _p(name="bdcom-gpon", title="BDCOM GPON GP3600", index_scheme="ifdescr",
       ident_kind="serial", ident_oid=E + "3320.10.3.3.1.2", ident_encoding="text",
       status_oid=E + "3320.10.3.3.1.4", online_values=(1,),
       rx_oid=E + "3320.10.3.4.1.2", rx_scale=0.1, rx_absent=(-(2**31),),
       block_mode="column", block_oid=E + "3320.10.3.2.1.3",
       blocked_value=2, unblocked_value=1, save_oid=E + "3320.20.15.1.1.0",
       facts={"index": "device", "ident": "device", "rx": "device", "status": "mib",
              "block": "mib", "save": "mib"}),
    _p(name="vsol-gpon", title="VSOL V1600G GPON", index_scheme="pon.onu",
       ident_kind="serial", ident_oid=E + "37950.1.1.6.1.1.4.1.5", ident_encoding="text",
       name_oid=E + "37950.1.1.6.1.1.4.1.24",
       status_oid=E + "37950.1.1.6.1.1.1.1.5", online_values=(3,),
       rx_oid=E + "37950.1.1.6.1.1.3.1.7", rx_encoding="string", rx_scale=1.0,
       # deactivate(4)/activate(3) through command scalars; read back: a deactivated ONU
       # leaves phase "working"(3)
       block_mode="command", block_oid=E + "37950.1.1.6.1.1.5.3.0",
       command_pon_oid=E + "37950.1.1.6.1.1.5.1.0", command_onu_oid=E + "37950.1.1.6.1.1.5.2.0",
       blocked_value=4, unblocked_value=3,
       state_oid=E + "37950.1.1.6.1.1.1.1.5", state_unblocked_values=(3,),
       save_oid=E + "37950.1.1.5.10.12.8.2.0",
       facts={"index": "mib", "ident": "mib", "name": "mib", "status": "mib", "rx": "mib",
              "block": "mib", "save": "mib"}),
    _p(name="vsol-epon", title="VSOL V1600D EPON (no SNMP block: enforced at the NAS)",
       # Ubilling reads MAC, description and an Rx string on it, but our notes do not carry
       # those OIDs: discovery needs ident_oid/rx_oid overrides taken from the device's MIB.
       snmp_block=False, index_scheme="pon.onu", ident_kind="mac",
       ident_oid=None, ident_encoding="mac", rx_encoding="string", rx_scale=1.0,
       block_mode="none", block_oid=None, blocked_value=0, unblocked_value=0,
       facts={"block": "mib"}),
    _p(name="cdata-gpon", title="C-Data FD16xx GPON", index_scheme="packed",
       ident_kind="serial", ident_oid=E + "17409.2.8.4.1.1.3", ident_encoding="text",
       name_oid=E + "17409.2.8.4.1.1.2",
       rx_oid=E + "17409.2.8.4.4.1.4", rx_scale=0.01, rx_absent=(65535,),
       block_mode="column", block_oid=E + "17409.2.8.4.1.1.8",
       blocked_value=2, unblocked_value=1,
       facts={"index": "device", "ident": "device", "name": "device", "rx": "device",
              "block": "mib", "save": "unknown"}),
    _p(name="huawei-gpon", title="Huawei MA5608T/MA5683T/MA5800", index_scheme="huawei",
       ident_kind="serial", ident_oid=E + "2011.6.128.1.1.2.43.1.3", ident_encoding="hex",
       status_oid=E + "2011.6.128.1.1.2.46.1.15", online_values=(1,),
       rx_oid=E + "2011.6.128.1.1.2.51.1.4", rx_scale=0.01, rx_absent=(2147483647,),
       block_mode="column", block_oid=E + "2011.6.128.1.1.2.46.1.1",
       blocked_value=2, unblocked_value=1,
       facts={"index": "device", "ident": "device", "rx": "device", "status": "mib",
              "block": "mib", "save": "device"}),  # no SNMP save: CLI "save"
    _p(name="zte-gpon", title="ZTE C300/C320 V1.x", index_scheme="zte",
       ident_kind="serial", ident_oid=E + "3902.1012.3.28.1.1.5", ident_encoding="text",
       rx_oid=E + "3902.1012.3.50.12.1.1.10", rx_suffix=".1", rx_encoding="zte",
       rx_scale=1.0,
       block_mode="column", block_oid=E + "3902.1012.3.28.2.1.1",
       blocked_value=2, unblocked_value=1,
       facts={"index": "device", "ident": "device", "rx": "device", "block": "mib",
              "save": "device"}),  # no SNMP save: CLI "write"
)}

OVERRIDABLE = {f.name for f in dataclasses.fields(Profile)} - {"name", "facts"}


def _check_oid(key: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not OID_RE.match(value)):
        raise InvalidInput(f"{key}: {value!r} is not a numeric OID (1.3.6...)")


def validate(p: Profile) -> Profile:  # noqa: PLR0912 - one check per field
    """Check every field of *p*; raise InvalidInput naming the first bad one."""
    for key in ("ident_oid", "name_oid", "status_oid", "rx_oid", "block_oid", "state_oid",
                "command_pon_oid", "command_onu_oid", "save_oid"):
        _check_oid(key, getattr(p, key))
    for key in ("block_suffix", "rx_suffix", "state_suffix"):
        v = getattr(p, key)
        if not isinstance(v, str) or (v and not re.fullmatch(r"(\.\d{1,10}){1,4}", v)):
            raise InvalidInput(f"{key}: {v!r} must be '' or like '.1'")
    checks = (("index_scheme", INDEX_SCHEMES), ("rx_encoding", RX_ENCODINGS),
              ("ident_encoding", IDENT_ENCODINGS), ("block_mode", BLOCK_MODES),
              ("ident_kind", ("serial", "mac")))
    for key, allowed in checks:
        if getattr(p, key) not in allowed:
            raise InvalidInput(f"{key}: {getattr(p, key)!r} is not one of {', '.join(allowed)}")
    for key in ("blocked_value", "unblocked_value", "save_value"):
        v = getattr(p, key)
        if not isinstance(v, int) or isinstance(v, bool) or not INT32[0] <= v <= INT32[1]:
            raise InvalidInput(f"{key}: {v!r} is not a 32-bit integer")
    for key in ("online_values", "rx_absent", "state_blocked_values", "state_unblocked_values"):
        v = getattr(p, key)
        if not isinstance(v, tuple) or len(v) > 16 or not all(
                isinstance(x, int) and INT32[0] <= x <= INT32[1] for x in v):
            raise InvalidInput(f"{key}: {v!r} must be a list of up to 16 32-bit integers")
    if not isinstance(p.rx_scale, float) or not 0 < p.rx_scale <= 1000:
        raise InvalidInput(f"rx_scale: {p.rx_scale!r} must be a number in (0, 1000]")
    if p.block_mode == "column" and p.block_oid is None:
        raise InvalidInput("block_mode column needs block_oid")
    if p.block_mode == "command" and None in (p.block_oid, p.command_pon_oid,
                                              p.command_onu_oid, p.state_oid):
        raise InvalidInput("block_mode command needs block_oid, command_pon_oid, "
                           "command_onu_oid and state_oid")
    if p.snmp_block != (p.block_mode != "none"):
        raise InvalidInput("snmp_block must be false exactly when block_mode is none")
    return p


def parse_overrides(raw: Any) -> dict[str, Any]:
    """Operator overrides (a JSON object of profile fields) checked against the field types;
    lists become tuples, integers given for rx_scale become floats."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 40:
        raise InvalidInput("overrides must be a JSON object of up to 40 profile fields")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OVERRIDABLE:
            raise InvalidInput(f"overrides: {key!r} is not a profile field (one of "
                               f"{', '.join(sorted(OVERRIDABLE))})")
        out[key] = value
        if isinstance(value, list):
            out[key] = tuple(value)
        if key == "rx_scale" and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def profile(name: str, overrides: Any = None) -> Profile:
    """The profile *name* with the OLT's *overrides* applied and everything validated."""
    base = PROFILES.get(name)
    if base is None:
        raise InvalidInput(f"unknown OLT vendor profile {name!r} (one of "
                           f"{', '.join(sorted(PROFILES))})")
    changes = parse_overrides(overrides)
    if not changes:
        return base
    try:
        merged = dataclasses.replace(base, **changes)
    except TypeError as exc:  # pragma: no cover - keys were checked above
        raise InvalidInput(f"overrides: {exc}") from None
    facts = dict(merged.facts)
    facts.update(dict.fromkeys(changes, "operator"))
    return validate(dataclasses.replace(merged, facts=facts))


for _p_ in PROFILES.values():  # the built-in data is checked when the module loads
    validate(_p_)
