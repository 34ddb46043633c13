"""``radbill report NAME [--json|--csv]``: the reconciliation reports on the command line."""

from __future__ import annotations

import json

import click

from radbill.cliutil import App, guarded, pass_app, table
from radbill.errors import InvalidInput


@click.command("report")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV (a header line first).")
@click.option("--nas", help="Only this NAS (name or address).")
@click.option("--plan", help="Only this plan.")
@click.option("--days", type=int, default=30, show_default=True,
              help="never-online: not seen online for this many days.")
@click.option("--limit", type=int, default=1000, show_default=True, help="At most this many rows.")
@pass_app
@guarded
def report(app: App, name: str | None, as_json: bool, as_csv: bool, nas: str | None,
           plan: str | None, days: int, limit: int) -> None:
    """Run the reconciliation report NAME (without NAME: list them). Each row names its
    subscriber and what to do."""
    from radbill.db import utcnow
    from reports.registry import REPORTS, Params, get, to_csv

    if as_json and as_csv:
        raise InvalidInput("--json or --csv, not both")
    if name is None:
        listing = [{"name": r.name, "title": r.title, "description": r.description}
                   for r in REPORTS.values()]
        if as_json:
            click.echo(json.dumps(listing, indent=2))
        else:
            click.echo(table(listing, ["name", "title"]))
        return
    rep = get(name)
    with app.transaction() as session:
        now = utcnow()
        params = Params(now=now, today=app.today(session),
                        interim_interval=app.settings.interim_interval, nas=nas, plan=plan,
                        days=days, limit=limit)
        rows = rep.run(session, params)
    if as_json:
        click.echo(json.dumps({"report": rep.name, "at": now.isoformat(), "rows": rows},
                              indent=2, default=str))
    elif as_csv:
        click.echo(to_csv(rep.columns, rows), nl=False)
    else:
        click.echo(f"{rep.title} ({len(rows)} rows)")
        click.echo(table(rows, list(rep.columns)))
