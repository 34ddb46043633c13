"""State changes of a subscriber's billing account shared by the run, payments and promises:
suspend, reactivate, throttle. Each is audited (through the status service), bumps the RADIUS
change feed, writes an enforcement request and an outbox event, in the caller's transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import ledger, subscribers
from billing.invoices import notify
from billing.models import EnforcementRequest, Promise, Subscriber, SubscriberStatus
from radbill import audit
from radbill.db import AUTH_FEED, bump
from radbill.errors import InvalidInput


def enforce(session: Session, sub: Subscriber, action: str, reason: str) -> None:
    """Ask the network to follow (consumed by the enforcement part)."""
    session.add(EnforcementRequest(subscriber_id=sub.id, action=action, reason=reason))


def suspend(session: Session, sub: Subscriber, today: dt.date, reason: str, actor: str) -> bool:
    """Suspend for non-payment. False if the subscriber was not active."""
    if sub.status is not SubscriberStatus.ACTIVE:
        return False
    subscribers.change_status(session, sub.username, SubscriberStatus.SUSPENDED, actor=actor,
                              reason=reason)
    sub.suspended_on, sub.suspended_for_nonpayment = today, True
    enforce(session, sub, "suspend", reason)
    notify(session, sub, "suspended", f"suspended:{sub.id}:{today}", reason=reason)
    return True


def reactivate(session: Session, sub: Subscriber, today: dt.date, reason: str, actor: str
               ) -> bool:
    """Undo a suspension for non-payment (and any dunning throttle). False if nothing to do."""
    changed = False
    if sub.status is SubscriberStatus.SUSPENDED and sub.suspended_for_nonpayment:
        subscribers.change_status(session, sub.username, SubscriberStatus.ACTIVE, actor=actor,
                                  reason=reason)
        sub.suspended_on, sub.suspended_for_nonpayment = None, False
        enforce(session, sub, "reconnect", reason)
        notify(session, sub, "reconnected", f"reconnected:{sub.id}:{today}:{reason}",
               reason=reason)
        changed = True
    if sub.dunning_throttled:
        set_throttle(session, sub, False, reason)
        changed = True
    return changed


def set_throttle(session: Session, sub: Subscriber, on: bool, reason: str) -> None:
    """Dunning throttle: the plan's fair-usage speed until paid."""
    sub.dunning_throttled = on
    sub.fup_throttled = on
    sub.auth_version = bump(session, AUTH_FEED)
    enforce(session, sub, "throttle" if on else "unthrottle", reason)


def active_promise(session: Session, subscriber_id: int) -> Promise | None:
    """The subscriber's running promise to pay, if any."""
    return session.scalars(
        select(Promise).where(Promise.subscriber_id == subscriber_id,
                              Promise.status == "active").order_by(Promise.until.desc())
    ).first()


def settle_and_reconnect(session: Session, sub: Subscriber, today: dt.date, reason: str,
                         actor: str) -> tuple[ledger.Settlement, bool]:
    """After money or a credit came in: settle the invoices and, if nothing is overdue any
    more, reactivate (and count a running promise as kept) in the same transaction."""
    settled = ledger.settle(session, sub.id, today)
    reconnected = False
    if settled.overdue(today) <= 0:
        reconnected = reactivate(session, sub, today, reason, actor)
        promise = active_promise(session, sub.id)
        if promise is not None:
            promise.status = "kept"
    return settled, reconnected


def request_disconnect(session: Session, username: str, *, nas_ip: str, acct_session_id: str,
                       reason: str, actor: str) -> EnforcementRequest:
    """Ask the network to drop one session of *username* (a RADIUS Disconnect-Request, sent
    by the enforcement worker to that session only); the subscriber's status does not
    change, so the router lets them log in again (useful after a plan or MAC change)."""
    why = (reason or "").strip()
    if not why:
        raise InvalidInput("a disconnect needs a reason")
    sub = subscribers.get_subscriber(session, username)
    request = EnforcementRequest(subscriber_id=sub.id, action="disconnect",
                                 reason=f"session {nas_ip}/{acct_session_id}: {why}"[:2000],
                                 nas_ip=nas_ip, acct_session_id=acct_session_id)
    session.add(request)
    session.flush()
    audit.record(session, actor=actor, action="subscriber.disconnect", entity="subscriber",
                 entity_id=sub.id, after={"nas_ip": nas_ip, "acct_session_id": acct_session_id,
                                          "enforcement_request": request.id}, reason=why)
    return request


def enforcement_history(session: Session, subscriber_id: int, limit: int = 50
                        ) -> list[EnforcementRequest]:
    """The subscriber's enforcement requests, newest first."""
    return list(session.scalars(
        select(EnforcementRequest).where(EnforcementRequest.subscriber_id == subscriber_id)
        .order_by(EnforcementRequest.id.desc()).limit(limit)))


# The enforcement action for each status an operator can set.
OPERATOR_ACTIONS = {SubscriberStatus.ACTIVE: "reconnect", SubscriberStatus.SUSPENDED: "suspend",
                    SubscriberStatus.DISABLED: "disable", SubscriberStatus.TERMINATED: "terminate"}


def set_status_by_operator(session: Session, username: str, target: SubscriberStatus, *,
                           reason: str, actor: str) -> bool:
    """An operator changes a subscriber's status by hand (audited by the status service) and
    the network is asked to follow in the same transaction. Reconnecting also clears a
    suspension for non-payment; the next billing run suspends again if the debt is still
    overdue. False if the subscriber already had that status."""
    why = (reason or "").strip() or f"by {actor}"
    changed = subscribers.change_status(session, username, target, actor=actor, reason=why)
    if not changed:
        return False
    sub = subscribers.get_subscriber(session, username)
    if target is SubscriberStatus.ACTIVE:
        sub.suspended_on, sub.suspended_for_nonpayment = None, False
    enforce(session, sub, OPERATOR_ACTIONS[target], why)
    return True
