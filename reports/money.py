"""The reports on money: revenue per NAS and plan, the ledger's own consistency, and who the
next billing run would suspend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from billing.isp import calendar, start_of_day_utc
from billing.isp import settings as isp_settings
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    Payment,
    Plan,
    Promise,
    Subscriber,
    SubscriberStatus,
)
from billing.money import ZERO
from radius.models import Nas, RadiusSession
from reports.network import OPEN, _plan_filtered, nas_ip_of
from reports.registry import Params, Row

NO_NAS = "(never online)"


def _money(value: object) -> str:
    return str(Decimal(str(value or 0)).quantize(Decimal("0.01")))


# -- revenue-by-nas --------------------------------------------------------------------------


def revenue_by_nas(session: Session, params: Params) -> list[Row]:
    """Per NAS (the one each subscriber is on now, or was last on) and plan: active
    subscribers, online subscribers, invoiced (credit notes deducted) and collected this
    month (the ISP's calendar month of ``today``)."""
    isp = isp_settings(session)
    first = params.today.replace(day=1)
    month_start = start_of_day_utc(isp, first)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)
    month_end = start_of_day_utc(isp, next_first)
    mine = RadiusSession.subscriber_id == Subscriber.id
    # The NAS of the open session (the open sessions, once, through their partial index);
    # for those offline only, the NAS of the latest ended one: (subscriber_id, stopped_at,
    # nas_ip) read backwards, from the index alone (COALESCE runs it only when needed).
    live = (select(RadiusSession.subscriber_id.label("sid"),
                   func.min(RadiusSession.nas_ip).label("nas_ip"))
            .where(OPEN, RadiusSession.subscriber_id.is_not(None))
            .group_by(RadiusSession.subscriber_id).subquery())
    last = (select(RadiusSession.nas_ip).where(mine)
            .order_by(RadiusSession.stopped_at.desc().nulls_first()).limit(1)
            .correlate(Subscriber).scalar_subquery())
    where = func.coalesce(live.c.nas_ip, last)
    billed = (select(Invoice.subscriber_id.label("sid"), func.sum(Invoice.total).label("t"))
              .where(Invoice.issued_on >= first, Invoice.issued_on < next_first)
              .group_by(Invoice.subscriber_id).subquery())
    paid = (select(Payment.subscriber_id.label("sid"), func.sum(Payment.amount).label("t"))
            .where(Payment.received_at >= month_start, Payment.received_at < month_end)
            .group_by(Payment.subscriber_id).subquery())
    per_sub = (select(Subscriber.id.label("sid"), Subscriber.plan_id.label("plan_id"),
                      where.label("nas_ip"),
                      case((Subscriber.status == SubscriberStatus.ACTIVE, 1), else_=0)
                      .label("active"),
                      case((live.c.sid.is_not(None), 1), else_=0).label("online"))
               .outerjoin(live, live.c.sid == Subscriber.id)
               .subquery())
    nas_col = func.coalesce(per_sub.c.nas_ip, literal(NO_NAS))
    stmt = (select(nas_col.label("nas_ip"), Plan.name, Plan.currency,
                   func.sum(per_sub.c.active), func.sum(per_sub.c.online),
                   func.sum(func.coalesce(billed.c.t, 0)), func.sum(func.coalesce(paid.c.t, 0)))
            .select_from(per_sub)
            .join(Plan, Plan.id == per_sub.c.plan_id)
            .outerjoin(billed, billed.c.sid == per_sub.c.sid)
            .outerjoin(paid, paid.c.sid == per_sub.c.sid)
            .group_by(nas_col, Plan.name, Plan.currency)
            .order_by(nas_col, Plan.name).limit(params.limit))
    stmt = _plan_filtered(stmt, params)
    ip = nas_ip_of(session, params)
    if ip is not None:
        stmt = stmt.where(per_sub.c.nas_ip == ip)
    names = {ip: n for ip, n in session.execute(select(Nas.ip_address, Nas.name))}  # noqa: C416 - Row tuples, not pairs, to mypy
    rows: list[Row] = []
    for nas_ip, plan, currency, active, on, inv, col in session.execute(stmt):
        rows.append({"username": None, "nas": names.get(nas_ip), "nas_ip": nas_ip,
                     "plan": plan, "currency": currency, "active": int(active or 0),
                     "online": int(on or 0), "billed": _money(inv), "collected": _money(col),
                     "month": first.strftime("%Y-%m"),
                     "action": ("" if Decimal(str(col or 0)) >= Decimal(str(inv or 0))
                                else "collection behind billing: see the overdue report")})
    return rows


