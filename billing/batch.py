"""The billing run's set-based path: a batch of accounts planned in memory, then written with
a few multi-row statements.

For a batch of subscribers (locked, in id order) the run loads everything the accounts need in
a few queries: the subscriber rows, their documents, ledger entries, outbox keys (with their
days) and running promises. Each account is then planned with the same rules the per-account
path (:func:`billing.run.process`) calls: renewals (:func:`billing.renewals.renewals`,
:func:`billing.renewals.period_lines`, :func:`billing.invoices.draft`), settlement
(:func:`billing.ledger.allocate`), the dunning ladder (:func:`billing.dunning.due_actions`)
and the service end (:func:`billing.standing.paid_until_of`), and the notices, late-fee
invoices and status updates that follow. Consecutive planned accounts form a segment,
written in one savepoint: invoices (numbers from the locked ISP row, in account order, so
numbering stays gapless), lines, ledger entries and outbox events as multi-row inserts, then
invoice settlements, the subscribers' period advance and the change-feed stamps, then the
ISP's counter.

An account whose day needs a service of its own (activation, a scheduled plan change or one
made during the period being billed, throttling, a broken promise, reconnection,
termination), and any account whose planning
raises, goes through the per-account path in its place in the order: invoice numbers and the
report's events come out exactly as from the per-account path. If a segment's write fails, its
savepoint is rolled back and its accounts go through the per-account path one by one, which
reports and alerts a broken account and bills the others.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import psycopg
from psycopg.abc import Buffer
from psycopg.copy import Writer
from sqlalchemy import (
    JSON,
    ColumnElement,
    Enum,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from billing import invoices, run, standing
from billing import renewals as renewal_rules
from billing.cycles import Cycle
from billing.dunning import Account, Action, Calendar, Ladder, UnpaidInvoice, due_actions
from billing.isp import local_today
from billing.ledger import Entry, allocate
from billing.models import (
    EnforcementRequest,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    IspSettings,
    LedgerEntry,
    LedgerKind,
    Plan,
    PlanChange,
    Promise,
    Subscriber,
    SubscriberStatus,
)
from billing.money import ZERO, round_money
from billing.plans import cycle_of
from notify import outbox
from notify.models import Outbox
from radbill.audit import AuditLog
from radbill.db import AUTH_FEED, ChangeCounter, utcnow
from radbill.pgarrays import predumped, ready

log = logging.getLogger("radbill.billing")

# The ladder steps this path carries out itself (with late fees and the periodic notice to a
# suspended subscriber); any other step is a state change with its own service (audit,
# enforcement, change feed) and goes through the per-account path.
NOTICES = frozenset({"reminder", "due_notice", "final_reminder"})


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


INVOICES, LINES, LEDGER = _table(Invoice), _table(InvoiceLine), _table(LedgerEntry)
OUTBOX, SUBSCRIBERS, PROMISES = _table(Outbox), _table(Subscriber), _table(Promise)
AUDIT, ENFORCEMENT = _table(AuditLog), _table(EnforcementRequest)
PLAN_CHANGES = _table(PlanChange)

SUB_COLUMNS = ("id", "username", "full_name", "phone", "email", "address", "tax_id",
               "state_code", "status", "plan_id", "next_plan_id", "anchor_day",
               "period_start", "period_end", "setup_fee_charged", "paid_until",
               "suspended_on", "suspended_for_nonpayment", "dunning_throttled",
               "billing_started_on", "billing_paused_on", "created_at", "auth_version")


@dataclass
class Sub:
    """One subscriber as the run reads and changes it (a row, not an ORM object)."""

    id: int
    username: str
    full_name: str | None
    phone: str | None
    email: str | None
    address: str | None
    tax_id: str | None
    state_code: str | None
    status: SubscriberStatus
    plan_id: int
    next_plan_id: int | None
    anchor_day: int | None
    period_start: dt.date | None
    period_end: dt.date | None
    setup_fee_charged: bool
    paid_until: dt.datetime | None
    suspended_on: dt.date | None
    suspended_for_nonpayment: bool
    dunning_throttled: bool
    billing_started_on: dt.date | None
    billing_paused_on: dt.date | None
    created_at: dt.datetime
    auth_version: int

    def changes(self) -> tuple[object, ...]:
        """What the run may change on the row."""
        return (self.period_start, self.period_end, self.setup_fee_charged, self.paid_until)


@dataclass
class Inv:
    """One of the account's documents (credit notes aside): loaded, or drafted by this run
    (then ``id`` is a negative stand-in until the row is inserted)."""

    id: int
    number: str
    kind: InvoiceKind
    plan_name: str
    period_start: dt.date
    period_end: dt.date
    issued_on: dt.date
    due_on: dt.date
    currency: str
    total: Decimal
    status: InvoiceStatus
    paid_on: dt.date | None
    payment_link: str | None
    draft: invoices.Draft | None = None
    # status, paid date and what is owed on it as loaded (None: drafted by this run)
    loaded: tuple[InvoiceStatus, dt.date | None, Decimal] | None = None
    outstanding: Decimal = ZERO  # what settlement leaves owed on it (zero unless open)


@dataclass
class History:
    """What an account has so far: documents, ledger (amount, invoice id, kind), done outbox
    keys with their business day, the running promise's date, and whether it changed plan
    since its current period started."""

    invoices: list[Inv] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    done: dict[str, dt.date] = field(default_factory=dict)
    promise_until: dt.date | None = None
    plan_changed: bool = False


@dataclass
class Planned:
    """Everything one account's day writes, and the events it reports."""

    sub: Sub
    before: tuple[object, ...]
    day: dt.date  # the run's business day: the outbox events' day
    drafted: list[Inv] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # invoice ids may be stand-ins
    notices: list[tuple[str, str, int | None, dict[str, object]]] = field(
        default_factory=list)  # kind, key, invoice id in the key (stand-in or None), payload
    settled: list[Inv] = field(default_factory=list)  # loaded invoices whose status changed
    events: list[run.Event] = field(default_factory=list)
    bump: bool = False
    suspend: bool = False
    suspend_reason: str = ""


# -- loading ----------------------------------------------------------------------------------


def _among(session: Session, column: ColumnElement[int], ids: Sequence[int]
           ) -> ColumnElement[bool]:
    # PostgreSQL takes the batch as one array parameter; an IN list of thousands of
    # parameters costs more to build and parse than the query itself. The array goes as its
    # text form, joined here: psycopg's list dumper writes a text array element by element
    # in Python (about 5 us an id, six loads a batch).
    if session.get_bind().dialect.name == "postgresql":
        text = "{" + ",".join(map(str, map(int, ids))) + "}"
        return column == any_(literal(text, String).cast(ARRAY(Integer)))
    return column.in_(ids)


