"""The portal's commands: plan change requests subscribers made, for an operator to approve
or reject (``radbill portal requests|approve|reject``; the admin UI has the same at
``/plan-requests``)."""

from __future__ import annotations

from typing import Any

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.group()
def portal() -> None:
    """The subscriber portal: plan change requests."""


@portal.command("requests")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def requests(app: App, as_json: bool) -> None:
    """Plan change requests waiting for approval, oldest first."""
    from portal.account import pending_requests, request_views

    with app.transaction() as session:
        data = [v.as_dict() for v in request_views(session, pending_requests(session))]
    emit(data, as_json, lambda d: table(d, ["id", "username", "from", "to", "effective",
                                            "requested_at"]))


def _decision(name: str, approve: bool, summary: str) -> click.Command:
    """``approve`` and ``reject``: the same command but for the decision."""

    @click.command(name, help=summary)
    @click.argument("request_id", type=click.IntRange(1, 2**62))
    @click.option("--by", default="cli", show_default=True, help=f"who {name}s (audited)")
    @click.option("--note")
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    @guarded
    def command(app: App, request_id: int, by: str, note: str | None, as_json: bool) -> None:
        from billing.isp import local_today
        from billing.isp import settings as isp_settings
        from portal.account import decide, request_views
        from radbill.db import utcnow

        with app.transaction() as session:
            today = local_today(isp_settings(session), utcnow())
            req = decide(session, request_id, approve=approve, by=by, today=today, note=note)
            data: dict[str, Any] = request_views(session, [req])[0].as_dict()
        emit(data, as_json, lambda d: f"request {d['id']} {d['status']}: {d['username']} "
                                      f"{d['from']} -> {d['to']} ({d['effective']})")

    return command


portal.add_command(_decision("approve", True, "Approve a request: the plan is changed as "
                                               "requested (now or at the next cycle)."))
portal.add_command(_decision("reject", False, "Reject a request."))
