"""The JSON API, ``/api/v1``: the same reads and actions as the pages, for integrations.

Every operation is declared once with :func:`operation`: its route, the permission it needs,
its query and body fields. The declaration validates the input (422 with a message per field),
and the OpenAPI document served at ``/api/v1/openapi.json`` is built from the same
declarations, so the document and the checks cannot drift apart. Authentication is a bearer
token (``radbill user token NAME``) that acts as its staff user, with that user's role.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from admin import users
from admin.auth import requires
from admin.db import box, commit, get_db, today
from admin.roles import Permission
from billing import accounts, invoices, ledger, payments, plan_changes, plans, promises, standing
from billing import subscribers as subs
from billing.models import Invoice, Payment, Subscriber, SubscriberStatus
from radbill.errors import Conflict, DomainError, InvalidInput, NotFound
from radius import accounting, nas
from radius.models import RadiusSession

bp = Blueprint("api", __name__, url_prefix="/api/v1")


# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input value: a query parameter or a member of the JSON body."""

    name: str
    type: str = "string"  # string | integer | boolean
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    max_length: int = 200
    format: str | None = None  # "date": YYYY-MM-DD
    minimum: int | None = None
    maximum: int | None = None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.enum:
            out["enum"] = list(self.enum)
        if self.type == "string":
            out["maxLength"] = self.max_length
            if self.required:
                out["minLength"] = 1
            if self.format:
                out["format"] = self.format
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Operation:
    """One API operation as the OpenAPI document describes it."""

    path: str
    method: str
    summary: str
    permission: Permission
    query: tuple[Field, ...] = ()
    body: tuple[Field, ...] = ()
    response: str | None = None  # a component schema name
    many: bool = False
    ok: int = 200
    path_params: tuple[tuple[str, str], ...] = field(default=())


OPERATIONS: list[Operation] = []


class InputError(InvalidInput):
    """Bad input, with a message per field."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _check(spec: Field, value: Any) -> Any:  # noqa: PLR0912 - one branch per rule
    if spec.type == "integer":
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValueError("must be a whole number") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("must be a whole number")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"must be at most {spec.maximum}")
        return value
    if spec.type == "boolean":
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if spec.required and not value.strip():
        raise ValueError("must not be empty")
    if len(value) > spec.max_length:
        raise ValueError(f"must be at most {spec.max_length} characters")
    if spec.enum and value not in spec.enum:
        raise ValueError(f"must be one of {', '.join(spec.enum)}")
    if spec.format == "date":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date, YYYY-MM-DD") from None
    return value


def _validate(specs: tuple[Field, ...], data: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    known = {s.name for s in specs}
    if strict:
        for name in data:
            if name not in known:
                errors[name] = "unknown field"
    for spec in specs:
        if spec.name not in data or data[spec.name] is None:
            if spec.required:
                errors[spec.name] = "is required"
            continue
        try:
            out[spec.name] = _check(spec, data[spec.name])
        except ValueError as exc:
            errors[spec.name] = str(exc)
    if errors:
        raise InputError(errors)
    return out


def operation(rule: str, method: str, summary: str, permission: Permission, *,
              query: tuple[Field, ...] = (), body: tuple[Field, ...] = (),
              response: str | None = None, many: bool = False, ok: int = 200,
              path_params: tuple[tuple[str, str], ...] = ()) -> Callable[[Callable[..., Any]],
                                                                         Callable[..., Any]]:
    """Declare, route and guard an API operation. The view receives ``inp``: the validated
    query parameters and body fields."""
    path = rule.replace("<int:", "<").replace("<", "{").replace(">", "}")
    OPERATIONS.append(Operation(path, method.lower(), summary, permission, query, body,
                                response, many, ok, path_params))

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Any:
            data: dict[str, Any] = {}
            g.api_body = body
            nul = {k: "must not contain NUL characters" for k, v in kwargs.items()
                   if isinstance(v, str) and "\x00" in v}
            if nul:  # PostgreSQL text cannot hold them: refuse before any query
                raise InputError(nul)
            if body:
                raw = request.get_json(silent=True) if request.data else {}
                if not isinstance(raw, dict):
                    raise InputError({"body": "must be a JSON object"})
                data = _validate(body, raw, strict=True)
            if query or request.args:
                data.update(_validate(query, request.args.to_dict(), strict=True))
            return view(inp=data, **kwargs)

        endpoint = f"{view.__name__}"
        bp.add_url_rule(rule, endpoint, requires(permission)(wrapped), methods=[method])
        return wrapped

    return decorate


# -- authentication and errors -----------------------------------------------------------------


@bp.before_request
def authenticate() -> None:
    """The staff user of the bearer token, or None (the route then answers 401)."""
    g.user = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        db = get_db()
        g.user = users.token_user(db, header.removeprefix("Bearer ").strip())
        if db.dirty:  # the token's last use, on its own before the request's work
            commit()


def error_response(status: int, code: str, message: str,
                   fields: dict[str, str] | None = None) -> Response:
    """The one error shape: ``{"error", "message", "fields"}``."""
    resp = jsonify({"error": code, "message": message, "fields": fields or {}})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="radbill"'
    return resp


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError) -> Response:
    get_db().rollback()
    if isinstance(exc, InputError):
        return error_response(422, "invalid", "the input is not valid", exc.fields)
    if isinstance(exc, NotFound):
        # An unknown thing named in the body (a plan) is bad input; the path's own resource
        # was looked up first and answered 404 already.
        if request.method == "GET":
            return error_response(404, "not_found", str(exc))
        return error_response(422, "invalid", str(exc), _field_of(str(exc)))
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", str(exc))
    return error_response(422, "invalid", str(exc), _field_of(str(exc)))


def _field_of(message: str) -> dict[str, str]:
    """The body field a service's message is about, when it names one."""
    text = message.lower()
    for spec in g.get("api_body", ()):
        if spec.name.replace("_", " ") in text or spec.name in text:
            return {spec.name: message}
    return {}


