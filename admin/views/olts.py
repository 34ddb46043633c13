"""OLTs: every OLT, and one OLT's ONUs by PON port with status, signal and subscriber."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template

from admin.auth import requires
from admin.db import get_db
from admin.roles import Permission
from olt import inventory
from radbill.errors import DomainError

bp = Blueprint("olts", __name__, url_prefix="/olts")


@bp.route("")
@requires(Permission.READ)
def index() -> Any:
    """Every OLT with ONU counts, last poll and last error (secrets never shown)."""
    return render_template("olts.html", rows=inventory.list_olts(get_db()))


@bp.route("/<name>")
@requires(Permission.READ)
def detail(name: str) -> Any:
    """One OLT's ONUs grouped by PON port: status, Rx power (weak marked), admin state and the
    subscriber bound to each."""
    db = get_db()
    try:
        olt = inventory.get_olt(db, name)
    except DomainError:
        abort(404)
    onus = inventory.onus_of(db, olt)
    pons: dict[str, list[dict[str, Any]]] = {}
    for row in onus:
        pons.setdefault(row["pon"] or "?", []).append(row)
    p = inventory.profile_of(olt)
    return render_template("olt.html", olt=olt, profile=p, pons=pons, total=len(onus),
                           online=sum(1 for r in onus if r["status"] == "online"),
                           weak=sum(1 for r in onus if r["weak"]))
