"""State changes of a subscriber's billing account shared by the run, payments, promises and
operators: suspend, reactivate, throttle, disable, terminate, write off. Each is audited
(through the status service), bumps the RADIUS change feed, writes an enforcement request and
an outbox event, in the caller's transaction.

Billing *pauses* while an account is disabled or terminated, and while it is suspended for
non-payment where the ISP does not bill suspended accounts (``bill_while_suspended``): a
postpaid account is invoiced the days it used up to the pause, and no period is invoiced while
paused. Reconnecting resumes billing: a prepaid account still inside the period it paid for
goes on with it; otherwise a new period starts on the day of reconnection, as at activation
(prorated to a fixed billing day), periods issued ahead for time never served are credited,
and there are no catch-up invoices for the paused months.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import invoices, ledger, subscribers
from billing.cycles import full_period_days
from billing.isp import calendar, settings
from billing.models import (
    EnforcementRequest,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerKind,
    PlanChange,
    Subscriber,
    SubscriberStatus,
)
from billing.money import ZERO, prorate, round_money
from billing.plans import cycle_of
from billing.renewals import Bill, due_date, period_lines, segments_of
from billing.standing import active_promise, sync_paid_until
from notify.outbox import enqueue as notify
from radbill import audit
from radbill.db import AUTH_FEED, bump
from radbill.errors import Conflict, InvalidInput

S = SubscriberStatus


def enforce(session: Session, sub: Subscriber, action: str, reason: str) -> None:
    """Ask the network to follow (consumed by the enforcement part)."""
    session.add(EnforcementRequest(subscriber_id=sub.id, action=action, reason=reason))


def suspend(session: Session, sub: Subscriber, today: dt.date, reason: str, actor: str) -> bool:
    """Suspend for non-payment. False if the subscriber was not active."""
    if sub.status is not S.ACTIVE:
        return False
    subscribers.change_status(session, sub.username, S.SUSPENDED, actor=actor, reason=reason)
    sub.suspended_on, sub.suspended_for_nonpayment = today, True
    enforce(session, sub, "suspend", reason)
    notify(session, sub, "suspended", f"suspended:{sub.id}:{today}", on=today, reason=reason,
           amount_due=ledger.settle(session, sub.id, today).outstanding)
    if not settings(session).bill_while_suspended:
        pause_billing(session, sub, today, actor=actor)
    return True


def reactivate(session: Session, sub: Subscriber, today: dt.date, reason: str, actor: str,
               *, any_suspension: bool = False) -> bool:
    """Undo a suspension for non-payment (with *any_suspension*, an operator's too) and any
    dunning throttle, resuming billing if it was paused. False if nothing changed (a disabled
    or terminated account never is)."""
    changed = False
    if sub.status is S.SUSPENDED and (sub.suspended_for_nonpayment or any_suspension):
        subscribers.change_status(session, sub.username, S.ACTIVE, actor=actor, reason=reason)
        sub.suspended_on, sub.suspended_for_nonpayment = None, False
        resume_billing(session, sub, today, actor=actor)
        enforce(session, sub, "reconnect", reason)
        notify(session, sub, "reconnected", f"reconnected:{sub.id}:{today}:{reason}", on=today,
               reason=reason)
        changed = True
    if sub.dunning_throttled and sub.status in (S.ACTIVE, S.SUSPENDED):
        set_throttle(session, sub, False, reason)
        changed = True
    return changed


def set_throttle(session: Session, sub: Subscriber, on: bool, reason: str) -> None:
    """Dunning throttle: the plan's fair-usage speed until paid."""
    sub.dunning_throttled = on
    sub.fup_throttled = on
    sub.auth_version = bump(session, AUTH_FEED)
    enforce(session, sub, "throttle" if on else "unthrottle", reason)


def settle_and_reconnect(session: Session, sub: Subscriber, today: dt.date, reason: str,
                         actor: str, *, as_of: dt.date | None = None
                         ) -> tuple[ledger.Settlement, bool]:
    """After money or a credit came in on *today*: settle the invoices and, if nothing is
    overdue any more, reactivate (and count a running promise as kept), and bring the service
    end up to date as of *as_of* (default *today*; the real today when *today* is an earlier
    day entered late), in the same transaction. A terminated or disabled account is settled
    only: nothing is reconnected or enforced."""
    settled = ledger.settle(session, sub.id, today)
    reconnected = False
    if settled.overdue(today) <= 0 and sub.status in (S.ACTIVE, S.SUSPENDED):
        reconnected = reactivate(session, sub, today, reason, actor)
        promise = active_promise(session, sub.id)
        if promise is not None:
            promise.status = "kept"
    refresh_service(session, sub, as_of or today)
    return settled, reconnected


def waive_late_fees(session: Session, sub: Subscriber, paid_on: dt.date, today: dt.date,
                    actor: str) -> list[str]:
    """Money entered late with an earlier date (*paid_on*): a late fee assessed after that day
    is assessed again on the books as they now stand (what was still owed on its invoice
    the day before the fee), and what it should not have been is credited on a credit note.
    Returns the credit notes' numbers."""
    from billing.standing import ladder_of

    fees = session.scalars(select(Invoice).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.LATE_FEE,
        Invoice.issued_on > paid_on, Invoice.status.not_in(
            (InvoiceStatus.CREDITED, InvoiceStatus.WRITTEN_OFF))).order_by(Invoice.id)).all()
    if not fees:
        return []
    isp = settings(session, lock=True)
    ladder = ladder_of(sub.plan, isp)
    notes: list[str] = []
    for fee in fees:
        lines = invoices.invoice_lines(session, fee.id)
        if not lines or not lines[0].description.startswith(invoices.LATE_FEE_LINE):
            continue
        target = invoices.get_invoice(session,
                                      lines[0].description[len(invoices.LATE_FEE_LINE):])
        owed = ledger.owed_on(session, sub.id, target.id, fee.issued_on - dt.timedelta(days=1))
        due = ladder.late_fee_for(owed, fee.currency)
        left = fee.total - invoices.credited(session, fee).total
        if due >= fee.subtotal or left <= 0:
            continue
        amount = None if due <= 0 else min(left, round_money(
            (fee.subtotal - due) * fee.total / fee.subtotal, fee.currency))
        why = (f"late fee waived: {target.number} was paid on {paid_on}" if due <= 0 else
               f"late fee reduced to {due}: payment of {paid_on} on {target.number}")
        note = invoices.credit_note(session, isp=isp, number=fee.number, amount=amount,
                                    reason=why, today=today, actor=actor, settle=False)
        notes.append(note.number)
    return notes


