"""What a subscriber sees and does in the portal, always of their own account: every function
takes the logged-in :class:`Subscriber` and reaches nothing of anyone else's (an invoice
number of another subscriber is "not found", exactly as one that does not exist).

Changes go through the owning parts' services (billing's promises and plan changes,
notify's preferences) and are audited as ``subscriber:<username>``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import ledger
from billing.isp import settings as isp_settings
from billing.models import Invoice, InvoiceKind, Payment, Plan, Subscriber
from billing.plan_changes import NEXT_CYCLE, NOW, change_plan
from billing.promises import MAX_PROMISE_DAYS, promise_to_pay
from billing.standing import active_promise
from notify.delivery import isp_view, set_preference
from notify.models import Preference
from portal.auth import actor
from portal.models import PlanChangeRequest
from radbill import audit
from radbill.db import utcnow
from radbill.errors import Conflict, InvalidInput, NotFound

LANGUAGES = ("en", "bn")
LIST_LIMIT = 50
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Overview:
    """The portal's home page of one subscriber."""

    first_name: str
    username: str
    status: str
    status_reason: str | None
    plan: str
    plan_price: Decimal
    currency: str
    download_bps: int
    upload_bps: int
    period_start: dt.date | None
    period_end: dt.date | None
    amount_due: Decimal
    overdue: Decimal
    open_invoices: tuple[tuple[Invoice, Decimal], ...]
    promise_until: dt.date | None
    pending_plan: str | None
    sms_opt_out: bool


def default_language(session: Session) -> str:
    """The ISP's default portal language: Bengali in Bangladesh, English elsewhere."""
    return "bn" if isp_view(session).country == "BD" else "en"


def language_of(session: Session, sub: Subscriber) -> str:
    """The subscriber's chosen language, or the ISP's default."""
    pref = session.get(Preference, sub.id)
    if pref is not None and pref.locale in LANGUAGES:
        return str(pref.locale)
    return default_language(session)


def overview(session: Session, sub: Subscriber, today: dt.date) -> Overview:
    """Status, plan, what is owed and the subscriber's settings."""
    settled = ledger.settle(session, sub.id, today)
    promise = active_promise(session, sub.id)
    pending = session.scalars(select(PlanChangeRequest).where(
        PlanChangeRequest.subscriber_id == sub.id, PlanChangeRequest.status == "pending")
        .order_by(PlanChangeRequest.id.desc()).limit(1)).first()
    pending_plan = session.get(Plan, pending.plan_id).name if pending else None  # type: ignore[union-attr]
    pref = session.get(Preference, sub.id)
    words = (sub.full_name or "").split()
    return Overview(
        first_name=words[0][:40] if words else "", username=sub.username,
        status=str(sub.status), status_reason=sub.status_reason, plan=sub.plan.name,
        plan_price=sub.plan.price, currency=sub.plan.currency,
        download_bps=sub.plan.download_bps, upload_bps=sub.plan.upload_bps,
        period_start=sub.period_start, period_end=sub.period_end,
        # (a sum of nothing is Decimal("0"): shown as 0.00 like every other amount)
        amount_due=settled.outstanding.quantize(CENT), overdue=settled.overdue(today),
        open_invoices=settled.open_invoices, promise_until=promise.until if promise else None,
        pending_plan=pending_plan, sms_opt_out=bool(pref and pref.sms_opt_out))


def invoices_of(session: Session, sub: Subscriber, limit: int = LIST_LIMIT) -> list[Invoice]:
    """The subscriber's invoices and credit notes, newest first."""
    return list(session.scalars(select(Invoice).where(Invoice.subscriber_id == sub.id)
                                .order_by(Invoice.issued_on.desc(), Invoice.id.desc())
                                .limit(limit)))


def invoice_of(session: Session, sub: Subscriber, number: str) -> Invoice:
    """The subscriber's own invoice *number*; NotFound for anyone else's (same answer as for
    a number that does not exist)."""
    inv = session.scalars(select(Invoice).where(Invoice.number == number[:32],
                                                Invoice.subscriber_id == sub.id)
                          ).one_or_none()
    if inv is None:
        raise NotFound("no such invoice")
    return inv


def payable_invoice(session: Session, sub: Subscriber, today: dt.date) -> Invoice | None:
    """The oldest open invoice (paying it pays everything owed now), or None."""
    settled = ledger.settle(session, sub.id, today)
    for inv, outstanding in settled.open_invoices:
        if outstanding > 0 and inv.kind != InvoiceKind.CREDIT_NOTE and inv.pay_token:
            return inv
    return None


def payments_of(session: Session, sub: Subscriber, limit: int = LIST_LIMIT) -> list[Payment]:
    """The subscriber's payments, newest first."""
    return list(session.scalars(select(Payment).where(Payment.subscriber_id == sub.id)
                                .order_by(Payment.received_at.desc(), Payment.id.desc())
                                .limit(limit)))


def promise(session: Session, sub: Subscriber, until: dt.date, today: dt.date) -> None:
    """A self-service promise to pay by *until*, within the ISP's limits (promises per
    billing period, at most :data:`billing.promises.MAX_PROMISE_DAYS` days ahead)."""
    if settled_nothing_owed(session, sub, today):
        raise Conflict("nothing is owed: no promise needed")
    promise_to_pay(session, sub.username, until, today=today, actor=actor(sub))


def settled_nothing_owed(session: Session, sub: Subscriber, today: dt.date) -> bool:
    return ledger.settle(session, sub.id, today).outstanding <= 0