def http_error(exc: HTTPException) -> Response:
    """JSON for every HTTP error under /api/."""
    code = exc.code or 500
    names = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 413: "too_large"}
    messages = {401: "a valid API token is required (Authorization: Bearer ...)",
                403: "this token's role does not allow this operation"}
    resp = error_response(code, names.get(code, "error"),
                          messages.get(code, exc.description or exc.name))
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            resp.headers["Allow"] = value
    return resp


# -- representations ---------------------------------------------------------------------------


def subscriber_json(sub: Subscriber) -> dict[str, Any]:
    return {**subs.summary(sub), "created_at": sub.created_at.isoformat(),
            "period_end": str(sub.period_end) if sub.period_end else None}


def invoice_json(inv: Invoice, username: str | None = None) -> dict[str, Any]:
    return {**invoices.summary(inv), "kind": str(inv.kind), "subscriber": username}


def payment_json(p: Payment, username: str | None) -> dict[str, Any]:
    return {"id": p.id, "subscriber": username, "amount": str(p.amount),
            "currency": p.currency, "method": p.method, "reference": p.reference,
            "received_at": p.received_at.isoformat(), "actor": p.actor,
            "status": str(getattr(p, "status", "recorded"))}


def session_json(row: RadiusSession) -> dict[str, Any]:
    return {"id": row.id, "username": row.username, **accounting.session_summary(row)}


def _names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = get_db().query(Subscriber.id, Subscriber.username).filter(Subscriber.id.in_(ids))
    return {i: n for i, n in rows}  # noqa: C416 - Row tuples, not pairs, to mypy


def _subscriber(username: str) -> Subscriber:
    try:
        return subs.get_subscriber(get_db(), username)
    except NotFound:
        abort(404)


def _actor() -> str:
    return f"{g.user.username} (api)"


USERNAME = ("username", "The subscriber's login name.")
REASON = Field("reason", description="Why (kept in the audit log).", max_length=500)


# -- operations --------------------------------------------------------------------------------


@bp.route("/openapi.json")
@requires(Permission.PUBLIC)
def openapi() -> Response:
    """The OpenAPI 3.0 document of this API."""
    return jsonify(openapi_document())


