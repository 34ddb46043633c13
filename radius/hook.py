"""The translator between rlm_python3 and the policy. Tested without FreeRADIUS.

rlm_python3 hands us a tuple of ``(attribute, value)`` string pairs and wants back an rcode
with reply and control pairs. :class:`PolicyHook` turns the pairs into an
:class:`~radius.policy.AuthRequest`, asks the policy, and turns the
:class:`~radius.policy.Decision` into pairs. It never raises: any failure becomes a reject
that is logged with its traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from billing.rates import RatePair
from radbill.clock import utcnow
from radbill.config import Settings
from radius.liveness import (
    Device,
    LoginThrottle,
    ProvisionalSessions,
    same_device,
    station_key,
)
from radius.nas_profiles import profile_for
from radius.policy import (
    GENERIC_REJECT,
    REPLY_MESSAGES,
    UNAVAILABLE,
    UNVERIFIED_REJECT,
    AuthRequest,
    Decision,
    PolicyConfig,
    Reason,
    decide,
    reject,
)
from radius.snapshot import AuthSnapshot, username_key

log = logging.getLogger("radbill.policy")

# rlm_python3 return codes (FreeRADIUS modules.h; the same numbers radiusd exports).
RLM_MODULE_REJECT = 0
RLM_MODULE_FAIL = 1
RLM_MODULE_OK = 2
RLM_MODULE_NOOP = 7
RLM_MODULE_UPDATED = 8

Pairs = tuple[tuple[str, str, str], ...]
Result = tuple[int, Pairs, Pairs]

MAX_USERNAME = 64  # longest username radbill stores; longer ones cannot match anybody


def policy_config(settings: Settings) -> PolicyConfig:
    """The policy's settings from radbill's configuration."""
    return PolicyConfig(
        suspended_mode=settings.suspended_mode,
        walled_garden_list=settings.walled_garden_list,
        walled_garden_rate=RatePair.parse(settings.walled_garden_rate),
        interim_interval=settings.interim_interval,
        detailed_messages=settings.detailed_reject_messages,
        walled_garden_url=settings.walled_garden_url,
        walled_garden_pool=settings.walled_garden_pool,
        idle_timeout=settings.idle_timeout,
    )


# FreeRADIUS hands on a standard attribute it could not decode (wrong length for its type) as
# a raw "Attr-<number>". Such a request comes from a broken or hostile client: refuse it.
_RAW_STANDARD_ATTR = re.compile(r"^Attr-\d{1,3}$")


# FreeRADIUS prints non-printable bytes of a string attribute as octal escapes (\ooo).
_BINARY_TEXT = re.compile(r"[\x00-\x1f\x7f]|\\[0-7]{3}")
_TEXT_ATTRS = ("User-Name", "Calling-Station-Id")


def malformed(attrs: dict[str, str]) -> bool:
    """True if the request carried a standard attribute FreeRADIUS could not decode, or binary
    junk in a text attribute the policy reads."""
    if any(_RAW_STANDARD_ATTR.match(name) for name in attrs):
        return True
    return any(_BINARY_TEXT.search(attrs.get(name) or "") for name in _TEXT_ATTRS)


def first_values(pairs: Iterable[object]) -> dict[str, str]:
    """The first value of each attribute; anything that is not a (str, str) pair is skipped."""
    attrs: dict[str, str] = {}
    for item in pairs or ():
        if isinstance(item, tuple) and len(item) == 2:
            name, value = item
            if isinstance(name, str) and isinstance(value, str):
                attrs.setdefault(name, value)
    return attrs


def _unquote(value: str | None) -> str | None:
    # rlm_python3 passes string attributes as printed, which may be quoted.
    if value and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def auth_request(attrs: dict[str, str]) -> AuthRequest:
    """The policy's view of an Access-Request."""
    return AuthRequest(
        username=_unquote(attrs.get("User-Name")),
        # the packet's source is the NAS as FreeRADIUS knows it (and decides its type)
        nas_ip=(attrs.get("Packet-Src-IP-Address") or attrs.get("Packet-Src-IPv6-Address")
                or attrs.get("NAS-IP-Address")),
        calling_station_id=_unquote(attrs.get("Calling-Station-Id")),
        service_type=attrs.get("Service-Type"),
        framed_protocol=attrs.get("Framed-Protocol"),
        nas_port_id=_unquote(attrs.get("NAS-Port-Id")),
    )


