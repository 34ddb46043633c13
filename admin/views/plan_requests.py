"""Plan change requests subscribers made in the portal: the pending ones, and an operator's
approval (the plan is changed through billing) or rejection, audited as the staff user."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from admin.auth import requires
from admin.db import commit, get_db, today
from admin.roles import Permission
from admin.views.common import actor, status_of
from portal import account
from radbill.errors import DomainError

bp = Blueprint("plan_requests", __name__, url_prefix="/plan-requests")

DECISIONS = {"approve": True, "reject": False}


def _page(error: str | None = None, status: int = 200) -> Any:
    db = get_db()
    rows = account.request_views(db, account.pending_requests(db))
    return render_template("plan_requests.html", rows=rows, error=error), status


@bp.route("/")
@requires(Permission.READ)
def index() -> Any:
    """Requests waiting for a decision, oldest first."""
    return _page()


@bp.route("/<int:request_id>", methods=["POST"])
@requires(Permission.OPERATE)
def decide(request_id: int) -> Any:
    """Approve or reject one request (the form's ``decision``)."""
    decision = request.form.get("decision", "")
    if decision not in DECISIONS:
        return _page("Choose approve or reject.", 422)
    try:
        req = account.decide(get_db(), request_id, approve=DECISIONS[decision], by=actor(),
                             today=today(), note=request.form.get("note", "")[:500] or None)
        view = account.request_views(get_db(), [req])[0]
        commit()
    except DomainError as exc:
        get_db().rollback()
        return _page(str(exc), status_of(exc))
    flash(f"Request {view.id} {view.status}: {view.username} to {view.requested_plan} "
          f"({view.effective.replace('_', ' ')}).")
    return redirect(url_for(".index"))
