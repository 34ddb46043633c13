"""Who is knocking at the walled garden: a visitor is recognised by their source address
against the open accounting sessions (``Framed-IP-Address``, and the NAS when the router's
redirect names it), and nothing else.

Exactly one open session must hold the address (on the named NAS, if one is named); none, or
more than one (two NASes handing out the same private pool), is "unknown" and the visitor
gets the login form: the page never guesses whose data to show.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.models import EnforcementRequest, Subscriber, SubscriberStatus
from radius import accounting

# A session that started at most this long before the reconnection was queued may already be
# the redial (clocks of the NAS and radbill differ a little).
SKEW = dt.timedelta(seconds=2)
OPEN_REQUESTS = ("pending", "retry", "working", "confirming")


@dataclass(frozen=True)
class Visitor:
    """The open session a visitor's address belongs to."""

    subscriber_id: int
    username: str
    nas_ip: str
    framed_ip: str
    started_at: dt.datetime
    enforced_at: dt.datetime | None


def normalise_address(address: str | None) -> str | None:
    """The address as accounting stores it (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def identify(session: Session, address: str | None, nas: str | None = None) -> Visitor | None:
    """The open session of the visitor at *address* (on NAS *nas* if given), or None when no
    single open session holds it."""
    addr = normalise_address(address)
    if addr is None:
        return None
    rows = accounting.open_sessions_at(session, addr, limit=3)
    if nas:
        rows = [r for r in rows if r.nas_ip == nas[:45]]
    if len(rows) != 1:
        return None
    row = rows[0]
    sub_id = row.subscriber_id
    if sub_id is None:
        sub_id = session.scalar(select(Subscriber.id).where(
            func.lower(Subscriber.username) == row.username.lower()))
        if sub_id is None:
            return None
    return Visitor(subscriber_id=sub_id, username=row.username, nas_ip=row.nas_ip,
                   framed_ip=addr, started_at=row.started_at, enforced_at=row.enforced_at)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def connection(session: Session, sub: Subscriber, visitor: Visitor) -> str:
    """Where the visitor's connection is, for the page that follows it live:

    * ``suspended``: still in the walled garden (not paid, or the payment not confirmed yet);
    * ``reconnecting``: reactivated, the router has not been told yet;
    * ``online``: this session is under the current policy (it started after the latest
      change, or the change was applied to it live);
    * ``reconnect``: reactivated and the router was told, but this session still predates
      the change: the subscriber should reconnect (redial) the router;
    * another status (``disabled``...) as is.
    """
    if sub.status is not SubscriberStatus.ACTIVE:
        return str(sub.status)
    latest = session.execute(
        select(EnforcementRequest.created_at, EnforcementRequest.status)
        .where(EnforcementRequest.subscriber_id == sub.id,
               EnforcementRequest.status != "superseded")
        .order_by(EnforcementRequest.created_at.desc(), EnforcementRequest.id.desc())
        .limit(1)).first()
    if latest is None:
        return "online"
    at, status = _aware(latest[0]), latest[1]
    if _aware(visitor.started_at) >= at - SKEW or (
            visitor.enforced_at is not None and _aware(visitor.enforced_at) >= at):
        return "online"
    if status in OPEN_REQUESTS:
        return "reconnecting"
    return "reconnect"