def lock_subscribers(session: Session, ids: Sequence[int]) -> None:
    """Lock the subscribers *ids*, in id order (the billing run takes them before the ISP
    row, as every other writer does)."""
    session.execute(select(SUBSCRIBERS.c.id).where(_among(session, SUBSCRIBERS.c.id, ids))
                    .order_by(SUBSCRIBERS.c.id).with_for_update())


def load(session: Session, isp: IspSettings, ids: Sequence[int]
         ) -> tuple[list[Sub], dict[int, History]]:
    """The subscribers *ids*, locked, in id order, and their histories."""
    subs = [Sub(*row) for row in session.execute(
        select(*(SUBSCRIBERS.c[c] for c in SUB_COLUMNS))
        .where(_among(session, SUBSCRIBERS.c.id, ids))
        .order_by(SUBSCRIBERS.c.id).with_for_update())]
    hist = {s.id: History() for s in subs}
    i = INVOICES.c
    for (sub_id, inv_id, number, kind, plan_name, start, end, issued_on, due_on, currency,
         total, status, paid_on, link, kept) in session.execute(
            select(i.subscriber_id, i.id, i.number, i.kind, i.plan_name, i.period_start,
                   i.period_end, i.issued_on, i.due_on, i.currency, i.total, i.status,
                   i.paid_on, i.payment_link, i.outstanding)
            .where(_among(session, i.subscriber_id, ids), i.kind != InvoiceKind.CREDIT_NOTE)
            .order_by(i.subscriber_id, i.due_on, i.id)):
        owed = Decimal(kept)
        hist[sub_id].invoices.append(Inv(inv_id, number, kind, plan_name, start, end,
                                         issued_on, due_on, currency, total, status, paid_on,
                                         link, loaded=(status, paid_on, owed),
                                         outstanding=owed))
    for sub_id, amount, invoice_id, kind in session.execute(
            select(LEDGER.c.subscriber_id, LEDGER.c.amount, LEDGER.c.invoice_id, LEDGER.c.kind)
            .where(_among(session, LEDGER.c.subscriber_id, ids))):
        hist[sub_id].entries.append((amount, invoice_id, kind))
    for sub_id, key, on, created in session.execute(
            select(OUTBOX.c.subscriber_id, OUTBOX.c.dedupe_key, OUTBOX.c.event_on,
                   OUTBOX.c.created_at)
            .where(_among(session, OUTBOX.c.subscriber_id, ids))):
        hist[sub_id].done[key] = on or local_today(isp, _aware(created))
    # standing.active_promise: the running promise with the latest date
    for sub_id, until in session.execute(
            select(PROMISES.c.subscriber_id, PROMISES.c.until)
            .where(_among(session, PROMISES.c.subscriber_id, ids),
                   PROMISES.c.status == "active")):
        h = hist[sub_id]
        if h.promise_until is None or until > h.promise_until:
            h.promise_until = until
    # run.renew bills a postpaid period a plan changed in with a line per plan: the
    # per-account path does it
    starts = {s.id: s.period_start for s in subs}
    for sub_id, changed_on in session.execute(
            select(PLAN_CHANGES.c.subscriber_id, PLAN_CHANGES.c.changed_on)
            .where(_among(session, PLAN_CHANGES.c.subscriber_id, ids))):
        start = starts.get(sub_id)
        if start is not None and changed_on > start:
            hist[sub_id].plan_changed = True
    return subs, hist


def _aware(value: dt.datetime) -> dt.datetime:
    # a Core select of UTCDateTime on SQLite may hand back a naive UTC value
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# -- planning (no I/O) ------------------------------------------------------------------------


def _settle(hist: History, today: dt.date) -> list[tuple[Inv, Decimal]]:
    """:func:`billing.ledger.settle` in memory: updates the statuses, returns the open
    invoices with what is outstanding, oldest first."""
    # by due date, then id; drafted invoices get their ids after every loaded one, in order
    hist.invoices.sort(key=lambda v: (v.due_on, v.id < 0, abs(v.id)))
    outcomes = allocate(hist.entries, [(v.id, v.status, v.paid_on) for v in hist.invoices],
                        today)
    open_: list[tuple[Inv, Decimal]] = []
    for inv, outcome in zip(hist.invoices, outcomes, strict=True):
        inv.status, inv.paid_on = outcome.status, outcome.paid_on
        inv.outstanding = outcome.outstanding
        if outcome.status is InvoiceStatus.OPEN:
            open_.append((inv, outcome.outstanding))
    return open_


def _notice(p: Planned, hist: History, kind: str, key: str, invoice_id: int | None,
            today: dt.date, **payload: object) -> None:
    # invoices.notify: once per key
    if key not in hist.done:
        hist.done[key] = today
        p.notices.append((kind, key, invoice_id, outbox.notice_payload(p.sub, **payload)))


@dataclass
class Terms:
    """What the accounts of a batch share, worked out once per batch rather than once per
    account: each plan's cycle and ladder, and the renewals of accounts in the same place
    (most accounts of a day renew the same plan over the same period)."""

    plans: dict[int, tuple[Cycle, Ladder]] = field(default_factory=dict)
    # (plan, period, anchor day, last billed, billing start, setup fee charged) -> the
    # renewal and each bill's lines (pure rules over these; the batch's day and ISP fixed)
    renewals: dict[tuple[object, ...], tuple[renewal_rules.Renewal, list[list[invoices.Line]]]
                   ] = field(default_factory=dict)


def _terms(terms: Terms, plan: Plan, isp: IspSettings) -> tuple[Cycle, Ladder]:
    """The plan's cycle and ladder (once per batch rather than once per account)."""
    found = terms.plans.get(plan.id)
    if found is None:
        found = terms.plans[plan.id] = (cycle_of(plan), standing.ladder_of(plan, isp))
    return found


def _balance(hist: History) -> Decimal:
    return sum((amount for amount, _, _ in hist.entries), ZERO)


