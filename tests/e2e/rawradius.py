"""Hand-built RADIUS packets for malformed-input tests (pyrad refuses to build them)."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

ACCESS_REQUEST = 1
MESSAGE_AUTHENTICATOR = 80


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 5.2 User-Password hiding."""
    padded = password + b"\x00" * (-len(password) % 16 or (16 if not password else 0))
    out, last = b"", authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + last).digest()  # noqa: S324 - RFC 2865
        last = bytes(a ^ b for a, b in zip(padded[i : i + 16], key, strict=True))
        out += last
    return out


def access_request(secret: bytes, attrs: list[tuple[int, bytes]], *,
                   message_authenticator: bool = True, raw_tail: bytes = b"") -> bytes:
    """An Access-Request with *attrs* (type, value) and optionally junk bytes at the end."""
    ident, authenticator = os.urandom(1)[0], os.urandom(16)
    body = b""
    for typ, raw in attrs:
        value = hide_password(raw, secret, authenticator) if typ == 2 else raw  # User-Password
        body += bytes([typ, len(value) + 2]) + value
    if message_authenticator:
        body = bytes([MESSAGE_AUTHENTICATOR, 18]) + b"\x00" * 16 + body
    body += raw_tail
    packet = struct.pack("!BBH", ACCESS_REQUEST, ident, 20 + len(body)) + authenticator + body
    if message_authenticator:
        mac = hmac.new(secret, packet, hashlib.md5).digest()
        packet = packet[:22] + mac + packet[38:]
    return packet


def send(packet: bytes, port: int, source: str = "127.0.0.1", timeout: float = 1.0
         ) -> int | None:
    """Send *packet*; the reply's code, or None when nothing came back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(4096)
        except TimeoutError:
            return None
    return data[0]


ACCOUNTING_REQUEST = 4
# Attribute numbers (RFC 2865, 2866, 2869) the accounting packets here use.
ATTR = {"User-Name": 1, "User-Password": 2, "NAS-IP-Address": 4, "NAS-Port": 5,
        "Service-Type": 6, "Framed-Protocol": 7, "Framed-IP-Address": 8,
        "Calling-Station-Id": 31, "Acct-Status-Type": 40, "Acct-Delay-Time": 41,
        "Acct-Input-Octets": 42, "Acct-Output-Octets": 43, "Acct-Session-Id": 44,
        "Acct-Session-Time": 46, "Acct-Input-Packets": 47, "Acct-Output-Packets": 48,
        "Acct-Terminate-Cause": 49, "Acct-Input-Gigawords": 52, "Acct-Output-Gigawords": 53,
        "Event-Timestamp": 55, "NAS-Port-Type": 61, "NAS-Port-Id": 87}
STATUS = {"Start": 1, "Stop": 2, "Interim-Update": 3, "Accounting-On": 7, "Accounting-Off": 8}


def u32(value: int) -> bytes:
    """An RFC 2865 integer attribute value."""
    return struct.pack("!I", value)


def accounting_request(secret: bytes, attrs: list[tuple[int, bytes]], *, ident: int = 0,
                       raw_tail: bytes = b"", length_delta: int = 0) -> bytes:
    """An Accounting-Request (RFC 2866 Request Authenticator) with *attrs* (type, value) as
    given, whatever their length, then *raw_tail*; *length_delta* makes the header's length
    field lie."""
    body = b"".join(bytes([typ, (len(raw) + 2) & 0xFF]) + raw for typ, raw in attrs)
    body += raw_tail
    header = struct.pack("!BBH", ACCOUNTING_REQUEST, ident & 0xFF,
                         (20 + len(body) + length_delta) & 0xFFFF)
    authenticator = hashlib.md5(header + b"\x00" * 16 + body + secret).digest()  # noqa: S324
    return header + authenticator + body
