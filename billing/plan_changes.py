"""Changing a subscriber's plan mid-cycle, now (prorated) or when the next period starts.

Effective now, the days left of the current period move to the new plan:

* prepaid (the period is paid for): the unused part of the old plan is credited and the new
  plan charged for the same days, on one plan-change invoice (a credit if it comes out
  negative: a downgrade);
* postpaid (the period is invoiced at its end, at the plan then in force): the days already
  used are charged at the old price and credited at the new one, so that the period invoice
  plus this one charge each day at the plan it was on.

Effective at the next cycle, the change is recorded and the renewal switches the plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts, invoices
from billing.isp import settings
from billing.models import BillingMode, Invoice, InvoiceKind, Plan, Subscriber
from billing.money import prorate
from billing.plans import get_plan
from billing.subscribers import get_subscriber, set_plan
from radbill import audit
from radbill.errors import Conflict, InvalidInput

NOW, NEXT_CYCLE = "now", "next_cycle"


@dataclass(frozen=True)
class PlanChange:
    """What a plan change did."""

    effective: str
    invoice_number: str | None
    amount: str | None


def _days(first: dt.date, end: dt.date) -> str:
    return f"{first:%d %b} - {end - dt.timedelta(days=1):%d %b %Y}"


def change_plan(session: Session, username: str, plan_name: str, *, effective: str,
                today: dt.date, actor: str) -> PlanChange:
    """Move *username* to *plan_name*, ``now`` (prorated) or at the ``next_cycle``."""
    if effective not in (NOW, NEXT_CYCLE):
        raise InvalidInput(f"effective {effective!r}: use now or next_cycle")
    sub = get_subscriber(session, username, lock=True)
    old, new = sub.plan, get_plan(session, plan_name)
    if new.id == old.id:
        raise Conflict(f"{username} is already on {plan_name}")
    if new.currency != old.currency:
        raise Conflict(f"{plan_name} is billed in {new.currency}, {old.name} in "
                       f"{old.currency}: a currency change needs a new account")
    if effective == NEXT_CYCLE:
        sub.next_plan_id = new.id
        audit.record(session, actor=actor, action="subscriber.plan_scheduled",
                     entity="subscriber", entity_id=sub.id, before={"plan": old.name},
                     after={"plan": new.name, "from": str(sub.period_end)})
        return PlanChange(NEXT_CYCLE, None, None)
    start, end = sub.period_start, sub.period_end
    if start is None or end is None or not start <= today < end:
        raise Conflict(f"billing for {username} is not current (period {start}..{end}, "
                       f"today {today}): run 'radbill billing run' first")
    if session.scalar(select(Invoice.id).where(
            Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PLAN_CHANGE,
            Invoice.period_start == today)) is not None:
        raise Conflict(f"{username} already changed plan today; change it again tomorrow "
                       "(or schedule it with next_cycle)")
    lines = _proration_lines(session, sub, old, new, start, end, today)
    number = amount = None
    if lines:
        inv = invoices.issue(session, isp=settings(session, lock=True), sub=sub, plan=new,
                             period_start=today, period_end=end, issued_on=today,
                             due_on=today, lines=lines, kind=InvoiceKind.PLAN_CHANGE)
        number, amount = inv.number, str(inv.total)
    sub.next_plan_id = None
    set_plan(session, username, plan_name, actor=actor)
    accounts.enforce(session, sub, "plan_change", f"{old.name} -> {new.name}")
    accounts.settle_and_reconnect(session, sub, today, f"plan change to {new.name}", actor)
    return PlanChange(NOW, number, amount)


def _proration_lines(session: Session, sub: Subscriber, old: Plan, new: Plan,
                     start: dt.date, end: dt.date, today: dt.date) -> list[invoices.Line]:
    whole = (end - start).days
    cur = new.currency
    if old.billing_mode is BillingMode.PREPAID:
        invoiced = session.scalar(select(Invoice.id).where(
            Invoice.subscriber_id == sub.id, Invoice.period_start == start,
            Invoice.kind == InvoiceKind.PERIOD))
        left = (end - today).days
        if invoiced is None or left == 0:
            return []  # nothing paid for yet: the period invoice will use the new plan
        label = f"{left} of {whole} days, {_days(today, end)}"
        return [invoices.Line(f"{new.name}, {label}", prorate(new.price, left, whole, cur)),
                invoices.Line(f"Unused {old.name}, {label}",
                              -prorate(old.price, left, whole, cur))]
    used = (today - start).days
    if used == 0:
        return []
    label = f"{used} of {whole} days, {_days(start, today)}"
    return [invoices.Line(f"{old.name}, {label}", prorate(old.price, used, whole, cur)),
            invoices.Line(f"{new.name} for those days, billed with the period",
                          -prorate(new.price, used, whole, cur))]


def apply_scheduled(session: Session, sub: Subscriber, actor: str) -> Plan | None:
    """At a period boundary: switch to the plan scheduled for the next cycle, if any."""
    if sub.next_plan_id is None:
        return None
    new = sub.next_plan
    assert new is not None
    sub.next_plan_id = None
    set_plan(session, sub.username, new.name, actor=actor)
    accounts.enforce(session, sub, "plan_change", f"scheduled change to {new.name}")
    return new
