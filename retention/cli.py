"""`radbill retention ...`: what is kept how long, and a run of the retention job now."""

from __future__ import annotations

from pathlib import Path

import click

from radbill.cliutil import App, emit, fail, guarded, pass_app, table


@click.group("retention")
def retention() -> None:
    """How long records are kept, and pruning them (the scheduler does it nightly)."""


def _spool(app: App, spool_dir: Path | None) -> Path | None:
    path = spool_dir or app.settings.data_dir / "radius" / "spool"
    return path if path.is_dir() else None


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path),
              help="This node's detail spool (default <data>/radius/spool, if there).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def run_cmd(app: App, dry_run: bool, spool_dir: Path | None, as_json: bool) -> None:
    """Prune everything older than the retention settings, in small batches (safe while
    radbill runs; audited). Invoices, payments and the ledger are never pruned."""
    from radbill.db import session_factory, utcnow
    from radbill.scheduler import job_lock
    from retention import service
    from retention.policy import Policy

    # the scheduler's own lock: never two runs at once, whoever started them
    with job_lock(app.engine, "retention", app.settings.data_dir / "locks") as got:
        if not got:
            fail("a retention run is under way (the scheduler's?): nothing was done")
        report = service.run(session_factory(app.engine),
                             Policy.from_settings(app.settings), utcnow(), dry_run=dry_run,
                             actor="cli", spool_dir=_spool(app, spool_dir),
                             node=app.settings.node_name)
    data = {"today": report.today, "dry_run": report.dry_run,
            "kinds": [{"kind": k.kind, "before": k.before or "kept", "rows": k.rows,
                       "batches": k.batches} for k in report.kinds],
            "spool": report.spool}
    emit(data, as_json, lambda d: (
        ("dry run: nothing changed; would delete\n" if d["dry_run"] else "")
        + table(d["kinds"], ["kind", "before", "rows", "batches"])
        + (f"\nspool: {d['spool']['compressed']} files compressed "
           f"({d['spool']['bytes_in']:,} to {d['spool']['bytes_out']:,} bytes), "
           f"{d['spool']['removed']} removed" if d["spool"] else "")))


@retention.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def status(app: App, as_json: bool) -> None:
    """The retention settings, and how far back each table reaches."""
    from radbill.db import session_factory
    from retention import service
    from retention.policy import Policy

    policy = Policy.from_settings(app.settings)
    data = {"settings": [{"kind": k, "setting": s, "value": v}
                         for k, s, v in policy.settings()],
            "oldest": service.oldest(session_factory(app.engine))}
    emit(data, as_json, lambda d: (
        table(d["settings"], ["kind", "setting", "value"]) + "\n(0: kept for ever)\n\n"
        + table([{"table": k, "oldest": v or "-"} for k, v in d["oldest"].items()],
                ["table", "oldest"])))
