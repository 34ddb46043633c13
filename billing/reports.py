"""Report data: renewals coming up and what is overdue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from billing import ledger, owed
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    Payment,
    Plan,
    Subscriber,
    SubscriberStatus,
)
from billing.money import ZERO, percent_of, round_money


def _renewing(today: dt.date, days: int) -> ColumnElement[bool]:
    until = today + dt.timedelta(days=days)
    return and_(Subscriber.status.in_((SubscriberStatus.ACTIVE, SubscriberStatus.SUSPENDED)),
                Subscriber.period_end.is_not(None),
                Subscriber.period_end >= today, Subscriber.period_end <= until)


def renewals_count(session: Session, today: dt.date, days: int = 7) -> int:
    """How many subscribers' periods renew within *days* from *today*."""
    return int(session.scalar(select(func.count()).select_from(Subscriber)
                              .where(_renewing(today, days))) or 0)


def renewals(session: Session, today: dt.date, days: int = 7, limit: int | None = None
             ) -> list[dict[str, object]]:
    """Subscribers whose period renews within *days* from *today*, soonest first (the first
    *limit* of them)."""
    subs = session.scalars(
        select(Subscriber).where(_renewing(today, days))
        .order_by(Subscriber.period_end, Subscriber.username).limit(limit)
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


def _kept_overdue_query(today: dt.date, *extra: Any) -> Select[Any]:
    """(subscriber id, currency, oldest due date, overdue amount) of everyone with something
    past due on *today*, from what the settlement keeps on each open document
    (``invoices.outstanding``): the open documents past their due date, read from their
    partial index, summed per subscriber. The books as they stand: for today."""
    past_due = (select(Invoice.subscriber_id, func.min(Invoice.due_on).label("due_on"),
                       func.sum(Invoice.outstanding).label("overdue"))
                .where(Invoice.status == InvoiceStatus.OPEN,
                       Invoice.kind != InvoiceKind.CREDIT_NOTE, Invoice.due_on < today)
                .group_by(Invoice.subscriber_id).subquery())
    return (select(Subscriber.id, Plan.currency, past_due.c.due_on.label("due_on"),
                   past_due.c.overdue.label("overdue"), *extra)
            .join(past_due, past_due.c.subscriber_id == Subscriber.id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(past_due.c.overdue > 0))


def _overdue_query(today: dt.date, *extra: Any) -> Select[Any]:
    """(subscriber id, currency, oldest due date, overdue amount) of everyone with something
    past due on *today* as the books stood then (a past day): recomputed from the ledger's
    effective dates and the documents issued by then. Set-based: what is overdue is the
    balance less what is owed on documents not yet due (settlement covers the oldest first),
    so no account is settled one by one."""
    documents = Invoice.kind != InvoiceKind.CREDIT_NOTE
    # open on that day: not settled yet, or settled after it (indexes: (status, due_on) and
    # paid_on)
    open_then = or_(Invoice.status == InvoiceStatus.OPEN, Invoice.paid_on > today)
    oldest = (select(Invoice.subscriber_id, func.min(Invoice.due_on).label("due_on"))
              .where(documents, open_then, Invoice.issued_on <= today, Invoice.due_on < today)
              .group_by(Invoice.subscriber_id).subquery())
    candidates = select(oldest.c.subscriber_id)
    # what is owed on documents not yet due, for the candidates only (at a large ISP every
    # subscriber has one: this month's)
    not_yet_due = select(Invoice.id).where(documents, Invoice.issued_on <= today,
                                           Invoice.due_on >= today,
                                           Invoice.subscriber_id.in_(candidates))
    attached = (select(LedgerEntry.invoice_id, func.sum(LedgerEntry.amount).label("owed"))
                .where(LedgerEntry.invoice_id.in_(not_yet_due),
                       LedgerEntry.effective_on <= today)
                .group_by(LedgerEntry.invoice_id).subquery())
    not_due = (select(Invoice.subscriber_id,
                      func.sum(case((attached.c.owed > 0, attached.c.owed), else_=0))
                      .label("owed"))
               .join(attached, attached.c.invoice_id == Invoice.id)
               .group_by(Invoice.subscriber_id).subquery())
    balance = (select(LedgerEntry.subscriber_id, func.sum(LedgerEntry.amount).label("amount"))
               .where(LedgerEntry.subscriber_id.in_(candidates),
                      LedgerEntry.effective_on <= today)
               .group_by(LedgerEntry.subscriber_id).subquery())
    amount = balance.c.amount - func.coalesce(not_due.c.owed, 0)
    return (select(Subscriber.id, Plan.currency, oldest.c.due_on.label("due_on"),
                   amount.label("overdue"), *extra)
            .join(oldest, oldest.c.subscriber_id == Subscriber.id)
            .join(balance, balance.c.subscriber_id == Subscriber.id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .outerjoin(not_due, not_due.c.subscriber_id == Subscriber.id)
            .where(amount > 0))


def _tuned(session: Session) -> None:
    # As the reconciliation reports (reports.registry): compiling the aggregate (JIT) cost
    # more than running it, parallel workers each rebuilt the whole per-subscriber
    # aggregate on two shared cores, and 100,000 groups spilled to disk at the default
    # work_mem. For this transaction only.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def _overdue(today: dt.date, as_of: dt.date | None, *extra: Any) -> Select[Any]:
    # the kept amounts say how the books stand now: for the real today only; any other day
    # (or a caller that does not say which day today is) is recomputed from the ledger
    if as_of is not None and today == as_of:
        return _kept_overdue_query(today, *extra)
    return _overdue_query(today, *extra)


def _kept_overdue_page(session: Session, today: dt.date, limit: int) -> list[Any]:
    """The first *limit* subscribers with something past due on *today* (the real today),
    oldest due date first, then by username, as (id, currency, oldest due date, overdue,
    username, name, phone, status), from the kept amounts. The open documents past their
    due date are walked in (due date, username) order from their partial index (each
    document keeps its subscriber's username): a subscriber first met there is met at its
    oldest due date, so the first subscribers owing more than zero met in a prefix of the
    walk are the page, in that order; only they are joined to the subscribers. The prefix
    starts a little longer than the page and grows until the page is full or the walk
    ends."""
    past_due = and_(Invoice.status == InvoiceStatus.OPEN,
                    Invoice.kind != InvoiceKind.CREDIT_NOTE, Invoice.due_on < today)
    inner = aliased(Invoice)
    prefix = limit + 16
    order = (Invoice.due_on, Invoice.username, Invoice.subscriber_id)
    while True:
        # positions in the walk: the page is ordered by them (integers: no collation sort)
        walk = (select(Invoice.subscriber_id, Invoice.due_on,
                       func.row_number().over(order_by=order).label("pos"))
                .where(past_due).order_by(*order).limit(prefix).subquery())
        first = (select(walk.c.subscriber_id, func.min(walk.c.due_on).label("due_on"),
                        func.min(walk.c.pos).label("pos"))
                 .group_by(walk.c.subscriber_id).subquery())
        owed = (select(func.sum(inner.outstanding))
                .where(inner.subscriber_id == first.c.subscriber_id,
                       inner.status == InvoiceStatus.OPEN,
                       inner.kind != InvoiceKind.CREDIT_NOTE, inner.due_on < today)
                .correlate(first).scalar_subquery())
        # each candidate's amount once (a materialized CTE: the filter and the column do
        # not each run the sum), then only the page joined
        amounts = (select(first.c.subscriber_id, first.c.due_on, first.c.pos,
                          owed.label("overdue")).cte("amounts")
                   .prefix_with("MATERIALIZED", dialect="postgresql"))
        walked = session.scalar(select(func.count()).select_from(walk))
        rows = session.execute(
            select(Subscriber.id, Plan.currency, amounts.c.due_on, amounts.c.overdue,
                   Subscriber.username, Subscriber.full_name, Subscriber.phone,
                   Subscriber.status)
            .join(amounts, amounts.c.subscriber_id == Subscriber.id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(amounts.c.overdue > 0)
            .order_by(amounts.c.pos).limit(limit)).all()
        if len(rows) >= limit or int(walked or 0) < prefix:
            return list(rows)
        prefix *= 4


def overdue(session: Session, today: dt.date, limit: int | None = 10_000, *,
            as_of: dt.date | None = None) -> dict[str, object]:
    """Everyone with something past due on *today*, the most overdue first (at most *limit*
    of them; None: all), and the count and totals per currency of all of them
    (:func:`overdue_summary`).
    Pass the real today as *as_of*: if *today* is that day, the figures are read from what
    the settlement keeps on each open document (fast at any size); otherwise (a past day, or
    *as_of* not given) they are recomputed from the ledger: the books as they stood on
    *today*, by the ledger's effective dates."""
    # everyone overdue in one pass, the page cut here: an ORDER BY ... LIMIT over the
    # aggregate (or joining the subscribers to it again) made PostgreSQL's planner misjudge
    # its size (minutes at 100,000 overdue); ties on the date in username order
    _tuned(session)
    if as_of is not None and today == as_of:
        # the kept amounts: the page read in order from the open documents' index, the
        # count and totals from the summary (100,000 rows fetched to list 10,000 took
        # seconds at 1M; ordering them joined to their subscribers 0.9 s)
        count, summed = overdue_summary(session, today, as_of=as_of)
        everyone = _kept_overdue_page(session, today,
                                      max(count, 1) if limit is None else limit)
        totals = dict(summed)
    else:
        found = _overdue(today, as_of, Subscriber.username, Subscriber.full_name,
                         Subscriber.phone, Subscriber.status)
        everyone = sorted(session.execute(found).all(), key=lambda r: (r[2], r[4]))
        count, totals = len(everyone), {}
        for r in everyone:  # as overdue_summary: sums of rounded ledger amounts are exact
            totals[r[1]] = totals.get(r[1], ZERO) + Decimal(r[3])
    rows: list[dict[str, object]] = []
    for _, currency, due_on, amount, username, name, phone, status in everyone[:limit]:
        value = round_money(Decimal(amount), currency)
        rows.append({"username": username, "name": name, "phone": phone,
                     "status": str(status), "overdue": str(value), "currency": currency,
                     "oldest_due_on": str(due_on), "days_overdue": (today - due_on).days})
    return {"as_of": str(today), "subscribers": rows, "count": count,
            "totals": {c: str(round_money(v, c)) for c, v in sorted(totals.items())}}


def overdue_summary(session: Session, today: dt.date, *, as_of: dt.date | None = None
                    ) -> tuple[int, dict[str, Decimal]]:
    """How many subscribers have something past due on *today*, and the total overdue per
    currency (the dashboard's figures), in one aggregate query (*as_of*: as
    :func:`overdue`)."""
    if as_of is not None and today == as_of:
        # kept by the invoices' triggers (billing.owed): the rows due before today
        count, kept = owed.summary(session, today)
        return count, {c: round_money(v, c) for c, v in kept.items()}
    _tuned(session)
    found = _overdue(today, as_of).subquery()
    count = 0
    totals: dict[str, Decimal] = {}
    for currency, n, total in session.execute(
            select(found.c.currency, func.count(), func.sum(found.c.overdue))
            .group_by(found.c.currency).order_by(found.c.currency)):
        count += int(n)
        # ledger amounts are posted rounded (ledger.post), so their sums are exact
        totals[currency] = round_money(Decimal(total), currency)
    return count, totals


def overdue_check(session: Session, today: dt.date, *, repair: bool = False,
                  shown: int = 1_000) -> dict[str, object]:
    """The documents whose kept outstanding amount (what the overdue figures read) differs
    from settling the ledger (:func:`billing.ledger.check_outstanding`), the first *shown*
    of them by subscriber and document; with *repair* their accounts are settled. Then the
    overdue figures kept from the documents (:func:`billing.owed.check`: the day totals,
    the per-day counts, each subscriber's oldest owed due date); with *repair* restated."""
    drift = ledger.check_outstanding(session, today, repair=repair)
    listed = drift[:shown]
    names: dict[int, str] = {}
    numbers: dict[int, str] = {}
    for chunk in range(0, len(listed), 500):  # bounded IN lists
        part = listed[chunk:chunk + 500]
        names.update(session.execute(select(Subscriber.id, Subscriber.username).where(
            Subscriber.id.in_({d.subscriber_id for d in part}))).all())
        numbers.update(session.execute(select(Invoice.id, Invoice.number).where(
            Invoice.id.in_([d.invoice_id for d in part]))).all())
    # then the figures kept from the documents (after a repair: from the restated ones)
    figures = owed.check(session, repair=repair)
    return {"as_of": str(today), "documents": len(drift), "repaired": repair and bool(drift),
            "drift": [{"username": names.get(d.subscriber_id),
                       "invoice": numbers.get(d.invoice_id), "kept": str(d.kept),
                       "settled": str(d.settled)} for d in listed],
            "kept_figures": figures.differ,
            "kept_figures_repaired": repair and bool(figures.differ),
            "kept_figures_drift": [{"table": d.table, "key": d.key, "kept": d.kept,
                                    "actual": d.actual} for d in figures.drift]}


def account(session: Session, sub: Subscriber, today: dt.date) -> dict[str, object]:
    """What a subscriber owes on *today*: balance, overdue, and each open document with
    what is still owed on it."""
    settled = ledger.settle(session, sub.id, today)
    currency = sub.plan.currency
    return {
        "balance": str(settled.balance), "currency": currency,
        "amount_due": str(settled.outstanding), "overdue": str(settled.overdue(today)),
        "open_invoices": [{"number": inv.number, "kind": str(inv.kind),
                           "issued_on": str(inv.issued_on), "due_on": str(inv.due_on),
                           "total": str(inv.total), "outstanding": str(owed),
                           "payment_link": inv.payment_link}
                          for inv, owed in settled.open_invoices],
    }


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
    # summed in the database, one bucket per day (a month of payments is a million rows
    # at a large ISP)
    bucket = case(*((and_(Payment.received_at >= start, Payment.received_at < end), i)
                    for i, (_, start, end) in enumerate(days)), else_=-1).label("bucket")
    totals: list[dict[str, Decimal]] = [{} for _ in days]
    for i, cur, total in session.execute(
            select(bucket, Payment.currency, func.sum(Payment.amount))
            .where(Payment.received_at >= days[0][1], Payment.received_at < days[-1][2])
            .group_by(bucket, Payment.currency)):
        if 0 <= i < len(days):
            totals[i][cur] = totals[i].get(cur, ZERO) + Decimal(total)
    return [(day, t) for (day, _, _), t in zip(days, totals, strict=True)]


def collected(session: Session, start: dt.datetime, end: dt.datetime
              ) -> list[tuple[str, str, Decimal]]:
    """Payments received in [*start*, *end*) per method (cash, bkash, ...) and currency."""
    rows = session.execute(select(Payment.method, Payment.currency, func.sum(Payment.amount))
                           .where(Payment.received_at >= start, Payment.received_at < end)
                           .group_by(Payment.method, Payment.currency)
                           .order_by(Payment.method, Payment.currency)).all()
    return [(m, c, Decimal(t)) for m, c, t in rows]


def invoiced(session: Session, day: dt.date) -> dict[str, Decimal]:
    """Invoices issued on *day* (credit notes aside) per currency."""
    rows = session.execute(select(Invoice.currency, func.sum(Invoice.total))
                           .where(Invoice.issued_on == day,
                                  Invoice.kind != InvoiceKind.CREDIT_NOTE)
                           .group_by(Invoice.currency).order_by(Invoice.currency)).all()
    return {c: Decimal(t) for c, t in rows}