def _issue(p: Planned, hist: History, isp: IspSettings, numbers: Iterator[int],
           stand_ins: Iterator[int], *, plan_name: str, currency: str, vat_percent: Decimal,
           period_start: dt.date, period_end: dt.date, issued_on: dt.date, due_on: dt.date,
           lines: list[invoices.Line], kind: InvoiceKind, actor: str) -> Inv:
    """:func:`billing.invoices.issue` in memory."""
    d = invoices.draft(isp, invoices.format_number(invoices.series_prefix(isp, isp.invoice_prefix),
                                                   next(numbers)),
                       plan_name=plan_name, currency=currency, vat_percent=vat_percent,
                       buyer=invoices.buyer_of(isp, p.sub), period_start=period_start,
                       period_end=period_end, issued_on=issued_on, due_on=due_on, lines=lines,
                       previous_balance=_balance(hist), kind=kind)
    inv = Inv(next(stand_ins), d.number, d.kind, plan_name, period_start, period_end,
              issued_on, due_on, d.currency, d.total, InvoiceStatus.OPEN, None,
              d.payment_link, d, outstanding=max(d.total, ZERO))
    hist.invoices.append(inv)
    p.drafted.append(inv)
    entry = d.ledger_entry()
    if entry is not None:
        _post(p, hist, kind=entry[0], amount=d.total, currency=d.currency,
              effective_on=issued_on, description=entry[1], invoice_id=inv.id, actor=actor)
    _notice(p, hist, "invoice_issued", f"invoice:{inv.id}", inv.id, issued_on, **d.notice())
    return inv


def _renew(p: Planned, plan: Plan, hist: History, isp: IspSettings, as_of: dt.date,
           numbers: Iterator[int], stand_ins: Iterator[int], terms: Terms) -> None:
    """:func:`billing.run.renew` in memory, for an account with no scheduled plan change
    and no plan change in its current period."""
    sub = p.sub
    assert sub.period_start is not None
    assert sub.period_end is not None
    if sub.billing_paused_on is not None:
        return
    cycle = _terms(terms, plan, isp)[0]
    last = max((v.period_start for v in hist.invoices if v.kind is InvoiceKind.PERIOD),
               default=None)
    key = (plan.id, sub.period_start, sub.period_end, sub.anchor_day, last,
           sub.billing_started_on, sub.setup_fee_charged)
    found = terms.renewals.get(key)
    if found is None:
        r = renewal_rules.renewals(period_start=sub.period_start, period_end_=sub.period_end,
                     anchor_day=sub.anchor_day, last_billed=last, plan=plan, cycle=cycle,
                     next_plan=None, next_cycle=None, as_of=as_of,
                     terms_days=isp.postpaid_due_days, strict_prepay=isp.strict_prepay,
                     billing_started_on=sub.billing_started_on)
        charged, bill_lines = sub.setup_fee_charged, []
        for bill in r.bills:
            bill_lines.append(renewal_rules.period_lines(bill, cycle, sub.anchor_day,
                                                         setup_fee_due=not charged))
            charged = charged or plan.setup_fee > 0
        found = terms.renewals[key] = (r, bill_lines)
    r, bill_lines = found
    for bill, lines in zip(r.bills, bill_lines, strict=True):
        sub.setup_fee_charged = sub.setup_fee_charged or plan.setup_fee > 0
        inv = _issue(p, hist, isp, numbers, stand_ins, plan_name=plan.name,
                     currency=plan.currency, vat_percent=plan.tax_percent,
                     period_start=bill.start, period_end=bill.end, issued_on=bill.issued,
                     due_on=bill.due, lines=lines, kind=InvoiceKind.PERIOD, actor="system")
        p.events.append(run.Event(sub.username, "invoice", f"{inv.number} {inv.currency} "
                                  f"{inv.total} {bill.start}..{bill.end} due {inv.due_on}"))
    assert r.period_start is not None
    assert r.period_end is not None
    sub.period_start, sub.period_end = r.period_start, r.period_end


def _post(p: Planned, hist: History, *, kind: LedgerKind, amount: Decimal, currency: str,
          effective_on: dt.date, description: str, invoice_id: int, actor: str) -> None:
    # billing.ledger.post, checks included
    amount = round_money(amount, currency)
    if kind in (LedgerKind.CHARGE, LedgerKind.LATE_FEE) and amount <= 0:
        raise ValueError(f"a {kind} must be positive, got {amount}")
    hist.entries.append((amount, invoice_id, kind))
    p.entries.append({"subscriber_id": p.sub.id, "kind": kind, "amount": amount,
                      "currency": currency, "effective_on": effective_on,
                      "description": description, "actor": actor, "invoice_id": invoice_id,
                      "payment_id": None})


def _payload(inv: Inv, action: Action, open_: list[tuple[Inv, Decimal]]) -> dict[str, object]:
    # what billing.run.apply_action's notices carry
    owed = next((o for v, o in open_ if v.id == inv.id), inv.total)
    return {"invoice": inv.number, "total": inv.total, "outstanding": owed,
            "amount_due": sum((o for _, o in open_), ZERO), "currency": inv.currency,
            "due_on": action.due_on or inv.due_on, "suspend_on": action.suspend_on,
            "payment_link": inv.payment_link}


def _apply(p: Planned, hist: History, isp: IspSettings, plan: Plan, action: Action,
           today: dt.date, actor: str, open_: list[tuple[Inv, Decimal]],
           numbers: Iterator[int], stand_ins: Iterator[int]) -> bool:
    """:func:`billing.run.apply_action` in memory; False for a step this path leaves to the
    per-account path."""
    if action.kind == "still_suspended":
        _notice(p, hist, action.kind, action.key, None, today,
                amount_due=sum((o for _, o in open_), ZERO), currency=plan.currency)
        p.events.append(run.Event(p.sub.username, action.kind,
                                  f"since {p.sub.suspended_on}"))
        return True
    if action.kind not in NOTICES and action.kind != "late_fee":
        return False
    inv = next(v for v in hist.invoices if v.id == action.invoice_id)
    if action.kind == "late_fee":
        assert action.amount is not None
        fee = _issue(p, hist, isp, numbers, stand_ins, plan_name=inv.plan_name,
                     currency=inv.currency, vat_percent=run.late_fee_vat(isp, plan),
                     period_start=inv.period_start, period_end=inv.period_end, issued_on=today,
                     due_on=today, lines=run.late_fee_lines(inv.number, action.amount),
                     kind=InvoiceKind.LATE_FEE, actor=actor)
        d = fee.draft
        assert d is not None
        _notice(p, hist, "late_fee", action.key, inv.id, today, invoice=inv.number,
                fee_invoice=fee.number, amount=fee.total, currency=inv.currency,
                amount_due=d.amount_due, payment_link=fee.payment_link)
        p.events.append(run.Event(p.sub.username, "late_fee",
                                  f"{inv.currency} {fee.total} on {inv.number} ({fee.number})"))
    else:
        _notice(p, hist, action.kind, action.key, inv.id, today,
                **_payload(inv, action, open_))
        p.events.append(run.Event(p.sub.username, action.kind, inv.number))
    return True


