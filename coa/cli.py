"""Enforcement's commands: the worker, its status and the reconciler."""

from __future__ import annotations

import sys

import click

from radbill.cliutil import App, emit, guarded, pass_app

# -- enforcement ------------------------------------------------------------------------------


@click.group()
def enforcement() -> None:
    """Making the network follow billing (CoA/Disconnect, RouterOS API, reconciliation)."""


@enforcement.command("run")
@click.option("--once", is_flag=True, help="One round (and a reconciliation), then exit.")
@pass_app
@guarded
def enforcement_run(app: App, once: bool) -> None:
    """Consume the enforcement queue until stopped."""
    from coa import runner
    from radbill.secure import warn_if_exposed

    warn_if_exposed(app.settings)
    sys.exit(runner.run(app.settings, once=once))


@enforcement.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def enforcement_status(app: App, as_json: bool) -> None:
    """Pending, failed and drift counts."""
    from coa import runner

    with app.transaction() as session:
        data = runner.status(session, app.settings)
    emit(data, as_json, runner.render_status)


@enforcement.command("reconcile")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def enforcement_reconcile(app: App, as_json: bool) -> None:
    """Compare billing with the network now and queue or make repairs."""
    import asyncio

    from coa import runner

    counts = asyncio.run(runner.reconcile_once(app.settings))
    emit(counts, as_json, lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
