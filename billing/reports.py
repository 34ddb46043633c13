"""Report data: renewals coming up and what is overdue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import ledger
from billing.models import Invoice, InvoiceStatus, Payment, Subscriber, SubscriberStatus
from billing.money import ZERO, percent_of, round_money


def renewals(session: Session, today: dt.date, days: int = 7) -> list[dict[str, object]]:
    """Subscribers whose period renews within *days* from *today*, soonest first."""
    until = today + dt.timedelta(days=days)
    subs = session.scalars(
        select(Subscriber).where(Subscriber.status.in_((SubscriberStatus.ACTIVE,
                                                        SubscriberStatus.SUSPENDED)),
                                 Subscriber.period_end.is_not(None),
                                 Subscriber.period_end >= today, Subscriber.period_end <= until)
        .order_by(Subscriber.period_end, Subscriber.username)
    ).unique().all()
    out: list[dict[str, object]] = []
    for sub in subs:
        plan = sub.plan
        amount = round_money(plan.price, plan.currency)
        out.append({
            "username": sub.username, "name": sub.full_name, "phone": sub.phone,
            "plan": plan.name, "mode": str(plan.billing_mode), "renews_on": str(sub.period_end),
            "amount": str(amount + percent_of(amount, plan.tax_percent, plan.currency)),
            "currency": plan.currency, "status": str(sub.status),
        })
    return out


def overdue(session: Session, today: dt.date) -> dict[str, object]:
    """Everyone with something past due, and the totals per currency."""
    ids = session.scalars(select(Invoice.subscriber_id).where(
        Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < today).distinct()).all()
    rows: list[dict[str, object]] = []
    totals: dict[str, Decimal] = {}
    for sub_id in sorted(ids):
        sub = session.get(Subscriber, sub_id)
        assert sub is not None
        settled = ledger.settle(session, sub_id, today)
        amount = settled.overdue(today)
        if amount <= 0:
            continue
        oldest = min(inv.due_on for inv, _ in settled.open_invoices)
        currency = sub.plan.currency
        totals[currency] = totals.get(currency, ZERO) + amount
        rows.append({"username": sub.username, "name": sub.full_name, "phone": sub.phone,
                     "status": str(sub.status), "overdue": str(amount), "currency": currency,
                     "oldest_due_on": str(oldest), "days_overdue": (today - oldest).days})
    rows.sort(key=lambda r: (-int(str(r["days_overdue"])), str(r["username"])))
    return {"as_of": str(today), "subscribers": rows,
            "totals": {c: str(v) for c, v in sorted(totals.items())}}


def status_counts(session: Session) -> dict[str, int]:
    """How many subscribers are in each status (every status listed, zeros included)."""
    counts = {str(s): 0 for s in SubscriberStatus}
    for status, n in session.execute(select(Subscriber.status, func.count())
                                     .group_by(Subscriber.status)).all():
        counts[str(status)] = int(n)
    return counts


def revenue(session: Session, start: dt.datetime, end: dt.datetime) -> dict[str, Decimal]:
    """Payments received in [*start*, *end*) per currency."""
    rows = session.execute(select(Payment.currency, func.sum(Payment.amount))
                           .where(Payment.received_at >= start, Payment.received_at < end)
                           .group_by(Payment.currency).order_by(Payment.currency)).all()
    return {cur: Decimal(total) for cur, total in rows}


def revenue_by_day(session: Session, days: list[tuple[dt.date, dt.datetime, dt.datetime]]
                   ) -> list[tuple[dt.date, dict[str, Decimal]]]:
    """Payments per currency for each (day, start, end) given (the caller knows the ISP's
    time zone, so it passes each local day's bounds in UTC)."""
    if not days:
        return []
    rows = session.execute(select(Payment.received_at, Payment.currency, Payment.amount)
                           .where(Payment.received_at >= days[0][1],
                                  Payment.received_at < days[-1][2])).all()
    out: list[tuple[dt.date, dict[str, Decimal]]] = []
    for day, start, end in days:
        totals: dict[str, Decimal] = {}
        for at, cur, amount in rows:
            if start <= at < end:
                totals[cur] = totals.get(cur, ZERO) + amount
        out.append((day, totals))
    return out