def plan_account(sub: Sub, plan: Plan, hist: History, isp: IspSettings, cal: Calendar,
                 as_of: dt.date, first_number: int, stand_ins: Iterator[int],
                 actor: str, terms: Terms) -> Planned | None:
    """One account's day (phase one of the run: suspensions are only collected), as
    :func:`billing.run.process` would do it; None if it needs the per-account path."""
    if sub.period_start is None or sub.next_plan_id is not None or hist.plan_changed:
        return None  # activation, a scheduled or recent plan change: their own services
    p = Planned(sub, sub.changes(), as_of)
    numbers = itertools.count(first_number)
    _renew(p, plan, hist, isp, as_of, numbers, stand_ins, terms)
    ladder = _terms(terms, plan, isp)[1]
    actions: list[Action] = []
    for _ in range(3):  # as run.process: a late fee changes what is owed
        open_ = _settle(hist, as_of)
        account = _account(sub, plan, hist, open_)
        actions = due_actions(account, as_of, ladder, cal)
        todo = [a for a in actions if a.kind != "suspend"]
        if not todo:
            break
        for action in todo:
            if not _apply(p, hist, isp, plan, action, as_of, actor, open_, numbers,
                          stand_ins):
                return None
    else:  # the last steps changed what is owed (settling again without them changes nothing)
        open_ = _settle(hist, as_of)
    p.suspend = any(a.kind == "suspend" for a in actions)
    p.suspend_reason = next((a.reason for a in actions if a.kind == "suspend"), "")
    p.settled = [v for v in hist.invoices
                 if v.loaded is not None and v.loaded != (v.status, v.paid_on, v.outstanding)]
    paid_until = _paid_until(sub, plan, hist, isp, cal, as_of, open_)
    if paid_until != sub.paid_until:
        sub.paid_until = paid_until
        p.bump = True
    return p


def _account(sub: Sub, plan: Plan, hist: History, open_: list[tuple[Inv, Decimal]]
             ) -> Account:
    # standing.account_state
    return Account(
        subscriber_id=sub.id, username=sub.username, status=str(sub.status),
        currency=plan.currency,
        unpaid=tuple(UnpaidInvoice(v.id, v.number, v.due_on, v.total, outstanding,
                                   v.issued_on, v.kind is InvoiceKind.LATE_FEE)
                     for v, outstanding in open_),
        throttled=sub.dunning_throttled, suspended_on=sub.suspended_on,
        suspended_for_nonpayment=sub.suspended_for_nonpayment,
        promise_until=hist.promise_until, done=frozenset(hist.done), done_on=dict(hist.done))


def _paid_until(sub: Sub, plan: Plan, hist: History, isp: IspSettings, cal: Calendar,
                today: dt.date, open_: list[tuple[Inv, Decimal]]) -> dt.datetime | None:
    # standing.sync_paid_until
    if not plan.prepaid:
        return None
    opening = None
    if isp.strict_prepay and sub.billing_started_on is not None and any(
            v.kind is InvoiceKind.PERIOD and v.period_start == sub.billing_started_on
            and owed > 0 for v, owed in open_):
        opening = sub.billing_started_on
    last_end = max((v.period_end for v in hist.invoices if v.kind is InvoiceKind.PERIOD),
                   default=None)
    return standing.paid_until_of(isp, plan, cal, _account(sub, plan, hist, open_), today,
                             last_end=last_end, paused=sub.billing_paused_on is not None,
                             opening_unpaid_since=opening)


# -- writing ----------------------------------------------------------------------------------