@operation("/dashboard", "GET", "The dashboard figures", Permission.READ, response="Dashboard")
def dashboard(inp: dict[str, Any]) -> Response:
    from admin.views.dashboard import summary

    d = summary()
    return jsonify({
        "today": str(d["today"]), "status_counts": d["status_counts"], "online": d["online"],
        "revenue_today": {c: str(v) for c, v in d["revenue_today"].items()},
        "revenue_month": {c: str(v) for c, v in d["revenue_month"].items()},
        "overdue_totals": d["overdue_totals"], "overdue_subscribers": d["overdue_count"],
        "renewals_next_7_days": d["renewals_count"], "failed_job_runs": len(d["failed_runs"]),
        "open_alerts": len(d["alerts"])})


@operation("/subscribers", "GET", "Search subscribers", Permission.READ, response="Subscriber",
           many=True, query=(
               Field("q", description="Part of a username, name or phone number."),
               Field("status", enum=tuple(str(s) for s in SubscriberStatus)),
               Field("plan", description="Plan name."),
               Field("nas", description="NAS name: subscribers seen on it."),
               Field("limit", "integer", minimum=1, maximum=1000)))
def subscriber_list(inp: dict[str, Any]) -> Response:
    from admin.views.subscribers import search

    args = {k: str(v) for k, v in inp.items() if k != "limit"}
    rows = search(args)[: inp.get("limit", 200)]
    return jsonify([subscriber_json(s) for s in rows])


@operation("/subscribers", "POST", "Create a subscriber", Permission.OPERATE,
           response="Subscriber", ok=201, body=(
               Field("username", required=True, max_length=64),
               Field("password", required=True, max_length=128),
               Field("plan", required=True, max_length=64),
               Field("service", enum=("pppoe", "hotspot")),
               Field("mac", max_length=17), Field("ip", max_length=15),
               Field("full_name", max_length=128), Field("phone", max_length=32),
               Field("email", max_length=254),
               Field("address", max_length=500,
                     description="Postal (installation) address, printed on tax invoices."),
               Field("tax_id", max_length=32, description="BIN or GSTIN, if registered."),
               Field("state_code", max_length=4,
                     description="India: GST State code of the place of supply."),
               Field("activated_on", format="date", max_length=10,
                     description="First day of service (default today; not in the future).")))
def subscriber_create(inp: dict[str, Any]) -> tuple[Response, int]:
    sub = subs.create_subscriber(get_db(), box(), actor=_actor(), today=today(), **inp)
    from notify.outbox import welcome

    welcome(get_db(), sub)
    commit()
    return jsonify(subscriber_json(sub)), 201


@operation("/subscribers/<username>", "GET", "A subscriber with balance and sessions",
           Permission.READ, response="SubscriberDetail", path_params=(USERNAME,))
def subscriber_show(inp: dict[str, Any], username: str) -> Response:
    db = get_db()
    sub = _subscriber(username)
    day = today()
    settled = ledger.settle(db, sub.id, day)
    promise = standing.active_promise(db, sub.id)
    return jsonify({
        **subscriber_json(sub), "balance": str(settled.balance),
        "overdue": str(settled.overdue(day)), "amount_due": str(settled.outstanding),
        "open_invoices": [{"number": inv.number, "kind": str(inv.kind),
                           "due_on": str(inv.due_on), "total": str(inv.total),
                           "outstanding": str(owed)} for inv, owed in settled.open_invoices],
        "promise_until": str(promise.until) if promise else None,
        "sessions": [session_json(s) for s in accounting.sessions_for(db, username, 20)],
        "enforcement": [{"id": e.id, "action": e.action, "reason": e.reason,
                         "status": e.status, "created_at": e.created_at.isoformat()}
                        for e in accounts.enforcement_history(db, sub.id, 20)],
    })


def _after_action(username: str, message: str) -> Response:
    commit()
    return jsonify({"ok": True, "message": message,
                    "subscriber": subscriber_json(_subscriber(username))})


@operation("/subscribers/<username>/suspend", "POST", "Suspend", Permission.OPERATE,
           response="ActionResult", body=(REASON,), path_params=(USERNAME,))
