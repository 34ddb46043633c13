"""``GET /p/<code>``: the short payment links in SMS, redirecting to the invoice's payment
page (a blueprint of the web app). Public: the code is random and leads only to the public
payment page."""

from __future__ import annotations

from flask import Blueprint, abort, redirect
from werkzeug.wrappers import Response

from admin.auth import requires
from admin.db import get_db
from admin.roles import Permission
from notify.links import resolve

bp = Blueprint("notify", __name__)


@bp.route("/p/<code>")
@requires(Permission.PUBLIC)
def short_link(code: str) -> Response:
    target = resolve(get_db(), code)
    if target is None:
        abort(404, description="unknown link")
    return redirect(target, code=302)
