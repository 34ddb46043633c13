"""Changing a subscriber's plan mid-cycle, now or when the next period starts.

Proration is one rule everywhere, the first invoice's: a part of a period is priced as its
days out of the whole period's days (a whole month's, even inside a short first period).

Effective now:

* prepaid (the period is paid for): the unused days of the old plan are credited on a credit
  note against the period's invoice, and the new plan's price for the same days is charged on
  a plan-change invoice, due after the ISP's payment terms;
* postpaid (the period is invoiced at its end): nothing is issued now; the change is recorded
  and the period invoice has a line per plan, each for its days.

Either way, a prepaid period already invoiced ahead at the old plan is re-priced: its invoice
is credited in full and the period invoiced again at the new plan. Effective at the next
cycle, the change is recorded and the renewal switches the plan (re-pricing a period already
invoiced ahead the same way).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts, invoices, ledger
from billing.cycles import full_period_days, period_end
from billing.isp import settings
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Plan,
    PlanChange,
    Subscriber,
)
from billing.money import prorate, round_money
from billing.plans import cycle_of, get_plan
from billing.renewals import Bill, due_date, period_lines
from billing.subscribers import get_subscriber, set_plan
from radbill import audit
from radbill.errors import Conflict, InvalidInput

NOW, NEXT_CYCLE = "now", "next_cycle"


@dataclass(frozen=True)
class PlanChangeResult:
    """What a plan change did: the plan-change invoice and the credit notes it issued."""

    effective: str
    invoice_number: str | None
    amount: str | None
    credit_notes: tuple[str, ...] = ()


def _days(first: dt.date, end: dt.date) -> str:
    return f"{first:%d %b} - {end - dt.timedelta(days=1):%d %b %Y}"


def _renews(plan: Plan) -> str:
    """When *plan*'s periods start, in words."""
    cycle = cycle_of(plan)
    if cycle.kind == "monthly":
        return f"monthly on day {cycle.billing_day}" if cycle.anchor == "fixed_day" else (
            "monthly on the anniversary")
    return f"every {cycle.validity_days} days" if cycle.kind == "days" else cycle.kind


def _charging_invoice(session: Session, sub: Subscriber, plan: Plan, day: dt.date
                     ) -> Invoice | None:
    """The newest invoice that charged *plan* for *day*: the period invoice, or the
    plan-change invoice of an earlier change in the same period."""
    return session.scalars(select(Invoice).where(
        Invoice.subscriber_id == sub.id,
        Invoice.kind.in_((InvoiceKind.PERIOD, InvoiceKind.PLAN_CHANGE)),
        Invoice.plan_name == plan.name, Invoice.period_start <= day, Invoice.period_end > day,
        Invoice.status != InvoiceStatus.CREDITED).order_by(Invoice.id.desc())).first()


def _open_period_invoice(session: Session, sub: Subscriber, start: dt.date) -> Invoice | None:
    return session.scalars(select(Invoice).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD,
        Invoice.period_start == start, Invoice.status != InvoiceStatus.CREDITED)).first()


def change_plan(session: Session, username: str, plan_name: str, *, effective: str,
                today: dt.date, actor: str) -> PlanChangeResult:
    """Move *username* to *plan_name*, ``now`` (from *today*) or at the ``next_cycle``."""
    if effective not in (NOW, NEXT_CYCLE):
        raise InvalidInput(f"effective {effective!r}: use now or next_cycle")
    sub = get_subscriber(session, username, lock=True)
    old, new = sub.plan, get_plan(session, plan_name)
    if new.id == old.id:
        raise Conflict(f"{username} is already on {plan_name}")
    if new.currency != old.currency:
        raise Conflict(f"{plan_name} is billed in {new.currency}, {old.name} in "
                       f"{old.currency}: a currency change needs a new account")
    if new.billing_mode != old.billing_mode and effective == NOW:
        raise Conflict(f"{plan_name} is {new.billing_mode}, {old.name} {old.billing_mode}: "
                       "change between prepaid and postpaid at the next cycle")
    if _renews(new) != _renews(old) and effective == NOW:
        # a part of a period is priced on its own cycle's length: days of a month and days
        # of a week (or two billing days) cannot share one period
        raise Conflict(f"{plan_name} renews {_renews(new)}, {old.name} {_renews(old)}: "
                       "change between cycles at the next cycle")
    if str(sub.status) in ("disabled", "terminated"):
        raise Conflict(f"{username} is {sub.status}: reconnect before changing the plan")
    start, end = sub.period_start, sub.period_end
    if start is None or end is None or not start <= today < end:
        raise Conflict(f"billing for {username} is not current (period {start}..{end}, "
                       f"{today}): run 'radbill billing run' first")
    if sub.billing_started_on is not None and today < sub.billing_started_on:
        raise InvalidInput(f"{today} is before {username}'s billing started "
                           f"({sub.billing_started_on})")
    ahead = _open_period_invoice(session, sub, end) if old.prepaid else None
    if effective == NEXT_CYCLE and ahead is not None and not new.prepaid:
        # the coming period is sold prepaid already; a postpaid one is invoiced at its end
        raise Conflict(f"the period from {end} is already invoiced ahead on {old.name} "
                       f"({ahead.number}): schedule the change to postpaid {plan_name} once "
                       "that period has started")
    if effective == NEXT_CYCLE:
        sub.next_plan_id = new.id
        audit.record(session, actor=actor, action="subscriber.plan_scheduled",
                     entity="subscriber", entity_id=sub.id, before={"plan": old.name},
                     after={"plan": new.name, "from": str(end)})
        notes = _reprice_ahead(session, sub, old, new, end, today, actor)
        return PlanChangeResult(NEXT_CYCLE, None, None, tuple(notes))
    if session.scalar(select(PlanChange.id).where(
            PlanChange.subscriber_id == sub.id, PlanChange.changed_on == today)) is not None:
        raise Conflict(f"{username} already changed plan on {today}; change it again the "
                       "next day (or schedule it with next_cycle)")
    number = amount = None
    notes = []
    if old.prepaid:
        number, amount, notes = _prorate_prepaid(session, sub, old, new, start, end, today,
                                                 actor)
    session.add(PlanChange(subscriber_id=sub.id, changed_on=today, from_plan_id=old.id,
                           to_plan_id=new.id, actor=actor))
    sub.next_plan_id = None
    set_plan(session, username, plan_name, actor=actor)
    notes += _reprice_ahead(session, sub, old, new, end, today, actor)
    accounts.enforce(session, sub, "plan_change", f"{old.name} -> {new.name}")
    accounts.settle_and_reconnect(session, sub, today, f"plan change to {new.name}", actor)
    return PlanChangeResult(NOW, number, amount, tuple(notes))


