"""Accounting: the records the ingester set aside, and replaying them after a fix."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from admin.auth import requires
from admin.db import commit, factory, get_db
from admin.roles import Permission
from admin.views.common import actor
from radbill.errors import DomainError
from radius import rejects
from radius.accounting import Limits
from radius.ingest import replay
from radius.models import RejectedRecord

bp = Blueprint("accounting", __name__, url_prefix="/accounting")
PAGE = 200


@bp.route("/rejected")
@requires(Permission.READ)
def rejected() -> Any:
    """Set-aside records newest first (pending by default), with the reason and the record."""
    status = request.args.get("status", rejects.PENDING)
    stream = request.args.get("stream") or None
    if status not in (*rejects.STATUSES, "all") or stream not in (None, "acct", "postauth"):
        status, stream = rejects.PENDING, None
    db = get_db()
    rows = [_shown(r) for r in rejects.list_rejected(
        db, status=None if status == "all" else status, stream=stream, limit=PAGE)]
    return render_template("rejected.html", rows=rows, pending=rejects.count_pending(db),
                           status=status, stream=stream or "", page=PAGE)


def _shown(row: RejectedRecord) -> dict[str, Any]:
    """A row for the page: the record's own text fields with control characters escaped
    (the full record is shown as JSON, which escapes them itself)."""
    data = rejects.summary(row)
    for key in ("user_name", "acct_session_id", "status_type", "reason"):
        data[key] = rejects.printable(data[key]) if data[key] is not None else None
    return {**data, "seen": row.first_seen}


@bp.route("/rejected/replay", methods=["POST"])
@requires(Permission.OPERATE)
def replay_rejected() -> Any:
    """Replay the ticked records, or every pending one."""
    replay_all = request.form.get("all") == "1"
    raw = request.form.getlist("id")
    try:
        ids = sorted({int(i) for i in raw})
    except ValueError:
        flash("Replay: record ids are numbers.")
        return redirect(url_for(".rejected"))
    if not replay_all and not ids:
        flash("Replay: tick the records to replay, or replay all pending.")
        return redirect(url_for(".rejected"))
    # The replay commits in transactions of its own: end the request's (the staff session's
    # last-seen touch) first, or SQLite's single writer would wait for it.
    commit()
    try:
        report = replay(factory(), ids=None if replay_all else ids, actor=actor(),
                        limits=Limits.from_settings(current_app.config["RADBILL_SETTINGS"]))
    except DomainError as exc:
        flash(f"Replay: {exc}")
        return redirect(url_for(".rejected"))
    message = (f"Replayed {len(report.replayed)}; still set aside {len(report.failed)}"
               f"{f'; already replayed {len(report.skipped)}' if report.skipped else ''}.")
    if report.alert_resolved:
        message += " Nothing is pending any more: the alert is resolved."
    flash(message)
    return redirect(url_for(".rejected"))
