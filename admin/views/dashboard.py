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
from billing import reports
from billing.isp import settings as isp_settings
from billing.isp import start_of_day_utc
from radbill import ops
from radius import accounting

bp = Blueprint("dashboard", __name__)

CHART_DAYS = 30
RENEWALS_SHOWN = 50


def _day_bounds(isp: Any, days: list[dt.date]) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    return [(d, start_of_day_utc(isp, d), start_of_day_utc(isp, d + dt.timedelta(days=1)))
            for d in days]


def summary() -> dict[str, Any]:
    """Everything the dashboard shows (also served by the API)."""
    db = get_db()
    day = today()
    isp = isp_settings(db)
    month_start = day.replace(day=1)
    tomorrow = day + dt.timedelta(days=1)
    overdue_count, overdue_totals = reports.overdue_summary(db, day, as_of=day)
    runs = ops.recent_runs(db, 20)
    return {
        "today": day,
        "status_counts": reports.status_counts(db),
        "online": accounting.count_open_sessions(db),
        "revenue_today": reports.revenue(db, start_of_day_utc(isp, day),
                                         start_of_day_utc(isp, tomorrow)),
        "revenue_month": reports.revenue(db, start_of_day_utc(isp, month_start),
                                         start_of_day_utc(isp, tomorrow)),
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
    per_day = reports.revenue_by_day(get_db(), _day_bounds(isp_settings(get_db()), days))
    currencies = sorted({c for _, t in per_day for c in t}) or ["BDT"]
    charts = {cur: _revenue_chart(cur, per_day) for cur in currencies}
    from payments.intents import held_count

    return render_template("dashboard.html", d=data, charts=charts,
                           held_count=held_count(get_db()))
