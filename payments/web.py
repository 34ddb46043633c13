"""The payment pages and the gateways' notification endpoints (a blueprint of the web app).

* ``GET /pay/<key>``: the payment link in invoices and reminders. Public: the key is the
  invoice's random ``pay_token`` (:func:`payments.intents.invoice_for_link`), and the page
  shows only what is due and the subscriber's first name, never the username, address, phone
  or history. It offers only the gateways that collect the invoice's currency.
* ``POST /pay/<key>/start``: creates a payment intent and sends the browser to the gateway.
* ``GET|POST /pay/return/<gateway>/<reference>``: where the gateway sends the browser back
  (``/pay/return/<gateway>?ref=<reference>`` is still answered for payments started before).
* ``POST /webhooks/<gateway>``: server-to-server notifications (IPN, webhooks).

Notifications are verified on the raw body by the gateway adapter before anything is read
from them; a forged webhook is answered 400 and audited. A forged *return* is answered 400
and only logged: returns are anyone's browser, so an audit row each would let anyone fill
the audit log. Everything else is answered 2xx quickly (duplicates included, so gateways
stop retrying); a gateway we cannot reach to confirm gets 503 so it delivers again, and
polling catches up meanwhile.

A gateway is marked failing (which holds suspensions of subscribers with a payment pending
on it) only by radbill's own confirmation calls on genuine notifications and by polling,
never by what a visitor's request makes fail: a checkout start or a browser return.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response

from admin.auth import requires
from admin.db import commit, get_db
from admin.roles import Permission
from payments import intents
from payments.gateways.base import GatewayError, PaymentGateway, PaymentOrder, SignatureError
from radbill.errors import DomainError, NotFound

log = logging.getLogger("radbill.payments")

bp = Blueprint("payments", __name__, template_folder="templates")

LABELS = {"bkash": "bKash", "nagad": "Nagad", "sslcommerz": "Card / bank (SSLCommerz)",
          "razorpay": "Razorpay"}


def gateways() -> dict[str, PaymentGateway]:
    return current_app.config.get("RADBILL_GATEWAYS") or {}


def _gateway(name: str) -> PaymentGateway:
    gw = gateways().get(name)
    if gw is None:
        abort(404, description=f"payment by {name!r} is not available")
    return gw


def offered(currency: str) -> list[tuple[str, str]]:
    """The configured gateways that collect *currency*: (name, label)."""
    return [(n, LABELS.get(n, n)) for n, gw in gateways().items() if currency in gw.currencies]


@bp.route("/pay/<key>")
@requires(Permission.PUBLIC)
def pay(key: str) -> Any:
    """What is due on an invoice, and how to pay it."""
    try:
        view = intents.due(get_db(), key)
    except DomainError:
        abort(404, description="No such payment link.")
    return render_template("pay.html", due=view, gateways=offered(view.currency))


@bp.route("/pay/<key>/start", methods=["POST"])
@requires(Permission.PUBLIC)
def start(key: str) -> Any:
    """Create the intent, ask the gateway for a checkout, send the browser there."""
    name = request.form.get("gateway", "")
    gw = _gateway(name)
    public_url = current_app.config["RADBILL_SETTINGS"].public_url
    try:
        view = intents.due(get_db(), key)
        if view.currency not in gw.currencies:
            abort(404, description=f"payment by {name!r} is not available for this invoice")
        intent, order = intents.create(get_db(), key, name, public_url)
    except NotFound:
        abort(404, description="No such payment link.")
    except DomainError as exc:
        return render_template("pay_result.html", outcome="error", message=str(exc)), 409
    return start_checkout(gw, name, order, intent.reference)


def start_checkout(gw: PaymentGateway, name: str, order: PaymentOrder, reference: str) -> Any:
    """Commit the request's work (the intent *reference* exists before the gateway hears of
    it), ask the gateway for a checkout of *order* and send the browser there; a gateway
    that does not answer gets the error page (502). The payment link and the portal both
    start here."""
    commit()
    try:
        checkout = gw.start(order)
    except GatewayError as exc:
        # Logged, not counted against the gateway's health: a visitor can make a start fail
        # (and a failing gateway holds the suspensions of those with a payment pending on it).
        log.error("%s checkout for %s failed: %s", name, order.reference, exc)
        return render_template("pay_result.html", outcome="error",
                               message=f"{LABELS.get(name, name)} is not answering right now. "
                                       "Please try again in a few minutes or choose another "
                                       "way to pay."), 502
    intents.started(get_db(), reference, checkout)
    commit()
    return redirect(checkout.redirect_url, code=303)


def _confirm(name: str, source: str, reference: str | None = None) -> tuple[str, int, str]:
    gw = _gateway(name)
    body = request.get_data(cache=True)
    try:
        conf = gw.confirm_notification(request.method, dict(request.headers),
                                       request.args.to_dict(), body)
    except SignatureError as exc:
        if source == "return" and reference:
            # The browser came back with our own reference (in the return URL we gave the
            # gateway); whatever else it carries, ask the gateway itself about that payment.
            return _confirm_by_query(name, gw, reference)
        if source == "return":
            log.warning("%s return rejected: %s", name, exc)  # anyone's browser: no audit row
            return "rejected", 400, str(exc)
        intents.rejected(get_db(), name, str(exc), source)
        commit()
        return "rejected", 400, str(exc)
    except GatewayError as exc:
        if source != "return":  # a return's contents are the visitor's (see the module doc)
            intents.health(get_db(), name, False, str(exc))
        if source == "return" and reference:
            intents.declared_by_reference(get_db(), name, reference)
        commit()
        log.error("%s %s could not be confirmed now: %s", name, source, exc)
        return "unconfirmed", 503, str(exc)
    # The payment, its ledger entries, the reconnection and its enforcement request: one
    # transaction (the enforcement worker picks the request up within its poll interval).
    outcome = intents.apply(get_db(), name, conf, source=source)
    intents.health(get_db(), name, True)
    commit()
    return outcome, 200, ""


def _confirm_by_query(name: str, gw: PaymentGateway, reference: str) -> tuple[str, int, str]:
    intent = intents.find(get_db(), reference, name)
    if intent is None:
        return "unknown", 404, "no such payment"
    try:
        conf = gw.query(intent.reference, intent.gateway_reference)
    except GatewayError as exc:
        log.error("%s return for %s could not be confirmed now: %s", name, reference, exc)
        intents.declared_by_reference(get_db(), name, reference)
        commit()
        return "unconfirmed", 200, str(exc)  # polling picks it up
    outcome = intents.apply(get_db(), name, conf, source="return-query")
    commit()
    return outcome, 200, ""


@bp.route("/webhooks/<name>", methods=["POST"])
@requires(Permission.PUBLIC)
def webhook(name: str) -> Response:
    """A gateway's server-to-server notification."""
    outcome, code, detail = _confirm(name, "webhook")
    response = jsonify({"status": outcome, **({"error": detail} if detail else {})})
    response.status_code = code
    return response


@bp.route("/pay/return/<name>", methods=["GET", "POST"])
@bp.route("/pay/return/<name>/<reference>", methods=["GET", "POST"])
@requires(Permission.PUBLIC)
def returned(name: str, reference: str | None = None) -> Any:
    """The subscriber's browser, back from the gateway."""
    # A payment started before references moved into the path: bKash's concatenated
    # "?paymentID=" ended up inside our ref ("RB1ABC?paymentID=..."); the query recovers it.
    reference = reference or request.args.get("ref", "").partition("?")[0]
    outcome, code, _ = _confirm(name, "return", reference)
    # What the subscriber is told follows what the payment now is, not what this one
    # delivery did: a repeated callback of a pending payment must not read "thank you".
    intent = intents.find(get_db(), reference, name)
    if intent is not None and code == 200:
        outcome = {"paid": "posted", "refunded": "posted", "held": "held",
                   "failed": "failed"}.get(intent.status, "pending")
    return render_template("pay_result.html", outcome=outcome, message=None), code
