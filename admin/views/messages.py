"""Messages: what was sent to whom (filters, the dead-letter queue, retry), channel settings
(admins; secrets write-only) and templates with a preview for a real subscriber."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from admin.auth import requires
from admin.db import box, commit, get_db
from admin.roles import Permission
from admin.views.common import status_of
from notify import config, delivery, editing
from radbill.db import utcnow
from radbill.errors import DomainError

bp = Blueprint("messages", __name__, url_prefix="/messages")

STATUSES = ("queued", "sending", "sent", "delivered", "failed", "retrying", "skipped")


@bp.route("/")
@requires(Permission.READ)
def index() -> str:
    """Messages, newest first: filter by status and channel; the dead-letter queue."""
    args = request.args
    status = args.get("status") if args.get("status") in STATUSES else None
    channel = args.get("channel") if args.get("channel") in config.CHANNELS else None
    rows = delivery.messages(get_db(), status_=status, channel=channel,
                             dead_letter=args.get("dead") == "1", limit=300)
    return render_template("messages.html", rows=rows, args=args, statuses=STATUSES,
                           channels=config.CHANNELS, summary=delivery.status(get_db()))


@bp.route("/<int:message_id>/retry", methods=["POST"])
@requires(Permission.OPERATE)
def retry(message_id: int) -> Any:
    """Queue a failed or skipped message again."""
    try:
        delivery.retry(get_db(), message_id, utcnow())
        commit()
        flash(f"message #{message_id} queued again")
    except DomainError as exc:
        get_db().rollback()
        flash(str(exc))
    return redirect(url_for(".index", status=request.args.get("status") or None,
                            channel=request.args.get("channel") or None,
                            dead=request.args.get("dead") or None))


def _channels_page(error: str | None = None, status: int = 200) -> Any:
    return render_template("channels.html", channels=config.listing(get_db()), error=error,
                           providers=config.SMS_PROVIDERS), status


@bp.route("/channels", methods=["GET"])
@requires(Permission.MANAGE)
def channels() -> Any:
    """Channel settings; secrets are never shown back."""
    return _channels_page()


@bp.route("/channels/<name>", methods=["POST"])
@requires(Permission.MANAGE)
def channel_save(name: str) -> Any:
    """Save a channel's settings (an empty secret field keeps the saved secret)."""
    form = request.form
    try:
        if name == "sms":
            provider = form.get("provider", "")
            settings = {k: form.get(k) or None for k in (
                "base_url", "sid", "sender_id", "country", "price_per_segment", "currency",
                "rate", "burst", "quiet_start", "quiet_end", "url", "method", "content_type",
                "body", "success_regex")}
            secrets = {k: form.get(k) for k in ("api_token", "api_key", "authkey")}
        elif name == "email":
            provider = "smtp"
            settings = {k: form.get(k) or None for k in (
                "host", "port", "security", "user", "sender", "operator_email")}
            secrets = {"password": form.get("password")}
        elif name == "telegram":
            provider = "telegram"
            settings = {k: form.get(k) or None for k in ("noc_chat", "finance_chat",
                                                         "base_url")}
            secrets = {"token": form.get("token")}
        else:
            return _channels_page(f"unknown channel {name!r}", 404)
        config.save(get_db(), box(), name, provider, settings, secrets)
        commit()
    except DomainError as exc:
        get_db().rollback()
        return _channels_page(str(exc), status_of(exc))
    flash(f"{name} channel saved")
    return redirect(url_for(".channels"))


@bp.route("/channels/<name>/resume", methods=["POST"])
@requires(Permission.MANAGE)
def channel_resume(name: str) -> Any:
    """Resume a channel paused by an account error."""
    try:
        config.resume(get_db(), name)
        commit()
    except DomainError as exc:
        get_db().rollback()
        return _channels_page(str(exc), status_of(exc))
    flash(f"{name} channel resumed")
    return redirect(url_for(".channels"))


@bp.route("/templates", methods=["GET", "POST"])
@requires(Permission.MANAGE)
def templates_page() -> Any:
    """Edit a template: preview it for a real subscriber; a template that does not render
    cannot be saved."""
    src = request.form if request.method == "POST" else request.args
    kind = src.get("kind") or "reminder"
    channel = src.get("channel") or "sms"
    locale = src.get("locale") or "bn"
    username = src.get("username") or None
    error, shown, status = None, None, 200
    body, subject, dlt = src.get("body"), src.get("subject"), src.get("dlt_template_id")
    db = get_db()
    try:
        if body is None:
            current = editing.current(db, kind, channel, locale)
            body = current.body if current else ""
            subject = current.subject if current else None
            dlt = current.dlt_template_id if current else None
        if request.method == "POST" and src.get("action") == "save":
            editing.save(db, kind, channel, locale, body, subject, dlt, username)
            commit()
            flash(f"template {kind}/{channel}/{locale} saved")
            return redirect(url_for(".templates_page", kind=kind, channel=channel,
                                    locale=locale, username=username or ""))
        if body:
            shown = editing.preview(db, kind, channel, locale, body, subject, dlt, username)
    except DomainError as exc:
        db.rollback()
        error, status = str(exc), status_of(exc)
    return render_template("templates.html", kind=kind, channel=channel, locale=locale,
                           username=username or "", body=body or "", subject=subject or "",
                           dlt=dlt or "", preview=shown, error=error, kinds=editing.KINDS,
                           locales=("en", "bn", "hi")), status
