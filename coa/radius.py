"""RFC 5176 Dynamic Authorization client: Disconnect-Request and CoA-Request to a NAS.

Every request carries the session's identification (User-Name, Acct-Session-Id,
Framed-IP-Address), an Event-Timestamp (replay protection, RFC 5176 section 3.5) and a
Message-Authenticator (BlastRADIUS hardening; MikroTik checks it when present). Answers are
verified (Response Authenticator and Message-Authenticator) before they count. Error-Cause
503 (Session-Context-Not-Found) means the session is already gone: that is an outcome to
verify, not a failure to retry.
"""

from __future__ import annotations

import asyncio
import time

from pyrad import packet

from coa.controller import NasRef, Outcome, PolicyChange, SessionRef, StepResult
from coa.dictionary import dictionary
from coa.transport import RadiusTransport
from radius.nas_profiles import GardenSettings, profile_for

SESSION_CONTEXT_NOT_FOUND = 503

ERROR_CAUSES = {
    201: "Residual-Session-Context-Removed", 202: "Invalid-EAP-Packet",
    401: "Unsupported-Attribute", 402: "Missing-Attribute", 403: "NAS-Identification-Mismatch",
    404: "Invalid-Request", 405: "Unsupported-Service", 406: "Unsupported-Extension",
    407: "Invalid-Attribute-Value", 501: "Administratively-Prohibited",
    502: "Request-Not-Routable", 503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable", 505: "Other-Proxy-Processing-Error",
    506: "Resources-Unavailable", 507: "Request-Initiated",
    508: "Multiple-Session-Selection-Unsupported",
}


class CoaController:
    """A :class:`~coa.controller.SessionController` over RFC 5176, many requests in flight.

    *timeout* is the first wait for an answer; it doubles with each of *retries*
    retransmissions (1 s, 3 retries: an unreachable NAS is given up after 15 s).
    """

    def __init__(self, transport: RadiusTransport, *, timeout: float = 1.0, retries: int = 3,
                 per_nas: int = 128) -> None:
        self.transport = transport
        self.timeout, self.retries = timeout, retries
        # At most *per_nas* requests in flight to one NAS: a router answers a few thousand
        # CoA/s at best, and a burst beyond that only queues past the timeout and comes back
        # as retransmissions, doubling its work (measured: half the packets of a 10,000
        # session burst were retransmissions without this).
        self.per_nas = per_nas
        self._gates: dict[tuple[str, int], asyncio.Semaphore] = {}

    def _packet(self, code: int, nas: NasRef, ref: SessionRef) -> packet.CoAPacket:
        pkt = packet.CoAPacket(code=code, secret=nas.secret.encode(), dict=dictionary(),
                               message_authenticator=True)
        pkt["User-Name"] = ref.username
        pkt["Acct-Session-Id"] = ref.acct_session_id
        if ref.framed_ip:
            pkt["Framed-IP-Address"] = ref.framed_ip
        pkt["NAS-IP-Address"] = nas.ip
        pkt["Event-Timestamp"] = int(time.time())
        return pkt

    async def _send(self, pkt: packet.CoAPacket, nas: NasRef, channel: str) -> StepResult:
        gate = self._gates.setdefault((nas.ip, nas.coa_port), asyncio.Semaphore(self.per_nas))
        async with gate:
            pkt["Event-Timestamp"] = int(time.time())  # when it leaves, not when it queued
            ex = await self.transport.request(pkt, (nas.ip, nas.coa_port),
                                              timeout=self.timeout, retries=self.retries)
        if ex.reply is None:
            return StepResult(Outcome.TIMEOUT, channel, detail=f"no answer from {nas.ip}:"
                              f"{nas.coa_port} after {ex.sends} sends", sends=ex.sends,
                              latency=ex.elapsed)
        if ex.reply.code in (packet.DisconnectACK, packet.CoAACK):
            return StepResult(Outcome.ACK, channel, sends=ex.sends, latency=ex.elapsed)
        causes = ex.reply.get("Error-Cause") or []
        cause = int(causes[0]) if causes and str(causes[0]).isdigit() else None
        name = ERROR_CAUSES.get(cause or 0, f"Error-Cause {cause}" if cause else "no Error-Cause")
        outcome = Outcome.GONE if cause == SESSION_CONTEXT_NOT_FOUND else Outcome.NAK
        return StepResult(outcome, channel, error_cause=cause, detail=f"NAK: {name}",
                          sends=ex.sends, latency=ex.elapsed)

    async def disconnect(self, nas: NasRef, ref: SessionRef) -> StepResult:
        """Disconnect-Request for the session."""
        return await self._send(self._packet(packet.DisconnectRequest, nas, ref), nas,
                                "disconnect")

    async def change(self, nas: NasRef, ref: SessionRef, change: PolicyChange) -> StepResult:
        """CoA-Request with the new speed and walled garden, in the attributes of the NAS's
        type (MikroTik: ``Mikrotik-Rate-Limit`` / ``Mikrotik-Address-List``). A NAS type
        that cannot take the change live is sent a Disconnect-Request instead: the next
        login gets the new policy."""
        pkt = self._packet(packet.CoARequest, nas, ref)
        attrs = coa_attributes(nas.nas_type, change)
        if attrs is None:
            return await self.disconnect(nas, ref)
        for name, value in attrs:
            pkt.AddAttribute(name, int(value) if name in _INTEGER_ATTRS else value)
        return await self._send(pkt, nas, "coa")


_INTEGER_ATTRS = frozenset({"WISPr-Bandwidth-Max-Up", "WISPr-Bandwidth-Max-Down"})


def coa_attributes(nas_type: str, change: PolicyChange) -> list[tuple[str, str]] | None:
    """The attributes of a CoA-Request making *change* on a NAS of *nas_type*, or None if
    that type cannot take it live (its profile has no CoA form for it)."""
    if nas_type == "mikrotik":
        out = []
        if change.rate_limit is not None:
            out.append(("Mikrotik-Rate-Limit", change.rate_limit))
        if change.address_list:  # RFC 2865 section 5: no zero-length attribute values
            out.append(("Mikrotik-Address-List", change.address_list))
        return out
    profile = profile_for(nas_type)
    garden = GardenSettings(garden_list=change.address_list or "radbill-suspended")
    attrs = profile.coa_reply(change.rate, change.burst, garden,
                              in_garden=bool(change.address_list))
    return attrs or None
