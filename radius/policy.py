"""The authorization policy: who gets on the network, and with what. Pure, no I/O.

:func:`decide` takes the request, the subscriber's snapshot record, its plan, the number of
sessions it already has open and a frozen clock, and returns a :class:`Decision`. Password
checking is not done here: the decision carries the cleartext password and FreeRADIUS's own
pap/chap/mschap modules compare it, so every PPP authentication protocol works.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from billing.rates import Burst, RatePair, mikrotik_rate_limit

# Longest Session-Timeout we send: RouterOS keeps it as a 32-bit count of seconds.
MAX_SESSION_TIMEOUT = 2**31 - 1


class Reason(enum.StrEnum):
    """Why a request was accepted or rejected; logged with every decision."""

    ACTIVE = "active"
    THROTTLED = "fair-usage-throttled"
    WALLED_GARDEN = "suspended-walled-garden"
    EXPIRED_WALLED_GARDEN = "expired-walled-garden"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    DISABLED = "disabled"
    TERMINATED = "terminated"
    UNKNOWN_USER = "unknown-user"
    BAD_PASSWORD = "bad-password"  # noqa: S105 - a reason code, not a password. Decided by FreeRADIUS's pap/chap/mschap, logged by us
    MAC_MISMATCH = "mac-mismatch"
    SIMULTANEOUS_USE = "simultaneous-use"
    WRONG_SERVICE = "wrong-service"
    BAD_REQUEST = "bad-request"
    CREDENTIAL_ERROR = "credential-error"
    UNAVAILABLE = "unavailable"  # no snapshot yet: do not answer, let the NAS try another server


REPLY_MESSAGES: dict[Reason, str] = {
    Reason.WALLED_GARDEN: (
        "Your account is suspended for non-payment. Please pay to restore service."
    ),
    Reason.EXPIRED_WALLED_GARDEN: "Your package has expired. Please pay to renew.",
    Reason.SUSPENDED: "Account suspended for non-payment",
    Reason.EXPIRED: "Package expired",
    Reason.DISABLED: "Account disabled",
    Reason.TERMINATED: "Account terminated",
    Reason.UNKNOWN_USER: "Unknown user",
    Reason.BAD_PASSWORD: "Wrong password",
    Reason.MAC_MISMATCH: "Device not registered for this account",
    Reason.SIMULTANEOUS_USE: "Already logged in",
    Reason.WRONG_SERVICE: "Account not valid for this service",
    Reason.BAD_REQUEST: "Malformed request",
    Reason.CREDENTIAL_ERROR: "Account configuration error, contact your ISP",
}


@dataclass(frozen=True)
class PlanRecord:
    """What the policy needs of a plan."""

    id: int
    name: str
    rate: RatePair
    burst: Burst | None = None
    fup_rate: RatePair | None = None
    ip_pool: str | None = None


@dataclass(frozen=True)
class SubscriberRecord:
    """What the policy needs of a subscriber. ``password`` is None if it could not be decrypted."""

    username: str
    password: str | None
    service: str  # pppoe | hotspot
    status: str  # active | suspended | disabled | terminated
    plan_id: int
    static_ip: str | None = None
    ip_pool: str | None = None
    mac_address: str | None = None
    simultaneous_use: int = 1
    paid_until: dt.datetime | None = None
    fup_throttled: bool = False


@dataclass(frozen=True)
class AuthRequest:
    """The parts of an Access-Request the policy looks at."""

    username: str | None
    nas_ip: str | None = None
    calling_station_id: str | None = None
    service_type: str | None = None  # Framed-User (PPP) or Login-User (Hotspot)
    framed_protocol: str | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Operator choices the policy applies."""

    suspended_mode: str = "walled-garden"  # or "reject"
    walled_garden_list: str = "radbill-suspended"
    walled_garden_rate: RatePair = RatePair(256_000, 256_000)  # noqa: RUF009 - frozen, shared
    interim_interval: int = 300


@dataclass(frozen=True)
class Decision:
    """The answer: accept or reject, why, the password to check against, and the reply."""

    accept: bool
    reason: Reason
    password: str | None = None
    reply: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def reply_message(self) -> str | None:
        return REPLY_MESSAGES.get(self.reason)

    @property
    def respond(self) -> bool:
        """False when the server must stay silent (no authorization state at all yet)."""
        return self.reason is not Reason.UNAVAILABLE


