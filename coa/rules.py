"""Enforcement rules: what to send to a live session, and what an outcome means. Pure.

The target is always "what a login right now would get" (:func:`desired`, from the same
policy FreeRADIUS answers with), never the action's name alone: a request that was
overtaken by a later change still converges on the current state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from billing.rates import Burst, RatePair
from coa.controller import Outcome, PolicyChange, StepResult
from radius.policy import Decision, Reason

# Actions whose effect is only a different rate: a PPPoE session can take it live by CoA
# (MikroTik applies Mikrotik-Rate-Limit from a CoA to PPP; for Hotspot it is unconfirmed).
RATE_ONLY = {"throttle", "unthrottle", "plan_change"}
# Actions that move a session into or out of the walled garden.
GARDEN_MOVES = {"suspend", "reconnect"}
ACTIONS = {*RATE_ONLY, *GARDEN_MOVES, "disable", "terminate", "disconnect", "resync"}

MAX_BACKOFF = 300.0


class Kind(enum.StrEnum):
    DISCONNECT = "disconnect"
    CHANGE = "change"


@dataclass(frozen=True)
class Desired:
    """What the subscriber's sessions should look like now."""

    online: bool  # False: no session may stay up
    rate_limit: str | None = None
    address_list: str = ""  # the walled-garden list, or "" for none
    reason: str = ""
    # the same speed as a rate, for NAS types other than MikroTik (equal when rate_limit is)
    rate: RatePair | None = field(default=None, compare=False)
    burst: Burst | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Step:
    """One thing to do to one session."""

    kind: Kind
    change: PolicyChange | None = None


def desired(decision: Decision) -> Desired:
    """The desired session state from the policy's decision for a fresh login."""
    if not decision.accept:
        return Desired(online=False, reason=str(decision.reason))
    reply = dict(decision.reply)
    garden = decision.reason in (Reason.WALLED_GARDEN, Reason.EXPIRED_WALLED_GARDEN)
    return Desired(online=True, rate_limit=reply.get("Mikrotik-Rate-Limit"),
                   address_list=reply.get("Mikrotik-Address-List", "") if garden else "",
                   reason=str(decision.reason), rate=decision.rate, burst=decision.burst)


def step_for(action: str, want: Desired, service: str, suspend_by: str = "disconnect") -> Step:
    """How to bring one session of this subscriber to *want*.

    Disconnect is the safe default: the subscriber re-authenticates and gets exactly what
    the policy says. A live CoA is used where it is known to work: rate changes on PPPoE,
    and, when the operator chose ``suspend_by="coa"``, moving a PPPoE session into the walled
    garden (rate and address list) without dropping it. Out of the garden is always a
    Disconnect: RADIUS has no way to say "no address list" (RFC 2865 section 5 allows no
    zero-length value, and FreeRADIUS drops one on decode), so a CoA could only change the
    rate and leave the session in the garden's address list.
    """
    if not want.online or service != "pppoe":
        return Step(Kind.DISCONNECT)
    if action in RATE_ONLY and not want.address_list:
        return Step(Kind.CHANGE, PolicyChange(rate_limit=want.rate_limit, rate=want.rate,
                                              burst=want.burst))
    if action in GARDEN_MOVES and suspend_by == "coa" and want.address_list:
        return Step(Kind.CHANGE, PolicyChange(rate_limit=want.rate_limit,
                                              address_list=want.address_list, rate=want.rate,
                                              burst=want.burst))
    return Step(Kind.DISCONNECT)


def needs_fallback(result: StepResult) -> bool:
    """A CoA/Disconnect that the NAS refused or never answered goes to the API (if any).
    GONE is an answer: the session is not there, nothing to fall back for."""
    return result.outcome in (Outcome.NAK, Outcome.TIMEOUT, Outcome.ERROR)


def backoff(attempts: int, base: float = 2.0) -> float:
    """Seconds before the next attempt of a request that failed *attempts* times."""
    return float(min(base ** max(attempts, 1), MAX_BACKOFF))


class Verdict(enum.StrEnum):
    """What a request becomes after one round."""

    DONE = "done"
    CONFIRMING = "confirming"  # acknowledged; waiting for the Accounting-Stop
    RETRY = "retry"
    FAILED = "failed"


def verdict(results: list[StepResult], attempts: int, max_attempts: int) -> Verdict:
    """The request's status from the final result of each of its sessions."""
    if any(r.outcome in (Outcome.NAK, Outcome.TIMEOUT, Outcome.ERROR) for r in results):
        return Verdict.FAILED if attempts >= max_attempts else Verdict.RETRY
    if any(r.outcome is Outcome.ACK and r.channel in ("disconnect", "api-disconnect")
           for r in results):
        return Verdict.CONFIRMING
    return Verdict.DONE
