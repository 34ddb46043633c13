"""The billing run: renewals, invoices, the dunning ladder and suspensions for one day.

``billing_run(factory, as_of)`` works in batches of subscribers, one transaction each, in two
phases:

1. renewals (invoices for every period that has come due, several if runs were missed),
   settlement, reminders, late fees, throttling, promise lapses, reconnections and
   terminations;
2. suspensions, only after counting them: if more than the ISP's guard share of active
   subscribers (default 20%) would be suspended, nobody is, an alert is raised and the run
   waits for an operator (``--confirm-suspensions``).

Every step is idempotent: one invoice per subscriber and period (unique constraint), each
notice and fee once (outbox dedupe keys), status changes only when the state still calls for
them. A second run for the same day changes nothing; a run killed half-way and run again
finishes the work. A dry run is the real run inside one transaction that is rolled back, so
what it prints is exactly what a real run would do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, invoices, ledger
from billing import renewals as renewal_rules
from billing.dunning import (
    Account,
    Action,
    Calendar,
    due_actions,
)
from billing.isp import calendar, local_today, mark_billed_through, settings
from billing.models import (
    BillingMode,
    Invoice,
    InvoiceKind,
    IspSettings,
    Plan,
    PlanChange,
    Promise,
    Subscriber,
    SubscriberStatus,
)
from billing.plan_changes import apply_scheduled
from billing.plans import cycle_of
from billing.standing import account_state, active_promise, ladder_of, sync_paid_until
from billing.subscribers import start_billing
from notify import outbox
from radbill.db import utcnow
from radbill.gcpause import collector_paused
from radbill.ops import raise_alert

log = logging.getLogger("radbill.billing")
# Subscribers per transaction. The batch path writes each batch with a few statements, so
# larger batches mean fewer round trips; each holds the ISP row (numbering) for its duration.
BATCH_SIZE = 2000
# Suspensions commit in smaller transactions: the enforcement worker starts on the first ones
# while the rest are still being written.
SUSPEND_BATCH_SIZE = 500
BILLABLE = (SubscriberStatus.ACTIVE, SubscriberStatus.SUSPENDED)

# Subscribers not to suspend now, by id, with the reason: e.g. a payment pending on a gateway
# whose confirmations are failing. The payments part provides one (payments.intents.holds);
# whoever runs billing passes it in, so billing never reaches into payments.
SuspensionHolds = Callable[[Session, list[int], dt.datetime], Mapping[int, str]]

# PostgreSQL's "lock_not_available" (a NOWAIT lock held by another transaction)
LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class Event:
    """One thing the run did (or, in a dry run, would do)."""

    username: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.username:20s} {self.kind:16s} {self.detail}"


@dataclass
class RunReport:
    """What a run did."""

    as_of: dt.date
    dry_run: bool
    events: list[Event] = field(default_factory=list)
    suspensions_blocked: int = 0
    alert_id: int | None = None
    errors: list[Event] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(e.kind for e in self.events))

    def add(self, sub: Subscriber, kind: str, detail: str) -> None:
        self.events.append(Event(sub.username, kind, detail))


def late_fee_lines(invoice_number: str, amount: Decimal) -> list[invoices.Line]:
    """The late-fee document's line."""
    return [invoices.Line(f"{invoices.LATE_FEE_LINE}{invoice_number}", amount)]


def late_fee_vat(isp: IspSettings, plan: Plan) -> Decimal:
    """The tax on a late fee: the plan's where the ISP's country taxes late fees (India:
    CGST Act s.15(2)(d)), none otherwise."""
    return plan.tax_percent if isp.late_fee_taxable else Decimal("0")


def last_billed(session: Session, sub: Subscriber) -> dt.date | None:
    """The first day of the latest period invoiced."""
    return session.scalar(select(func.max(Invoice.period_start)).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD))