def subscriber_suspend(inp: dict[str, Any], username: str) -> Response:
    _subscriber(username)
    changed = accounts.set_status_by_operator(get_db(), username, SubscriberStatus.SUSPENDED,
                                              reason=inp.get("reason", ""), actor=_actor())
    return _after_action(username, "suspended" if changed else "was already suspended")


@operation("/subscribers/<username>/reconnect", "POST", "Reconnect", Permission.OPERATE,
           response="ActionResult", body=(REASON,), path_params=(USERNAME,))
def subscriber_reconnect(inp: dict[str, Any], username: str) -> Response:
    _subscriber(username)
    changed = accounts.set_status_by_operator(get_db(), username, SubscriberStatus.ACTIVE,
                                              reason=inp.get("reason", ""), actor=_actor())
    return _after_action(username, "reconnected" if changed else "was already active")


@operation("/subscribers/<username>/plan", "POST", "Change plan (prorated now, or at the "
           "next cycle)", Permission.OPERATE, response="ActionResult", path_params=(USERNAME,),
           body=(Field("plan", required=True, max_length=64),
                 Field("effective", enum=("now", "next_cycle"))))
def subscriber_plan(inp: dict[str, Any], username: str) -> Response:
    _subscriber(username)
    result = plan_changes.change_plan(get_db(), username, inp["plan"],
                                      effective=inp.get("effective", "now"), today=today(),
                                      actor=_actor())
    return _after_action(username, f"plan change {result.effective}"
                         + (f", invoice {result.invoice_number}" if result.invoice_number
                            else ""))


@operation("/subscribers/<username>/payments", "POST", "Record a payment", Permission.OPERATE,
           response="PaymentResult", ok=201, path_params=(USERNAME,), body=(
               Field("amount", required=True, max_length=20,
                     description="Decimal amount as a string, e.g. \"1050.00\"."),
               Field("method", enum=payments.METHODS),
               Field("reference", required=True, max_length=128),
               Field("invoice", max_length=32,
                     description="The invoice paid (it is paid first; default oldest first)."),
               Field("on", format="date", max_length=10,
                     description="The day it was received (default today; not in the "
                                 "future).")))
def subscriber_payment(inp: dict[str, Any], username: str) -> tuple[Response, int]:
    _subscriber(username)
    result = payments.record_payment(get_db(), username, inp["amount"],
                                     method=inp.get("method", "cash"),
                                     reference=inp["reference"], today=today(),
                                     on=inp.get("on"), invoice=inp.get("invoice"),
                                     actor=_actor())
    commit()
    return jsonify({"payment_id": result.payment_id, "balance": str(result.balance),
                    "overdue": str(result.overdue), "reconnected": result.reconnected,
                    "invoices_paid": list(result.invoices_paid)}), 201


@operation("/subscribers/<username>/promise", "POST", "Promise to pay until a date",
           Permission.OPERATE, response="ActionResult", path_params=(USERNAME,),
           body=(Field("until", required=True, format="date", max_length=10),))
def subscriber_promise(inp: dict[str, Any], username: str) -> Response:
    _subscriber(username)
    p = promises.promise_to_pay(get_db(), username, inp["until"], today=today(),
                                actor=_actor())
    return _after_action(username, f"promised to pay by {p.until}")


@operation("/subscribers/<username>/clear-mac", "POST", "Clear the MAC binding",
           Permission.OPERATE, response="ActionResult", path_params=(USERNAME,))
def subscriber_clear_mac(inp: dict[str, Any], username: str) -> Response:
    _subscriber(username)
    subs.set_mac(get_db(), username, None, actor=_actor())
    return _after_action(username, "MAC binding cleared")


@operation("/sessions/<int:session_id>/disconnect", "POST", "Ask the NAS to drop a session "
           "(the enforcement worker sends the Disconnect-Request)", Permission.OPERATE,
           response="ActionResult", ok=202, body=(REASON,),
           path_params=(("session_id", "The session's id."),))
