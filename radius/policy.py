"""The authorization policy: who gets on the network, and with what. Pure, no I/O.

:func:`decide` takes the request, the subscriber's snapshot record, its plan, the number of
sessions it already has open, the NAS type's profile and a frozen clock, and returns a
:class:`Decision`. Password checking is not done here: the decision carries the cleartext
password and FreeRADIUS's own pap/chap/mschap modules compare it, so every PPP
authentication protocol works.

No enumeration: a reject of a known subscriber also carries the password, so FreeRADIUS
checks it *before* anything about the account is said. Every reject leaves with one generic
Reply-Message; the reason (``Decision.message``) reaches the subscriber only when the ISP
turned detailed messages on and the password was right, and always reaches the post-auth log.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from billing.rates import Burst, RatePair
from radius.nas_profiles import GardenSettings, NasProfile, profile_for

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
    # suspended or expired on a NAS that cannot hold anybody in a walled garden
    SUSPENDED_NO_GARDEN = "suspended-nas-cannot-garden"
    EXPIRED_NO_GARDEN = "expired-nas-cannot-garden"
    LOGIN_THROTTLED = "login-throttled"
    QUOTA_EXHAUSTED = "quota-exhausted"  # a Hotspot prepaid time or data quota is used up
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
    Reason.SUSPENDED_NO_GARDEN: "Account suspended for non-payment",
    Reason.EXPIRED_NO_GARDEN: "Package expired",
    Reason.LOGIN_THROTTLED: "Too many failed logins, try again later",
    Reason.QUOTA_EXHAUSTED: "Your time or data quota is used up. Please buy more.",
    Reason.DISABLED: "Account disabled",
    Reason.TERMINATED: "Account terminated",
    Reason.UNKNOWN_USER: "Wrong username or password",
    Reason.BAD_PASSWORD: "Wrong username or password",
    Reason.MAC_MISMATCH: "Device not registered for this account",
    Reason.SIMULTANEOUS_USE: "Already logged in",
    Reason.WRONG_SERVICE: "Account not valid for this service",
    Reason.BAD_REQUEST: "Malformed request",
    Reason.CREDENTIAL_ERROR: "Account configuration error, contact your ISP",
}

# What every rejected login is told by default: the same words whatever the account's state,
# so a login page cannot be used to learn which names exist or which accounts are unpaid.
GENERIC_REJECT = "Login failed"
# With detailed messages on, what a login is told before its password is known to be right.
UNVERIFIED_REJECT = "Wrong username or password"


@dataclass(frozen=True)
class PlanRecord:
    """What the policy needs of a plan."""

    id: int
    name: str
    rate: RatePair
    burst: Burst | None = None
    fup_rate: RatePair | None = None
    ip_pool: str | None = None
    ipv6_pool: str | None = None
    delegated_ipv6_pool: str | None = None
    idle_timeout: int | None = None
    # Hotspot prepaid quotas per period (usage part): bytes (a cap with no fair-usage speed
    # to fall back to) and seconds; None: none
    data_quota: int | None = None
    time_quota: int | None = None


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
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    ipv6_pool: str | None = None
    # usage part: over the data cap this period (fair-usage speed), and what is left of a
    # Hotspot prepaid quota (None: no quota)
    cap_throttled: bool = False
    quota_left_bytes: int | None = None
    quota_left_seconds: int | None = None


@dataclass(frozen=True)
class AuthRequest:
    """The parts of an Access-Request the policy looks at."""

    username: str | None
    nas_ip: str | None = None
    calling_station_id: str | None = None
    service_type: str | None = None  # Framed-User (PPP) or Login-User (Hotspot)
    framed_protocol: str | None = None
    nas_port_id: str | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Operator choices the policy applies."""

    suspended_mode: str = "walled-garden"  # or "reject"
    walled_garden_list: str = "radbill-suspended"
    walled_garden_rate: RatePair = RatePair(256_000, 256_000)  # noqa: RUF009 - frozen, shared
    interim_interval: int = 300
    detailed_messages: bool = False
    walled_garden_url: str = ""
    walled_garden_pool: str = ""  # Framed-Pool for gardened subscribers ("" : their own pool)
    idle_timeout: int = 0  # Idle-Timeout when the plan sets none (0: none)

    @property
    def garden(self) -> GardenSettings:
        return GardenSettings(self.walled_garden_list, self.walled_garden_url,
                              self.walled_garden_pool)