def renew(session: Session, isp: IspSettings, sub: Subscriber, plan: Plan, as_of: dt.date,
          report: RunReport) -> None:
    """Issue every period invoice that has come due by *as_of* (see
    :mod:`billing.renewals`), switch to a plan scheduled for the next cycle, and move the
    current period on. Nothing while billing is paused."""
    assert sub.period_start is not None  # set at activation
    assert sub.period_end is not None
    if sub.billing_paused_on is not None:
        return
    changes = [(c.changed_on, c.from_plan, c.to_plan) for c in session.scalars(
        select(PlanChange).where(PlanChange.subscriber_id == sub.id,
                                 PlanChange.changed_on > sub.period_start)
        .order_by(PlanChange.changed_on, PlanChange.id))] if not plan.prepaid else []
    upcoming = sub.next_plan
    plan_of = {plan.id: plan, **({upcoming.id: upcoming} if upcoming else {})}
    r = renewal_rules.renewals(period_start=sub.period_start, period_end_=sub.period_end,
                 anchor_day=sub.anchor_day, last_billed=last_billed(session, sub), plan=plan,
                 cycle=cycle_of(plan), next_plan=upcoming,
                 next_cycle=cycle_of(upcoming) if upcoming else None, as_of=as_of,
                 terms_days=isp.postpaid_due_days, strict_prepay=isp.strict_prepay,
                 billing_started_on=sub.billing_started_on, changes=changes)
    for bill in r.bills:
        billed = plan_of.get(bill.plan.id, plan)
        lines = renewal_rules.period_lines(bill, cycle_of(billed), sub.anchor_day,
                             setup_fee_due=not sub.setup_fee_charged)
        sub.setup_fee_charged = sub.setup_fee_charged or billed.setup_fee > 0
        inv = invoices.issue(session, isp=isp, sub=sub, plan_name=billed.name,
                             currency=billed.currency, vat_percent=billed.tax_percent,
                             period_start=bill.start, period_end=bill.end,
                             issued_on=bill.issued, due_on=bill.due, lines=lines)
        report.add(sub, "invoice", f"{inv.number} {inv.currency} {inv.total} "
                                   f"{bill.start}..{bill.end} due {inv.due_on}")
    if r.switched_on is not None:
        switched = apply_scheduled(session, sub, "billing-run", r.switched_on)
        if switched is not None:
            report.add(sub, "plan_change", f"now on {switched.name}")
    assert r.period_start is not None
    assert r.period_end is not None
    sub.period_start, sub.period_end = r.period_start, r.period_end


def _notice(inv: Invoice, action: Action, account: Account,
            settled: ledger.Settlement) -> dict[str, object]:
    """What a reminder, due notice or final reminder tells: the document, what is still
    owed on it, what is owed in all (the amount to pay now) and the dates."""
    owed = next((o for i, o in settled.open_invoices if i.id == inv.id), inv.total)
    return {"invoice": inv.number, "total": inv.total, "outstanding": owed,
            "amount_due": settled.outstanding, "currency": inv.currency,
            "due_on": action.due_on or inv.due_on, "suspend_on": action.suspend_on,
            "payment_link": inv.payment_link}


