"""Bounding what a NAS sends before it reaches the database. Pure rules, no database.

FreeRADIUS writes whatever a NAS put in a packet into the detail spools, and the ingester
must never hand the database a value it cannot store: PostgreSQL text cannot hold NUL, a
``varchar(n)`` refuses longer values, ``BIGINT`` stops at 2^63-1 (SQLite's INTEGER too). Each
field gets one of three treatments, chosen for what it is used for:

* **Keys** (User-Name, Acct-Session-Id) are used byte for byte: they identify the session in
  the Disconnect-Request and CoA-Request enforcement sends back to the NAS, and the policy
  matches the login name exactly. A key with a NUL byte inside, bytes that are not UTF-8,
  or more characters than a RADIUS attribute can carry could only be stored altered, and an
  altered key names a session the NAS does not know: the record is unusable,
  :class:`InvalidRecord` (set aside, never altered). Trailing NULs alone are dropped: that
  is a NAS sending C strings (RFC 2865 5 says strings are not NUL-terminated; some NAS do
  it anyway), and FreeRADIUS itself authenticates ``"alice\0"`` as ``alice`` (its string
  expansion and rlm_python3 stop at the NUL; seen in the e2e fuzz test), so the session is
  alice's.
* **Display text** (Calling-Station-Id, NAS-Port-Id, Reply-Message, the post-auth log, ...)
  is kept: a trailing NUL (some NAS send C strings) is dropped, any other NUL and any byte
  that is not UTF-8 becomes U+FFFD, and the value is cut to its column. Losing a record
  over a label would lose usage.
* **Numbers and addresses** are checked: decimal digits within their range, a valid IP
  address (or nothing, where the address is informational).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping

from radbill.db import utcnow
from radbill.errors import InvalidInput

MAX_TEXT = 253  # RFC 2865 5: an attribute's value is at most 253 octets
MAX_U32 = 2**32 - 1
MAX_I64 = 2**63 - 1  # BIGINT (PostgreSQL) and INTEGER (SQLite) are signed 64-bit
# A detail Timestamp is written by FreeRADIUS from its own clock; one beyond the year 3000
# means the spool is corrupt (and would overflow datetime on some platforms).
MAX_TIMESTAMP = 32503680000
REPLACEMENT = "\ufffd"


class InvalidRecord(InvalidInput):
    """A record radbill cannot use; it is set aside with this reason, never silently dropped."""


def unsigned(attrs: Mapping[str, str], name: str, maximum: int = MAX_U32) -> int:
    """An integer attribute (0 when absent): ASCII decimal digits, at most *maximum*.

    ``int()`` alone would also take ``" 5"``, ``"+5"``, ``"1_000"`` and other scripts' digits,
    none of which FreeRADIUS writes for an integer attribute."""
    raw = attrs.get(name)
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidRecord(f"{name}={_show(raw)} is not a number")
    value = int(raw) if len(raw) <= 20 else maximum + 1
    if value > maximum:
        raise InvalidRecord(f"{name}={_show(raw)} is outside 0..{maximum}")
    return value


def key_text(attrs: Mapping[str, str], name: str, limit: int = MAX_TEXT) -> str | None:
    """A key attribute exactly as sent (less trailing NULs), or None when absent or empty.
    Raises :class:`InvalidRecord` for a NUL byte inside, bytes that are not UTF-8, or more
    than *limit* characters."""
    value = attrs.get(name)
    if not value:
        return None
    if "\x00" in value:
        stripped = value.rstrip("\x00")
        if not stripped or "\x00" in stripped:
            raise InvalidRecord(f"{name}={_show(value)} contains a NUL byte")
        value = stripped
    if not value.isascii() and not _is_utf8(value):
        raise InvalidRecord(f"{name}={_show(value)} is not UTF-8")
    if len(value) > limit:
        raise InvalidRecord(f"{name} is {len(value)} characters long (at most {limit})")
    return value


def display_text(value: str | None, limit: int) -> str | None:
    """Informational text made storable: trailing NULs dropped, other NULs replaced, cut to
    *limit* characters. None (or empty) stays None."""
    if not value:
        return None
    if "\x00" in value:
        value = value.rstrip("\x00").replace("\x00", REPLACEMENT)
    if not value.isascii() and not _is_utf8(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value[:limit] or None


def _is_utf8(value: str) -> bool:
    """False if *value* carries bytes that were not UTF-8 (lone surrogates, see
    :func:`radius.detail.unquote`): PostgreSQL and the NAS could not both agree on them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def ip_address(value: str | None) -> str | None:
    """A valid IPv4/IPv6 address in its canonical text, or None."""
    if not value or len(value) > 45:
        return None
    # Fast path for what nearly every record carries, a dotted quad already in canonical form
    # (ipaddress.ip_address costs ~5 us, twice per record): one regular expression, no
    # leading zeros, each part at most 255.
    if _CANONICAL_QUAD.fullmatch(value):
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def received_at(attrs: Mapping[str, str]) -> dt.datetime:
    """When FreeRADIUS received the packet (the detail ``Timestamp``), in UTC; now if the
    record has none. Raises :class:`InvalidRecord` for a Timestamp that is no time."""
    raw = attrs.get("Timestamp")
    if not raw:
        return utcnow()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 11 or int(raw) > MAX_TIMESTAMP:
        raise InvalidRecord(f"Timestamp={_show(raw)} is not a time")
    return dt.datetime.fromtimestamp(int(raw), dt.UTC)


def _show(value: str, limit: int = 40) -> str:
    """A value quoted for a message: escaped (NUL shows as \\x00) and cut short."""
    text = repr(value[:limit])
    return text + "..." if len(value) > limit else text