def session_disconnect(inp: dict[str, Any], session_id: int) -> tuple[Response, int]:
    row = accounting.get_session(get_db(), session_id)
    if row is None or row.subscriber_id is None:
        abort(404)
    if row.stopped_at is not None:
        raise Conflict(f"session {session_id} is closed already")
    username = row.username
    _subscriber(username)
    accounts.request_disconnect(get_db(), username, nas_ip=row.nas_ip,
                                acct_session_id=row.acct_session_id,
                                reason=inp.get("reason") or "operator request", actor=_actor())
    return _after_action(username, "disconnect requested"), 202


@operation("/plans", "GET", "Every plan", Permission.READ, response="Plan", many=True)
def plan_list(inp: dict[str, Any]) -> Response:
    return jsonify([plans.plan_summary(p) for p in plans.list_plans(get_db())])


@operation("/plans", "POST", "Create a plan", Permission.MANAGE, response="Plan", ok=201, body=(
    Field("name", required=True, max_length=64),
    Field("price", required=True, max_length=20, description="Decimal as a string."),
    Field("currency", required=True, max_length=3, description="ISO 4217, e.g. BDT."),
    Field("rate", required=True, max_length=32, description="DOWNLOAD/UPLOAD, e.g. 20M/5M."),
    Field("burst", max_length=32), Field("data_cap", max_length=16),
    Field("fup_rate", max_length=32), Field("ip_pool", max_length=64),
    Field("billing_cycle", enum=("monthly", "weekly", "daily", "days")),
    Field("validity_days", "integer", minimum=1, maximum=3660),
    Field("billing_mode", enum=("prepaid", "postpaid")),
    Field("grace_days", "integer", minimum=0, maximum=365),
    Field("late_fee", max_length=20), Field("tax_percent", max_length=20),
    Field("setup_fee", max_length=20)))
def plan_create(inp: dict[str, Any]) -> tuple[Response, int]:
    row = plans.create_plan(get_db(), actor=_actor(), **inp)
    commit()
    return jsonify(plans.plan_summary(row)), 201


@operation("/nas", "GET", "Every NAS device (no secrets)", Permission.READ, response="Nas",
           many=True)
def nas_list(inp: dict[str, Any]) -> Response:
    return jsonify([nas.summary(n) for n in nas.list_nas(get_db())])


@operation("/invoices", "GET", "Invoices, newest first", Permission.READ, response="Invoice",
           many=True, query=(Field("status", enum=("open", "paid", "credited")),
                             Field("subscriber", max_length=64),
                             Field("limit", "integer", minimum=1, maximum=1000)))
def invoice_list(inp: dict[str, Any]) -> Response:
    sub_id = _subscriber(inp["subscriber"]).id if inp.get("subscriber") else None
    rows = invoices.list_invoices(get_db(), subscriber_id=sub_id, status=inp.get("status"),
                                  limit=inp.get("limit", 200))
    names = _names({i.subscriber_id for i in rows})
    return jsonify([invoice_json(i, names.get(i.subscriber_id)) for i in rows])


@operation("/invoices/<number>", "GET", "One invoice with its lines", Permission.READ,
           response="InvoiceDetail", path_params=(("number", "Invoice number."),))
def invoice_show(inp: dict[str, Any], number: str) -> Response:
    inv = invoices.get_invoice(get_db(), number)
    lines = [{"position": ln.position, "description": ln.description,
              "quantity": str(ln.quantity), "unit_price": str(ln.unit_price),
              "amount": str(ln.amount)} for ln in invoices.invoice_lines(get_db(), inv.id)]
    names = _names({inv.subscriber_id})
    return jsonify({**invoice_json(inv, names.get(inv.subscriber_id)), "lines": lines})


@operation("/payments", "GET", "Payments, newest first", Permission.READ, response="Payment",
           many=True, query=(Field("subscriber", max_length=64),
                             Field("limit", "integer", minimum=1, maximum=1000)))
def payment_list(inp: dict[str, Any]) -> Response:
    sub_id = _subscriber(inp["subscriber"]).id if inp.get("subscriber") else None
    rows = payments.list_payments(get_db(), subscriber_id=sub_id, limit=inp.get("limit", 200))
    names = _names({p.subscriber_id for p in rows})
    return jsonify([payment_json(p, names.get(p.subscriber_id)) for p in rows])