def apply_action(session: Session, isp: IspSettings, sub: Subscriber, plan: Plan,
                 action: Action, today: dt.date, report: RunReport, actor: str,
                 account: Account, settled: ledger.Settlement) -> None:
    """Carry out one ladder step."""
    kind = action.kind
    if kind in ("reminder", "due_notice", "final_reminder"):
        inv = session.get(Invoice, action.invoice_id)
        assert inv is not None
        outbox.enqueue(session, sub, kind, action.key, on=today,
                        **_notice(inv, action, account, settled))
        report.add(sub, kind, inv.number)
    elif kind == "late_fee":
        inv = session.get(Invoice, action.invoice_id)
        assert inv is not None
        assert action.amount is not None
        fee = invoices.issue(session, isp=isp, sub=sub, plan_name=inv.plan_name,
                             currency=inv.currency, vat_percent=late_fee_vat(isp, plan),
                             period_start=inv.period_start, period_end=inv.period_end,
                             issued_on=today, due_on=today,
                             lines=late_fee_lines(inv.number, action.amount),
                             kind=InvoiceKind.LATE_FEE, actor=actor)
        outbox.enqueue(session, sub, "late_fee", action.key, on=today, invoice=inv.number,
                        fee_invoice=fee.number, amount=fee.total, currency=inv.currency,
                        amount_due=fee.amount_due, payment_link=fee.payment_link)
        report.add(sub, "late_fee", f"{inv.currency} {fee.total} on {inv.number} "
                                    f"({fee.number})")
    elif kind == "throttle":
        accounts.set_throttle(session, sub, True, action.reason)
        outbox.enqueue(session, sub, "throttled", action.key, on=today, reason=action.reason)
        report.add(sub, "throttle", action.reason)
    elif kind == "promise_broken":
        promise = active_promise(session, sub.id)
        if promise is not None:
            promise.status = "broken"
        outbox.enqueue(session, sub, "promise_broken", action.key, on=today,
                        amount_due=settled.outstanding)
        report.add(sub, "promise_broken", action.key.rsplit(":", 1)[1])
    elif kind == "still_suspended":
        outbox.enqueue(session, sub, "still_suspended", action.key, on=today,
                        amount_due=settled.outstanding, currency=plan.currency)
        report.add(sub, "still_suspended", f"since {sub.suspended_on}")
    elif kind == "suspend":
        if accounts.suspend(session, sub, today, action.reason, actor):
            report.add(sub, "suspend", action.reason)
    elif kind == "reconnect":
        if accounts.reactivate(session, sub, today, action.reason, actor):
            report.add(sub, "reconnect", action.reason)
    elif kind == "terminate" and accounts.terminate(session, sub, today, action.reason, actor):
        report.add(sub, "terminate", action.reason)


def process(session: Session, isp: IspSettings, cal: Calendar, sub: Subscriber, plan: Plan,
            as_of: dt.date, report: RunReport, *, suspend: bool, actor: str) -> list[Action]:
    """Everything due for one subscriber. Returns the suspensions it left for phase two."""
    if sub.period_start is None:
        start_billing(sub, plan, local_today(isp, sub.created_at))
    renew(session, isp, sub, plan, as_of, report)
    plan = sub.plan  # a scheduled plan change may have switched it
    pending: list[Action] = []
    for _ in range(3):  # a late fee changes what is owed: settle and look again
        account, settled = account_state(session, isp, sub, plan, as_of)
        actions = due_actions(account, as_of, ladder_of(plan, isp), cal)
        todo = [a for a in actions if a.kind != "suspend" or suspend]
        pending = [a for a in actions if a.kind == "suspend" and not suspend]
        if not todo:
            break
        for action in todo:
            apply_action(session, isp, sub, plan, action, as_of, report, actor, account,
                         settled)
    ledger.settle(session, sub.id, as_of)
    sync_paid_until(session, isp, cal, sub, plan, as_of)
    return pending


# PostgreSQL keeps generic plans for prepared statements; made while the billing tables were
# nearly empty (a first big run, or autovacuum off) they are sequential scans, and a large run
# slows down quadratically (measured with bench/billing_run.py). ANALYZE a few times early in
# the run replaces them.
ANALYZE_AFTER_BATCH = frozenset({1, 10, 100})
ANALYZED_TABLES = ("invoices", "invoice_lines", "ledger_entries", "outbox")


def _analyze(session: Session) -> None:
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or not isinstance(bind, Engine):
        return
    with bind.connect() as conn:
        conn.exec_driver_sql(f"ANALYZE {', '.join(ANALYZED_TABLES)}")
        conn.commit()


