"""The portal's commands: plan change requests subscribers made, for an operator to approve
or reject (``radbill portal requests|approve|reject``)."""

from __future__ import annotations

from typing import Any

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.group()
def portal() -> None:
    """The subscriber portal: plan change requests."""


def _row(session: Any, req: Any) -> dict[str, Any]:
    from billing.models import Plan, Subscriber

    sub = session.get(Subscriber, req.subscriber_id)
    plan = session.get(Plan, req.plan_id)
    return {"id": req.id, "username": sub.username if sub else None,
            "from": sub.plan.name if sub else None, "to": plan.name if plan else None,
            "effective": req.effective, "status": req.status,
            "requested_at": req.requested_at.isoformat(), "decided_by": req.decided_by}


@portal.command("requests")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def requests(app: App, as_json: bool) -> None:
    """Plan change requests waiting for approval, oldest first."""
    from portal.account import pending_requests

    with app.transaction() as session:
        data = [_row(session, r) for r in pending_requests(session)]
    emit(data, as_json, lambda d: table(d, ["id", "username", "from", "to", "effective",
                                            "requested_at"]))


def _decide(app: App, request_id: int, approve: bool, by: str, note: str | None,
            as_json: bool) -> None:
    from billing.isp import local_today
    from billing.isp import settings as isp_settings
    from portal.account import decide
    from radbill.db import utcnow

    with app.transaction() as session:
        today = local_today(isp_settings(session), utcnow())
        req = decide(session, request_id, approve=approve, by=by, today=today, note=note)
        data = _row(session, req)
    emit(data, as_json, lambda d: f"request {d['id']} {d['status']}: {d['username']} "
                                  f"{d['from']} -> {d['to']} ({d['effective']})")


@portal.command("approve")
@click.argument("request_id", type=click.IntRange(1, 2**62))
@click.option("--by", default="cli", show_default=True, help="who approves (audited)")
@click.option("--note")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def approve(app: App, request_id: int, by: str, note: str | None, as_json: bool) -> None:
    """Approve a request: the plan is changed as requested (now or at the next cycle)."""
    _decide(app, request_id, True, by, note, as_json)


@portal.command("reject")
@click.argument("request_id", type=click.IntRange(1, 2**62))
@click.option("--by", default="cli", show_default=True, help="who rejects (audited)")
@click.option("--note")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def reject(app: App, request_id: int, by: str, note: str | None, as_json: bool) -> None:
    """Reject a request."""
    _decide(app, request_id, False, by, note, as_json)
