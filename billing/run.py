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

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, and_, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, invoices, ledger
from billing.cycles import FIXED_DAY, full_period_days, period_end
from billing.dunning import Account, Action, Calendar, Ladder, UnpaidInvoice, due_actions
from billing.isp import calendar, local_today, settings, start_of_day_utc
from billing.models import (
    BillingMode,
    Invoice,
    InvoiceKind,
    IspSettings,
    LedgerKind,
    Outbox,
    Plan,
    Promise,
    Subscriber,
    SubscriberStatus,
)
from billing.money import prorate
from billing.plan_changes import apply_scheduled
from billing.plans import cycle_of
from billing.subscribers import start_billing
from radbill.db import AUTH_FEED, bump, utcnow
from radbill.ops import raise_alert

log = logging.getLogger("radbill.billing")
# Subscribers per transaction. The batch path writes each batch with a few statements, so
# larger batches mean fewer round trips; each holds the ISP row (numbering) for its duration.
BATCH_SIZE = 2000
BILLABLE = (SubscriberStatus.ACTIVE, SubscriberStatus.SUSPENDED)


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


def ladder_of(plan: Plan) -> Ladder:
    """The plan's dunning settings."""
    return Ladder(grace_days=plan.grace_days, reminder_days=plan.reminder_days,
                  late_fee=plan.late_fee, late_fee_percent=plan.late_fee_percent,
                  late_fee_cap=plan.late_fee_cap, throttle_after_days=plan.throttle_after_days,
                  terminate_after_days=plan.terminate_after_days)


class Renewing(Protocol):
    """What renewing reads and sets on a subscriber (a :class:`Subscriber`, or a row of one
    in :mod:`billing.batch`)."""

    username: str
    anchor_day: int | None
    setup_fee_charged: bool


def _period_lines(sub: Renewing, plan: Plan, start: dt.date, end: dt.date) -> list[
        invoices.Line]:
    cycle = cycle_of(plan)
    anchor = sub.anchor_day or start.day
    whole = full_period_days(cycle, end, anchor)
    days = (end - start).days
    label = f"{plan.name} {start:%d %b %Y} - {end - dt.timedelta(days=1):%d %b %Y}"
    if cycle.kind == "monthly" and cycle.anchor == FIXED_DAY and days < whole:
        lines = [invoices.Line(f"{label} ({days} of {whole} days)",
                               prorate(plan.price, days, whole, plan.currency))]
    else:
        lines = [invoices.Line(label, plan.price)]
    if plan.setup_fee > 0 and not sub.setup_fee_charged:
        lines.append(invoices.Line("Connection (setup) fee", plan.setup_fee))
        sub.setup_fee_charged = True
    return lines


def _lead_days(plan: Plan, start: dt.date, end: dt.date) -> int:
    """How many days before a prepaid period its invoice is issued: the reminder lead, but
    always less than a period (a daily pack is invoiced on its day)."""
    return max(0, min(plan.reminder_days, (end - start).days - 1))


def renew(session: Session, isp: IspSettings, sub: Subscriber, plan: Plan, as_of: dt.date,
          report: RunReport) -> None:
    """Issue every invoice that has come due by *as_of*. Prepaid periods are invoiced ahead
    (the reminder lead before they start, due on their first day; the first one at
    activation), postpaid periods at their end, due after the ISP's payment terms."""
    assert sub.period_start is not None  # set at activation
    assert sub.period_end is not None
    prepaid = plan.billing_mode is BillingMode.PREPAID
    cycle = cycle_of(plan)
    last = session.scalar(select(func.max(Invoice.period_start)).where(
        Invoice.subscriber_id == sub.id, Invoice.kind == InvoiceKind.PERIOD))

    def bill(start: dt.date, end: dt.date, issued: dt.date, due: dt.date,
             billed_plan: Plan) -> None:
        nonlocal last
        inv = invoices.issue(session, isp=isp, sub=sub, plan=billed_plan, period_start=start,
                             period_end=end, issued_on=issued, due_on=due,
                             lines=_period_lines(sub, billed_plan, start, end))
        last = start
        report.add(sub, "invoice", f"{inv.number} {inv.currency} {inv.total} "
                                   f"{start}..{end} due {inv.due_on}")

    for _ in range(400):  # a year of missed daily runs at most; the next run goes on
        start, end = sub.period_start, sub.period_end
        if prepaid:
            if start <= as_of and (last is None or start > last):
                bill(start, end, start, start, plan)
            # the next period is invoiced ahead, at the plan it will run on
            upcoming = sub.next_plan or plan
            following = period_end(cycle_of(upcoming), end, sub.anchor_day or end.day)
            issue_on = end - dt.timedelta(days=_lead_days(upcoming, end, following))
            if issue_on <= as_of and (last is None or end > last):
                bill(end, following, issue_on, end, upcoming)
        elif end <= as_of and (last is None or start > last):
            bill(start, end, end, end + dt.timedelta(days=isp.postpaid_due_days), plan)
        if end > as_of:
            return
        switched = apply_scheduled(session, sub, "billing-run")
        if switched is not None:
            plan, cycle = switched, cycle_of(switched)
            prepaid = plan.billing_mode is BillingMode.PREPAID
            report.add(sub, "plan_change", f"now on {plan.name}")
        sub.period_start = end
        sub.period_end = period_end(cycle, end, sub.anchor_day or end.day)