def process_guarded(session: Session, isp: IspSettings, cal: Calendar, sub: Subscriber,
             as_of: dt.date, report: RunReport, *, suspend: bool, actor: str) -> list[Action]:
    """:func:`process` in a savepoint: one subscriber's bad data is logged, reported and
    alerted, and billing goes on for everybody else."""
    username = sub.username
    try:
        with session.begin_nested():
            return process(session, isp, cal, sub, sub.plan, as_of, report, suspend=suspend,
                           actor=actor)
    except Exception as exc:  # isolate one account; reported and alerted by the run
        log.exception("billing failed for %s; continuing with the others", username)
        report.errors.append(Event(username, "error", f"{type(exc).__name__}: {exc}"))
        return []


def due_subscriber_ids(session: Session, as_of: dt.date) -> list[int]:
    """Billable subscribers for whom something can happen on *as_of*: billing not started,
    a period ending (or, prepaid, not invoiced yet or about to be invoiced ahead), an open
    invoice (the ladder),
    a suspension or throttle to re-check, or a running promise. Everybody else has nothing
    due, so a quiet day costs one query instead of a pass over every account."""
    max_lead = session.scalar(select(func.max(Plan.reminder_days)).where(
        Plan.billing_mode == BillingMode.PREPAID)) or 0
    open_invoices = select(Invoice.subscriber_id).where(Invoice.status == "open")
    promises = select(Promise.subscriber_id).where(Promise.status == "active")
    stmt = (
        select(Subscriber.id).join(Plan, Subscriber.plan_id == Plan.id)
        .where(Subscriber.status.in_(BILLABLE))
        .where(or_(
            Subscriber.period_start.is_(None),
            and_(Subscriber.billing_paused_on.is_(None), or_(
                Subscriber.period_end <= as_of,
                and_(Plan.billing_mode == BillingMode.PREPAID,
                     Subscriber.period_end <= as_of + dt.timedelta(days=max_lead)),
                # prepaid: the current period is not invoiced yet (activation)
                and_(Plan.billing_mode == BillingMode.PREPAID,
                     Subscriber.period_start <= as_of,
                     ~exists().where(Invoice.subscriber_id == Subscriber.id,
                                     Invoice.period_start == Subscriber.period_start,
                                     Invoice.kind == InvoiceKind.PERIOD)))),
            Subscriber.id.in_(open_invoices),
            Subscriber.status == SubscriberStatus.SUSPENDED,
            Subscriber.dunning_throttled.is_(True),
            Subscriber.id.in_(promises),
        ))
        .order_by(Subscriber.id)
    )
    return list(session.scalars(stmt))


def _batches(factory: sessionmaker[Session], session: Session | None, as_of: dt.date,
             size: int) -> Iterator[list[int]]:
    if session is not None:
        all_ids = due_subscriber_ids(session, as_of)
    else:
        with factory() as s:
            all_ids = due_subscriber_ids(s, as_of)
    for i in range(0, len(all_ids), size):
        yield all_ids[i : i + size]


def _load(session: Session, ids: list[int]) -> list[Subscriber]:
    return list(session.scalars(select(Subscriber).where(Subscriber.id.in_(ids))
                                .order_by(Subscriber.id).with_for_update(of=Subscriber)
                                ).unique())


def _phase_one(session: Session, ids: list[int], as_of: dt.date, report: RunReport,
               actor: str, per_account: bool, own: list[int] | None = None) -> list[int]:
    """Everything but suspensions for the subscribers *ids*, in the caller's transaction.
    Returns those with a suspension due (and adds to *own* those the batch path left to
    the per-account path). The subscribers are locked before the ISP row,
    the order every other writer takes them in (a payment, a plan change, a credit note:
    the subscriber, then the ISP row), so that none of them deadlocks with the run."""
    from billing.batch import bill_batch, lock_subscribers  # it builds on this module

    lock_subscribers(session, ids)
    isp = settings(session, lock=True)
    cal = calendar(session)
    if not per_account:
        with collector_paused():  # many small objects, none in a cycle (radbill.gcpause)
            return bill_batch(session, isp, cal, ids, as_of, report, actor=actor, own=own)
    return [sub.id for sub in _load(session, ids)
            if process_guarded(session, isp, cal, sub, as_of, report, suspend=False, actor=actor)]


