"""CHAP and MS-CHAPv2 from the client's side (RFC 1994, RFC 2759), for simulated NASes.

MD4 is written out here because OpenSSL 3 (Debian 12) no longer offers it through hashlib.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


def _rotl(x: int, n: int) -> int:
    x &= 0xFFFFFFFF
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def md4(data: bytes) -> bytes:
    """MD4 (RFC 1320)."""
    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off : off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl(a + f + x[k], s), b, c
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, _rotl(a + g + x[k] + 0x5A827999, s), b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            s = (3, 9, 11, 15)[i % 4]
            a, b, c, d = d, _rotl(a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1, s), b, c
        a, b, c, d = ((a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF,
                      (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF)
    return struct.pack("<4I", a, b, c, d)


def nt_password_hash(password: str) -> bytes:
    """MD4 of the UTF-16LE password (RFC 2759 NtPasswordHash)."""
    return md4(password.encode("utf-16-le"))


def _des_key(seven: bytes) -> bytes:
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des(key7: bytes, block: bytes) -> bytes:
    key = _des_key(key7)
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305 - RFC 2759 DES  # 3DES with K1=K2=K3 is DES
    return enc.update(block) + enc.finalize()


def challenge_hash(peer: bytes, authenticator: bytes, username: str) -> bytes:
    """RFC 2759 ChallengeHash: 8 bytes of SHA-1(peer | authenticator | username)."""
    return hashlib.sha1(peer + authenticator + username.encode()).digest()[:8]  # noqa: S324


def nt_response(authenticator: bytes, peer: bytes, username: str, password: str) -> bytes:
    """RFC 2759 GenerateNTResponse: 24 bytes."""
    chal = challenge_hash(peer, authenticator, username)
    h = nt_password_hash(password) + b"\x00" * 5
    return _des(h[0:7], chal) + _des(h[7:14], chal) + _des(h[14:21], chal)


def mschapv2_response(ident: int, authenticator: bytes, peer: bytes, username: str,
                      password: str) -> bytes:
    """The 50-byte MS-CHAP2-Response attribute value."""
    return (bytes([ident, 0]) + peer + b"\x00" * 8
            + nt_response(authenticator, peer, username, password))


def authenticator_response(password: str, nt_resp: bytes, peer: bytes, authenticator: bytes,
                           username: str) -> str:
    """RFC 2759 GenerateAuthenticatorResponse: what the server proves it knew (``S=...``)."""
    magic1 = b"Magic server to client signing constant"
    magic2 = b"Pad to make it do more than one iteration"
    hash_hash = md4(nt_password_hash(password))
    digest = hashlib.sha1(hash_hash + nt_resp + magic1).digest()  # noqa: S324
    chal = challenge_hash(peer, authenticator, username)
    return "S=" + hashlib.sha1(digest + chal + magic2).hexdigest().upper()  # noqa: S324


def chap_password(ident: int, password: str, challenge: bytes) -> bytes:
    """The CHAP-Password attribute value: ident | MD5(ident | password | challenge)."""
    return bytes([ident]) + hashlib.md5(  # noqa: S324 - CHAP is defined with MD5
        bytes([ident]) + password.encode() + challenge
    ).digest()