def sync_paid_until(session: Session, isp: IspSettings, sub: Subscriber, plan: Plan) -> None:
    """Prepaid: service runs to the end of the last paid period plus the grace days."""
    if plan.billing_mode is not BillingMode.PREPAID:
        return
    end = session.scalar(select(func.max(Invoice.period_end)).where(
        Invoice.subscriber_id == sub.id, Invoice.status == "paid"))
    paid_until = (start_of_day_utc(isp, end + dt.timedelta(days=plan.grace_days))
                  if end is not None else None)
    if paid_until != sub.paid_until:
        sub.paid_until = paid_until
        sub.auth_version = bump(session, AUTH_FEED)


def account_state(session: Session, sub: Subscriber, plan: Plan, today: dt.date
                  ) -> tuple[Account, ledger.Settlement]:
    """The ladder's view of a subscriber, after settling its invoices."""
    settled = ledger.settle(session, sub.id, today)
    done = frozenset(session.scalars(select(Outbox.dedupe_key)
                                     .where(Outbox.subscriber_id == sub.id)))
    promise = accounts.active_promise(session, sub.id)
    account = Account(
        subscriber_id=sub.id, username=sub.username, status=str(sub.status),
        currency=plan.currency,
        unpaid=tuple(UnpaidInvoice(inv.id, inv.number, inv.due_on, inv.total, outstanding)
                     for inv, outstanding in settled.open_invoices),
        throttled=sub.dunning_throttled, suspended_on=sub.suspended_on,
        suspended_for_nonpayment=sub.suspended_for_nonpayment,
        promise_until=promise.until if promise else None, done=done,
    )
    return account, settled


def apply_action(session: Session, sub: Subscriber, plan: Plan, action: Action,
                 today: dt.date, report: RunReport, actor: str) -> None:
    """Carry out one ladder step."""
    kind = action.kind
    if kind in ("reminder", "due_notice", "final_reminder"):
        inv = session.get(Invoice, action.invoice_id)
        assert inv is not None
        invoices.notify(session, sub, kind, action.key, invoice=inv.number, total=inv.total,
                        currency=inv.currency, due_on=inv.due_on, payment_link=inv.payment_link)
        report.add(sub, kind, inv.number)
    elif kind == "late_fee":
        inv = session.get(Invoice, action.invoice_id)
        assert inv is not None
        assert action.amount is not None
        ledger.post(session, subscriber_id=sub.id, kind=LedgerKind.LATE_FEE,
                    amount=action.amount, currency=inv.currency, effective_on=today,
                    description=f"Late fee on {inv.number}", invoice_id=inv.id, actor=actor)
        invoices.notify(session, sub, "late_fee", action.key, invoice=inv.number,
                        amount=action.amount, currency=inv.currency)
        report.add(sub, "late_fee", f"{inv.currency} {action.amount} on {inv.number}")
    elif kind == "throttle":
        accounts.set_throttle(session, sub, True, action.reason)
        invoices.notify(session, sub, "throttled", action.key, reason=action.reason)
        report.add(sub, "throttle", action.reason)
    elif kind == "promise_broken":
        promise = accounts.active_promise(session, sub.id)
        if promise is not None:
            promise.status = "broken"
        invoices.notify(session, sub, "promise_broken", action.key)
        report.add(sub, "promise_broken", action.key.rsplit(":", 1)[1])
    elif kind == "suspend":
        if accounts.suspend(session, sub, today, action.reason, actor):
            report.add(sub, "suspend", action.reason)
    elif kind == "reconnect":
        if accounts.reactivate(session, sub, today, action.reason, actor):
            report.add(sub, "reconnect", action.reason)
    elif kind == "terminate":
        from billing import subscribers

        subscribers.change_status(session, sub.username, SubscriberStatus.TERMINATED,
                                  actor=actor, reason=action.reason)
        accounts.enforce(session, sub, "terminate", action.reason)
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
        account, _settled = account_state(session, sub, plan, as_of)
        actions = due_actions(account, as_of, ladder_of(plan), cal)
        todo = [a for a in actions if a.kind != "suspend" or suspend]
        pending = [a for a in actions if a.kind == "suspend" and not suspend]
        if not todo:
            break
        for action in todo:
            apply_action(session, sub, plan, action, as_of, report, actor)
    ledger.settle(session, sub.id, as_of)
    sync_paid_until(session, isp, sub, plan)
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


