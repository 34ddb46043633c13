"""Where an account stands: the ladder's view of it, and until when a prepaid subscriber is
served (one date for RADIUS and the ladder). Shared by the billing run and the services that
move money (payments, credit notes, write-offs, promises), which bring it up to date in the
same transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import ledger
from billing.dunning import Account, Calendar, Ladder, UnpaidInvoice, service_ends, suspension_day
from billing.isp import local_today, start_of_day_utc
from billing.models import Invoice, InvoiceKind, IspSettings, Plan, Promise, Subscriber
from notify import outbox
from radbill.db import AUTH_FEED, bump


def active_promise(session: Session, subscriber_id: int) -> Promise | None:
    """The subscriber's running promise to pay, if any."""
    return session.scalars(
        select(Promise).where(Promise.subscriber_id == subscriber_id,
                              Promise.status == "active").order_by(Promise.until.desc())
    ).first()


def ladder_of(plan: Plan, isp: IspSettings) -> Ladder:
    """The plan's dunning settings, with the ISP's."""
    return Ladder(grace_days=plan.grace_days, reminder_days=plan.reminder_days,
                  late_fee=plan.late_fee, late_fee_percent=plan.late_fee_percent,
                  late_fee_cap=plan.late_fee_cap, throttle_after_days=plan.throttle_after_days,
                  terminate_after_days=plan.terminate_after_days,
                  late_fee_min_outstanding=isp.late_fee_min_outstanding,
                  suspended_notice_days=isp.suspended_notice_days)



def next_period_suspension(isp: IspSettings, plan: Plan, cal: Calendar,
                           last_end: dt.date | None) -> dt.date | None:
    """Prepaid: the day the period after the last one invoiced, starting *last_end*, leads
    to suspension if it is invoiced ahead on time and not paid."""
    if last_end is None:
        return None
    return suspension_day(last_end, ladder_of(plan, isp), cal)


def paid_until_of(isp: IspSettings, plan: Plan, cal: Calendar, account: Account,
                  today: dt.date, *, last_end: dt.date | None, paused: bool,
                  opening_unpaid_since: dt.date | None) -> dt.datetime | None:
    """Prepaid: when service stops if nothing more is paid (what RADIUS answers with): the
    start of the day the ladder would suspend on, for what is open now or for the next
    period. One date for RADIUS and the ladder. With strict prepay, an unpaid first invoice
    means no service yet."""
    if not plan.prepaid:
        return None
    if opening_unpaid_since is not None:
        return start_of_day_utc(isp, opening_unpaid_since)
    days = [d for d in (service_ends(account, today, ladder_of(plan, isp), cal),
                        None if paused else next_period_suspension(isp, plan, cal, last_end))
            if d is not None]
    return start_of_day_utc(isp, min(days)) if days else None


def done_keys(session: Session, sub: Subscriber, isp: IspSettings) -> dict[str, dt.date]:
    """The subscriber's done ladder steps (outbox keys) with the business day of each."""
    return {key: on or local_today(isp, created)
            for key, on, created in outbox.event_keys(session, sub.id)}


def account_state(session: Session, isp: IspSettings, sub: Subscriber, plan: Plan,
                  today: dt.date) -> tuple[Account, ledger.Settlement]:
    """The ladder's view of a subscriber, after settling its invoices."""
    settled = ledger.settle(session, sub.id, today)
    done = done_keys(session, sub, isp)
    promise = active_promise(session, sub.id)
    account = Account(
        subscriber_id=sub.id, username=sub.username, status=str(sub.status),
        currency=plan.currency,
        unpaid=tuple(UnpaidInvoice(inv.id, inv.number, inv.due_on, inv.total, outstanding,
                                   inv.issued_on, inv.kind is InvoiceKind.LATE_FEE)
                     for inv, outstanding in settled.open_invoices if inv.due_on is not None),
        throttled=sub.dunning_throttled, suspended_on=sub.suspended_on,
        suspended_for_nonpayment=sub.suspended_for_nonpayment,
        promise_until=promise.until if promise else None, done=frozenset(done), done_on=done,
    )
    return account, settled


def sync_paid_until(session: Session, isp: IspSettings, cal: Calendar, sub: Subscriber,
                    plan: Plan, today: dt.date) -> None:
    """Prepaid: set when service stops (see :func:`paid_until_of`)."""
    if not plan.prepaid:
        if sub.paid_until is not None:
            sub.paid_until = None
            sub.auth_version = bump(session, AUTH_FEED)
        return
    account, settled = account_state(session, isp, sub, plan, today)
    last_end = session.scalar(select(func.max(Invoice.period_end)).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD))
    paid_until = paid_until_of(isp, plan, cal, account, today, last_end=last_end,
                               paused=sub.billing_paused_on is not None,
                               opening_unpaid_since=opening_unpaid(isp, sub, settled))
    if paid_until != sub.paid_until:
        sub.paid_until = paid_until
        sub.auth_version = bump(session, AUTH_FEED)


def opening_unpaid(isp: IspSettings, sub: Subscriber, settled: ledger.Settlement
                   ) -> dt.date | None:
    """With strict prepay: the day billing started, while the first invoice since then is
    unpaid (service has not started)."""
    if not isp.strict_prepay or sub.billing_started_on is None:
        return None
    for inv, owed in settled.open_invoices:
        if (inv.kind is InvoiceKind.PERIOD and inv.period_start == sub.billing_started_on
                and owed > 0):
            return sub.billing_started_on
    return None