def device_of(req: AuthRequest) -> Device:
    """Where the request comes from (a MAC Calling-Station-Id in one spelling)."""
    csid = station_key(req.calling_station_id)
    return Device(req.nas_ip, csid, (req.nas_port_id or "").strip() or None)


@dataclass(frozen=True)
class _Admit:
    """An accept about to go out: its provisional session, once authorize has decided."""

    key: str
    device: Device
    opened: int
    at: float


@dataclass
class PolicyHook:
    """Answers ``authorize`` and ``post_auth`` calls from the snapshot and in-memory state."""

    snapshot: AuthSnapshot
    config: PolicyConfig
    clock: Callable[[], dt.datetime] = utcnow
    case_insensitive: bool = True
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    provisional: ProvisionalSessions = field(default_factory=ProvisionalSessions)
    monotonic: Callable[[], float] = time.monotonic
    # A request from an address not in the NAS table (none reach us: nas-clients/ holds the
    # table) gets the profile that never accepts a suspended subscriber.
    unknown_nas_type: str = "other"

    def lookup_name(self, username: str) -> str | None:
        """The snapshot key for a login name, or None if it names nobody. Leading and
        trailing spaces are never part of a username; case counts only when the ISP turned
        case-insensitive usernames off."""
        key = username_key(username)
        if not self.case_insensitive:
            sub = self.snapshot.entry(key)
            if sub is not None and sub.username != username.strip():
                return None
        return key

    def decide(self, attrs: dict[str, str]) -> Decision:
        """The decision for one request's attributes (nothing is recorded)."""
        return self._decide(attrs)[0]

    def _decide(self, attrs: dict[str, str]  # noqa: PLR0911 - one return per early exit
                ) -> tuple[Decision, list[str], _Admit | None]:
        req = auth_request(attrs)
        if not self.snapshot.loaded:
            return UNAVAILABLE, [], None
        if malformed(attrs):
            return reject(Reason.BAD_REQUEST), [], None
        if req.username is None or len(req.username) > MAX_USERNAME:
            if not req.username:
                return reject(Reason.BAD_REQUEST), [], None
            return reject(Reason.UNKNOWN_USER), [], None
        key = self.lookup_name(req.username)
        if key is None:
            return reject(Reason.UNKNOWN_USER), [], None
        device = device_of(req)
        now = self.monotonic()
        if self.throttle.blocked(key, device.calling_station_id, now):
            return reject(Reason.LOGIN_THROTTLED), [], None
        snap = self.snapshot
        sub = snap.record(key)
        plan = snap.plans.get(sub.plan_id) if sub is not None else None
        refs = snap.sessions.get(key, ())
        replaced = same_device(refs, device)
        opened = self.snapshot.opened.get(key, 0)
        online = (len(refs) - len(replaced)
                  + self.provisional.count(key, opened, device, now))
        profile = profile_for(self.snapshot.nas_types.get(req.nas_ip or "", self.unknown_nas_type))
        decision = decide(req, sub, plan, online, self.config, self.clock(), profile,
                          snap.billed_until)
        if not decision.accept:
            return decision, [], None
        admit = _Admit(key, device, opened, now)
        return decision, [r.acct_session_id for r in replaced], admit

    def authorize(self, pairs: Iterable[object]) -> Result:
        """rlm_python3 ``authorize``: pairs in, rcode and pairs out. Never raises."""
        replaces: list[str] = []
        try:
            decision, replaces, admit = self._decide(first_values(pairs))
            if admit is not None:
                # Counted from now, not from post-auth: FreeRADIUS may run the next
                # request's authorize before this one's post-auth. Taken back there if the
                # password turns out wrong.
                self.provisional.add(admit.key, admit.device, admit.opened, admit.at,
                                     self.throttle.trusted_station(admit.key))
        except Exception:
            log.exception("policy failed; rejecting the request")
            decision = reject(Reason.BAD_REQUEST)
        return to_result(decision, self.config.detailed_messages, replaces)

    def post_auth(self, pairs: Iterable[object]) -> int:
        """rlm_python3 ``post_auth`` (both outcomes): feed the in-memory state. A right
        password clears the user's failures; a wrong one counts toward throttling and takes
        back the provisional session authorize opened for an accept. Never raises, never
        changes the outcome."""
        try:
            attrs = first_values(pairs)
            req = auth_request(attrs)
            if not req.username or len(req.username) > MAX_USERNAME:
                return RLM_MODULE_NOOP
            key = self.lookup_name(req.username)
            if key is None or not self.snapshot.known(key):
                return RLM_MODULE_NOOP
            outcome = _unquote(attrs.get("Radbill-Decision"))
            reason = _unquote(attrs.get("Radbill-Reason"))
            device = device_of(req)
            now = self.monotonic()
            if reason == Reason.BAD_PASSWORD:
                self.throttle.failure(key, now)
            elif reason != Reason.LOGIN_THROTTLED and attrs.get("Radbill-Password-Ok"):
                # the key and station strings authorize stored, not this request's copies
                self.throttle.success(*self.provisional.stored(key, device.calling_station_id))
            policy = _unquote(attrs.get("Radbill-Policy-Decision"))
            if outcome != "accept" and policy == "accept":
                self.provisional.discard(key, device)
        except Exception:
            log.exception("post-auth bookkeeping failed")
        return RLM_MODULE_NOOP


