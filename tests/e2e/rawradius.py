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
