"""Operations: the audit log, job runs and alerts."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from admin.auth import requires
from admin.db import get_db
from admin.roles import Permission
from radbill import audit, ops

bp = Blueprint("operations", __name__)


@bp.route("/audit")
@requires(Permission.READ)
def audit_log() -> str:
    """Who changed what, when, from what to what, newest first."""
    rows = audit.entries(get_db(), entity=request.args.get("entity") or None,
                         actor=request.args.get("actor") or None, limit=300)
    return render_template("audit.html", rows=rows, args=request.args)


@bp.route("/jobs")
@requires(Permission.READ)
def jobs() -> str:
    """Scheduled job runs and open alerts."""
    db = get_db()
    return render_template("jobs.html", runs=ops.recent_runs(db, 100),
                           alerts=ops.open_alerts(db, 100))
