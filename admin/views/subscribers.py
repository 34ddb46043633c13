"""Subscribers: search and filters, the detail page (why offline, money, sessions, history)
and the operator's actions. Every action is one service call in one transaction; a refused
one re-renders the page with the message and the values that were typed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import Select

from admin.auth import requires
from admin.charts import bar_chart
from admin.db import box, commit, get_db, today
from admin.filters import human_bytes
from admin.roles import Permission
from admin.views.common import actor, status_of
from billing import accounts, invoices, ledger, payments, plan_changes, plans, promises, standing
from billing import subscribers as subs
from billing.models import Subscriber, SubscriberStatus
from notify import delivery as notify_delivery
from notify import outbox as notify_outbox
from radbill import audit
from radbill.errors import DomainError, InvalidInput
from radius import accounting, nas, postauth
from usage import service as usage_service

bp = Blueprint("subscribers", __name__, url_prefix="/subscribers")

USAGE_DAYS = 30
STATUSES = [str(s) for s in SubscriberStatus]


def search(args: dict[str, str]) -> list[Subscriber]:
    """Subscribers matching the search box and the status, plan and NAS filters."""
    db = get_db()
    usernames: Select[str] | None = None
    nas_name = args.get("nas") or ""
    if nas_name:
        match = [n for n in nas.list_nas(db) if n.name == nas_name]
        if not match:
            raise InvalidInput(f"unknown NAS {nas_name!r}")
        usernames = accounting.usernames_on_nas(match[0].ip_address)
    return list(subs.list_subscribers(db, status=args.get("status") or None,
                                      search=(args.get("q") or "").strip() or None,
                                      plan=args.get("plan") or None, usernames=usernames,
                                      limit=200))


@bp.route("/")
@requires(Permission.READ)
def index() -> Any:
    """Search by username, name or phone; filter by status, plan and NAS."""
    db = get_db()
    error, rows = None, []
    try:
        rows = search(dict(request.args))
    except DomainError as exc:
        error = str(exc)
    return render_template("subscribers.html", rows=rows, error=error, args=request.args,
                           statuses=STATUSES, plans=plans.list_plans(db),
                           nas_list=nas.list_nas(db)), 422 if error else 200


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.OPERATE)
def create() -> Any:
    """A new subscriber on a plan."""
    db = get_db()
    error = None
    if request.method == "POST":
        f = request.form
        try:
            sub = subs.create_subscriber(
                db, box(), username=f.get("username", "").strip(),
                password=f.get("password", ""), plan=f.get("plan", ""),
                service=f.get("service", "pppoe"), mac=f.get("mac") or None,
                ip=f.get("ip") or None, full_name=f.get("full_name") or None,
                phone=f.get("phone") or None, email=f.get("email") or None, actor=actor())
            notify_outbox.welcome(db, sub)
            commit()
        except DomainError as exc:
            db.rollback()
            error = str(exc)
        else:
            flash(f"Subscriber {sub.username} created.")
            return redirect(url_for(".detail", username=sub.username))
    return render_template("subscriber_new.html", error=error, form=request.form,
                           plans=plans.list_plans(db)), 422 if error else 200


IMPORT_MAX_BYTES = 64 * 1024 * 1024  # a million rows; other forms keep the app's 1 MB


@bp.route("/import", methods=["GET", "POST"])
@requires(Permission.OPERATE)
def import_file() -> Any:
    """Create subscribers from a CSV file: "Check" lists every bad row by line and reason
    and previews the good ones, writing nothing; "Import" writes all of them or none."""
    from billing import imports

    db = get_db()
    report, error = None, None
    if request.method == "POST":
        request.max_content_length = IMPORT_MAX_BYTES
        upload = request.files.get("file")
        dry_run = request.form.get("action") != "import"
        try:
            if upload is None or not upload.filename:
                raise InvalidInput("choose a CSV file")
            report = imports.import_csv(db, box(), imports.text_stream(upload.read()),
                                        actor=actor(), dry_run=dry_run)
            if report.errors or dry_run:
                db.rollback()
            else:
                commit()
                flash(f"{report.created} subscriber(s) imported.")
                return redirect(url_for(".index"))
        except DomainError as exc:
            db.rollback()
            error = str(exc)
    bad = error is not None or (report is not None and bool(report.errors))
    return render_template("subscriber_import.html", report=report, error=error,
                           columns=imports.COLUMNS), 422 if bad else 200


@bp.route("/export.csv")
@requires(Permission.OPERATE)
def export_file() -> Any:
    """Every subscriber as CSV (the import's columns); passwords only when asked for, and
    only for staff who may manage."""
    import csv
    import io

    from flask import Response

    from admin.db import factory
    from admin.filters import can
    from billing import imports

    with_passwords = request.args.get("with_passwords") == "1"
    if with_passwords and not can(Permission.MANAGE):
        abort(403)
    sessions, secrets_box, day = factory(), box(), today()
    if with_passwords:
        audit.record(get_db(), actor=actor(), action="subscriber.export", entity="subscriber",
                     entity_id="*", after={"with_passwords": True})
        commit()

    def lines() -> Any:
        # its own session, read while the response streams (the request's is closed by then)
        with sessions() as db:
            for row in imports.export_rows(db, secrets_box, with_passwords=with_passwords,
                                           today=day):
                out = io.StringIO()
                csv.writer(out).writerow(row)
                yield out.getvalue()

    return Response(lines(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=subscribers.csv"})


def why(sub: Subscriber, overdue: Any, promise: Any, decisions: list[Any]) -> list[str]:
    """Plain sentences saying why the subscriber can or cannot get online."""
    out: list[str] = []
    if sub.status is SubscriberStatus.SUSPENDED:
        since = f" since {sub.suspended_on}" if sub.suspended_on else ""
        kind = "for non-payment" if sub.suspended_for_nonpayment else "by an operator"
        out.append(f"Suspended {kind}{since}: {sub.status_reason or 'no reason given'}. "
                   "Logins land in the walled garden (or are rejected, by configuration).")
    elif sub.status is SubscriberStatus.DISABLED:
        out.append(f"Disabled: {sub.status_reason or 'no reason given'}. Logins are rejected.")
    elif sub.status is SubscriberStatus.TERMINATED:
        out.append("Terminated: the contract ended; this account never logs in again.")
    else:
        out.append("Active: logins are accepted at the plan's speed.")
    if overdue > 0:
        out.append(f"{overdue} {sub.plan.currency} is overdue.")
    if promise is not None:
        out.append(f"Promised to pay by {promise.until}.")
    if sub.dunning_throttled or sub.fup_throttled:
        out.append("Throttled to the plan's fair-usage speed.")
    elif sub.cap_throttled:
        out.append("Over this period's data cap: at the plan's fair-usage speed until the "
                   "period renews or a top-up is bought.")
    if sub.mac_address:
        out.append(f"Bound to MAC {sub.mac_address}: a login from another device is rejected.")
    rejects = [d for d in decisions if d.decision == "reject"]
    if decisions and decisions[0].decision == "reject":
        out.append(f"Last login was rejected ({rejects[0].reason}"
                   f"{': ' + rejects[0].reply_message if rejects[0].reply_message else ''}).")
    return out


def render_detail(username: str, *, error: str | None = None, status: int = 200,
                  form: dict[str, str] | None = None) -> Any:
    db = get_db()
    try:
        sub = subs.get_subscriber(db, username)
    except DomainError:
        abort(404)
    day = today()
    settled = ledger.settle(db, sub.id, day)  # computed here, rolled back with the request
    overdue = settled.overdue(day)
    promise = standing.active_promise(db, sub.id)
    decisions = postauth.recent_decisions(db, username, 10)
    sessions = accounting.sessions_for(db, username, 30)
    # metered per ISP day (usage part): a session over midnight counts on both days
    first = day - dt.timedelta(days=USAGE_DAYS)
    usage = {r.day: (r.download, r.upload)
             for r in usage_service.daily_usage(db, sub.id, first, day + dt.timedelta(days=1))}
    days = [first + dt.timedelta(days=i) for i in range(USAGE_DAYS + 1)]
    chart = bar_chart([(d.strftime("%d %b"), float(sum(usage.get(d, (0, 0))))) for d in days],
                      title=f"Data used per day by {username}, last {USAGE_DAYS} days",
                      fmt=lambda v: human_bytes(int(v)))
    onu, onu_chart = _onu(sub.id)
    return render_template(
        "subscriber.html", sub=sub, why=why(sub, overdue, promise, decisions),
        balance=settled.balance, overdue=overdue, promise=promise, decisions=decisions,
        ledger=ledger.entries(db, sub.id, 50),
        invoices=invoices.list_invoices(db, subscriber_id=sub.id, limit=50),
        payments=payments.list_payments(db, subscriber_id=sub.id, limit=50),
        sessions=sessions, usage_chart=chart,
        enforcement=accounts.enforcement_history(db, sub.id, 50),
        audit=audit.entries(db, entity="subscriber", entity_id=sub.id, limit=50),
        onu=onu, onu_chart=onu_chart,
        messages=notify_delivery.messages(db, subscriber_id=sub.id, limit=50),
        plans=plans.list_plans(db), methods=payments.METHODS, error=error,
        form=form or {}, today=day,
    ), status


def _onu(subscriber_id: int) -> tuple[dict[str, Any] | None, Any]:
    """The subscriber's ONU (FTTH) as last polled, and its Rx power history as a chart."""
    from olt import inventory

    db = get_db()
    onu = inventory.binding_of(db, subscriber_id)
    if onu is None or onu["onu_id"] is None:
        return onu, None
    samples = inventory.samples_of(db, onu["onu_id"], 96)
    floor = -40.0  # bars stand on -40 dBm: a longer bar is a stronger signal
    chart = bar_chart([(s.at.strftime("%d %b %H:%M"), (s.rx_dbm - floor) if s.rx_dbm is not None
                        else 0.0) for s in samples],
                      title=f"ONU {onu['ident']} Rx power (dBm), last {len(samples)} polls",
                      fmt=lambda v: f"{v + floor:.2f} dBm")
    return onu, chart


@bp.route("/<username>")
@requires(Permission.READ)
def detail(username: str) -> Any:
    """Status and why, plan, money, sessions with usage, enforcement and audit history."""
    return render_detail(username)


def page_action(username: str, run: Callable[[], str], anchor: str = "") -> Any:
    """Run one action of the subscriber page; commit and go back to the page (at *anchor*),
    or roll back and show the page with the error and the values typed."""
    try:
        message = run()
        commit()
    except DomainError as exc:
        get_db().rollback()
        return render_detail(username, error=str(exc), status=status_of(exc),
                             form=dict(request.form))
    flash(message)
    return redirect(url_for("subscribers.detail", username=username) + anchor)



def _date(field: str) -> dt.date:
    text = request.form.get(field, "")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a date (YYYY-MM-DD)") from None


@bp.route("/<username>/suspend", methods=["POST"])
@requires(Permission.OPERATE)
def suspend(username: str) -> Any:
    def run() -> str:
        changed = accounts.set_status_by_operator(
            get_db(), username, SubscriberStatus.SUSPENDED,
            reason=request.form.get("reason", ""), actor=actor())
        return f"{username} suspended." if changed else f"{username} was already suspended."
    return page_action(username, run)


@bp.route("/<username>/reconnect", methods=["POST"])
@requires(Permission.OPERATE)
def reconnect(username: str) -> Any:
    def run() -> str:
        changed = accounts.set_status_by_operator(
            get_db(), username, SubscriberStatus.ACTIVE,
            reason=request.form.get("reason", ""), actor=actor())
        return f"{username} reconnected." if changed else f"{username} was already active."
    return page_action(username, run)


@bp.route("/<username>/plan", methods=["POST"])
@requires(Permission.OPERATE)
def change_plan(username: str) -> Any:
    def run() -> str:
        result = plan_changes.change_plan(
            get_db(), username, request.form.get("plan", ""),
            effective=request.form.get("effective", "now"), today=today(), actor=actor())
        if result.effective == plan_changes.NEXT_CYCLE:
            return f"{username} moves to {request.form.get('plan')} at the next renewal."
        extra = f" Proration invoice {result.invoice_number}." if result.invoice_number else ""
        return f"{username} is now on {request.form.get('plan')}.{extra}"
    return page_action(username, run)


@bp.route("/<username>/payment", methods=["POST"])
@requires(Permission.OPERATE)
def record_payment(username: str) -> Any:
    def run() -> str:
        result = payments.record_payment(
            get_db(), username, request.form.get("amount", ""),
            method=request.form.get("method", "cash"),
            reference=request.form.get("reference", ""), today=today(), actor=actor())
        return (f"Payment recorded; balance {result.balance}, overdue {result.overdue}."
                + (" Reconnected." if result.reconnected else ""))
    return page_action(username, run)


@bp.route("/<username>/promise", methods=["POST"])
@requires(Permission.OPERATE)
def promise(username: str) -> Any:
    def run() -> str:
        p = promises.promise_to_pay(get_db(), username, _date("until"), today=today(),
                                    actor=actor())
        return f"{username} promised to pay by {p.until}."
    return page_action(username, run)


@bp.route("/<username>/clear-mac", methods=["POST"])
@requires(Permission.OPERATE)
def clear_mac(username: str) -> Any:
    def run() -> str:
        subs.set_mac(get_db(), username, None, actor=actor())
        return f"MAC binding of {username} cleared."
    return page_action(username, run)


@bp.route("/<username>/sessions/<int:session_id>/disconnect", methods=["POST"])
@requires(Permission.OPERATE)
def disconnect(username: str, session_id: int) -> Any:
    def run() -> str:
        row = accounting.get_session(get_db(), session_id)
        if row is None or row.username != username or row.stopped_at is not None:
            raise InvalidInput(f"session {session_id} is not an open session of {username}")
        accounts.request_disconnect(get_db(), username, nas_ip=row.nas_ip,
                                    acct_session_id=row.acct_session_id,
                                    reason=request.form.get("reason") or "operator request",
                                    actor=actor())
        return f"Disconnect of session {row.acct_session_id} requested."
    return page_action(username, run)


