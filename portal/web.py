"""The subscribers' pages (a blueprint of the web app), under ``/portal``:

* ``/portal/garden``: where the router sends a walled-garden visitor. Recognised by source
  address (:mod:`portal.garden`), they see their name, status and why, what is due and one
  button per gateway that takes the invoice's currency; after paying the page follows the
  reconnection live (``/portal/garden/status``, polled by ``portal.js``). An address no single
  open session holds gets the login form, never anyone's data.
* ``/portal``: login (username and password, or phone and a one-time SMS code), then the
  account: status, plan, usage this period, invoices and their PDFs, payments, pay now, a
  promise to pay, a plan change request, SMS reminders and language.

Its own session cookie and CSRF token (:class:`admin.security.SessionInterface`), a
back-off per account and per address in the database (:mod:`portal.auth`) and rate limits
per address (:mod:`admin.security`). Every change is audited as ``subscriber:<username>``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from admin import csrf
from admin.auth import requires
from admin.charts import bar_chart
from admin.db import box, commit, get_db, now, today
from admin.roles import Permission
from admin.views.common import pdf_response
from billing import archive
from billing.models import Invoice, Subscriber
from billing.promises import MAX_PROMISE_DAYS
from notify.delivery import isp_view
from payments import intents
from payments.web import gateways, offered, start_checkout
from portal import account, garden, i18n, usage
from portal import auth as portal_auth
from radbill import audit
from radbill.errors import DomainError, NotFound

log = logging.getLogger("radbill.portal")

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates",
               static_folder="static", static_url_path="/static")

F = TypeVar("F", bound=Callable[..., Any])
LOGOS = (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif")


# -- context --------------------------------------------------------------------------------


def _secret() -> bytes:
    return str(current_app.secret_key or "").encode() + b"|portal-otp"


def _language(sub: Subscriber | None = None) -> str:
    chosen = session.get("lang")
    if sub is not None:
        return account.language_of(get_db(), sub)
    if chosen in account.LANGUAGES:
        return str(chosen)
    return account.default_language(get_db())


@bp.before_request
def _load_subscriber() -> None:
    g.subscriber = None
    sid = session.get("psid")
    if sid:
        g.subscriber = portal_auth.session_subscriber(get_db(), str(sid), now())
        if g.subscriber is None:
            session.clear()
    g.lang = _language(g.subscriber)


@bp.app_context_processor
def _portal_context() -> dict[str, Any]:
    def t(key: str, *args: object) -> str:
        return i18n.text(g.get("lang", "en"), key, *args)

    return {"t": t}


def subscriber_required(view: F) -> F:
    """Only a logged-in subscriber; anyone else goes to the login form."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("subscriber") is None:
            return redirect(url_for("portal.login"))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _isp() -> dict[str, Any]:
    return account.isp_contact(get_db())


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return make_response(render_template(template, isp=_isp(), lang=g.lang,
                                         sub=g.get("subscriber"), **context), status)


def _log_in(sub: Subscriber, method: str) -> Response:
    old = session.get("psid")
    if old:
        portal_auth.end_session(get_db(), str(old))
    sid = portal_auth.start_session(get_db(), sub, method, now(), address=request.remote_addr)
    commit()
    lang = session.get("lang")
    session.clear()  # a new session: nothing from before the login survives
    session["psid"] = sid
    if lang:
        session["lang"] = lang
    session.permanent = True
    csrf.renew()
    return redirect(url_for("portal.home"))


# -- the walled garden ----------------------------------------------------------------------


def _visitor() -> garden.Visitor | None:
    return garden.identify(get_db(), request.remote_addr, request.args.get("nas") or None)


@bp.route("/garden", endpoint="garden")
@requires(Permission.PUBLIC)
def garden_page() -> Any:
    """The landing page of a walled-garden visitor."""
    visitor = _visitor()
    db = get_db()
    sub = db.get(Subscriber, visitor.subscriber_id) if visitor else None
    if visitor is None or sub is None:
        # (and follows the address for a minute: a re-dialled session may not be known yet)
        return _page("portal/login.html", note=i18n.text(g.lang, "garden_unknown"),
                     follow=True)
    g.lang = account.language_of(db, sub)
    day = today()
    view = account.overview(db, sub, day)
    inv = account.payable_invoice(db, sub, day)
    return _page("portal/garden.html", view=view, inv=inv,
                 gateways=offered(inv.currency) if inv else [],
                 state=garden.connection(db, sub, visitor))


@bp.route("/garden/status")
@requires(Permission.PUBLIC)
def garden_status() -> Response:
    """Where the visitor's connection is now (nothing else: no name, no amount)."""
    visitor = _visitor()
    sub = get_db().get(Subscriber, visitor.subscriber_id) if visitor else None
    state = garden.connection(get_db(), sub, visitor) if visitor and sub else "unknown"
    return jsonify({"state": state})


