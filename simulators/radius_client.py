"""A NAS's side of RADIUS: logins (PAP, CHAP, MS-CHAPv2) and accounting, over real UDP.

Used by the tests, the demo and the benchmarks. Built on pyrad; answers come back as plain
dataclasses so callers never handle pyrad packets.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from pyrad import packet
from pyrad.client import Client, Timeout

from coa.dictionary import dictionary
from simulators import mschap


@dataclass(frozen=True)
class AuthResult:
    """What came back for an Access-Request (``code`` is None on timeout)."""

    code: int | None
    attrs: dict[str, list[object]] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.code == packet.AccessAccept

    @property
    def rejected(self) -> bool:
        return self.code == packet.AccessReject

    @property
    def timed_out(self) -> bool:
        return self.code is None

    def get(self, name: str) -> object | None:
        values = self.attrs.get(name)
        return values[0] if values else None


def _decode(reply: packet.Packet) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for key in reply.keys():  # noqa: SIM118 - pyrad's Packet iterates differently
        name = key if isinstance(key, str) else str(key)
        try:
            values = reply[key]
        except (KeyError, TypeError):
            continue
        out[name] = [v.decode() if isinstance(v, bytes) and name in (
            "Reply-Message", "Mikrotik-Rate-Limit", "Mikrotik-Address-List", "Framed-Pool"
        ) else v for v in values]
    return out


def fill_login(pkt: packet.AuthPacket, username: str, password: str, method: str,
               service: str, mac: str | None, nas_ip: str) -> None:
    """The attributes of a MikroTik's Access-Request: PPPoE or Hotspot, and the credentials
    for PAP, CHAP or MS-CHAPv2 (``mschapv2``). Shared by this client and the NAS simulator."""
    pkt["User-Name"] = username
    pkt["NAS-IP-Address"] = nas_ip
    if service == "pppoe":
        pkt["Service-Type"] = "Framed-User"
        pkt["Framed-Protocol"] = "PPP"
        pkt["NAS-Port-Type"] = "Ethernet"
    else:
        pkt["Service-Type"] = "Login-User"
        pkt["NAS-Port-Type"] = "Wireless-802.11"
    if mac:
        pkt["Calling-Station-Id"] = mac
    if method == "pap":
        pkt["User-Password"] = pkt.PwCrypt(password)
    elif method == "chap":
        ident, challenge = os.urandom(1)[0], os.urandom(16)
        pkt["CHAP-Challenge"] = challenge
        pkt["CHAP-Password"] = mschap.chap_password(ident, password, challenge)
    elif method == "mschapv2":
        authenticator, peer = os.urandom(16), os.urandom(16)
        pkt["MS-CHAP-Challenge"] = authenticator
        pkt["MS-CHAP2-Response"] = mschap.mschapv2_response(1, authenticator, peer, username,
                                                            password)
    else:
        raise ValueError(f"unknown method {method!r}")


# The device of every login that names none: a real NAS always sends Calling-Station-Id,
# and repeated logins from one device replace each other's provisional session.
TEST_DEVICE = "02:00:00:00:00:01"


class RadiusClient:
    """Sends Access-Requests and Accounting-Requests the way a MikroTik does."""

    def __init__(self, server: str, secret: str, auth_port: int = 1812, acct_port: int = 1813,
                 timeout: float = 2.0, retries: int = 2, nas_ip: str = "127.0.0.1") -> None:
        self.client = Client(server=server, authport=auth_port, acctport=acct_port,
                             secret=secret.encode(), dict=dictionary())
        self.client.timeout = timeout
        self.client.retries = retries
        self.nas_ip = nas_ip

    def authenticate(self, username: str, password: str, method: str = "pap",
                     service: str = "pppoe", mac: str | None = TEST_DEVICE) -> AuthResult:
        """Log in with PAP, CHAP or MS-CHAPv2 (``mschapv2``), from one device (the
        Calling-Station-Id every NAS sends) unless *mac* says another or None."""
        pkt = self.client.CreateAuthPacket(code=packet.AccessRequest)
        fill_login(pkt, username, password, method, service, mac, self.nas_ip)
        try:
            reply = self.client.SendPacket(pkt)
        except Timeout:
            return AuthResult(None)
        return AuthResult(reply.code, _decode(reply))

    def account(self, status: str, username: str, session_id: str, *,
                input_bytes: int = 0, output_bytes: int = 0, session_time: int = 0,
                framed_ip: str | None = None, mac: str | None = None,
                terminate_cause: str | None = None, delay: int = 0) -> bool:
        """Send an Accounting-Request; True when the server answered."""
        pkt = self.client.CreateAcctPacket()
        pkt["Acct-Status-Type"] = status
        pkt["NAS-IP-Address"] = self.nas_ip
        if status not in ("Accounting-On", "Accounting-Off"):
            pkt["User-Name"] = username
            pkt["Acct-Session-Id"] = session_id
            pkt["Acct-Session-Time"] = session_time
            pkt["Acct-Input-Octets"] = input_bytes & 0xFFFFFFFF
            pkt["Acct-Input-Gigawords"] = input_bytes >> 32
            pkt["Acct-Output-Octets"] = output_bytes & 0xFFFFFFFF
            pkt["Acct-Output-Gigawords"] = output_bytes >> 32
            if framed_ip:
                pkt["Framed-IP-Address"] = framed_ip
            if mac:
                pkt["Calling-Station-Id"] = mac
            if terminate_cause:
                pkt["Acct-Terminate-Cause"] = terminate_cause
        if delay:
            pkt["Acct-Delay-Time"] = delay
        try:
            self.client.SendPacket(pkt)
        except Timeout:
            return False
        return True


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