def promise_limit(today: dt.date) -> dt.date:
    """The latest date a promise made today may name."""
    return today + dt.timedelta(days=MAX_PROMISE_DAYS)


def plans_offered(session: Session, sub: Subscriber) -> list[Plan]:
    """Plans in the subscriber's currency they could move to."""
    return list(session.scalars(select(Plan).where(Plan.currency == sub.plan.currency,
                                                   Plan.id != sub.plan_id)
                                .order_by(Plan.price, Plan.name).limit(100)))


def request_plan_change(session: Session, sub: Subscriber, plan_name: str, effective: str
                        ) -> PlanChangeRequest:
    """Ask for another plan (an operator approves); one request pending at a time."""
    if effective not in (NOW, NEXT_CYCLE):
        raise InvalidInput(f"effective {effective[:20]!r}: use now or next_cycle")
    plan = next((p for p in plans_offered(session, sub) if p.name == plan_name[:64]), None)
    if plan is None:
        raise NotFound("no such plan")
    if session.scalar(select(PlanChangeRequest.id).where(
            PlanChangeRequest.subscriber_id == sub.id,
            PlanChangeRequest.status == "pending")) is not None:
        raise Conflict("a plan change request is already waiting for approval")
    req = PlanChangeRequest(subscriber_id=sub.id, plan_id=plan.id, effective=effective,
                            status="pending", requested_at=utcnow())
    session.add(req)
    session.flush()
    audit.record(session, actor=actor(sub), action="portal.plan_change_requested",
                 entity="subscriber", entity_id=sub.id,
                 after={"request": req.id, "plan": plan.name, "effective": effective})
    return req


def pending_requests(session: Session, limit: int = 500) -> list[PlanChangeRequest]:
    """Plan change requests waiting for an operator, oldest first."""
    return list(session.scalars(select(PlanChangeRequest).where(
        PlanChangeRequest.status == "pending").order_by(PlanChangeRequest.id).limit(limit)))


@dataclass(frozen=True)
class RequestView:
    """A plan change request as an operator reads it (the CLI and the admin page)."""

    id: int
    username: str | None
    current_plan: str | None
    requested_plan: str | None
    effective: str
    status: str
    requested_at: dt.datetime
    decided_by: str | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "username": self.username, "from": self.current_plan,
                "to": self.requested_plan, "effective": self.effective,
                "status": self.status, "requested_at": self.requested_at.isoformat(),
                "decided_by": self.decided_by}


def request_views(session: Session, requests: list[PlanChangeRequest]) -> list[RequestView]:
    """*requests* with the subscriber's name and the plans' names (at most
    :func:`pending_requests`' limit: the ids go in one bounded IN list each)."""
    if len(requests) > 1000:
        raise InvalidInput("too many requests at once")
    subs = {s.id: s for s in session.scalars(select(Subscriber).where(
        Subscriber.id.in_(sorted({r.subscriber_id for r in requests}))))} if requests else {}
    plan_ids = {r.plan_id for r in requests} | {s.plan_id for s in subs.values()}
    plans = {p.id: p.name for p in session.scalars(select(Plan).where(
        Plan.id.in_(sorted(plan_ids))))} if plan_ids else {}
    out = []
    for r in requests:
        sub = subs.get(r.subscriber_id)
        out.append(RequestView(r.id, sub.username if sub else None,
                               plans.get(sub.plan_id) if sub else None, plans.get(r.plan_id),
                               r.effective, r.status, r.requested_at, r.decided_by))
    return out


def decide(session: Session, request_id: int, *, approve: bool, by: str, today: dt.date,
           note: str | None = None) -> PlanChangeRequest:
    """An operator approves (the plan is changed through billing) or rejects a request."""
    req = session.scalars(select(PlanChangeRequest).where(PlanChangeRequest.id == request_id)
                          .with_for_update()).one_or_none()
    if req is None:
        raise NotFound(f"no plan change request {request_id}")
    if req.status != "pending":
        raise Conflict(f"plan change request {request_id} is already {req.status}")
    sub = session.get(Subscriber, req.subscriber_id)
    plan = session.get(Plan, req.plan_id)
    assert sub is not None
    assert plan is not None
    if approve:
        change_plan(session, sub.username, plan.name, effective=req.effective, today=today,
                    actor=by)
    req.status = "approved" if approve else "rejected"
    req.decided_at, req.decided_by = utcnow(), by[:64]
    req.note = (note or "")[:500] or None
    audit.record(session, actor=by, action=f"portal.plan_change_{req.status}",
                 entity="subscriber", entity_id=sub.id,
                 after={"request": req.id, "plan": plan.name, "effective": req.effective})
    return req


def set_sms_reminders(session: Session, sub: Subscriber, enabled: bool) -> None:
    """Opt out of (or back in to) SMS reminders."""
    set_preference(session, sub.username, sms_opt_out=not enabled)
    audit.record(session, actor=actor(sub), action="portal.sms_reminders", entity="subscriber",
                 entity_id=sub.id, after={"sms_reminders": enabled})


def set_language(session: Session, sub: Subscriber, language: str) -> None:
    """The subscriber's language (portal pages and messages)."""
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language[:8]!r}")
    set_preference(session, sub.username, locale=language)
    audit.record(session, actor=actor(sub), action="portal.language", entity="subscriber",
                 entity_id=sub.id, after={"language": language})


def isp_contact(session: Session) -> dict[str, str | None]:
    """The ISP's name, phone, e-mail and logo path, for the page header and footer."""
    isp = isp_settings(session)
    return {"name": isp.name, "phone": isp.phone, "email": isp.email, "logo": isp.logo_path}