@dataclass(frozen=True)
class Decision:
    """The answer: accept or reject, why, the password to check against, and the reply."""

    accept: bool
    reason: Reason
    password: str | None = None
    reply: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # the speed an accept gives (garden, fair-usage or plan rate), for CoA on any NAS type
    rate: RatePair | None = None
    burst: Burst | None = None

    @property
    def reply_message(self) -> str | None:
        """The detailed, subscriber-facing words for this reason."""
        return REPLY_MESSAGES.get(self.reason)

    @property
    def respond(self) -> bool:
        """False when the server must stay silent (no authorization state at all yet)."""
        return self.reason is not Reason.UNAVAILABLE


def reject(reason: Reason, password: str | None = None) -> Decision:
    """A reject for *reason*. With *password*, FreeRADIUS checks it first, so the reason is
    only acted on (and only ever shown) for somebody who knows the password."""
    return Decision(False, reason, password=password)


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


def _addressing(sub: SubscriberRecord, plan: PlanRecord, garden_pool: str = ""
                ) -> list[tuple[str, str]]:
    # IPv4: a static address, else the garden pool (if the operator keeps gardened
    # subscribers apart), else the subscriber's or the plan's pool. IPv6 (dual-stack PPPoE):
    # a fixed Framed-IPv6-Prefix or a pool for the WAN side, and a Delegated-IPv6-Prefix
    # (or its pool) for the LAN behind the router.
    out: list[tuple[str, str]] = []
    if sub.static_ip:
        out.append(("Framed-IP-Address", sub.static_ip))
    elif garden_pool or sub.ip_pool or plan.ip_pool:
        out.append(("Framed-Pool", garden_pool or sub.ip_pool or plan.ip_pool or ""))
    if sub.framed_ipv6_prefix:
        out.append(("Framed-IPv6-Prefix", sub.framed_ipv6_prefix))
    elif sub.ipv6_pool or plan.ipv6_pool:
        out.append(("Framed-IPv6-Pool", sub.ipv6_pool or plan.ipv6_pool or ""))
    if sub.delegated_ipv6_prefix:
        out.append(("Delegated-IPv6-Prefix", sub.delegated_ipv6_prefix))
    elif plan.delegated_ipv6_pool:
        out.append(("Delegated-IPv6-Prefix-Pool", plan.delegated_ipv6_pool))
    return out


def cut_off(paid_until: dt.datetime | None, billed_until: dt.datetime | None,
            now: dt.datetime) -> bool:
    """Whether a prepaid subscriber's service has ended: *paid_until* has passed and the
    billing run has reached it (*billed_until*, the end of the last day billing ran for; None
    before the first run). A cut-off beyond what billing has reached was computed ahead for a
    period whose invoice and reminders were never issued (the scheduler was down): it is held,
    so an outage of radbill's own billing never cuts paying subscribers, and the catch-up run
    bills the days they were served with the ladder's full spacing."""
    if paid_until is None or paid_until > now:
        return False
    return billed_until is None or paid_until <= billed_until