def _overlaps(factory: sessionmaker[Session]) -> bool:
    """Whether phase one may plan a batch while the one before is written: on PostgreSQL,
    with sessions of an engine (each its own connection)."""
    bind = factory.kw.get("bind")
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


def _isp_state(isp: IspSettings) -> dict[str, object]:
    return {c.key: getattr(isp, c.key) for c in IspSettings.__mapper__.column_attrs}


def _lock_isp_nowait(session: Session) -> IspSettings | None:
    """The ISP row, locked and re-read; None (the transaction rolled back) if another
    transaction holds it: the caller waits for nothing while holding its subscribers."""
    try:
        return session.scalars(select(IspSettings).where(IspSettings.id == 1)
                               .with_for_update(nowait=True)
                               .execution_options(populate_existing=True)).one()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        session.rollback()
        return None


@dataclass
class _Ahead:
    """A batch planned and made ready while the one before it is written."""

    session: Session
    ids: list[int]
    isp: IspSettings
    cal: Calendar
    writes: Any  # billing.batch.Writes
    rest: Any  # billing.batch.Loaded | None: billed after the planned ones, as bill_batch does
    first: int  # the batch's first invoice number
    planned_with: dict[str, object] | None  # the ISP row as planned with; None: locked


def _plan_ahead(session: Session, ids: list[int], as_of: dt.date, actor: str,
                expected: int | None) -> _Ahead | None:
    """Lock the subscribers *ids*, plan them and make their rows ready
    (:func:`billing.batch.plan_ahead`, :func:`billing.batch.prepare`) for
    :func:`_overlapped_phase_one`. *expected* is the ISP's next invoice number once the
    batch being written is committed; None: nothing is being written, and the ISP row is
    locked here, after the subscribers (as :func:`_phase_one`). None if the batch is to be
    billed as :func:`_phase_one` does: a new invoice series starts, or the rows cannot be
    made ready."""
    from billing.batch import lock_subscribers, plan_ahead, prepare  # builds on this module

    lock_subscribers(session, ids)
    if expected is None:
        isp = settings(session, lock=True)
        invoices.roll_series(isp, as_of)
        planned_with = None
        first = isp.next_invoice_number
    else:
        isp = settings(session)
        if invoices.series_rolls(isp, as_of):  # a new series: the batch before starts it
            return None
        planned_with = {**_isp_state(isp), "next_invoice_number": expected}
        first = expected
    cal = calendar(session)
    segment, rest = plan_ahead(session, isp, cal, ids, as_of, first, actor=actor)
    try:
        writes = prepare(session, segment)
    except Exception:  # bill_batch's own write isolates the bad row
        log.debug("a batch could not be made ready; billed as usual", exc_info=True)
        return None
    return _Ahead(session, ids, isp, cal, writes, rest, first, planned_with)


def _write_ahead(ahead: _Ahead, as_of: dt.date, report: RunReport, actor: str, number: int
                 ) -> list[int] | None:
    """In the writing thread: lock the ISP row (never waiting: this thread waits for
    nothing while the planning one holds the next batch's subscribers), check it is as the
    batch was planned with, write the batch and commit. Returns the ids with a suspension
    due, or None (the transaction rolled back) if the batch must be billed again."""
    from billing.batch import write_planned  # it builds on this module

    session = ahead.session
    try:
        with collector_paused():
            isp = ahead.isp
            if ahead.planned_with is not None:
                locked = _lock_isp_nowait(session)
                if locked is None or _isp_state(locked) != ahead.planned_with:
                    session.rollback()
                    return None
                isp = locked
            found = write_planned(session, isp, ahead.cal, ahead.writes, ahead.rest, as_of,
                                  report, actor=actor)
            session.commit()
    finally:
        session.close()
    if number in ANALYZE_AFTER_BATCH:
        _analyze(session)
    return found


def _overlapped_phase_one(factory: sessionmaker[Session], batches: Iterator[list[int]],
                          as_of: dt.date, report: RunReport, actor: str) -> list[int]:
    """Phase one with Python's planning and the database's writing overlapped. While a
    writing thread writes and commits batch N (:func:`_write_ahead`), this thread locks the
    subscribers of batch N+1 in another session, reads and plans them and formats their rows
    (:func:`_plan_ahead`), numbering their invoices from where batch N's end; the writing
    thread then only sends finished bytes and waits on the database. Batch N+1 is handed over
    once batch N is committed; it is written only if the ISP row is as planned with (the
    counter where expected, no other setting changed), and otherwise billed as
    :func:`_phase_one` does, alone. From the first account that needs the per-account path
    on, a batch is billed by the writing thread as :func:`_phase_one` does, and the next
    batch is billed alone after it (its invoice numbers start where that one's end, and it
    most likely holds such accounts too); planning ahead resumes after a batch without.
    Batches commit one at a time, in order: invoice numbers stay gapless, and a run stopped
    half-way leaves whole batches."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-write") as writer:
        return _Overlap(factory, writer, as_of, report, actor).run(batches)


class _Overlap:
    """The state of :func:`_overlapped_phase_one`: the batch being written, if any."""

    def __init__(self, factory: sessionmaker[Session], writer: ThreadPoolExecutor,
                 as_of: dt.date, report: RunReport, actor: str) -> None:
        self.factory, self.writer = factory, writer
        self.as_of, self.report, self.actor = as_of, report, actor
        self.candidates: list[int] = []
        self.pending: tuple[Future[list[int] | None], list[int], int] | None = None
        self.expected: int | None = None  # the ISP's next number once the pending commits
        # whether the last batch held accounts that need a service of their own: the next
        # one most likely does too, and is billed alone (planning ahead would stop at the
        # first of them and hand the rest to the writing thread: slower than alone)
        self.mixed = False

    def run(self, batches: Iterator[list[int]]) -> list[int]:
        try:
            for number, ids in enumerate(batches, 1):
                if self.expected is None:  # known once the batch being written ends
                    again = self.settle()
                    if again is not None:
                        self.alone(*again)
                if self.mixed:
                    self.alone(ids, number)
                    continue
                session = self.factory()
                try:
                    with collector_paused():
                        ahead = _plan_ahead(session, ids, self.as_of, self.actor,
                                            self.expected)
                    again = self.settle()
                except BaseException:
                    session.close()
                    raise
                if again is not None or ahead is None:
                    session.close()  # its locks released before anything waits
                    if again is not None:  # the batch before first, then this one
                        self.alone(*again)
                    self.alone(ids, number)
                    continue
                # where the next batch's numbers start: unknown until the accounts of the
                # batch's rest are billed
                self.expected = (None if ahead.rest is not None
                                 else ahead.first + ahead.writes.drafted)
                self.mixed = ahead.rest is not None
                self.pending = (self.writer.submit(_write_ahead, ahead, self.as_of,
                                                   self.report, self.actor, number),
                                ids, number)
            again = self.settle()
            if again is not None:
                self.alone(*again)
        finally:
            if self.pending is not None:  # an error here: the batch being written ends
                with contextlib.suppress(Exception):
                    self.pending[0].result()
        return self.candidates

    def settle(self) -> tuple[list[int], int] | None:
        """Wait for the batch being written (the writing thread never waits for the next
        batch's subscribers, which the caller may hold). Its ids and number if it is to be
        billed again, alone (the ISP row was not as planned with)."""
        if self.pending is None:
            return None
        (future, ids, number), self.pending = self.pending, None
        found = future.result()
        if found is None:
            log.info("billing batch %d planned ahead: the ISP row changed meanwhile; "
                     "billed again", number)
            return ids, number
        self.candidates.extend(found)
        return None

    def alone(self, ids: list[int], number: int) -> None:
        """Bill the batch *ids* as :func:`_phase_one` does, nothing else being written."""
        self.expected = None
        own: list[int] = []
        with self.factory() as session:
            with collector_paused():
                self.candidates.extend(_phase_one(session, ids, self.as_of, self.report,
                                                  self.actor, per_account=False, own=own))
            session.commit()
        self.mixed = bool(own)
        if number in ANALYZE_AFTER_BATCH:
            _analyze(session)


def billing_run(factory: sessionmaker[Session], as_of: dt.date, *, dry_run: bool = False,
                confirm_suspensions: bool = False, actor: str = "billing-run",
                batch_size: int = BATCH_SIZE, per_account: bool = False,
                holds: SuspensionHolds | None = None, overlap: bool = True) -> RunReport:
    """Run billing for *as_of* (the ISP's local date). See the module documentation.

    Each batch is planned in memory and written set-based (:mod:`billing.batch`); accounts
    that need a service of their own go through :func:`process` one by one. *per_account*
    sends every account through :func:`process` (the reference the batch path is tested
    against). *holds* names subscribers not to suspend now (see :data:`SuspensionHolds`).
    On PostgreSQL a batch is planned while the one before is finished and committed
    (:func:`_overlapped_phase_one`); *overlap* False bills them one after the other."""
    report = RunReport(as_of=as_of, dry_run=dry_run)
    dry = factory() if dry_run else None
    if dry is not None:
        dry.begin()

    def txn() -> Session:
        return dry if dry is not None else factory()

    try:
        candidates: list[int] = []
        batches = _batches(factory, dry, as_of, batch_size)
        if overlap and dry is None and not per_account and _overlaps(factory):
            candidates = _overlapped_phase_one(factory, batches, as_of, report, actor)
            batches = iter(())  # all billed
        for number, ids in enumerate(batches, 1):
            session = txn()
            try:
                candidates += _phase_one(session, ids, as_of, report, actor, per_account)
                if dry is None:
                    session.commit()
                    if number in ANALYZE_AFTER_BATCH:
                        _analyze(session)
            finally:
                if dry is None:
                    session.close()
        _suspend_phase(factory, dry, candidates, as_of, report, confirm_suspensions, actor,
                       batch_size, holds, per_account)
        if report.errors:
            _alert_errors(factory, dry, report)
        if dry is None:
            with factory() as session, session.begin():
                mark_billed_through(session, as_of)
    finally:
        if dry is not None:
            dry.rollback()
            dry.close()
    log.info("billing run %s%s: %s%s", as_of, " (dry run)" if dry_run else "", report.counts,
             f", {len(report.errors)} FAILED" if report.errors else "")
    return report


def run_days(factory: sessionmaker[Session], first: dt.date, last: dt.date, **kw: object
             ) -> list[RunReport]:
    """:func:`billing_run` for every day from *first* to *last*, as a scheduler that never
    missed a day would have run it (demos, simulations and benchmarks build history with
    it; a real catch-up is one run, whose ladder keeps its spacing)."""
    reports = []
    day = first
    while day <= last:
        reports.append(billing_run(factory, day, **kw))  # type: ignore[arg-type]
        day += dt.timedelta(days=1)
    return reports


def _alert_errors(factory: sessionmaker[Session], dry: Session | None, report: RunReport
                  ) -> None:
    session = dry if dry is not None else factory()
    try:
        raise_alert(session, "billing-errors",
                    f"billing run {report.as_of}: {len(report.errors)} subscriber(s) could not "
                    "be billed; the others were. See the run's errors and the log.",
                    {"as_of": str(report.as_of),
                     "errors": [str(e) for e in report.errors[:100]]})
        if dry is None:
            session.commit()
    finally:
        if dry is None:
            session.close()


def _hold_for_pending_payments(factory: sessionmaker[Session], dry: Session | None,
                               candidates: list[int], report: RunReport,
                               holds: SuspensionHolds | None) -> list[int]:
    """Leave out subscribers *holds* names, e.g. with a payment pending on a gateway whose
    confirmations are failing: they may well have paid. Reported and alerted."""
    if not candidates or holds is None:
        return candidates
    session = dry if dry is not None else factory()
    try:
        held = holds(session, candidates, utcnow())
        if not held:
            return candidates
        for sub in _load(session, sorted(held)):
            report.add(sub, "suspension_held", held[sub.id])
        alert = raise_alert(session, "suspension-held-payment",
                            f"{len(held)} suspension(s) held: a payment is pending on a "
                            "gateway whose confirmations are failing",
                            {"subscribers": sorted(held)[:200]})
        if dry is None:
            log.warning("%s", alert.message)
            session.commit()
        return [c for c in candidates if c not in held]
    finally:
        if dry is None:
            session.close()


def _suspend_phase(factory: sessionmaker[Session], dry: Session | None, candidates: list[int],
                   as_of: dt.date, report: RunReport, confirm: bool, actor: str,
                   batch_size: int, holds: SuspensionHolds | None, per_account: bool) -> None:
    candidates = _hold_for_pending_payments(factory, dry, candidates, report, holds)
    if not candidates:
        return
    session = dry if dry is not None else factory()
    try:
        isp = settings(session)
        active = session.scalar(select(func.count()).where(
            Subscriber.status == SubscriberStatus.ACTIVE)) or 0
        limit = max(active * isp.suspension_guard_percent / 100, isp.suspension_guard_min)
        if len(candidates) > limit and not confirm:
            alert = raise_alert(
                session, "bulk-suspension-held",
                f"billing run {as_of} would suspend {len(candidates)} of {active} active "
                f"subscribers (more than {isp.suspension_guard_percent}%): nobody suspended. "
                "Check payments and gateways, then run 'radbill billing run "
                "--confirm-suspensions'.",
                {"as_of": str(as_of), "candidates": len(candidates), "active": active},
            )
            report.suspensions_blocked = len(candidates)
            if dry is None:
                report.alert_id = alert.id
                log.error("BULK SUSPENSION HELD: %s", alert.message)
            else:
                log.warning("dry run: a real run would hold its suspensions: %s", alert.message)
            if dry is None:
                session.commit()
            return
    finally:
        if dry is None:
            session.close()
    # set-based in small transactions: the enforcement worker sees the first requests as soon
    # as the first few hundred accounts commit
    size = batch_size if per_account else min(batch_size, SUSPEND_BATCH_SIZE)
    for i in range(0, len(candidates), size):
        session = dry if dry is not None else factory()
        try:
            _suspend_chunk(session, candidates[i : i + size], as_of, report, actor,
                           per_account)
            if dry is None:
                session.commit()
        finally:
            if dry is None:
                session.close()


def _suspend_chunk(session: Session, ids: list[int], as_of: dt.date, report: RunReport,
                   actor: str, per_account: bool) -> None:
    """Phase two for the subscribers *ids*, in the caller's transaction (the subscribers
    locked before the ISP row, as in :func:`_phase_one`)."""
    from billing.batch import lock_subscribers, suspend_batch  # it builds on this module

    lock_subscribers(session, ids)
    isp = settings(session, lock=True)
    cal = calendar(session)
    if per_account:
        for sub in _load(session, ids):
            process_guarded(session, isp, cal, sub, as_of, report, suspend=True, actor=actor)
        return
    suspend_batch(session, isp, cal, ids, as_of, report, actor=actor)