# -- ledger-check ----------------------------------------------------------------------------


def ledger_check(session: Session, params: Params) -> list[Row]:
    """Where the ledger and the documents disagree: an invoice whose ledger charge is not
    its total; an invoice credited or written off beyond its total; a payment whose ledger
    entry is missing or of another amount; a balance the documents do not show (owing with
    no open document, or in credit with one open)."""
    rows: list[Row] = []
    plan_filter = params.plan
    charge = func.sum(case((and_(LedgerEntry.amount > 0,
                                 LedgerEntry.kind.in_((LedgerKind.CHARGE,
                                                       LedgerKind.LATE_FEE))),
                            LedgerEntry.amount), else_=0))
    reduced = func.sum(case((LedgerEntry.kind.in_((LedgerKind.CREDIT, LedgerKind.WRITE_OFF)),
                             -LedgerEntry.amount), else_=0))
    per_invoice = (select(LedgerEntry.invoice_id.label("iid"), charge.label("charged"),
                          reduced.label("reduced"))
                   .where(LedgerEntry.invoice_id.is_not(None))
                   .group_by(LedgerEntry.invoice_id).subquery())
    charged = func.coalesce(per_invoice.c.charged, 0)
    credited = func.coalesce(per_invoice.c.reduced, 0)
    docs = (select(Subscriber.username, Invoice.number, Invoice.total, charged, credited,
                   Invoice.currency)
            .join(Subscriber, Subscriber.id == Invoice.subscriber_id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .outerjoin(per_invoice, per_invoice.c.iid == Invoice.id)
            .where(Invoice.kind != InvoiceKind.CREDIT_NOTE,
                   or_(charged != Invoice.total, credited > Invoice.total))
            .order_by(Subscriber.username, Invoice.id).limit(params.limit))
    if plan_filter is not None:
        docs = docs.where(Plan.name == plan_filter)
    for user, number, total, got, cut, currency in session.execute(docs):
        if Decimal(got) != total:
            rows.append({"username": user, "finding": "invoice charge differs",
                         "document": number, "expected": _money(total),
                         "actual": _money(got), "currency": currency,
                         "action": "the ledger does not charge what the invoice says: post "
                                   "the difference as an adjustment (or a credit note) after "
                                   "finding which is right"})
        if Decimal(cut) > total:
            rows.append({"username": user, "finding": "settled beyond total",
                         "document": number, "expected": _money(total),
                         "actual": _money(cut), "currency": currency,
                         "action": "more was credited or written off than the invoice "
                                   "carried: charge back the excess with a manual charge"})
    posted = (select(LedgerEntry.payment_id.label("pid"),
                     func.sum(-LedgerEntry.amount).label("amount"))
              .where(LedgerEntry.payment_id.is_not(None), LedgerEntry.kind == LedgerKind.PAYMENT)
              .group_by(LedgerEntry.payment_id).subquery())
    in_ledger = func.coalesce(posted.c.amount, 0)
    pays = (select(Subscriber.username, Payment.method, Payment.reference, Payment.amount,
                   in_ledger, Payment.currency)
            .join(Subscriber, Subscriber.id == Payment.subscriber_id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .outerjoin(posted, posted.c.pid == Payment.id)
            .where(in_ledger != Payment.amount)
            .order_by(Subscriber.username, Payment.id).limit(params.limit))
    if plan_filter is not None:
        pays = pays.where(Plan.name == plan_filter)
    for user, method, reference, amount, got, currency in session.execute(pays):
        rows.append({"username": user, "finding": "payment not allocated",
                     "document": f"{method} {reference}", "expected": _money(amount),
                     "actual": _money(got), "currency": currency,
                     "action": "the payment is not (fully) on the ledger: the subscriber's "
                               "balance ignores it; post it (radbill payment record) only "
                               "after checking it is not already counted"})
    balance = (select(LedgerEntry.subscriber_id.label("sid"),
                      func.sum(LedgerEntry.amount).label("b"))
               .group_by(LedgerEntry.subscriber_id).subquery())
    open_doc = exists().where(Invoice.subscriber_id == balance.c.sid,
                              Invoice.status == InvoiceStatus.OPEN,
                              Invoice.kind != InvoiceKind.CREDIT_NOTE)
    owing = (select(Subscriber.username, balance.c.b, Plan.currency, open_doc)
             .join(balance, balance.c.sid == Subscriber.id)
             .join(Plan, Plan.id == Subscriber.plan_id)
             .where(or_(and_(balance.c.b > 0, ~open_doc), and_(balance.c.b <= 0, open_doc)))
             .order_by(Subscriber.username).limit(params.limit))
    if plan_filter is not None:
        owing = owing.where(Plan.name == plan_filter)
    for user, b, currency, has_open in session.execute(owing):
        value = Decimal(str(b))
        rows.append({"username": user,
                     "finding": ("open invoice while in credit" if has_open
                                 else "owing with no open invoice"),
                     "document": None, "expected": "open invoices = balance",
                     "actual": _money(value), "currency": currency,
                     "action": ("settle the account (a payment or 'radbill billing run' "
                                "settles it); if it stays, the settlement is wrong"
                                if has_open else
                                "find what the balance is for: an invoice marked paid "
                                "that was not, or a debit without a document")})
    rows.sort(key=lambda r: (r["username"], r["finding"], r["document"] or ""))
    return rows[: params.limit]


# -- suspensions-tomorrow --------------------------------------------------------------------


def suspensions_tomorrow(session: Session, params: Params) -> list[Row]:
    """Who the next run (tomorrow's) would suspend: active subscribers with a document still
    open past its grace days by tomorrow, tomorrow being a working day, without a promise
    running tomorrow. The ladder's suspension day assumes every notice went out on time; a
    notice sent late moves a suspension later, never earlier, so nobody suspended tomorrow
    is missing from this list."""
    tomorrow = params.today + dt.timedelta(days=1)
    if not calendar(session).is_working_day(tomorrow):
        return []
    grace = {pid: g for pid, g in session.execute(select(Plan.id, Plan.grace_days))}  # noqa: C416 - Row tuples, not pairs, to mypy
    if not grace:
        return []
    # due_on + grace + 1 <= tomorrow, per plan (dates are added in Python: portable SQL)
    latest_due = case({pid: tomorrow - dt.timedelta(days=g + 1) for pid, g in grace.items()},
                      value=Subscriber.plan_id)
    promised = exists().where(Promise.subscriber_id == Subscriber.id,
                              Promise.status == "active", Promise.until >= tomorrow)
    stmt = (select(Subscriber.username, Plan.name, Subscriber.phone, Plan.currency,
                   func.min(Invoice.due_on), func.count(Invoice.id), func.sum(Invoice.total))
            .join(Invoice, Invoice.subscriber_id == Subscriber.id)
            .join(Plan, Plan.id == Subscriber.plan_id)
            .where(Subscriber.status == SubscriberStatus.ACTIVE,
                   Invoice.status == InvoiceStatus.OPEN,
                   Invoice.kind != InvoiceKind.CREDIT_NOTE, Invoice.due_on.is_not(None),
                   Invoice.due_on <= latest_due, ~promised)
            .group_by(Subscriber.username, Plan.name, Subscriber.phone, Plan.currency)
            .order_by(Subscriber.username).limit(params.limit))
    stmt = _plan_filtered(stmt, params)
    return [{"username": user, "plan": plan, "phone": phone, "oldest_due_on": str(due),
             "documents": int(n), "documents_total": _money(total or ZERO),
             "currency": currency, "suspend_on": str(tomorrow),
             "action": "call before the run: a payment or a promise today keeps the line on"}
            for user, plan, phone, currency, due, n, total in session.execute(stmt)]