def _prorate_prepaid(session: Session, sub: Subscriber, old: Plan, new: Plan, start: dt.date,
                     end: dt.date, today: dt.date, actor: str
                     ) -> tuple[str | None, str | None, list[str]]:
    """Credit the unused days of the old plan, charge the new plan for them."""
    original = _charging_invoice(session, sub, old, today)
    left = (end - today).days
    if original is None or left == 0:
        return None, None, []  # nothing paid for yet: the period invoice uses the new plan
    isp = settings(session, lock=True)
    whole = full_period_days(cycle_of(old), end, sub.anchor_day or start.day)
    label = f"{left} of {whole} days, {_days(today, end)}"
    notes: list[str] = []
    unused = _unused_part(original, old, left, whole)
    if unused > 0 and original.subtotal > 0:
        # tax included, in the invoice's own proportions; never more than is left of it
        credit = round_money(unused * original.total / original.subtotal, original.currency)
        credit = min(credit, original.total - invoices.credited(session, original).total)
        if credit > 0:
            note = invoices.credit_note(session, isp=isp, number=original.number,
                                        amount=credit, reason=f"Unused {old.name}, {label}",
                                        today=today, actor=actor, settle=False)
            notes.append(note.number)
    charge = prorate(new.price, left, whole, new.currency)
    if charge <= 0:
        return None, None, notes
    inv = invoices.issue(
        session, isp=isp, sub=sub, plan_name=new.name, currency=new.currency,
        vat_percent=new.tax_percent, period_start=today, period_end=end, issued_on=today,
        due_on=due_date(prepaid=True, start=today, end=end, issued=today,
                        terms_days=isp.postpaid_due_days, opening=False, strict_prepay=False,
                        whole_days=whole),
        lines=[invoices.Line(f"{new.name}, {label}", charge)], kind=InvoiceKind.PLAN_CHANGE,
        actor=actor)
    return inv.number, str(inv.total), notes


def _unused_part(original: Invoice, old: Plan, left: int, whole: int) -> Decimal:
    """What *original* charged for the *left* days it will not be used, before tax.

    When *original* billed the old plan for its whole period, the unused part is what it
    charged less the used days priced by the one rule; the days used then cost exactly what a
    postpaid invoice charges for them (1000 a month, billed 533.33 for 16 of 30 days, changed
    after 8: 533.33 - 266.67 = 266.66 credited, not 266.67 and a cent lost to rounding twice).
    """
    days = (original.period_end - original.period_start).days
    billed = prorate(old.price, days, whole, old.currency) if 0 < days <= whole else None
    if original.plan_name == old.name and billed == original.subtotal and left <= days:
        return billed - prorate(old.price, days - left, whole, old.currency)
    return prorate(old.price, left, whole, old.currency)


def _reprice_ahead(session: Session, sub: Subscriber, old: Plan, new: Plan, end: dt.date,
                   today: dt.date, actor: str) -> list[str]:
    """A prepaid period starting *end* already invoiced ahead at *old*: credit that invoice
    in full and invoice the period again at *new* (issued today, still due on its first
    day)."""
    ahead = _open_period_invoice(session, sub, end)
    if not old.prepaid or ahead is None:
        return []
    isp = settings(session, lock=True)
    note = invoices.credit_note(session, isp=isp, number=ahead.number, amount=None,
                                reason=f"re-priced: plan changed to {new.name}", today=today,
                                actor=actor, settle=False)
    ledger.settle(session, sub.id, today)  # the old invoice is credited: out of the way
    cycle = cycle_of(new)
    following = period_end(cycle, end, sub.anchor_day or end.day)
    due = due_date(prepaid=True, start=end, end=following, issued=today,
                   terms_days=isp.postpaid_due_days, opening=False, strict_prepay=False)
    invoices.issue(session, isp=isp, sub=sub, plan_name=new.name, currency=new.currency,
                   vat_percent=new.tax_percent, period_start=end, period_end=following,
                   issued_on=today, due_on=due,
                   lines=period_lines(Bill(end, following, new, today, due, False), cycle,
                                      sub.anchor_day, setup_fee_due=False),
                   actor=actor)
    return [note.number]


def apply_scheduled(session: Session, sub: Subscriber, actor: str, on: dt.date
                    ) -> Plan | None:
    """At a period boundary *on*: switch to the plan scheduled for the next cycle, if any."""
    if sub.next_plan_id is None:
        return None
    new = sub.next_plan
    assert new is not None
    old = sub.plan
    sub.next_plan_id = None
    session.add(PlanChange(subscriber_id=sub.id, changed_on=on, from_plan_id=old.id,
                           to_plan_id=new.id, actor=actor))
    set_plan(session, sub.username, new.name, actor=actor)
    accounts.enforce(session, sub, "plan_change", f"scheduled change to {new.name}")
    return new