@operation("/sessions", "GET", "Open sessions (who is online)", Permission.READ,
           response="Session", many=True, query=(
               Field("nas_ip", max_length=45), Field("username", max_length=64),
               Field("limit", "integer", minimum=1, maximum=1000)))
def session_list(inp: dict[str, Any]) -> Response:
    rows = accounting.open_sessions(get_db(), nas_ip=inp.get("nas_ip"),
                                    username=inp.get("username"), limit=inp.get("limit", 500))
    return jsonify([session_json(r) for r in rows])


def message_json(d: Any, username: str | None) -> dict[str, Any]:
    return {"id": d.id, "subscriber": username, "channel": d.channel, "kind": d.kind,
            "recipient": d.recipient, "status": d.status, "reason": d.reason,
            "dead_letter": d.dead_letter, "attempts": d.attempts, "segments": d.segments,
            "cost": str(d.cost) if d.cost is not None else None, "currency": d.currency,
            "text": d.shown_text, "created_at": d.created_at.isoformat(),
            "sent_at": d.sent_at.isoformat() if d.sent_at else None}


@operation("/messages", "GET", "Messages sent or to send, newest first", Permission.READ,
           response="Message", many=True, query=(
               Field("status", enum=("queued", "sending", "sent", "delivered", "failed",
                                     "retrying", "skipped")),
               Field("channel", enum=("sms", "email", "telegram")),
               Field("dead_letter", "boolean", description="Only the dead-letter queue."),
               Field("subscriber", max_length=64),
               Field("limit", "integer", minimum=1, maximum=1000)))
def message_list(inp: dict[str, Any]) -> Response:
    from notify import delivery

    sub_id = _subscriber(inp["subscriber"]).id if inp.get("subscriber") else None
    rows = delivery.messages(get_db(), subscriber_id=sub_id, status_=inp.get("status"),
                             channel=inp.get("channel"),
                             dead_letter=bool(inp.get("dead_letter")),
                             limit=inp.get("limit", 200))
    names = _names({d.subscriber_id for d in rows if d.subscriber_id is not None})
    return jsonify([message_json(d, names.get(d.subscriber_id or 0)) for d in rows])


@operation("/messages/<int:message_id>/retry", "POST", "Queue a failed or skipped message "
           "again", Permission.OPERATE, response="Message",
           path_params=(("message_id", "Message id."),))
def message_retry(inp: dict[str, Any], message_id: int) -> Response:
    from notify import delivery

    d = delivery.retry(get_db(), message_id, dt.datetime.now(dt.UTC))
    commit()
    names = _names({d.subscriber_id} if d.subscriber_id is not None else set())
    return jsonify(message_json(d, names.get(d.subscriber_id or 0)))


@operation("/notify/status", "GET", "Messages by channel and status, dead letter, cost",
           Permission.READ, response="NotifyStatus")
def notify_status(inp: dict[str, Any]) -> Response:
    from notify import delivery

    return jsonify(delivery.status(get_db()))


@operation("/notify/test", "POST", "Queue a test message through a configured channel",
           Permission.MANAGE, response="Message", ok=201, body=(
               Field("channel", required=True, enum=("sms", "email", "telegram")),
               Field("to", required=True, max_length=254,
                     description="Number, e-mail address or chat id.")))
def notify_test(inp: dict[str, Any]) -> tuple[Response, int]:
    from notify.testmsg import queue_test

    d = queue_test(get_db(), inp["channel"], inp["to"])
    commit()
    return jsonify(message_json(d, None)), 201


@operation("/reports", "GET", "The reconciliation reports", Permission.READ,
           response="ReportInfo", many=True)
def report_list(inp: dict[str, Any]) -> Response:
    from reports import registry

    return jsonify([{"name": r.name, "title": r.title, "description": r.description,
                     "columns": list(r.columns), "filters": list(r.filters),
                     "uses_days": r.uses_days} for r in registry.REPORTS.values()])


