"""Payments' commands, added to the ``payment`` group: gateway polling and held payments."""

from __future__ import annotations

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.command("poll")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def payment_poll(app: App, as_json: bool) -> None:
    """Ask the gateways about payments still unconfirmed after a few minutes."""
    from payments.config import adapters
    from payments.polling import poll
    from radbill.db import session_factory

    counts = poll(session_factory(app.engine), adapters(app.settings))
    emit(counts, as_json, lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items()))
         or "nothing to poll")


@click.command("held")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def payment_held(app: App, as_json: bool) -> None:
    """Gateway payments held for review (amount or currency did not match)."""
    from payments.intents import held

    with app.transaction() as session:
        data = [{"reference": i.reference, "gateway": i.gateway,
                 "transaction_id": i.transaction_id, "expected": f"{i.amount} {i.currency}",
                 "confirmed": f"{i.confirmed_amount} {i.confirmed_currency}",
                 "reason": i.hold_reason, "at": i.updated_at.isoformat()}
                for i in held(session)]
    emit(data, as_json, lambda d: table(d, ["reference", "gateway", "transaction_id",
                                            "expected", "confirmed", "reason"]))