def reject(reason: Reason) -> Decision:
    """A reject carrying the subscriber-facing message for *reason*."""
    message = REPLY_MESSAGES.get(reason)
    return Decision(False, reason, reply=(("Reply-Message", message),) if message else ())


UNAVAILABLE = Decision(False, Reason.UNAVAILABLE)


def normalize_mac(value: str | None) -> str | None:
    """Calling-Station-Id as a MAC (``AA:BB:CC:DD:EE:FF``), or None if it is not one."""
    if not value:
        return None
    digits = "".join(c for c in value if c.isalnum()).upper()
    if len(digits) != 12 or any(c not in "0123456789ABCDEF" for c in digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _is_ppp(req: AuthRequest) -> bool | None:
    # MikroTik PPP sends Service-Type=Framed-User with Framed-Protocol=PPP; Hotspot sends
    # Login-User. None when the NAS says neither (then the check is skipped).
    if req.framed_protocol == "PPP" or req.service_type == "Framed-User":
        return True
    if req.service_type == "Login-User":
        return False
    return None


def _addressing(sub: SubscriberRecord, plan: PlanRecord) -> list[tuple[str, str]]:
    if sub.static_ip:
        return [("Framed-IP-Address", sub.static_ip)]
    pool = sub.ip_pool or plan.ip_pool
    return [("Framed-Pool", pool)] if pool else []


def decide(  # noqa: PLR0911, PLR0912 - one early return per branch: the decision table
    req: AuthRequest,
    sub: SubscriberRecord | None,
    plan: PlanRecord | None,
    open_sessions: int,
    config: PolicyConfig,
    now: dt.datetime,
) -> Decision:
    """Decide an Access-Request from the subscriber's billing state."""
    if not req.username:
        return reject(Reason.BAD_REQUEST)
    if sub is None:
        return reject(Reason.UNKNOWN_USER)
    if sub.status == "terminated":
        return reject(Reason.TERMINATED)
    if sub.status == "disabled":
        return reject(Reason.DISABLED)
    if sub.password is None or plan is None:
        return reject(Reason.CREDENTIAL_ERROR)
    ppp = _is_ppp(req)
    if ppp is not None and ppp != (sub.service == "pppoe"):
        return reject(Reason.WRONG_SERVICE)
    if sub.mac_address and normalize_mac(req.calling_station_id) != sub.mac_address:
        return reject(Reason.MAC_MISMATCH)
    if open_sessions >= sub.simultaneous_use:
        return reject(Reason.SIMULTANEOUS_USE)

    common = [("Acct-Interim-Interval", str(config.interim_interval)), *_addressing(sub, plan)]
    expired = sub.paid_until is not None and sub.paid_until <= now
    if sub.status == "suspended" or expired:
        if config.suspended_mode == "reject":
            return reject(Reason.EXPIRED if sub.status == "active" else Reason.SUSPENDED)
        reason = Reason.WALLED_GARDEN if sub.status == "suspended" else Reason.EXPIRED_WALLED_GARDEN
        return Decision(
            True,
            reason,
            password=sub.password,
            reply=(
                ("Mikrotik-Address-List", config.walled_garden_list),
                ("Mikrotik-Rate-Limit", mikrotik_rate_limit(config.walled_garden_rate)),
                *common,
                ("Reply-Message", REPLY_MESSAGES[reason]),
            ),
        )
    if sub.status != "active":
        return reject(Reason.BAD_REQUEST)

    if sub.fup_throttled and plan.fup_rate is not None:
        reason, rate = Reason.THROTTLED, mikrotik_rate_limit(plan.fup_rate)
    else:
        reason, rate = Reason.ACTIVE, mikrotik_rate_limit(plan.rate, plan.burst)
    reply = [("Mikrotik-Rate-Limit", rate), *common]
    if sub.paid_until is not None:
        remaining = int((sub.paid_until - now).total_seconds())
        reply.append(("Session-Timeout", str(max(1, min(remaining, MAX_SESSION_TIMEOUT)))))
    return Decision(True, reason, password=sub.password, reply=tuple(reply))