def refresh_service(session: Session, sub: Subscriber, today: dt.date) -> None:
    """Bring the subscriber's service end (prepaid ``paid_until``) up to date."""
    sync_paid_until(session, settings(session), calendar(session), sub, sub.plan, today)


# -- pausing and resuming billing -------------------------------------------------------------


def _period_invoice(session: Session, sub: Subscriber, start: dt.date) -> Invoice | None:
    """The (not credited) period invoice of *sub* for the period starting *start*."""
    return session.scalars(select(Invoice).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD,
        Invoice.period_start == start, Invoice.status != InvoiceStatus.CREDITED)).first()


def _plan_changes(session: Session, sub: Subscriber, since: dt.date) -> list[PlanChange]:
    return list(session.scalars(select(PlanChange).where(
        PlanChange.subscriber_id == sub.id, PlanChange.changed_on > since)
        .order_by(PlanChange.changed_on, PlanChange.id)))


def bill_used_days(session: Session, sub: Subscriber, day: dt.date, actor: str) -> None:
    """Postpaid: invoice [period start, *day*), the part of the current period used before
    billing stops (a line per plan, prorated on the whole period's days)."""
    plan = sub.plan
    start, end = sub.period_start, sub.period_end
    if plan.prepaid or start is None or end is None or day <= start:
        return
    day = min(day, end)
    if _period_invoice(session, sub, start) is not None:
        return  # already invoiced (a repeated pause)
    isp = settings(session, lock=True)
    changes = [(c.changed_on, c.from_plan, c.to_plan)
               for c in _plan_changes(session, sub, start)]
    bill = Bill(start, day, plan, day, due_date(
        prepaid=False, start=start, end=day, issued=day, terms_days=isp.postpaid_due_days,
        opening=False, strict_prepay=False), False, segments_of(start, day, plan, changes))
    # prorated on the days of the period the account was in, not the short piece billed
    lines = period_lines(bill, cycle_of(plan), sub.anchor_day,
                         setup_fee_due=not sub.setup_fee_charged, whole_end=end)
    sub.setup_fee_charged = True
    invoices.issue(session, isp=isp, sub=sub, plan_name=plan.name, currency=plan.currency,
                   vat_percent=plan.tax_percent, period_start=start, period_end=day,
                   issued_on=day, due_on=bill.due, lines=lines, actor=actor)


