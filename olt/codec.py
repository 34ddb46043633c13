"""Pure conversions between an OLT's SNMP values and radbill's: row indexes, serials, MACs,
optical power. No I/O; every function is table-tested."""

from __future__ import annotations

import math
import re

from radbill.errors import InvalidInput

HUAWEI_BASE = 4194304000
ZTE_BASE = 0x10000000
SERIAL_RE = re.compile(r"^[A-Z0-9]{4}[0-9A-F]{8}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
IFDESCR_RE = re.compile(r"^[EG]PON(\d{1,3}/\d{1,3}):(\d+)$")


def normalize_serial(text: str) -> str:
    """A GPON serial as 4 vendor letters and 8 hex digits (``HWTC1A2B3C4D``); also accepts
    the 16-hex-digit form (``485754431A2B3C4D``). Raises InvalidInput."""
    s = text.strip().upper().replace("-", "")
    if re.fullmatch(r"[0-9A-F]{16}", s):
        try:
            vendor = bytes.fromhex(s[:8]).decode("ascii")
        except UnicodeDecodeError:
            vendor = ""
        if re.fullmatch(r"[A-Z0-9]{4}", vendor):
            s = vendor + s[8:]
    if not SERIAL_RE.match(s):
        raise InvalidInput(f"serial {text[:40]!r} is not a GPON serial (4 letters + 8 hex "
                           "digits, e.g. HWTC1A2B3C4D)")
    return s


def normalize_mac(text: str) -> str:
    """A MAC as ``aa:bb:cc:dd:ee:ff`` from any of the usual spellings. Raises InvalidInput."""
    digits = re.sub(r"[\s:.\-]", "", text.strip().lower())
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        raise InvalidInput(f"MAC {text[:40]!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def ident_from_snmp(raw: bytes, encoding: str) -> str | None:
    """The serial or MAC an OLT reports, normalized; None when it is not one."""
    try:
        if encoding == "mac":
            return normalize_mac(raw.hex()) if len(raw) == 6 else None
        if encoding == "hex":  # Huawei: 4 vendor letters + 4 bytes
            if len(raw) != 8:
                return None
            return normalize_serial(raw[:4].decode("ascii") + raw[4:].hex())
        return normalize_serial(raw.decode("ascii", "replace"))
    except InvalidInput:
        return None


def ident_to_snmp(ident: str, encoding: str) -> bytes:
    """What an OLT stores for *ident* (the simulator's side of :func:`ident_from_snmp`)."""
    if encoding == "mac":
        return bytes.fromhex(ident.replace(":", ""))
    if encoding == "hex":
        return ident[:4].encode("ascii") + bytes.fromhex(ident[4:])
    return ident.encode("ascii")


def rx_dbm(raw: int | bytes | None, encoding: str, scale: float,
           absent: tuple[int, ...]) -> float | None:
    """Received optical power in dBm from the OLT's raw value; None when there is no reading
    (offline ONU, sentinel values, out-of-range junk)."""
    if raw is None:
        return None
    value: float
    if encoding == "string":
        if not isinstance(raw, bytes):
            return None
        m = re.match(r"^\s*(-?\d{1,3}(?:\.\d{1,3})?)", raw.decode("ascii", "replace"))
        if not m:
            return None
        value = float(m.group(1))
    else:
        if not isinstance(raw, int) or raw in absent:
            return None
        if encoding == "zte":
            # snmp-olt-zte: values above 30000 wrap (raw - 65535) before the linear scale
            value = ((raw - 65535) if raw > 30000 else raw) * 0.002 - 30
        else:
            value = raw * scale
    if not math.isfinite(value) or not -60.0 <= value <= 20.0:
        return None
    return round(value, 2)


def rx_to_snmp(dbm: float, encoding: str, scale: float) -> int | bytes:
    """The raw value an OLT reports for *dbm* (the simulator's side of :func:`rx_dbm`)."""
    if encoding == "string":
        return f"{dbm:.2f}(dBm)".encode()
    if encoding == "zte":
        raw = round((dbm + 30) / 0.002)
        return raw + 65535 if raw < 0 else raw
    return round(dbm / scale)


def index_for(scheme: str, slot: int, pon: int, onu: int, serial: int = 0) -> str:
    """The row index an OLT of *scheme* gives ONU *onu* on PON *slot*/*pon*. For ``ifdescr``
    the index is an ifIndex with no structure: *serial* (a running number) stands for it."""
    if scheme == "ifdescr":
        return str(serial)
    if scheme == "pon.onu":
        return f"{pon}.{onu}"
    if scheme == "packed":
        return str(1 << 24 | slot << 16 | pon << 8 | onu)
    if scheme == "huawei":
        return f"{HUAWEI_BASE + slot * 8192 + pon * 256}.{onu}"
    if scheme == "zte":
        return f"{ZTE_BASE | slot << 16 | pon << 8}.{onu}"
    raise ValueError(scheme)


def pon_onu(  # noqa: PLR0911 - one return per index scheme
        scheme: str, index: str, ifdescr: str | None = None) -> tuple[str, int] | None:
    """(PON port label, ONU id) of a row index; None when the index does not fit the scheme."""
    try:
        parts = [int(x) for x in index.split(".")[:8]]
        if scheme == "ifdescr":
            m = IFDESCR_RE.match(ifdescr or "")
            return (m.group(1), int(m.group(2))) if m and len(m.group(2)) <= 5 else None
        if len(parts) == 2 and not 0 <= parts[1] <= 65535:  # an ONU id, whatever the OLT says
            return None
        if scheme == "pon.onu" and len(parts) == 2:
            return (str(parts[0]), parts[1])
        if scheme == "packed" and len(parts) == 1:
            v = parts[0]
            return (f"{v >> 16 & 0xFF}/{v >> 8 & 0xFF}", v & 0xFF)
        if scheme == "huawei" and len(parts) == 2:
            rest = parts[0] - HUAWEI_BASE
            if rest < 0:
                return None
            return (f"0/{rest // 8192}/{rest % 8192 // 256}", parts[1])
        if scheme == "zte" and len(parts) == 2 and parts[0] & ZTE_BASE:
            return (f"1/{parts[0] >> 16 & 0xFF}/{parts[0] >> 8 & 0xFF}", parts[1])
    except ValueError:
        return None
    return None