@operation("/reports/<name>", "GET", "Run a reconciliation report: each row names its "
           "subscriber (username) and what to do (action)", Permission.READ,
           response="ReportResult", path_params=(("name", "The report, e.g. stale-sessions."),),
           query=(Field("nas", max_length=45, description="Only this NAS (name or address)."),
                  Field("plan", max_length=64, description="Only this plan."),
                  Field("days", type="integer", minimum=1, maximum=3650,
                        description="never-online: not seen for this many days (30)."),
                  Field("limit", type="integer", minimum=1, maximum=10_000,
                        description="At most this many rows (1000).")))
def report_run(inp: dict[str, Any], name: str) -> Response:
    from admin.db import now, settings
    from reports import registry
    from reports.registry import DEFAULT_LIMIT, Params

    report = registry.get(name)
    at = now()
    params = Params(now=at, today=today(), interim_interval=settings().interim_interval,
                    nas=inp.get("nas") or None, plan=inp.get("plan") or None,
                    days=inp.get("days", 30), limit=inp.get("limit", DEFAULT_LIMIT))
    rows = report.run(get_db(), params)
    return jsonify({"report": report.name, "at": at.isoformat(), "columns": list(report.columns),
                    "rows": rows})


# -- the OpenAPI document ----------------------------------------------------------------------

_S, _N, _I, _B = ({"type": "string"}, {"type": "string", "nullable": True},
                  {"type": "integer"}, {"type": "boolean"})
_NI = {"type": "integer", "nullable": True}
_MONEY_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": required if required is not None else list(props)}


_SESSION = _obj({"id": _I, "username": _S, "nas_ip": _S, "acct_session_id": _S,
                 "framed_ip": _N, "calling_station_id": _N, "started_at": _S,
                 "updated_at": _S, "stopped_at": _N, "open": _B, "session_time": _I,
                 "input_bytes": _I, "output_bytes": _I, "terminate_cause": _N})
_SUBSCRIBER = _obj({"username": _S, "service": _S, "status": _S, "status_reason": _N,
                    "plan": _S, "static_ip": _N, "ip_pool": _N, "mac_address": _N,
                    "simultaneous_use": _I, "paid_until": _N, "full_name": _N, "phone": _N,
                    "email": _N, "address": _N, "tax_id": _N, "state_code": _N,
                    "billing_started_on": _N, "billing_paused_on": _N, "created_at": _S,
                    "period_end": _N})
_INVOICE = _obj({"number": _S, "kind": _S, "subscriber": _N, "plan": _S, "period_start": _S,
                 "period_end": _S, "issued_on": _S, "due_on": _N, "currency": _S,
                 "subtotal": _S, "duty": _S, "tax": _S, "total": _S, "status": _S,
                 "paid_on": _N, "previous_balance": _N, "amount_due": _N,
                 "payment_link": _N, "pdf_path": _N, "pdf_sha256": _N})
SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _S, "message": _S,
                   "fields": {"type": "object", "additionalProperties": {"type": "string"}}}),
    "Subscriber": _SUBSCRIBER,
    "SubscriberDetail": {"allOf": [_SUBSCRIBER, _obj({
        "balance": _S, "overdue": _S, "amount_due": _S, "promise_until": _N,
        "open_invoices": {"type": "array", "items": _obj({
            "number": _S, "kind": _S, "due_on": _S, "total": _S, "outstanding": _S})},
        "sessions": {"type": "array", "items": _SESSION},
        "enforcement": {"type": "array", "items": _obj({
            "id": _I, "action": _S, "reason": _S, "status": _S, "created_at": _S})}})]},
    "ActionResult": _obj({"ok": _B, "message": _S, "subscriber": _SUBSCRIBER}),
    "PaymentResult": _obj({"payment_id": _I, "balance": _S, "overdue": _S,
                           "reconnected": _B,
                           "invoices_paid": {"type": "array", "items": _S}}),
    "Plan": _obj({"name": _S, "price": _S, "currency": _S, "rate": _S, "burst": _N,
                  "data_cap_bytes": _NI, "fup_rate": _N, "ip_pool": _N,
                  "billing_cycle": _S, "validity_days": _NI, "billing_mode": _S,
                  "grace_days": _I, "late_fee": _S, "tax_percent": _S, "setup_fee": _S}),
    "Nas": _obj({"name": _S, "ip_address": _S, "type": _S, "coa_port": _I,
                 "require_message_authenticator": _B, "api_port": _NI,
                 "api_username": _N, "api_tls": _S}),
    "Invoice": _INVOICE,
    "InvoiceDetail": {"allOf": [_INVOICE, _obj({"lines": {"type": "array", "items": _obj({
        "position": _I, "description": _S, "quantity": _S, "unit_price": _S,
        "amount": _S})}})]},
    "Payment": _obj({"id": _I, "subscriber": _N, "amount": _S, "currency": _S, "method": _S,
                     "reference": _S, "received_at": _S, "actor": _S, "status": _S}),
    "Session": _SESSION,
    "Message": _obj({"id": _I, "subscriber": _N, "channel": _S, "kind": _S, "recipient": _S,
                     "status": _S, "reason": _N, "dead_letter": _B, "attempts": _I,
                     "segments": _NI, "cost": _N, "currency": _N, "text": _N,
                     "created_at": _S, "sent_at": _N}),
    "NotifyStatus": _obj({
        "deliveries": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": _I}},
        "dead_letter": _I, "events_not_planned": _I, "oldest_open": _N,
        "cost": {"type": "array", "items": _obj({"currency": _N, "cost": _S})},
        "paused": {"type": "array", "items": _S}}),
    "ReportInfo": _obj({"name": _S, "title": _S, "description": _S,
                        "columns": {"type": "array", "items": _S},
                        "filters": {"type": "array", "items": _S}, "uses_days": _B}),
    "ReportResult": _obj({"report": _S, "at": _S, "columns": {"type": "array", "items": _S},
                          "rows": {"type": "array", "items": {"type": "object"}}}),
    "Dashboard": _obj({"today": _S, "status_counts": {"type": "object",
                                                      "additionalProperties": _I},
                       "online": _I, "revenue_today": _MONEY_MAP,
                       "revenue_month": _MONEY_MAP, "overdue_totals": _MONEY_MAP,
                       "overdue_subscribers": _I, "renewals_next_7_days": _I,
                       "failed_job_runs": _I, "open_alerts": _I}),
}

_ERRORS = {"401": "No or a wrong API token", "403": "The token's role does not allow this",
           "404": "Not found", "409": "Conflicts with the current state",
           "422": "Invalid input: a message per field"}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document, built from the operation declarations."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        ref = {"$ref": f"#/components/schemas/{op.response}"}
        content = {"type": "array", "items": ref} if op.many else ref
        responses: dict[str, Any] = {str(op.ok): {
            "description": "OK", "content": {"application/json": {"schema": content}}}}
        for code, text in _ERRORS.items():
            responses[code] = {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        spec: dict[str, Any] = {
            "summary": op.summary, "operationId": f"{op.method}_{op.path}",
            "x-permission": str(op.permission), "responses": responses,
            "parameters": [
                {"name": name, "in": "path", "required": True, "description": text,
                 "schema": {"type": "integer", "minimum": 1}
                 if name in ("session_id", "message_id") else {
                     "type": "string", "maxLength": 64}}
                for name, text in op.path_params
            ] + [{"name": f.name, "in": "query", "required": False, "schema": f.schema()}
                 for f in op.query],
        }
        if op.body:
            spec["requestBody"] = {"required": any(f.required for f in op.body), "content": {
                "application/json": {"schema": {
                    "type": "object", "additionalProperties": False,
                    "properties": {f.name: f.schema() for f in op.body},
                    "required": [f.name for f in op.body if f.required] or None}}}}
            if not spec["requestBody"]["content"]["application/json"]["schema"]["required"]:
                del spec["requestBody"]["content"]["application/json"]["schema"]["required"]
        paths.setdefault(op.path, {})[op.method] = spec
    return {
        "openapi": "3.0.3",
        "info": {"title": "radbill admin API", "version": "1",
                 "description": "Subscribers, plans, invoices, payments and sessions of an "
                                "ISP. Money amounts are decimal strings."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }
