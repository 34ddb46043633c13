"""The dashboard: the state of the business at a glance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import Blueprint, render_template

from admin.auth import requires
from admin.charts import bar_chart
from admin.db import get_db, today
from admin.roles import Permission
from billing import reports, totals
from radbill import ops
from radius import accounting

bp = Blueprint("dashboard", __name__)

CHART_DAYS = 30
RENEWALS_SHOWN = 50


def summary() -> dict[str, Any]:
    """Everything the dashboard shows (also served by the API)."""
    db = get_db()
    day = today()
    month_start = day.replace(day=1)
    overdue_count, overdue_totals = reports.overdue_summary(db, day, as_of=day)
    runs = ops.recent_runs(db, 20)
    return {
        "today": day,
        "status_counts": reports.status_counts(db),
        "online": accounting.count_open_sessions(db),
        # the kept per-day totals (a month is a million payments at a large ISP)
        "revenue_today": totals.revenue(db, day, day),
        "revenue_month": totals.revenue(db, month_start, day),
        "overdue_totals": {c: str(v) for c, v in overdue_totals.items()},
        "overdue_count": overdue_count,
        "renewals": reports.renewals(db, day, 7, limit=RENEWALS_SHOWN),
        "renewals_count": reports.renewals_count(db, day, 7),
        "failed_runs": [r for r in runs if r.status == "failed"],
        "alerts": ops.open_alerts(db, 20),
    }


def _revenue_chart(cur: str, per_day: list[tuple[dt.date, dict[str, Decimal]]]) -> Any:
    def fmt(v: float) -> str:
        return f"{cur} {v:,.2f}"

    return bar_chart([(d.strftime("%d %b"), float(t.get(cur, Decimal(0)))) for d, t in per_day],
                     title=f"Payments received per day, last {CHART_DAYS} days ({cur})", fmt=fmt)


@bp.route("/")
@requires(Permission.READ)
def index() -> str:
    """Subscribers, sessions online, revenue, overdue, renewals, failures and alerts."""
    data = summary()
    day: dt.date = data["today"]
    days = [day - dt.timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
    per_day = totals.revenue_by_day(get_db(), days)
    currencies = sorted({c for _, t in per_day for c in t}) or ["BDT"]
    charts = {cur: _revenue_chart(cur, per_day) for cur in currencies}
    from payments.intents import held_count

    return render_template("dashboard.html", d=data, charts=charts,
                           held_count=held_count(get_db()))