def _reply_pairs(reply: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    # ":=" replaces what is there; a repeated attribute (Cisco-AVPair) must be added ("+=")
    # after its first value, or each would overwrite the one before.
    seen: set[str] = set()
    out = []
    for name, value in reply:
        out.append((name, "+=" if name in seen else ":=", value))
        seen.add(name)
    return out


def to_result(decision: Decision, detailed: bool = False, replaces: Iterable[str] = ()
              ) -> Result:
    """The rlm_python3 return value for *decision*.

    A reject that carries a password continues (UPDATED) so pap/chap/mschap check it first;
    sites/radbill turns it into an Access-Reject in post-auth once the password was right.
    The subscriber is told ``Radbill-Reject-Message`` unless the password was right and
    detailed messages are on (``Radbill-Message``)."""
    if not decision.respond:
        return RLM_MODULE_OK, (), (
            ("Radbill-Decision", ":=", "silent"),
            ("Radbill-Reason", ":=", str(decision.reason)),
        )
    control: list[tuple[str, str, str]] = [
        ("Radbill-Decision", ":=", "accept" if decision.accept else "reject"),
        ("Radbill-Reason", ":=", str(decision.reason)),
    ]
    if decision.password is not None:
        control.append(("Cleartext-Password", ":=", decision.password))
    # what anybody whose password turns out wrong is told
    control.append(("Radbill-Reject-Message", ":=",
                    UNVERIFIED_REJECT if detailed else GENERIC_REJECT))
    reply = _reply_pairs(decision.reply)
    if decision.accept:
        # One Acct-Session-Id per value; ids with spaces are left to the stale-session job.
        ids = " ".join(i for i in replaces if i and " " not in i)[:253]
        if ids:
            reply.append(("Radbill-Replaces", ":=", ids))
        return RLM_MODULE_UPDATED, tuple(reply), tuple(control)
    detail = REPLY_MESSAGES.get(decision.reason) if detailed else None
    control.append(("Radbill-Message", ":=", detail or GENERIC_REJECT))
    rcode = RLM_MODULE_UPDATED if decision.password is not None else RLM_MODULE_REJECT
    return rcode, (), tuple(control)