def decide(  # noqa: PLR0911, PLR0912 - one early return per branch: the decision table
    req: AuthRequest,
    sub: SubscriberRecord | None,
    plan: PlanRecord | None,
    open_sessions: int,
    config: PolicyConfig,
    now: dt.datetime,
    profile: NasProfile | None = None,
    billed_until: dt.datetime | None = None,
) -> Decision:
    """Decide an Access-Request from the subscriber's billing state and the NAS type.

    Every reject of a subscriber whose password is known carries that password: FreeRADIUS
    checks it before the reject is acted on, so nothing about the account is revealed to
    somebody without it. *profile* is the NAS type's (MikroTik when not given).
    *billed_until*: see :func:`cut_off`."""
    if not req.username:
        return reject(Reason.BAD_REQUEST)
    if sub is None:
        return reject(Reason.UNKNOWN_USER)
    if sub.password is None or plan is None:
        return reject(Reason.CREDENTIAL_ERROR)
    password = sub.password
    if sub.status == "terminated":
        return reject(Reason.TERMINATED, password)
    if sub.status == "disabled":
        return reject(Reason.DISABLED, password)
    ppp = _is_ppp(req)
    if ppp is not None and ppp != (sub.service == "pppoe"):
        return reject(Reason.WRONG_SERVICE, password)
    if sub.mac_address and normalize_mac(req.calling_station_id) != sub.mac_address:
        return reject(Reason.MAC_MISMATCH, password)
    if open_sessions >= sub.simultaneous_use:
        return reject(Reason.SIMULTANEOUS_USE, password)

    profile = profile or profile_for("mikrotik")
    common = [("Acct-Interim-Interval", str(config.interim_interval))]
    idle = plan.idle_timeout if plan.idle_timeout is not None else config.idle_timeout
    if idle:
        common.append(("Idle-Timeout", str(idle)))
    expired = cut_off(sub.paid_until, billed_until, now)
    if sub.status == "suspended" or expired:
        if config.suspended_mode == "reject":
            return reject(Reason.EXPIRED if sub.status == "active" else Reason.SUSPENDED,
                          password)
        if not profile.can_garden(config.garden):
            # This NAS would ignore the garden attributes: an accept would be free Internet.
            return reject(Reason.EXPIRED_NO_GARDEN if sub.status == "active"
                          else Reason.SUSPENDED_NO_GARDEN, password)
        reason = Reason.WALLED_GARDEN if sub.status == "suspended" else Reason.EXPIRED_WALLED_GARDEN
        garden = profile.garden_reply(config.walled_garden_rate, config.garden)
        held = {name for name, _ in garden}  # a profile that gardens by pool sets it itself
        return Decision(
            True,
            reason,
            password=password,
            reply=(
                *garden,
                *common,
                *(a for a in _addressing(sub, plan, config.walled_garden_pool)
                  if a[0] not in held),
                ("Reply-Message", REPLY_MESSAGES[reason]),
            ),
            rate=config.walled_garden_rate,
        )
    if sub.status != "active":
        return reject(Reason.BAD_REQUEST, password)

    # A Hotspot prepaid quota: what the usage part says is left, the whole quota before
    # anything was used.
    hotspot = sub.service == "hotspot"
    left_bytes = (None if not hotspot or plan.data_quota is None
                  else plan.data_quota if sub.quota_left_bytes is None else sub.quota_left_bytes)
    left_seconds = (None if not hotspot or plan.time_quota is None
                    else plan.time_quota if sub.quota_left_seconds is None
                    else sub.quota_left_seconds)
    if left_bytes == 0 or left_seconds == 0:
        return reject(Reason.QUOTA_EXHAUSTED, password)
    if (sub.fup_throttled or sub.cap_throttled) and plan.fup_rate is not None:
        reason, speed, burst = Reason.THROTTLED, plan.fup_rate, None
    else:
        reason, speed, burst = Reason.ACTIVE, plan.rate, plan.burst
    reply = [*profile.rate_reply(speed, burst), *common, *_addressing(sub, plan)]
    # The session may last until the paid period ends or the time quota is used up,
    # whichever comes first; the NAS counts the data quota itself. Past a held cut-off
    # (cut_off) the paid period gives no timeout: never a 1-second one that loops redials.
    timeouts = [] if left_seconds is None else [left_seconds]
    if sub.paid_until is not None and sub.paid_until > now:
        timeouts.append(int((sub.paid_until - now).total_seconds()))
    if timeouts:
        reply.append(("Session-Timeout", str(max(1, min(*timeouts, MAX_SESSION_TIMEOUT)))))
    if left_bytes is not None:
        reply += profile.quota_reply(left_bytes)
    return Decision(True, reason, password=password, reply=tuple(reply), rate=speed,
                    burst=burst)