def _guarded(session: Session, isp: IspSettings, cal: Calendar, sub: Subscriber,
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
            Subscriber.period_end <= as_of,
            and_(Plan.billing_mode == BillingMode.PREPAID,
                 Subscriber.period_end <= as_of + dt.timedelta(days=max_lead)),
            # prepaid: the current period is not invoiced yet (activation)
            and_(Plan.billing_mode == BillingMode.PREPAID, Subscriber.period_start <= as_of,
                 ~exists().where(Invoice.subscriber_id == Subscriber.id,
                                 Invoice.period_start == Subscriber.period_start,
                                 Invoice.kind == InvoiceKind.PERIOD)),
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
               actor: str, per_account: bool) -> list[int]:
    """Everything but suspensions for the subscribers *ids*, in the caller's transaction.
    Returns those with a suspension due."""
    isp = settings(session, lock=True)
    cal = calendar(session)
    if not per_account:
        from billing.batch import bill_batch  # it builds on this module

        return bill_batch(session, isp, cal, ids, as_of, report, actor=actor)
    return [sub.id for sub in _load(session, ids)
            if _guarded(session, isp, cal, sub, as_of, report, suspend=False, actor=actor)]


def billing_run(factory: sessionmaker[Session], as_of: dt.date, *, dry_run: bool = False,
                confirm_suspensions: bool = False, actor: str = "billing-run",
                batch_size: int = BATCH_SIZE, per_account: bool = False) -> RunReport:
    """Run billing for *as_of* (the ISP's local date). See the module documentation.

    Each batch is planned in memory and written set-based (:mod:`billing.batch`); accounts
    that need a service of their own go through :func:`process` one by one. *per_account*
    sends every account through :func:`process` (the reference the batch path is tested
    against)."""
    report = RunReport(as_of=as_of, dry_run=dry_run)
    dry = factory() if dry_run else None
    if dry is not None:
        dry.begin()

    def txn() -> Session:
        return dry if dry is not None else factory()

    try:
        candidates: list[int] = []
        for number, ids in enumerate(_batches(factory, dry, as_of, batch_size), 1):
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
                       batch_size)
        if report.errors:
            _alert_errors(factory, dry, report)
    finally:
        if dry is not None:
            dry.rollback()
            dry.close()
    log.info("billing run %s%s: %s%s", as_of, " (dry run)" if dry_run else "", report.counts,
             f", {len(report.errors)} FAILED" if report.errors else "")
    return report


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
                               candidates: list[int], report: RunReport) -> list[int]:
    """Leave out subscribers with a payment pending on a gateway whose confirmations are
    failing: they may well have paid. Reported and alerted."""
    from payments.intents import holds  # payments builds on billing, not the other way round

    if not candidates:
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
                   batch_size: int) -> None:
    candidates = _hold_for_pending_payments(factory, dry, candidates, report)
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
                f"Check payments and gateways, then run 'radbill billing run --as-of {as_of} "
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
    for i in range(0, len(candidates), batch_size):
        session = dry if dry is not None else factory()
        try:
            isp = settings(session, lock=True)
            cal = calendar(session)
            for sub in _load(session, candidates[i : i + batch_size]):
                _guarded(session, isp, cal, sub, as_of, report, suspend=True, actor=actor)
            if dry is None:
                session.commit()
        finally:
            if dry is None:
                session.close()
