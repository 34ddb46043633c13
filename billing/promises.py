"""Promise to pay: an operator gives an overdue or suspended subscriber until a date.

A suspended subscriber is reactivated at once. The number of promises per billing period is
limited (ISP setting). When the date passes unpaid, the billing run marks the promise broken
and the ladder resumes (suspension, since the grace period is long over)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import accounts
from billing.isp import calendar, settings
from billing.models import Promise
from billing.standing import sync_paid_until
from billing.subscribers import get_subscriber
from notify.outbox import enqueue as notify
from radbill import audit
from radbill.errors import Conflict, InvalidInput

MAX_PROMISE_DAYS = 30


def promise_to_pay(session: Session, username: str, until: dt.date, *, today: dt.date,
                   actor: str, on: dt.date | None = None) -> Promise:
    """Record a promise made on *on* (default *today*) to pay by *until*, lift a suspension
    for non-payment, and (prepaid) extend service to the promise date."""
    day = on or today
    if day > today:
        raise InvalidInput(f"promise date of record {day} is in the future (today is {today})")
    if until <= today:
        raise InvalidInput(f"promise date {until} must be after today ({today})")
    if until > day + dt.timedelta(days=MAX_PROMISE_DAYS):
        raise InvalidInput(f"promise date {until} is more than {MAX_PROMISE_DAYS} days after "
                           f"{day}")
    sub = get_subscriber(session, username, lock=True)
    if sub.billing_started_on is not None and day < sub.billing_started_on:
        raise InvalidInput(f"{day} is before {username}'s billing started "
                           f"({sub.billing_started_on})")
    if str(sub.status) in ("disabled", "terminated"):
        raise Conflict(f"subscriber {username!r} is {sub.status}: no promise possible")
    limit = settings(session).promises_per_period
    used = session.scalar(select(func.count()).where(
        Promise.subscriber_id == sub.id, Promise.period_start == sub.period_start)) or 0
    if used >= limit:
        raise Conflict(f"subscriber {username!r} already had {used} promise(s) this billing "
                       f"period (limit {limit})")
    for old in session.scalars(select(Promise).where(Promise.subscriber_id == sub.id,
                                                     Promise.status == "active")):
        old.status = "replaced"
    promise = Promise(subscriber_id=sub.id, until=until, period_start=sub.period_start,
                      actor=actor)
    session.add(promise)
    session.flush()
    accounts.reactivate(session, sub, day, f"promise to pay until {until}", actor)
    sync_paid_until(session, settings(session), calendar(session), sub, sub.plan, today)
    audit.record(session, actor=actor, action="subscriber.promise", entity="subscriber",
                 entity_id=sub.id, after={"until": str(until), "on": str(day)})
    notify(session, sub, "promise", f"promise:{promise.id}", on=day, until=until)
    return promise