def pause_billing(session: Session, sub: Subscriber, day: dt.date, *, actor: str) -> bool:
    """Stop invoicing periods from *day* (postpaid: the used days are invoiced). False if
    billing was paused already."""
    if sub.billing_paused_on is not None:
        return False
    bill_used_days(session, sub, day, actor)
    sub.billing_paused_on = day
    audit.record(session, actor=actor, action="billing.pause", entity="subscriber",
                 entity_id=sub.id, after={"paused_on": str(day)})
    return True


def credit_unserved(session: Session, sub: Subscriber, since: dt.date, reason: str,
                    today: dt.date, actor: str) -> list[str]:
    """Credit in full every period invoice for a period starting on or after *since*: time
    the subscriber was never served. Returns the credit note numbers."""
    notes = []
    for inv in session.scalars(select(Invoice).where(
            Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD,
            Invoice.period_start >= since, Invoice.status != InvoiceStatus.CREDITED)
            .order_by(Invoice.id)):
        note = invoices.credit_note(session, isp=settings(session, lock=True),
                                    number=inv.number, amount=None, reason=reason,
                                    today=max(today, inv.issued_on), actor=actor, settle=False)
        notes.append(note.number)
    return notes


def resume_billing(session: Session, sub: Subscriber, day: dt.date, *, actor: str) -> bool:
    """Start invoicing again from *day* (see the module documentation). False if billing
    was not paused."""
    paused = sub.billing_paused_on
    if paused is None:
        return False
    plan = sub.plan
    sub.billing_paused_on = None
    if (plan.prepaid and sub.period_end is not None and day < sub.period_end
            and sub.period_start is not None
            and _period_invoice(session, sub, sub.period_start) is not None):
        how = "within the paid period"
    else:
        credit_unserved(session, sub, paused, f"not served: billing paused on {paused}", day,
                        actor)
        subscribers.start_billing(sub, plan, day)
        how = f"new period from {day}"
    audit.record(session, actor=actor, action="billing.resume", entity="subscriber",
                 entity_id=sub.id, before={"paused_on": str(paused)}, after={"resumed": how})
    return True


def credit_unused_days(session: Session, sub: Subscriber, day: dt.date, reason: str,
                       actor: str) -> str | None:
    """Prepaid: credit the days from *day* to the end of the paid current period (prorated
    on the whole period's days, tax included). Returns the credit note number."""
    plan = sub.plan
    start, end = sub.period_start, sub.period_end
    if start is None or end is None or not start <= day < end:
        return None
    inv = _period_invoice(session, sub, start)
    if inv is None or inv.subtotal <= 0:
        return None
    whole = full_period_days(cycle_of(plan), end, sub.anchor_day or start.day)
    left = (end - day).days
    unused = prorate(plan.price, left, whole, plan.currency)
    amount = round_money(unused * inv.total / inv.subtotal, inv.currency)
    already = invoices.credited(session, inv).total
    amount = min(amount, inv.total - already)
    if amount <= 0:
        return None
    note = invoices.credit_note(session, isp=settings(session, lock=True), number=inv.number,
                                amount=amount, reason=f"{reason}: {left} of {whole} days unused",
                                today=day, actor=actor, settle=False)
    return note.number


def terminate(session: Session, sub: Subscriber, day: dt.date, reason: str, actor: str
              ) -> bool:
    """End the contract on *day*: the account can never log in again, and its billing is
    closed: postpaid invoices the days used, prepaid credits the unused days where the ISP
    says so, and periods invoiced ahead are credited. False if already terminated."""
    if sub.status is S.TERMINATED:
        return False
    subscribers.change_status(session, sub.username, S.TERMINATED, actor=actor, reason=reason)
    pause_billing(session, sub, day, actor=actor)
    if sub.plan.prepaid and settings(session).credit_unused_on_termination:
        credit_unused_days(session, sub, day, "Terminated", actor)
    credit_unserved(session, sub, day, "Terminated before the period started", day, actor)
    enforce(session, sub, "terminate", reason)
    ledger.settle(session, sub.id, day)
    return True


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
OPERATOR_ACTIONS = {S.ACTIVE: "reconnect", S.SUSPENDED: "suspend", S.DISABLED: "disable",
                    S.TERMINATED: "terminate"}


