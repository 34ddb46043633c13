"""The ``radbill`` command line: the root group, ``db`` and ``scheduler``; each part's own
group is assembled here (see :mod:`radbill.cliutil` for what they share).

Every command either completes or changes nothing. Bad input gets one line on stderr that
starts with ``error:`` and a non-zero exit status; every list and show takes ``--json``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import click

from radbill import __version__
from radbill.cliutil import App, LazyGroup, emit, fail, guarded, pass_app
from radbill.config import ConfigError, Settings
from radbill.secure import private_umask


def _part(module: str, name: str) -> Callable[[], click.Command]:
    """The command *name* of the part *module*, imported when it is used."""
    def load() -> click.Command:
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{name} is not a click command")
        return command
    return load


def _payment() -> click.Command:
    from billing.cli import payment
    from payments.cli import payment_held, payment_poll

    payment.add_command(payment_poll)
    payment.add_command(payment_held)
    return payment


def _subscriber() -> click.Command:
    from billing.cli import subscriber
    from olt.cli import set_onu

    subscriber.add_command(set_onu)
    return subscriber


# Each part's command group, imported when it is used (see LazyGroup).
PARTS: dict[str, Callable[[], click.Command]] = {
    "plan": _part("billing.cli", "plan"),
    "subscriber": _subscriber,
    "billing": _part("billing.cli", "billing"),
    "payment": _payment,
    "isp": _part("billing.cli", "isp"),
    "nas": _part("radius.cli", "nas"),
    "radius": _part("radius.cli", "radius"),
    "accounting": _part("radius.cli", "accounting"),
    "enforcement": _part("coa.cli", "enforcement"),
    "olt": _part("olt.cli", "olt"),
    "user": _part("admin.cli", "user"),
    "serve": _part("admin.cli", "serve"),
    "notify": _part("notify.cli", "notify"),
    "usage": _part("usage.cli", "usage"),
    "report": _part("reports.cli", "report"),
    "portal": _part("portal.cli", "portal"),
    "retention": _part("retention.cli", "retention"),
}


@click.group(cls=LazyGroup, lazy=PARTS)
@click.version_option(__version__, "--version", prog_name="radbill",
                      message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """radbill: AAA backend and billing policy engine for ISPs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("radbill").setLevel(logging.DEBUG if verbose else logging.INFO)
    private_umask()  # what radbill writes (and FreeRADIUS, which it starts) is owner-only
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(f"configuration: {exc}")
    ctx.obj = App(settings, suspension_holds=_payment_holds)
    ctx.call_on_close(ctx.obj.close)


# -- db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--allow-long-locks", is_flag=True,
              help="Run migrations that lock a big table for long (in a maintenance window).")
@pass_app
@guarded
def db_upgrade(app: App, allow_long_locks: bool) -> None:
    """Create or migrate the schema to the newest version."""
    from radbill import migrate
    from radbill.crypto import load_key

    risks = migrate.lock_risks(app.engine)
    for risk in risks:
        click.echo(("warning: " if risk.rows is None or allow_long_locks else "")
                   + risk.line(), err=True)
    if not allow_long_locks and any(r.rows is not None for r in risks):
        fail("this upgrade locks big tables for long (above); nothing was changed: run it in "
             "a maintenance window with 'radbill db upgrade --allow-long-locks'")
    migrate.upgrade(app.engine)
    from radbill.db import utcnow
    from radius.partitions import ensure_months

    # PostgreSQL: the sessions' partitions of this month and two ahead (the nightly
    # retention job keeps them ahead from then on)
    for name in ensure_months(app.engine, utcnow()):
        click.echo(f"created partition {name}", err=True)
    load_key(app.settings)  # create the secret key on first run, before anything needs it
    click.echo(f"database at revision {migrate.current_revision(app.engine)}")


@db.command("check")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def db_check(app: App, as_json: bool) -> None:
    """Where the schema stands, and what the pending migrations would lock for long."""
    from radbill import migrate

    data = {"revision": migrate.current_revision(app.engine),
            "head": migrate.head_revision(app.engine),
            "long_locks": [{"revision": r.revision, "table": r.table, "rows": r.rows,
                            "why": r.why} for r in migrate.lock_risks(app.engine)]}
    emit(data, as_json, lambda d: "\n".join(
        [f"schema at {d['revision']}, this release's head is {d['head']}"]
        + [migrate.LockRisk(**r).line() for r in d["long_locks"]]))



# -- backup -----------------------------------------------------------------------------------


