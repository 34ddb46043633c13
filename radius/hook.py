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
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from billing.rates import RatePair
from radbill.config import Settings
from radbill.db import utcnow
from radius.policy import (
    UNAVAILABLE,
    AuthRequest,
    Decision,
    PolicyConfig,
    Reason,
    decide,
    reject,
)
from radius.snapshot import AuthSnapshot

log = logging.getLogger("radbill.policy")

# rlm_python3 return codes (FreeRADIUS modules.h; the same numbers radiusd exports).
RLM_MODULE_REJECT = 0
RLM_MODULE_FAIL = 1
RLM_MODULE_OK = 2
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
        nas_ip=attrs.get("Packet-Src-IP-Address") or attrs.get("NAS-IP-Address"),
        calling_station_id=_unquote(attrs.get("Calling-Station-Id")),
        service_type=attrs.get("Service-Type"),
        framed_protocol=attrs.get("Framed-Protocol"),
    )


@dataclass
class PolicyHook:
    """Answers ``authorize`` calls from the snapshot."""

    snapshot: AuthSnapshot
    config: PolicyConfig
    clock: Callable[[], dt.datetime] = utcnow

    def decide(self, attrs: dict[str, str]) -> Decision:
        """The decision for one request's attributes."""
        req = auth_request(attrs)
        if not self.snapshot.loaded:
            return UNAVAILABLE
        if malformed(attrs):
            return reject(Reason.BAD_REQUEST)
        if req.username is None or len(req.username) > MAX_USERNAME:
            if not req.username:
                return reject(Reason.BAD_REQUEST)
            return reject(Reason.UNKNOWN_USER)
        sub, plan, online = self.snapshot.lookup(req.username)
        return decide(req, sub, plan, online, self.config, self.clock())

    def authorize(self, pairs: Iterable[object]) -> Result:
        """rlm_python3 ``authorize``: pairs in, rcode and pairs out. Never raises."""
        try:
            decision = self.decide(first_values(pairs))
        except Exception:
            log.exception("policy failed; rejecting the request")
            decision = reject(Reason.BAD_REQUEST)
        return to_result(decision)


def to_result(decision: Decision) -> Result:
    """The rlm_python3 return value for *decision*."""
    if not decision.respond:
        return RLM_MODULE_OK, (), (
            ("Radbill-Decision", ":=", "silent"),
            ("Radbill-Reason", ":=", str(decision.reason)),
        )
    control: list[tuple[str, str, str]] = [
        ("Radbill-Decision", ":=", "accept" if decision.accept else "reject"),
        ("Radbill-Reason", ":=", str(decision.reason)),
    ]
    if decision.accept and decision.password is not None:
        control.append(("Cleartext-Password", ":=", decision.password))
    reply = tuple((name, ":=", value) for name, value in decision.reply)
    rcode = RLM_MODULE_UPDATED if decision.accept else RLM_MODULE_REJECT
    return rcode, reply, tuple(control)
