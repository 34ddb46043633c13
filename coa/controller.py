"""The interface every way of reaching a NAS implements, and the values it speaks.

Two implementations: :class:`coa.radius.CoaController` (RFC 5176 over UDP) and
:class:`coa.routeros.RouterOsController` (the RouterOS API over TCP/TLS). The worker picks
one per step and falls back from the first to the second.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from billing.rates import Burst, RatePair


class EnforcementError(Exception):
    """A NAS could not be reached or configured for enforcement (adapters raise only this)."""


class Outcome(enum.StrEnum):
    """How one step ended."""

    ACK = "ack"  # the NAS did it
    GONE = "gone"  # the NAS has no such session (Error-Cause 503, or absent from the API)
    NAK = "nak"  # the NAS refused (another Error-Cause)
    TIMEOUT = "timeout"  # no answer after every retry
    ERROR = "error"  # could not even ask (no API credentials, connection refused, ...)


@dataclass(frozen=True)
class NasRef:
    """How to reach one NAS (secrets decrypted, never logged)."""

    ip: str
    secret: str
    coa_port: int = 3799
    api_port: int | None = None
    api_username: str | None = None
    api_password: str | None = None
    # API-SSL: "none" (plain API), "anon" (encrypted, the router not authenticated: anonymous
    # Diffie-Hellman for a router without a certificate, or a certificate left unchecked),
    # "verify" (the router's certificate checked against api_tls_ca, the system's CAs, or
    # pinned by its SHA-256 api_tls_fingerprint).
    api_tls: str = "none"
    api_tls_ca: str | None = None
    api_tls_fingerprint: str | None = None
    nas_type: str = "mikrotik"  # the profile (radius/profiles/nas_types.toml) CoA speaks

    @property
    def has_api(self) -> bool:
        return bool(self.api_port and self.api_username and self.api_password is not None)


@dataclass(frozen=True)
class SessionRef:
    """One session at a NAS, identified as RFC 5176 asks: User-Name, Acct-Session-Id and
    Framed-IP-Address (Hotspot with User-Name alone can hit the wrong session)."""

    username: str
    acct_session_id: str
    framed_ip: str | None = None
    service: str = "pppoe"  # pppoe | hotspot


@dataclass(frozen=True)
class PolicyChange:
    """What a live change sets: the rate, and the address list (``""`` takes it out of every
    list radbill manages, None leaves lists alone)."""

    rate_limit: str | None = None
    address_list: str | None = None
    # the same speed as a rate, for NAS types other than MikroTik (equal when rate_limit is)
    rate: RatePair | None = field(default=None, compare=False)
    burst: Burst | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StepResult:
    """What came back from one step on one channel."""

    outcome: Outcome
    channel: str  # disconnect | coa | api-disconnect | api-change | api-secret | api-list
    error_cause: int | None = None
    detail: str = ""
    sends: int = 1
    latency: float = 0.0


class SessionController(Protocol):
    """Ends or changes a live session on a NAS.

    Implementations return a :class:`StepResult` for every outcome the NAS can produce and
    raise only :class:`EnforcementError`; they must not touch the database or decide policy
    (the worker does both), and must never block the event loop.
    """

    async def disconnect(self, nas: NasRef, ref: SessionRef) -> StepResult:
        """End the session (the subscriber re-authenticates under the current policy)."""

    async def change(self, nas: NasRef, ref: SessionRef, change: PolicyChange) -> StepResult:
        """Change the live session's rate and/or address list without ending it."""