@main.command("backup")
@click.argument("into", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def backup_cmd(app: App, into: Path, as_json: bool) -> None:
    """Back up the database, the secret key, gateway credentials and the invoice archive into
    a new directory below INTO (owner-only: it holds the key)."""
    from radbill import backup

    target = backup.backup(app.settings, app.engine, into)
    manifest = backup.read_manifest(target)
    emit({"backup": str(target), "revision": manifest["revision"],
          "files": len(manifest["files"])}, as_json,
         lambda d: f"backup written to {d['backup']} (schema {d['revision']}, {d['files']} "
                   "files checksummed); it holds the secret key: keep it as safe as the "
                   "server")


@main.command("restore")
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def restore_cmd(app: App, source: Path, as_json: bool) -> None:
    """Restore a backup made by `radbill backup` onto this fresh installation."""
    from radbill import backup

    done = backup.restore(app.settings, app.engine, source)
    data = {"revision": done.revision, "invoices_verified": done.invoices_verified,
            "invoices_bad": done.invoices_bad, "secrets_checked": done.secrets_checked,
            "secrets_unreadable": done.secrets_bad}
    emit(data, as_json, lambda d: (
        f"restored at schema {d['revision']}: {d['invoices_verified']} invoice PDFs verified"
        + (f", {len(d['invoices_bad'])} FAILED ({', '.join(d['invoices_bad'][:10])})"
           if d["invoices_bad"] else "")
        + f"; {d['secrets_checked']} stored secrets decrypt"
        + (f", {d['secrets_unreadable']} DO NOT" if d["secrets_unreadable"] else "")))
    if done.invoices_bad or done.secrets_bad:
        sys.exit(1)


# -- secret -----------------------------------------------------------------------------------


@main.group()
def secret() -> None:
    """The at-rest key that encrypts stored secrets."""


@secret.command("rotate")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def secret_rotate(app: App, as_json: bool) -> None:
    """Encrypt every stored secret under a new key (running processes follow the key file)."""
    from radbill.crypto import rotate_key
    from radbill.db import session_factory

    n = rotate_key(app.settings, session_factory(app.engine))
    emit({"rotated": n}, as_json, lambda d: (
        f"{d['rotated']} stored secrets re-encrypted under a new key; the previous key is "
        "kept for decryption only until the next rotation. Back up now: older backups hold "
        "the older keys (they still restore)"))


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def doctor_cmd(app: App, as_json: bool) -> None:
    """Check this installation and say what is wrong in plain words (exit 1 on a problem)."""
    from radbill.doctor import PROBLEM, examine

    findings = examine(app.settings, app.engine)
    emit([{"level": f.level, "check": f.check, "message": f.message} for f in findings],
         as_json, lambda rows: "\n".join(f"{r['level']:<8}{r['check']:<12}{r['message']}"
                                          for r in rows))
    if any(f.level == PROBLEM for f in findings):
        sys.exit(1)


@main.command("scheduler")
@click.option("--billing-time", default="00:15", show_default=True,
              help="When the daily billing run starts (HH:MM, ISP time).")
@click.option("--run-now", "run_now", type=click.Choice(["billing-run", "stale-sessions",
                                                             "payment-poll", "olt-poll",
                                                             "retention"]),
              help="Run one job once (recorded and locked like a scheduled run) and exit.")
@pass_app
@guarded
def scheduler_cmd(app: App, billing_time: str, run_now: str | None) -> None:
    """Run the periodic jobs until stopped."""
    from radbill import scheduler

    jobs = {"billing-run": scheduler.billing_job, "stale-sessions": scheduler.stale_sessions_job,
            "payment-poll": scheduler.payment_poll_job, "olt-poll": scheduler.olt_poll_job,
            "retention": scheduler.retention_job}
    if run_now:
        outcome = scheduler.run_job(app.engine, app.settings, run_now,
                                    jobs[run_now](app.settings))
        click.echo(f"{run_now}: {outcome}")
        sys.exit(0 if outcome != "failed" else 1)
    from radbill.secure import warn_if_exposed

    warn_if_exposed(app.settings)
    sched = scheduler.build(app.engine, app.settings, billing_time)
    click.echo(f"scheduler running: billing at {billing_time}, stale sessions every "
               f"{app.settings.interim_interval} s (Ctrl-C stops)")
    with suppress(KeyboardInterrupt, SystemExit):
        sched.start()



def _payment_holds(session: Any, subscriber_ids: list[int], now: Any) -> Any:
    """The payments part's suspension holds (a payment pending on a failing gateway)."""
    from payments.intents import holds

    return holds(session, subscriber_ids, now)


if __name__ == "__main__":
    main()
