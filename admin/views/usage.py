"""Usage and data caps in the admin: the subscriber page's usage panel (this period's usage
per day against the cap, the throttle and exemption, the top-ups bought) and its actions
(exempt, end the exemption, reset the counter, buy a top-up pack), and the top-up packs on
the plans page. Every action is one usage service call, audited as the staff user."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from admin.auth import requires
from admin.db import commit, get_db, today
from admin.roles import Permission
from admin.views.common import actor, status_of
from admin.views.subscribers import page_action
from billing import plans
from billing.models import Subscriber
from radbill.errors import DomainError
from usage import service

bp = Blueprint("usage", __name__)


@bp.app_template_global()
def usage_panel(sub: Subscriber) -> dict[str, Any]:
    """What the subscriber page shows of the usage part for *sub*: this period's figures
    against the cap (see :func:`usage.service.usage_summary`), its days so far, the top-ups
    bought for it and the packs the plan offers."""
    db = get_db()
    day = today()
    summary = service.usage_summary(db, sub.username, day)
    start = dt.date.fromisoformat(str(summary["period_start"]))
    end = min(dt.date.fromisoformat(str(summary["period_end"])), day + dt.timedelta(days=1))
    cap = summary["cap_bytes"]
    counted = int(str(summary["counted"]))
    return {
        **summary,
        "period_last": dt.date.fromisoformat(str(summary["period_end"])) - dt.timedelta(days=1),
        "percent": (None if cap is None else
                    min(999, counted * 100 // max(1, int(str(cap))))),
        "days": service.daily_usage(db, sub.id, start, end),
        "topups": service.topups_of(db, sub.id, start),
        "packs": service.packs_of(db, sub.plan_id),
        "has_fup": sub.plan.fup_download_bps is not None,
    }


@bp.app_template_global()
def topup_packs() -> list[tuple[str, Any]]:
    """(plan name, pack) for every top-up pack, for the plans page."""
    return service.all_packs(get_db())


def _action(username: str, run: Callable[[], str]) -> Any:
    """Run one action; back to the page's usage panel, or the page with the error."""
    return page_action(username, run, "#usage")


@bp.route("/subscribers/<username>/usage/exempt", methods=["POST"])
@requires(Permission.OPERATE)
def exempt(username: str) -> Any:
    """Exempt from the data cap (a throttle is lifted at once), or end the exemption."""
    on = request.form.get("exempt") != "off"

    def run() -> str:
        service.set_exempt(get_db(), username, on, today=today(),
                           reason=request.form.get("reason", ""), actor=actor())
        return (f"{username} is exempt from the data cap." if on
                else f"The data cap applies to {username} again.")
    return _action(username, run)


@bp.route("/subscribers/<username>/usage/reset", methods=["POST"])
@requires(Permission.OPERATE)
def reset(username: str) -> Any:
    """Set what counts against this period's cap back to zero."""
    def run() -> str:
        state = service.reset_counter(get_db(), username, today=today(),
                                      reason=request.form.get("reason", ""), actor=actor())
        return f"Data cap counter of {username} reset for the period from {state.period_start}."
    return _action(username, run)


@bp.route("/subscribers/<username>/usage/topup", methods=["POST"])
@requires(Permission.OPERATE)
def topup(username: str) -> Any:
    """Buy a top-up pack of the subscriber's plan: charged on a numbered document, the cap
    raised for this period, a throttle lifted live."""
    def run() -> str:
        row = service.buy_topup(get_db(), username, request.form.get("pack", ""),
                                today=today(), actor=actor())
        return (f"Top-up bought for {username}: {row.size_bytes:,} bytes more this period, "
                f"charged {row.price} on {row.document}.")
    return _action(username, run)


@bp.route("/plans/packs", methods=["POST"])
@requires(Permission.MANAGE)
def pack_create() -> Any:
    """Offer a data top-up pack on a plan (the form is on the plans page)."""
    db = get_db()
    f = request.form
    try:
        pack = service.add_pack(db, f.get("pack_plan", ""), f.get("pack_name", ""),
                                f.get("pack_size", ""), f.get("pack_price", ""), actor=actor())
        commit()
    except DomainError as exc:
        db.rollback()
        return render_template("plans.html", rows=[plans.plan_summary(p) for p in
                                                   plans.list_plans(db)],
                               error=str(exc), form={}, pack_form=f), status_of(exc)
    flash(f"Top-up pack {pack.name} offered on {f.get('pack_plan', '')}.")
    return redirect(url_for("catalog.plan_list") + "#packs")
