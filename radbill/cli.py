"""The ``radbill`` command line: the root group, ``db`` and ``scheduler``; each part's own
group is assembled here (see :mod:`radbill.cliutil` for what they share).

Every command either completes or changes nothing. Bad input gets one line on stderr that
starts with ``error:`` and a non-zero exit status; every list and show takes ``--json``.
"""

from __future__ import annotations

import logging
import sys
from contextlib import suppress
from typing import Any

import click

from admin.cli import serve, user
from billing.cli import billing, isp, payment, plan, subscriber
from coa.cli import enforcement
from notify.cli import notify
from payments.cli import payment_held, payment_poll
from radbill.cliutil import App, OneLineErrors, fail, guarded, pass_app
from radbill.config import ConfigError, Settings
from radbill.secure import private_umask
from radius.cli import accounting, nas, radius


@click.group(cls=OneLineErrors)
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
@pass_app
@guarded
def db_upgrade(app: App) -> None:
    """Create or migrate the schema to the newest version."""
    from radbill import migrate
    from radbill.crypto import load_key

    migrate.upgrade(app.engine)
    load_key(app.settings)  # create the secret key on first run, before anything needs it
    click.echo(f"database at revision {migrate.current_revision(app.engine)}")



@main.command("scheduler")
@click.option("--billing-time", default="00:15", show_default=True,
              help="When the daily billing run starts (HH:MM, ISP time).")
@click.option("--run-now", "run_now", type=click.Choice(["billing-run", "stale-sessions",
                                                             "payment-poll"]),
              help="Run one job once (recorded and locked like a scheduled run) and exit.")
@pass_app
@guarded
def scheduler_cmd(app: App, billing_time: str, run_now: str | None) -> None:
    """Run the periodic jobs until stopped."""
    from radbill import scheduler

    jobs = {"billing-run": scheduler.billing_job, "stale-sessions": scheduler.stale_sessions_job,
            "payment-poll": scheduler.payment_poll_job}
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


payment.add_command(payment_poll)
payment.add_command(payment_held)
for _group in (plan, subscriber, billing, payment, isp, nas, radius, enforcement, accounting,
               user, serve, notify):
    main.add_command(_group)


if __name__ == "__main__":
    main()
