"""What the ISP sells and where: plans and NAS devices."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from admin.auth import requires
from admin.db import box, commit, get_db
from admin.roles import Permission
from admin.views.common import actor
from billing import plans
from radbill.errors import DomainError, InvalidInput
from radius import nas
from radius.nas_profiles import nas_types

bp = Blueprint("catalog", __name__)


def _int(field: str, default: int | None = None) -> int | None:
    text = (request.form.get(field) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{field.replace('_', ' ')}: {text!r} is not a whole number"
                           ) from None


def _opt(field: str) -> str | None:
    return (request.form.get(field) or "").strip() or None


@bp.route("/plans")
@requires(Permission.READ)
def plan_list() -> Any:
    """Every plan; admins also see the form to create one."""
    db = get_db()
    return render_template("plans.html", rows=[plans.plan_summary(p) for p in
                                               plans.list_plans(db)], error=None, form={})


@bp.route("/plans/new", methods=["POST"])
@requires(Permission.MANAGE)
def plan_create() -> Any:
    """Create a plan (the form is on the plans page)."""
    db = get_db()
    f = request.form
    try:
        row = plans.create_plan(
            db, name=f.get("name", ""), price=f.get("price", "") or "", currency=f.get(
                "currency", ""), rate=f.get("rate", ""), burst=_opt("burst"),
            data_cap=_opt("data_cap"), fup_rate=_opt("fup_rate"),
            cap_counts=f.get("cap_counts") or "both", ip_pool=_opt("ip_pool"),
            billing_cycle=f.get("billing_cycle", "monthly"),
            validity_days=_int("validity_days"), billing_mode=f.get("billing_mode", "postpaid"),
            grace_days=_int("grace_days", 0) or 0, late_fee=f.get("late_fee") or "0",
            tax_percent=f.get("tax_percent") or "0", setup_fee=f.get("setup_fee") or "0",
            actor=actor())
        commit()
    except DomainError as exc:
        db.rollback()
        return render_template("plans.html", rows=[plans.plan_summary(p) for p in
                                                   plans.list_plans(db)],
                               error=str(exc), form=f), 422
    flash(f"Plan {row.name} created.")
    return redirect(url_for(".plan_list"))


@bp.route("/nas")
@requires(Permission.READ)
def nas_list() -> Any:
    """Every NAS (secrets never shown); admins also see the form to add one."""
    db = get_db()
    return render_template("nas.html", rows=[nas.summary(n) for n in nas.list_nas(db)],
                           error=None, form={}, nas_types=nas_types())


@bp.route("/nas/new", methods=["POST"])
@requires(Permission.MANAGE)
def nas_create() -> Any:
    """Register a NAS (FreeRADIUS picks it up at its next start)."""
    db = get_db()
    f = request.form
    try:
        row = nas.create_nas(db, box(), name=f.get("name", "").strip(), ip=f.get("ip", ""),
                             secret=f.get("secret", ""), nas_type=f.get("nas_type", "mikrotik"),
                             coa_port=_int("coa_port", 3799) or 3799, actor=actor())
        commit()
    except DomainError as exc:
        db.rollback()
        form = {k: v for k, v in f.items() if k != "secret"}
        return render_template("nas.html", rows=[nas.summary(n) for n in nas.list_nas(db)],
                               error=str(exc), form=form, nas_types=nas_types()), 422
    flash(f"NAS {row.name} registered; restart 'radbill radius run' to let it in.")
    return redirect(url_for(".nas_list"))
