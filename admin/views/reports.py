"""The reconciliation reports: one page each, with filters and a CSV export of the same rows."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from admin.auth import requires
from admin.db import get_db, now, settings, today
from admin.roles import Permission
from radbill.errors import DomainError, NotFound
from reports import registry
from reports.registry import DEFAULT_LIMIT, MAX_LIMIT, Params

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.route("/")
@requires(Permission.READ)
def index() -> Any:
    """Every report, with what it finds."""
    return render_template("reports.html", reports=list(registry.REPORTS.values()))


def _params() -> tuple[dict[str, str], Params]:
    """The filters as typed (to show them back) and as :class:`Params`; InvalidInput on bad
    input."""
    from radbill.errors import InvalidInput

    shown = {k: request.args.get(k, "").strip() for k in ("nas", "plan", "days", "limit")}
    numbers: dict[str, int] = {}
    for key, default in (("days", 30), ("limit", DEFAULT_LIMIT)):
        text = shown[key]
        if not text:
            numbers[key] = default
        elif not text.isdigit() or len(text) > 6:
            raise InvalidInput(f"{key} must be a whole number")
        else:
            numbers[key] = int(text)
    params = Params(now=now(), today=today(), interim_interval=settings().interim_interval,
                    nas=shown["nas"] or None, plan=shown["plan"] or None, **numbers)
    return shown, params


@bp.route("/<name>")
@requires(Permission.READ)
def show(name: str) -> Any:
    """One report's rows, filtered; ``?format=csv`` downloads them."""
    try:
        report = registry.get(name)
    except NotFound:
        abort(404)
    rows: list[dict[str, Any]] = []
    error = None
    shown = {k: request.args.get(k, "") for k in ("nas", "plan", "days", "limit")}
    try:
        shown, params = _params()
        rows = report.run(get_db(), params)
    except DomainError as exc:
        error = str(exc)
    if request.args.get("format") == "csv" and error is None:
        return Response(registry.to_csv(report.columns, rows), mimetype="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{report.name}.csv"'})
    return render_template("report.html", report=report, rows=rows, error=error,
                           filters=shown, max_limit=MAX_LIMIT), 422 if error else 200