def set_status_by_operator(session: Session, username: str, target: SubscriberStatus, *,
                           reason: str, actor: str, on: dt.date | None = None) -> bool:
    """An operator changes a subscriber's status by hand on the day *on* (audited by the
    status service) and the network is asked to follow in the same transaction. Disabling
    pauses billing; terminating closes it; reconnecting resumes it (and clears a suspension
    for non-payment: the next billing run suspends again if the debt is still overdue).
    False if the subscriber already had that status."""
    why = (reason or "").strip() or f"by {actor}"
    sub = subscribers.get_subscriber(session, username, lock=True)
    day = on if on is not None else _today(session)
    started = sub.billing_started_on
    if started is not None and day < started:
        raise InvalidInput(f"{day} is before {username}'s billing started ({started})")
    pauses = target in (S.DISABLED, S.TERMINATED) or (
        target is S.SUSPENDED and not settings(session).bill_while_suspended)
    if (pauses and sub.billing_paused_on is None and sub.period_end is not None
            and sub.period_end <= day):
        # what is paused, credited or billed for the days used depends on the period the
        # day falls in: the run must have reached it
        raise Conflict(f"billing for {username} is not current (period {sub.period_start}.."
                       f"{sub.period_end}, {day}): run 'radbill billing run' first")
    if target is S.TERMINATED:
        return terminate(session, sub, day, why, actor)
    changed = subscribers.change_status(session, username, target, actor=actor, reason=why)
    if not changed:
        return False
    if target is S.ACTIVE:
        sub.suspended_on, sub.suspended_for_nonpayment = None, False
        resume_billing(session, sub, day, actor=actor)
    elif target is S.DISABLED:
        pause_billing(session, sub, day, actor=actor)
    elif target is S.SUSPENDED:
        sub.suspended_on = day
        if not settings(session).bill_while_suspended:
            pause_billing(session, sub, day, actor=actor)
    enforce(session, sub, OPERATOR_ACTIONS[target], why)
    return True


def write_off(session: Session, number: str, amount: Decimal | None, *, reason: str,
              today: dt.date, actor: str, reconnect: bool = False) -> tuple[Decimal, bool]:
    """Give up (part of) what is owed on invoice *number*: the invoice becomes
    ``written_off`` once settled. A suspended subscriber is reconnected only with
    *reconnect*; otherwise the suspension stays, as an operator's decision the ladder leaves
    alone. Returns the amount written off and whether the subscriber was reconnected."""
    if not (reason or "").strip():
        raise InvalidInput("a write-off needs a reason")
    inv = invoices.get_invoice(session, number)
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        raise InvalidInput(f"{number} is a credit note: nothing to write off")
    sub = session.get(Subscriber, inv.subscriber_id, with_for_update=True)
    assert sub is not None
    owed = next((o for i, o in ledger.settle(session, sub.id, today).open_invoices
                 if i.id == inv.id), ZERO)
    if owed <= 0:
        raise Conflict(f"nothing is owed on {number}")
    value = owed if amount is None else round_money(amount, inv.currency)
    if not ZERO < value <= owed:
        raise InvalidInput(f"write-off {value} must be above zero and at most the {owed} "
                           f"owed on {number}")
    ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.WRITE_OFF, amount=-value,
                currency=inv.currency, effective_on=today,
                description=f"Write-off on {number}: {reason}", invoice_id=inv.id, actor=actor)
    audit.record(session, actor=actor, action="ledger.write-off", entity="subscriber",
                 entity_id=sub.id, after={"invoice": number, "amount": str(value),
                                          "reconnect": reconnect}, reason=reason)
    settled = ledger.settle(session, sub.id, today)
    if reconnect:
        if settled.overdue(today) > 0:
            return value, False  # something else is still overdue: the ladder decides
        reconnected = reactivate(session, sub, today, f"write-off: {reason}", actor,
                                 any_suspension=True)
        return value, reconnected
    if (sub.status is S.SUSPENDED and sub.suspended_for_nonpayment
            and settled.overdue(today) <= 0):
        # Nothing is overdue, but the operator did not ask to reconnect: the suspension is
        # theirs now, not the ladder's (which would lift it at the next run).
        sub.suspended_for_nonpayment = False
        sub.status_reason = f"debt written off ({reason}); reconnect by an operator"
    return value, False


def _today(session: Session) -> dt.date:
    from billing.isp import local_today
    from radbill.db import utcnow

    return local_today(settings(session), utcnow())