class Rows:
    """Multi-row inserts and updates by primary key, the fastest way each database takes
    them: on PostgreSQL ``COPY`` (ids of new invoices taken from their sequence first), and
    one ``... FROM unnest(...)`` statement with an array parameter per column where ``COPY``
    cannot do it (duplicates to skip, updates); elsewhere SQLAlchemy's executemany. Same
    rows, same order, either way. *binary*: ``COPY`` in its binary form (aware timestamps
    only), which the billing run's writes use.

    *deferred* (PostgreSQL, binary): every statement's data is formatted at once, in the
    calling thread (``COPY`` streams and array parameters as the bytes psycopg would send),
    and nothing is written until :meth:`send`, which may run in another thread on another
    session: the billing run formats batch N+1 while batch N is being written, and the
    writing thread then does next to no Python. New ids (:meth:`insert_new`) are still taken
    from their sequence at once. Elsewhere statements run at once."""

    def __init__(self, session: Session, *, binary: bool = False, deferred: bool = False
                 ) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.pg = self.dialect.name == "postgresql"
        self.binary = binary or deferred
        self.deferred = deferred and self.pg
        # (statement, COPY data) or (statement, parameters), in order
        self.pending: list[tuple[str, bytes | tuple[Any, ...]]] = []

    def _value(self, col: Any) -> Any:
        # what the column stores, for the driver: enums as their values, JSON as text
        if isinstance(col.type, JSON):
            return lambda v: None if v is None else json.dumps(v)
        if isinstance(col.type, Enum):  # billing.models._enum stores the values
            return lambda v: None if v is None else v.value
        return None

    def _arrays(self, table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
                ) -> tuple[list[str], list[Any]]:
        # one array per column; a column with one value for every row is sent once
        exprs, params = [], []
        for name in columns:
            col = table.c[name]
            pg_type = col.type.compile(dialect=self.dialect)
            convert = self._value(col)
            values = [r[name] for r in rows]
            if convert is not None:
                values = [convert(v) for v in values]
            first = values[0]
            if all(v == first and type(v) is type(first) for v in values):
                exprs.append(f"%s::{pg_type}")
                params.append(first)
            else:
                exprs.append(f"u.{name}")
                params.append(values)
        return exprs, params

    def _unnest(self, table: Table, exprs: list[str], params: list[Any],
                columns: Sequence[str], extra: Sequence[tuple[str, str, list[Any]]] = ()
                ) -> tuple[str, list[Any]]:
        """The ``unnest(...)`` source for *exprs* and the parameters in placeholder order:
        the constants (in the statement's column list) first, then the arrays. *extra*:
        more arrays (name, SQL type, values) that are not columns of *table*."""
        arrays = [(c, table.c[c].type.compile(dialect=self.dialect), p)
                  for c, e, p in zip(columns, exprs, params, strict=True) if e.startswith("u.")]
        scalars = [p for e, p in zip(exprs, params, strict=True) if not e.startswith("u.")]
        if not arrays:  # every column constant: one row
            arrays = [(columns[0], table.c[columns[0]].type.compile(dialect=self.dialect),
                       [params[0]])]
        arrays += extra
        # The arrays go in binary (%b): psycopg writes a text array element by element in
        # Python, several times slower (as radius.accounting.apply_many found: 30 against
        # 3.8 us a record for 15 columns). Enums and JSON go as text arrays, cast here.
        casts = ", ".join(f"%b::{sql_type}[]" for _, sql_type, _ in arrays)
        return (f"unnest({casts}) AS u({', '.join(c for c, _, _ in arrays)})",
                scalars + [a for _, _, a in arrays])

    def _copy(self, table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
              ) -> None:
        if self.binary:
            self._copy_binary(table, columns, rows)
            return
        converters = [self._value(table.c[c]) for c in columns]
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(
                f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] if f is None else f(r[c])
                                for c, f in zip(columns, converters, strict=True)])

    def _copy_binary(self, table: Table, columns: Sequence[str],
                     rows: Sequence[dict[str, Any]]) -> None:
        # psycopg formats each row in C with the dumper of each column's type, set once (no
        # lookup by value), and the values are taken column by column: about a quarter less
        # Python per row than the text form. Timestamps must be aware (a naive one is an
        # error here, where text would take the session's zone). JSON goes as its text,
        # which is also json's binary form (not jsonb's).
        values = [[r[c] for r in rows] for c in columns]
        types = []
        for i, c in enumerate(columns):
            col = table.c[c]
            convert = self._value(col)
            if convert is not None:
                values[i] = list(map(convert, values[i]))
            types.append("text" if isinstance(col.type, JSON)
                         else str(col.type.compile(dialect=self.dialect))
                         .split("(", 1)[0].strip().lower())
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        if self.deferred:  # the stream formatted now by psycopg itself, sent by send()
            collected = _Collected()
            with raw.cursor() as cur:
                copy = psycopg.Copy(cur, binary=True, writer=collected)
                copy.set_types(types)
                for row in zip(*values, strict=True):
                    copy.write_row(row)
                copy.finish(None)
            self.pending.append((sql, b"".join(collected.parts)))
            return
        with raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            for row in zip(*values, strict=True):
                copy.write_row(row)

    def insert(self, table: Table, rows: Sequence[dict[str, Any]], *,
               unique: str | None = None) -> None:
        """Insert *rows* (dicts with the same keys). *unique*: a column whose duplicates are
        skipped (``ON CONFLICT DO NOTHING``)."""
        if not rows:
            return
        if not self.pg:
            stmt: Any = insert(table)
            if unique is not None:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=[unique])
            self.session.execute(stmt, list(rows))
            return
        columns = list(rows[0])
        if unique is None:
            self._copy(table, columns, rows)
            return
        exprs, params = self._arrays(table, columns, rows)
        source, ordered = self._unnest(table, exprs, params, columns)
        sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - model names
               f"SELECT {', '.join(exprs)} FROM {source} ON CONFLICT ({unique}) DO NOTHING")
        self._execute(sql, ordered)

    def _execute(self, sql: str, params: list[Any]) -> None:
        if not self.deferred:
            self.session.connection().exec_driver_sql(sql, tuple(params))
            return
        # the arrays dumped now, as psycopg would dump them when the statement runs
        self.pending.append((sql, tuple(predumped(v) if isinstance(v, list) else v
                                        for v in params)))

    def send(self, session: Session) -> None:
        """Write what was deferred, in order, in *session*'s transaction."""
        pending, self.pending = self.pending, []
        conn = session.connection()
        raw = conn.connection.driver_connection
        assert raw is not None
        if pending:
            ready(raw)
        for sql, data in pending:
            if isinstance(data, bytes):
                with raw.cursor() as cur, cur.copy(sql) as copy:
                    copy.write(data)
            else:
                conn.exec_driver_sql(sql, data)

    def insert_new(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert *rows* and return their new ids, in order."""
        if not rows:
            return []
        if not self.pg:
            return list(self.session.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),
                list(rows)).scalars())
        conn = self.session.connection()
        ids = sorted(conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table.name, len(rows))).scalars())
        self._copy(table, ["id", *rows[0]],
                   [{"id": i, **r} for i, r in zip(ids, rows, strict=True)])
        return ids

    def update(self, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id"
               ) -> None:
        """Set the columns in *rows* on the row with each one's *key* (``id``)."""
        if not rows:
            return
        columns = [c for c in rows[0] if c != key]
        if not self.pg:
            self.session.execute(
                update(table).where(table.c[key] == bindparam(f"b_{key}"))
                .values({c: bindparam(f"b_{c}") for c in columns}),
                [{f"b_{k}": v for k, v in r.items()} for r in rows])
            return
        exprs, params = self._arrays(table, [key, *columns], rows)
        if not exprs[0].startswith("u."):  # one row: still joined by the key
            exprs[0], params[0] = f"u.{key}", [params[0]]
        source, ordered = self._unnest(table, exprs, params, [key, *columns])
        sql = (f"UPDATE {table.name} AS t SET "  # noqa: S608 - model names
               + ", ".join(f"{c} = {e}" for c, e in zip(columns, exprs[1:], strict=True))
               + f" FROM {source} WHERE t.{key} = u.{key}")
        self._execute(sql, ordered)


class _Collected(Writer):
    """A COPY stream kept in memory (:meth:`Rows.send` writes it)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Buffer) -> None:
        self.parts.append(bytes(data))


@dataclass
class Writes:
    """A segment's rows made ready by :func:`prepare`, written by :meth:`apply`."""

    segment: list[Planned]
    rows: Rows
    drafted: int  # invoice numbers the segment takes
    moved: list[Planned]  # the accounts whose subscriber row changes
    now: dt.datetime
    # PostgreSQL: the subscribers' update, its parameters dumped, and the place among them
    # of the first change-feed stamp, known once the counter is locked (see _advance)
    advance: tuple[str, list[Any], int] | None = None

    def apply(self, session: Session, isp: IspSettings) -> None:
        """Write the rows in *session*'s transaction (the one :func:`prepare` used, or, on
        PostgreSQL, any other) and take the invoice numbers from *isp* (locked)."""
        self.rows.send(session)
        bumps = sum(p.bump for p in self.moved)
        top = 0
        if bumps:  # radbill.db.bump, once per account, in account order
            top = int(session.execute(_BUMP, {"n": bumps, "name": AUTH_FEED}).scalar_one())
        if self.advance is not None:
            sql, params, at = self.advance
            session.connection().exec_driver_sql(
                sql, (*params[:at], top - bumps, *params[at:]))
        else:
            stamps = iter(range(top - bumps + 1, top + 1))
            for p in self.moved:
                if p.bump:
                    p.sub.auth_version = next(stamps)
            self.rows.update(SUBSCRIBERS, [
                {"id": p.sub.id, "period_start": p.sub.period_start,
                 "period_end": p.sub.period_end, "setup_fee_charged": p.sub.setup_fee_charged,
                 "paid_until": p.sub.paid_until, "auth_version": p.sub.auth_version,
                 "updated_at": self.now} for p in self.moved])
        isp.next_invoice_number += self.drafted
        session.flush()


_BUMP = (update(ChangeCounter).where(ChangeCounter.name == bindparam("name"))
         .values(value=ChangeCounter.value + bindparam("n")).returning(ChangeCounter.value))


def prepare(session: Session, segment: list[Planned]) -> Writes:
    """*segment*'s rows, ready to write (:meth:`Writes.apply`). On PostgreSQL nothing is
    written here: the rows are formatted (:class:`Rows`, deferred) and the new invoices'
    ids taken from their sequence, so that another thread may write them while this one
    plans the next batch. Elsewhere the rows are written here, in *session*'s transaction,
    all but the subscribers' update."""
    now = utcnow()
    rows = Rows(session, binary=True, deferred=True)
    drafted = [v for p in segment for v in p.drafted]
    new_ids = rows.insert_new(INVOICES, [
        {**d.columns(), "credits_invoice_id": None, "reason": None, "subscriber_id": p.sub.id,
         "username": p.sub.username,
         "status": v.status, "paid_on": v.paid_on, "outstanding": v.outstanding,
         "pdf_path": None, "pdf_sha256": None, "created_at": now}
        for p in segment for v in p.drafted if (d := v.draft) is not None])
    ids = {v.id: new_id for v, new_id in zip(drafted, new_ids, strict=True)}
    rows.insert(LINES, [{"invoice_id": ids[v.id], **values} for v in drafted
                        if v.draft is not None for values in v.draft.line_values()])
    rows.insert(LEDGER, [{**e, "invoice_id": ids.get(e["invoice_id"], e["invoice_id"]),
                          "posted_at": now} for p in segment for e in p.entries])
    issued: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for p in segment:
        for kind, planned_key, invoice_id, payload in p.notices:
            key = planned_key
            if invoice_id is not None and invoice_id < 0:  # the key names a drafted invoice
                key = key[: -len(str(invoice_id))] + str(ids[invoice_id])
            (issued if kind == "invoice_issued" and planned_key != key else other).append(
                {"kind": kind, "subscriber_id": p.sub.id, "dedupe_key": key,
                 "payload": payload, "created_at": now, "sent_at": None,
                 "event_on": p.day})
    # An invoice's own event cannot exist yet (its id is new); any other key another
    # transaction wrote is left alone, as invoices.notify does. For each account its
    # invoice events come before its other events, as on the per-account path.
    rows.insert(OUTBOX, issued)
    rows.insert(OUTBOX, other, unique="dedupe_key")
    rows.update(INVOICES, [{"id": v.id, "status": v.status, "paid_on": v.paid_on,
                            "outstanding": v.outstanding}
                           for p in segment for v in p.settled])
    moved = [p for p in segment if p.sub.changes() != p.before]
    writes = Writes(segment, rows, len(drafted), moved, now)
    if rows.deferred and moved:
        writes.advance = _advance(rows, moved, now)
    return writes


def _advance(rows: Rows, moved: list[Planned], now: dt.datetime
             ) -> tuple[str, list[Any], int]:
    """The subscribers' update on PostgreSQL, its parameters dumped; the accounts whose
    service end moved get the change feed's stamps in account order (radbill.db.bump),
    counted from a first stamp only known once the counter is locked: the statement, its
    parameters, and the place of that stamp among them (:meth:`Writes.apply`)."""
    columns = ["id", "period_start", "period_end", "setup_fee_charged", "paid_until"]
    changed = [{"id": p.sub.id, "period_start": p.sub.period_start,
                "period_end": p.sub.period_end, "setup_fee_charged": p.sub.setup_fee_charged,
                "paid_until": p.sub.paid_until} for p in moved]
    exprs, params = rows._arrays(SUBSCRIBERS, columns, changed)
    if not exprs[0].startswith("u."):  # one row: still joined by the id
        exprs[0], params[0] = "u.id", [params[0]]
    counted = itertools.count(1)
    stamps = [next(counted) if p.bump else 0 for p in moved]
    source, ordered = rows._unnest(SUBSCRIBERS, exprs, params, columns,
                                   extra=[("stamp", "integer", stamps)])
    constants = sum(not e.startswith("u.") for e in exprs)
    sql = ("UPDATE subscribers AS t SET "  # noqa: S608 - column names of the model
           + "".join(f"{c} = {e}, " for c, e in zip(columns[1:], exprs[1:], strict=True))
           + "auth_version = CASE WHEN u.stamp > 0 THEN %s::bigint + u.stamp "
             "ELSE t.auth_version END, updated_at = %s::timestamptz "
           + f"FROM {source} WHERE t.id = u.id")
    dumped = [predumped(v) if isinstance(v, list) else v for v in ordered]
    return sql, [*dumped[:constants], now, *dumped[constants:]], constants


def write(session: Session, isp: IspSettings, segment: list[Planned]) -> None:
    """Write *segment*'s accounts with a few multi-row statements, in the caller's
    transaction, and take their invoice numbers from the (locked) ISP row."""
    prepare(session, segment).apply(session, isp)


# -- the batch --------------------------------------------------------------------------------


def _one_by_one(session: Session, isp: IspSettings, cal: Calendar, sub_id: int,
                as_of: dt.date, report: run.RunReport, actor: str, candidates: list[int]
                ) -> None:
    sub = session.get(Subscriber, sub_id)
    assert sub is not None
    if run.process_guarded(session, isp, cal, sub, as_of, report, suspend=False, actor=actor):
        candidates.append(sub_id)


def _flush(session: Session, isp: IspSettings, cal: Calendar, segment: list[Planned],
           as_of: dt.date, report: run.RunReport, actor: str, candidates: list[int]) -> None:
    """Write *segment* in a savepoint (see :func:`write`) and report it; if the write fails,
    its accounts go through the per-account path one by one."""
    if not segment:
        return
    try:
        with session.begin_nested():
            write(session, isp, segment)
    except Exception:  # a bad row: the per-account path isolates it
        log.exception("billing batch write failed; billing its %d account(s) one by one",
                      len(segment))
        for p in segment:
            _one_by_one(session, isp, cal, p.sub.id, as_of, report, actor, candidates)
    else:
        for p in segment:
            report.events.extend(p.events)
            if p.suspend:
                candidates.append(p.sub.id)
    segment.clear()


# subscribers as load() reads them, with their histories
Loaded = tuple[list[Sub], dict[int, History]]


@dataclass
class _Planner:
    """Plans a batch's accounts in order (:func:`plan_account`), with what they share."""

    isp: IspSettings
    cal: Calendar
    as_of: dt.date
    actor: str
    histories: dict[int, History]
    plans: dict[int, Plan]
    stand_ins: Iterator[int] = field(default_factory=lambda: itertools.count(-1, -1))
    terms: Terms = field(default_factory=Terms)

    def segment(self, subs: list[Sub], start: int, first_number: int) -> list[Planned]:
        """The accounts *subs* from *start* on, planned in order with their invoices numbered
        from *first_number*, up to the first that needs the per-account path (or whose
        planning raises; the per-account path reports and alerts it)."""
        segment: list[Planned] = []
        numbered = 0
        for sub in subs[start:]:
            try:
                planned = plan_account(sub, self.plans[sub.plan_id], self.histories[sub.id],
                                       self.isp, self.cal, self.as_of,
                                       first_number + numbered, self.stand_ins, self.actor,
                                       self.terms)
            except Exception:  # the per-account path reports and alerts it
                log.debug("planning %s failed; billed through the per-account path",
                          sub.username, exc_info=True)
                planned = None
            if planned is None:
                break
            segment.append(planned)
            numbered += len(planned.drafted)
        return segment


def _planner(session: Session, isp: IspSettings, cal: Calendar, as_of: dt.date, actor: str,
             histories: dict[int, History]) -> _Planner:
    return _Planner(isp, cal, as_of, actor, histories,
                    {plan.id: plan for plan in session.scalars(select(Plan))})


def bill_batch(session: Session, isp: IspSettings, cal: Calendar, ids: Sequence[int],
               as_of: dt.date, report: run.RunReport, *, actor: str,
               loaded: Loaded | None = None, own: list[int] | None = None) -> list[int]:
    """Phase one of the run for the subscribers *ids* (see the module documentation), or
    for those *loaded* already in this transaction. Returns the ids with a suspension due,
    for phase two; adds to *own* those billed through the per-account path."""
    invoices.roll_series(isp, as_of)  # every document of the batch is issued on as_of
    subs, histories = loaded if loaded is not None else load(session, isp, ids)
    planner = _planner(session, isp, cal, as_of, actor, histories)
    candidates: list[int] = []
    done = 0
    while done < len(subs):
        # numbered from the ISP's counter as the segments and accounts before left it
        segment = planner.segment(subs, done, isp.next_invoice_number)
        done += len(segment)
        _flush(session, isp, cal, segment, as_of, report, actor, candidates)
        if done < len(subs):
            sub_id = subs[done].id
            if own is not None:
                own.append(sub_id)
            _one_by_one(session, isp, cal, sub_id, as_of, report, actor, candidates)
            done += 1
    return candidates


def plan_ahead(session: Session, isp: IspSettings, cal: Calendar, ids: Sequence[int],
               as_of: dt.date, first_number: int, *, actor: str
               ) -> tuple[list[Planned], Loaded | None]:
    """Phase one for the subscribers *ids* planned without writing anything, their invoices
    numbered from *first_number*: the run plans a batch while the one before is still being
    committed (:func:`billing.run.billing_run`), so *isp* need not be locked yet and its
    counter may not have moved on. The subscribers are locked and their histories read as
    :func:`bill_batch` does. Returns the accounts planned, up to the first that needs the
    per-account path (or whose planning raises), and the accounts from that one on as
    loaded (that one read again: planning it changed it in memory), which
    :func:`write_planned` bills as :func:`bill_batch` does once the planned ones are written
    (their invoice numbers follow from what comes before them); None if there are none."""
    subs, histories = load(session, isp, ids)
    segment = _planner(session, isp, cal, as_of, actor, histories).segment(
        subs, 0, first_number)
    if len(segment) == len(subs):
        return segment, None
    stopped = subs[len(segment)]
    fresh, fresh_histories = load(session, isp, [stopped.id])
    after = subs[len(segment) + 1:]
    return segment, ([*fresh, *after],
                     {**fresh_histories, **{s.id: histories[s.id] for s in after}})


def write_planned(session: Session, isp: IspSettings, cal: Calendar, writes: Writes,
                  rest: Loaded | None, as_of: dt.date, report: run.RunReport, *, actor: str
                  ) -> list[int]:
    """Write a batch :func:`plan_ahead` planned and :func:`prepare` made ready, in
    *session*'s transaction (*isp* locked, its counter at the batch's first number), as
    :func:`_flush` writes a segment: in a savepoint, the report after it; if the write fails,
    the savepoint is rolled back and the accounts are billed one by one. Then the accounts
    *rest* (see :func:`plan_ahead`) as :func:`bill_batch` bills them. Returns the ids with
    a suspension due. The billing run calls it in its writing thread
    (:func:`billing.run._overlapped_phase_one`), with next to no Python to do there unless
    there is a *rest*."""
    candidates: list[int] = []
    if writes.segment:
        _write_segment(session, isp, cal, writes, as_of, report, actor, candidates)
    if rest is not None:
        candidates += bill_batch(session, isp, cal, [s.id for s in rest[0]], as_of, report,
                                 actor=actor, loaded=rest)
    return candidates


def _write_segment(session: Session, isp: IspSettings, cal: Calendar, writes: Writes,
                   as_of: dt.date, report: run.RunReport, actor: str, candidates: list[int]
                   ) -> None:
    try:
        with session.begin_nested():
            writes.apply(session, isp)
    except Exception:  # a bad row: the per-account path isolates it
        log.exception("billing batch write failed; billing its %d account(s) one by one",
                      len(writes.segment))
        for p in writes.segment:
            _one_by_one(session, isp, cal, p.sub.id, as_of, report, actor, candidates)
        return
    for p in writes.segment:
        report.events.extend(p.events)
        if p.suspend:
            candidates.append(p.sub.id)


# -- phase two: suspensions -------------------------------------------------------------------


@dataclass
class Suspension:
    """One account suspended for non-payment, as :func:`billing.accounts.suspend` writes it."""

    sub: Sub
    reason: str
    amount_due: Decimal
    pause: bool  # billing paused (the ISP does not bill suspended accounts)
    paid_until: dt.datetime | None
    notice: dict[str, object]


def plan_suspension(sub: Sub, plan: Plan, hist: History, isp: IspSettings, cal: Calendar,
                    as_of: dt.date, actor: str, terms: Terms
                    ) -> Suspension | bool:
    """Phase two of the run for one account, in memory: a :class:`Suspension`, False if
    nothing is due (the per-account path would write nothing), True if the account needs the
    per-account path (anything but the suspension due, a used-days invoice on pausing)."""
    planned = plan_account(sub, plan, hist, isp, cal, as_of, isp.next_invoice_number,
                           itertools.count(-1, -1), actor, terms)
    if planned is None or planned.drafted or planned.entries or planned.notices \
            or planned.settled or planned.bump:
        return True  # phase one left work: the per-account path does all of it
    if not planned.suspend or sub.status is not SubscriberStatus.ACTIVE:
        return False  # accounts.suspend: only an active account
    pause = not isp.bill_while_suspended and sub.billing_paused_on is None
    if pause and not plan.prepaid and sub.period_start is not None \
            and sub.period_end is not None and as_of > sub.period_start \
            and not any(v.kind is InvoiceKind.PERIOD and v.period_start == sub.period_start
                        and v.status is not InvoiceStatus.CREDITED for v in hist.invoices):
        return True  # accounts.bill_used_days invoices the days used: its own service
    open_ = _settle(hist, as_of)
    amount_due = sum((owed for _, owed in open_), ZERO)
    sub.status = SubscriberStatus.SUSPENDED
    sub.suspended_on, sub.suspended_for_nonpayment = as_of, True
    if pause:
        sub.billing_paused_on = as_of
    # run.process looks again after the suspension: anything more due that day is the
    # per-account path's
    account = _account(sub, plan, hist, open_)
    if due_actions(account, as_of, _terms(terms, plan, isp)[1], cal):
        return True
    paid_until = _paid_until(sub, plan, hist, isp, cal, as_of, open_)
    return Suspension(sub, planned.suspend_reason, amount_due, pause, paid_until,
                      outbox.notice_payload(sub, reason=planned.suspend_reason,
                                            amount_due=amount_due))


def write_suspensions(session: Session, segment: list[Suspension], as_of: dt.date,
                      actor: str) -> None:
    """Write *segment*'s suspensions with a few multi-row statements, in the caller's
    transaction: for each account in order, the rows :func:`billing.accounts.suspend` and
    :func:`billing.run.process` write (status change and its audit row, the change-feed
    stamps, the enforcement request, the ``suspended`` event, the billing pause and its
    audit row, the service end)."""
    now = utcnow()
    rows = Rows(session, binary=True)
    bumps = sum(1 + (s.paid_until != s.sub.paid_until) for s in segment)
    top = session.execute(update(ChangeCounter).where(ChangeCounter.name == AUTH_FEED)
                          .values(value=ChangeCounter.value + bumps)
                          .returning(ChangeCounter.value)).scalar_one()
    stamps = iter(range(int(top) - bumps + 1, int(top) + 1))
    audit_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for s in segment:
        sub = s.sub
        sub.auth_version = next(stamps)  # subscribers.change_status
        if s.paid_until != sub.paid_until:  # standing.sync_paid_until
            sub.paid_until = s.paid_until
            sub.auth_version = next(stamps)
        audit_rows.append({"at": now, "actor": actor, "action": "subscriber.suspended",
                           "entity": "subscriber", "entity_id": str(sub.id),
                           "before": {"status": "active"}, "after": {"status": "suspended"},
                           "reason": s.reason})
        if s.pause:  # accounts.pause_billing
            audit_rows.append({"at": now, "actor": actor, "action": "billing.pause",
                               "entity": "subscriber", "entity_id": str(sub.id),
                               "before": None, "after": {"paused_on": str(as_of)},
                               "reason": None})
        updates.append({"id": sub.id, "status": SubscriberStatus.SUSPENDED,
                        "status_reason": s.reason, "suspended_on": as_of,
                        "suspended_for_nonpayment": True,
                        "billing_paused_on": sub.billing_paused_on,
                        "paid_until": sub.paid_until, "auth_version": sub.auth_version,
                        "updated_at": now})
    rows.update(SUBSCRIBERS, updates)
    rows.insert(AUDIT, audit_rows)
    rows.insert(ENFORCEMENT, [
        {"subscriber_id": s.sub.id, "action": "suspend", "reason": s.reason,
         "status": "pending", "created_at": now, "attempts": 0, "next_attempt_at": now,
         "confirm_by": None, "completed_at": None, "outcome": None, "last_error": None,
         "nas_ip": None, "acct_session_id": None} for s in segment])
    rows.insert(OUTBOX, [
        {"kind": "suspended", "subscriber_id": s.sub.id,
         "dedupe_key": f"suspended:{s.sub.id}:{as_of}", "payload": s.notice,
         "created_at": now, "sent_at": None, "event_on": as_of} for s in segment],
        unique="dedupe_key")
    session.flush()


def suspend_batch(session: Session, isp: IspSettings, cal: Calendar, ids: Sequence[int],
                  as_of: dt.date, report: run.RunReport, *, actor: str) -> None:
    """Phase two of the run for the subscribers *ids* (those phase one found due), in the
    caller's transaction: planned in memory, written set-based; an account that needs more
    than its suspension goes through the per-account path in its place in the order, and a
    segment whose write fails is rolled back to its savepoint and done one by one."""
    subs, histories = load(session, isp, ids)
    plans = {plan.id: plan for plan in session.scalars(select(Plan))}
    terms = Terms()
    segment: list[Suspension] = []

    def one_by_one(sub_id: int) -> None:
        sub = session.get(Subscriber, sub_id)
        assert sub is not None
        run.process_guarded(session, isp, cal, sub, as_of, report, suspend=True, actor=actor)

    def flush() -> None:
        if not segment:
            return
        try:
            with session.begin_nested():
                write_suspensions(session, segment, as_of, actor)
        except Exception:  # a bad row: the per-account path isolates it
            log.exception("suspension batch write failed; suspending its %d account(s) one "
                          "by one", len(segment))
            for s in segment:
                one_by_one(s.sub.id)
        else:
            report.events.extend(run.Event(s.sub.username, "suspend", s.reason)
                                 for s in segment)
        segment.clear()

    for sub in subs:
        try:
            planned = plan_suspension(sub, plans[sub.plan_id], histories[sub.id], isp, cal,
                                      as_of, actor, terms)
        except Exception:  # the per-account path reports and alerts it
            log.debug("planning %s's suspension failed; doing it on its own", sub.username,
                      exc_info=True)
            planned = True
        if planned is True:
            flush()
            one_by_one(sub.id)
        elif planned is not False:
            assert isinstance(planned, Suspension)
            segment.append(planned)
    flush()
