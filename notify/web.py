"""The notify part's public endpoints (a blueprint of the web app):

* ``GET /p/<code>``: the short payment links in SMS, redirecting to the invoice's payment
  page. Public: the code is random and leads only to the public payment page.
* ``POST /webhooks/sms/msg91``: MSG91's delivery reports (its "v2" webhook: form field
  ``data``, a JSON array). MSG91 does not sign them: a report only moves a message radbill
  sent, to the number it was sent to, under the request id MSG91 gave us, from sent to
  delivered or failed; it can change nothing else.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, abort, jsonify, redirect, request
from werkzeug.wrappers import Response

from admin.auth import requires
from admin.db import commit, get_db
from admin.roles import Permission
from notify.delivery import report
from notify.links import resolve
from radbill.db import utcnow

log = logging.getLogger("radbill.notify")
REPORTS_MAX = 1000

bp = Blueprint("notify", __name__)


@bp.route("/p/<code>")
@requires(Permission.PUBLIC)
def short_link(code: str) -> Response:
    target = resolve(get_db(), code)
    if target is None:
        abort(404, description="unknown link")
    return redirect(target, code=302)


@bp.route("/webhooks/sms/msg91", methods=["POST"])
@requires(Permission.PUBLIC)
def msg91_reports() -> Response:
    try:
        batches = json.loads(request.form.get("data") or "[]")
    except ValueError:
        abort(400, description="data is not JSON")
    if not isinstance(batches, list):
        abort(400, description="data is not a list")
    seen = applied = 0
    db = get_db()
    now = utcnow()
    for batch in batches[:REPORTS_MAX]:
        if not isinstance(batch, dict) or not isinstance(batch.get("report"), list):
            continue
        reference = str(batch.get("requestId") or "")
        for item in batch["report"][:REPORTS_MAX]:
            if not isinstance(item, dict) or not reference:
                continue
            seen += 1
            desc = str(item.get("desc") or "")
            delivered = str(item.get("status")) == "1" or desc.upper() == "DELIVERED"
            applied += report(db, reference, str(item.get("number") or ""), delivered,
                              f"{desc} {item.get('failedReason') or ''}".strip(), now)
    commit()
    if seen != applied:
        log.info("msg91 reports: %d of %d matched no message", seen - applied, seen)
    return jsonify({"ok": True, "applied": applied})