@bp.route("/garden/pay", methods=["POST"])
@requires(Permission.PUBLIC)
def garden_pay() -> Any:
    """Pay what is due, from the landing page: the visitor is recognised again by address."""
    visitor = _visitor()
    sub = get_db().get(Subscriber, visitor.subscriber_id) if visitor else None
    if visitor is None or sub is None:
        abort(404, description="We could not recognise your connection. Please log in.")
    return _start_payment(sub, "garden")


def _start_payment(sub: Subscriber, source: str) -> Any:
    db = get_db()
    name = request.form.get("gateway", "")[:32]
    gw = gateways().get(name)
    inv = account.payable_invoice(db, sub, today())
    if inv is None or inv.pay_token is None:
        abort(409, description="Nothing is due.")
    if gw is None or inv.currency not in gw.currencies:
        abort(404, description=f"payment by {name!r} is not available for this invoice")
    public_url = current_app.config["RADBILL_SETTINGS"].public_url
    try:
        intent, order = intents.create(db, inv.pay_token, name, public_url)
    except DomainError as exc:
        abort(409, description=str(exc))
    audit.record(db, actor=portal_auth.actor(sub), action="portal.payment_started",
                 entity="subscriber", entity_id=sub.id,
                 after={"gateway": name, "reference": intent.reference, "from": source,
                        "amount": str(order.amount), "currency": order.currency})
    return start_checkout(gw, name, order, intent.reference)  # (commits the audit row too)


# -- logging in -----------------------------------------------------------------------------


def _throttled(exc: portal_auth.LoginThrottled, template: str, **context: Any) -> Response:
    response = _page(template, 429, error=i18n.text(g.lang, "throttled", exc.retry_after),
                     **context)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
@requires(Permission.PUBLIC)
def login() -> Any:
    """Username and password (the PPPoE/Hotspot ones)."""
    if request.method == "GET":
        if g.get("subscriber") is not None:
            return redirect(url_for("portal.home"))
        return _page("portal/login.html")
    db = get_db()
    try:
        sub = portal_auth.authenticate(db, box(), request.form.get("username", ""),
                                       request.form.get("password", ""), now(),
                                       address=request.remote_addr)
    except portal_auth.LoginThrottled as exc:
        return _throttled(exc, "portal/login.html")
    except portal_auth.LoginFailed:
        commit()  # the failure count must stick
        return _page("portal/login.html", 401, error=i18n.text(g.lang, "login_failed"),
                     username=request.form.get("username", "")[:64])
    return _log_in(sub, "password")


@bp.route("/otp", methods=["POST"])
@requires(Permission.PUBLIC)
def otp_send() -> Any:
    """Send a one-time code to a phone number (the same answer whether or not it is known)."""
    phone = request.form.get("phone", "")[:32]
    db = get_db()
    try:
        portal_auth.send_code(db, _secret(), phone, isp_view(db).country, now(),
                              address=request.remote_addr)
    except portal_auth.LoginThrottled as exc:
        return _throttled(exc, "portal/otp.html", phone=phone)
    commit()
    session["otp_phone"] = phone
    return _page("portal/otp.html", phone=phone, note=i18n.text(g.lang, "code_sent"))


@bp.route("/otp/verify", methods=["POST"])
@requires(Permission.PUBLIC)
def otp_verify() -> Any:
    """Log in with the code; a number several accounts share chooses one next."""
    phone = str(session.get("otp_phone") or request.form.get("phone", ""))[:32]
    db = get_db()
    try:
        subs = portal_auth.verify_code(db, _secret(), phone, request.form.get("code", ""),
                                       isp_view(db).country, now(),
                                       address=request.remote_addr)
    except portal_auth.LoginThrottled as exc:
        return _throttled(exc, "portal/otp.html", phone=phone)
    except portal_auth.LoginFailed:
        commit()
        return _page("portal/otp.html", 401, phone=phone,
                     error=i18n.text(g.lang, "code_failed"))
    commit()  # the code is spent
    if len(subs) == 1:
        return _log_in(subs[0], "otp")
    session["otp_accounts"] = [s.id for s in subs]
    session["otp_at"] = now().timestamp()
    return _page("portal/choose.html", accounts=subs)


@bp.route("/otp/choose", methods=["POST"])
@requires(Permission.PUBLIC)
def otp_choose() -> Any:
    """Which of the number's accounts to log in to (only those the code proved)."""
    allowed = session.get("otp_accounts") or []
    fresh = now().timestamp() - float(session.get("otp_at") or 0) < 300
    try:
        chosen = int(request.form.get("account", ""))
    except ValueError:
        chosen = -1
    if not fresh or chosen not in allowed:
        return redirect(url_for("portal.login"))
    sub = get_db().get(Subscriber, chosen)
    if sub is None:
        return redirect(url_for("portal.login"))
    return _log_in(sub, "otp")


