"""Login throttling: whoever keeps failing waits longer and longer; nobody is locked out.

A hard lock after N wrong passwords lets any anonymous visitor who knows (or guesses) a staff
name keep that operator out for good. Instead failures are counted under three keys, and each
key's next attempt waits 1 s, 2 s, 4 s ... (at most ``cap``) once it has used its free
failures:

* ``addr:<address>``: one client address, whatever names it tries (IPv6 by /64, since one
  subscriber line holds a whole /64): stops spraying from one place.
* ``pair:<name>|<address>``: one name from one address: stops guessing one password.
* ``name:<name>``: one name from anywhere: slows guessing spread over many addresses. This is
  the only key a stranger can raise for someone else, so a browser that has logged in to that
  name before (it holds the signed device cookie, see :mod:`admin.auth`) is not held by it,
  and ``radbill user unlock NAME`` clears it.

Keys hold the name as typed, whether or not such a user exists, so a throttled answer says
nothing about which accounts exist. Failures older than ``FORGET_AFTER`` start over.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin.models import LoginThrottle

FORGET_AFTER = dt.timedelta(hours=1)
MAX_NAME = 64  # longer typed names are cut: no staff name is longer


@dataclass(frozen=True)
class Rule:
    """How many failures a key may have before waiting, and the longest wait."""

    free: int
    cap: dt.timedelta


RULES = {
    "addr": Rule(free=20, cap=dt.timedelta(minutes=15)),  # an office NAT shares an address
    "pair": Rule(free=5, cap=dt.timedelta(minutes=15)),
    "name": Rule(free=20, cap=dt.timedelta(minutes=15)),
}


def backoff(failures: int, rule: Rule) -> dt.timedelta:
    """How long a key with *failures* recent failures waits before its next attempt."""
    if failures < rule.free:
        return dt.timedelta(0)
    # (the exponent is bounded so a huge count cannot overflow the timedelta)
    return min(rule.cap, dt.timedelta(seconds=2 ** min(failures - rule.free, 30)))


def address_key(address: str | None) -> str:
    """The client address as counted: IPv4 as is, IPv6 by its /64 network."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return (address or "unknown")[:45]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def keys(name: str, address: str | None, *, trusted_device: bool = False) -> list[str]:
    """The throttle keys of a login attempt (sorted: rows are locked in this order)."""
    name, addr = name[:MAX_NAME], address_key(address)
    out = [f"addr:{addr}", f"pair:{name}|{addr}"]
    if not trusted_device:
        out.append(f"name:{name}")
    return sorted(out)


def _kind(key: str) -> Rule:
    return RULES[key.partition(":")[0]]


def wait(session: Session, attempt_keys: Iterable[str], now: dt.datetime) -> dt.timedelta:
    """How long this attempt must still wait (zero: go ahead)."""
    longest = dt.timedelta(0)
    for row in session.scalars(select(LoginThrottle).where(
            LoginThrottle.key.in_(list(attempt_keys)))):
        if row.blocked_until is not None and row.last_failure_at > now - FORGET_AFTER:
            longest = max(longest, row.blocked_until - now)
    return longest


def failed(session: Session, attempt_keys: Iterable[str], now: dt.datetime) -> None:
    """Count a failed attempt under every key (the caller commits, even though it fails)."""
    for key in sorted(attempt_keys):
        row = _locked_row(session, key, now)
        if row.last_failure_at <= now - FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        delay = backoff(row.failures, _kind(key))
        row.blocked_until = now + delay if delay else None
    # Forgotten rows are dead weight: the index on last_failure_at makes this cheap.
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failure_at < now - FORGET_AFTER))


def _locked_row(session: Session, key: str, now: dt.datetime) -> LoginThrottle:
    # populate_existing: wait() loaded these rows before the lock; count from what the lock
    # sees, or a concurrent failure would be lost.
    stmt = (select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
            .execution_options(populate_existing=True))
    row = session.scalars(stmt).one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(key=key, failures=0, last_failure_at=now)
            session.add(row)
    except IntegrityError:  # another process counted this key's first failure meanwhile
        row = session.scalars(stmt).one()
    return row


def succeeded(session: Session, name: str, address: str | None) -> None:
    """A right password from this address ends that pair's back-off. The address and name
    keys stay: a valid login of one's own must not reset a guessing run at others."""
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.key == f"pair:{name[:MAX_NAME]}|{address_key(address)}"))


def clear_name(session: Session, name: str) -> int:
    """Forget every failure counted for *name* (``radbill user unlock``); how many keys."""
    name = name[:MAX_NAME]
    result = session.execute(delete(LoginThrottle).where(or_(
        LoginThrottle.key == f"name:{name}",
        LoginThrottle.key.startswith(f"pair:{name}|", autoescape=True))))
    return int(getattr(result, "rowcount", 0) or 0)


def throttled_names(session: Session, now: dt.datetime) -> dict[str, dt.datetime]:
    """Names waiting now (by the name key or any pair key), with the latest release time."""
    out: dict[str, dt.datetime] = {}
    for row in session.scalars(select(LoginThrottle).where(
            LoginThrottle.blocked_until > now,
            LoginThrottle.last_failure_at > now - FORGET_AFTER,
            or_(LoginThrottle.key.startswith("name:"), LoginThrottle.key.startswith("pair:")))):
        kind, _, rest = row.key.partition(":")
        name = rest if kind == "name" else rest.rpartition("|")[0]
        assert row.blocked_until is not None
        out[name] = max(out.get(name, row.blocked_until), row.blocked_until)
    return out