@bp.route("/logout", methods=["POST"])
@requires(Permission.PUBLIC)
def logout() -> Response:
    """End this portal session."""
    sid = session.get("psid")
    if sid:
        portal_auth.end_session(get_db(), str(sid), g.get("subscriber"))
        commit()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("portal.login"))


@bp.route("/language", methods=["POST"])
@requires(Permission.PUBLIC)
def language() -> Response:
    """English or Bengali (kept on the account when logged in)."""
    chosen = request.form.get("language", "")[:8]
    if chosen not in account.LANGUAGES:
        abort(400, description="unknown language")
    session["lang"] = chosen
    sub = g.get("subscriber")
    if sub is not None:
        account.set_language(get_db(), sub, chosen)
        commit()
    if request.form.get("back") == "garden":
        return redirect(url_for("portal.garden"))
    return redirect(url_for("portal.home" if sub else "portal.login"))


# -- the account ----------------------------------------------------------------------------


def _fmt_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} TB"


@bp.route("/")
@requires(Permission.PUBLIC)
@subscriber_required
def home() -> Any:
    """Status, plan, usage, invoices, payments and the self-service forms."""
    db = get_db()
    sub: Subscriber = g.subscriber
    day = today()
    view = account.overview(db, sub, day)
    days = usage.usage_this_period(db, sub, day)
    chart = bar_chart([(d.day.strftime("%d"), float(d.download + d.upload)) for d in days],
                      title=i18n.text(g.lang, "usage"), fmt=_fmt_bytes)
    inv = account.payable_invoice(db, sub, day)
    flash = session.pop("flash", None)
    return _page("portal/home.html", view=view, chart=chart,
                 total_down=_fmt_bytes(sum(d.download for d in days)),
                 total_up=_fmt_bytes(sum(d.upload for d in days)),
                 invoices=account.invoices_of(db, sub), payments=account.payments_of(db, sub),
                 inv=inv, gateways=offered(inv.currency) if inv else [],
                 plans=account.plans_offered(db, sub), flash=flash,
                 max_days=MAX_PROMISE_DAYS, per_period=_promises_per_period(),
                 promise_max=account.promise_limit(day), tomorrow=day + dt.timedelta(days=1))


def _promises_per_period() -> int:
    from billing.isp import settings as isp_settings

    return isp_settings(get_db()).promises_per_period


def _done(message: str, status: int = 303) -> Response:
    session["flash"] = message[:300]
    return redirect(url_for("portal.home"), code=status)


@bp.route("/invoices/<number>.pdf")
@requires(Permission.PUBLIC)
@subscriber_required
def invoice_pdf(number: str) -> Response:
    """The subscriber's own invoice as a PDF (anyone else's is not found)."""
    db = get_db()
    try:
        inv: Invoice = account.invoice_of(db, g.subscriber, number)
    except NotFound:
        abort(404)
    return pdf_response(archive.pdf_of(db, inv), inv.number)


@bp.route("/pay", methods=["POST"])
@requires(Permission.PUBLIC)
@subscriber_required
def pay() -> Any:
    """Pay everything due now."""
    return _start_payment(g.subscriber, "portal")


@bp.route("/promise", methods=["POST"])
@requires(Permission.PUBLIC)
@subscriber_required
def promise() -> Any:
    """A self-service promise to pay."""
    try:
        until = dt.date.fromisoformat(request.form.get("until", "")[:10])
        account.promise(get_db(), g.subscriber, until, today())
    except ValueError:
        return _done("Give a date as YYYY-MM-DD.")
    except DomainError as exc:
        return _done(str(exc))
    commit()
    return _done(i18n.text(g.lang, "promise_made", until.isoformat()))


@bp.route("/plan", methods=["POST"])
@requires(Permission.PUBLIC)
@subscriber_required
def plan_request() -> Any:
    """Ask for another plan."""
    name = request.form.get("plan", "")[:64]
    try:
        account.request_plan_change(get_db(), g.subscriber, name,
                                    request.form.get("effective", "next_cycle")[:16])
    except DomainError as exc:
        return _done(str(exc))
    commit()
    return _done(i18n.text(g.lang, "plan_requested", name))


@bp.route("/sms", methods=["POST"])
@requires(Permission.PUBLIC)
@subscriber_required
def sms() -> Any:
    """SMS reminders on or off."""
    account.set_sms_reminders(get_db(), g.subscriber, request.form.get("reminders") == "on")
    commit()
    return _done(i18n.text(g.lang, "saved"))


@bp.route("/logo")
@requires(Permission.PUBLIC)
def logo() -> Response:
    """The ISP's logo (the file named in the ISP settings, if it is an image)."""
    path = _isp().get("logo")
    if not path or not str(path).lower().endswith(LOGOS) or not Path(str(path)).is_file():
        abort(404)
    kind = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return Response(Path(str(path)).read_bytes(), mimetype=kind)
