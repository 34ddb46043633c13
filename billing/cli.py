"""Billing's commands: plans, subscribers, billing runs and reports, payments, ISP settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from radbill.cliutil import (
    DAY,
    App,
    as_of_option,
    emit,
    guarded,
    not_future,
    on_option,
    pass_app,
    table,
)

# -- plans ------------------------------------------------------------------------------------


@click.group()
def plan() -> None:
    """Packages: price, speed, cap and billing terms."""


@plan.command("create")
@click.argument("name")
@click.option("--price", required=True, help="Price per cycle, e.g. 500 or 499.50.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. BDT.")
@click.option("--rate", required=True, help="DOWNLOAD/UPLOAD, e.g. 20M/5M.")
@click.option("--burst", help="Burst DOWNLOAD/UPLOAD, e.g. 40M/10M.")
@click.option("--burst-threshold", help="Burst threshold DOWNLOAD/UPLOAD (default 3/4 of rate).")
@click.option("--burst-time", type=int, help="Burst time in seconds (default 16).")
@click.option("--data-cap", help="Fair-usage cap per cycle, e.g. 100G.")
@click.option("--fup-rate", help="Speed after the cap, DOWNLOAD/UPLOAD.")
@click.option("--cap-counts", type=click.Choice(["download", "upload", "both"]),
              default="both", show_default=True, help="What counts against the data cap.")
@click.option("--time-quota", "time_quota_s", type=int,
              help="Hotspot prepaid time per cycle, in seconds.")
@click.option("--pool", "ip_pool", help="MikroTik IP pool (Framed-Pool) for this plan.")
@click.option("--cycle", "billing_cycle", default="monthly",
              type=click.Choice(["monthly", "weekly", "daily", "days"]))
@click.option("--validity-days", type=int, help="Days of validity for --cycle days.")
@click.option("--mode", "billing_mode", default="postpaid",
              type=click.Choice(["prepaid", "postpaid"]))
@click.option("--grace-days", type=int, default=0)
@click.option("--late-fee", default="0", help="Amount, or percent with --late-fee-percent.")
@click.option("--late-fee-percent", is_flag=True)
@click.option("--late-fee-cap", help="Upper limit of a percent late fee.")
@click.option("--tax-percent", default="0", help="VAT/tax percent added to invoices.")
@click.option("--setup-fee", default="0", help="One-off connection fee on the first invoice.")
@click.option("--anchor", "cycle_anchor", default="anniversary",
              type=click.Choice(["anniversary", "fixed_day"]))
@click.option("--billing-day", type=int, help="Day of the month (1-28) with --anchor fixed_day.")
@click.option("--reminder-days", type=int, default=3, show_default=True)
@click.option("--throttle-after-days", type=int, help="Throttle this many days after due.")
@click.option("--terminate-after-days", type=int, help="Terminate after this long suspended.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def plan_create(app: App, as_json: bool, **options: Any) -> None:
    """Create a plan."""
    from billing import plans

    with app.transaction() as session:
        row = plans.create_plan(session, actor="cli", **options)
        data = plans.plan_summary(row)
    emit(data, as_json, lambda d: f"plan {d['name']} created: {d['rate']} at "
                                  f"{d['price']} {d['currency']}")


@plan.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def plan_list(app: App, as_json: bool) -> None:
    """List plans."""
    from billing import plans

    with app.transaction() as session:
        data = [plans.plan_summary(p) for p in plans.list_plans(session)]
    emit(data, as_json, lambda d: table(d, ["name", "price", "currency", "rate", "burst",
                                            "billing_mode", "billing_cycle"]))


@plan.command("set-rate")
@click.argument("name")
@click.argument("rate")
@pass_app
@guarded
def plan_set_rate(app: App, name: str, rate: str) -> None:
    """Change a plan's speed (DOWNLOAD/UPLOAD)."""
    from billing import plans

    with app.transaction() as session:
        row = plans.set_plan_rate(session, name, rate, actor="cli")
        click.echo(f"plan {row.name} now {plans.plan_rate(row)}")


@plan.command("set-addressing")
@click.argument("name")
@click.option("--ipv6-pool", help="NAS pool for the WAN IPv6 prefix (Framed-IPv6-Pool).")
@click.option("--delegated-ipv6-pool",
              help="NAS pool for the prefix delegated to the LAN (Delegated-IPv6-Prefix-Pool).")
@click.option("--idle-timeout", type=int, help="Idle-Timeout in seconds (default: the ISP's).")
@pass_app
@guarded
def plan_set_addressing(app: App, name: str, ipv6_pool: str | None,
                        delegated_ipv6_pool: str | None, idle_timeout: int | None) -> None:
    """Set a plan's IPv6 pools and Idle-Timeout (an option left out is cleared)."""
    from billing import plans

    with app.transaction() as session:
        plans.set_plan_addressing(session, name, ipv6_pool=ipv6_pool,
                                  delegated_ipv6_pool=delegated_ipv6_pool,
                                  idle_timeout=idle_timeout, actor="cli")
    click.echo(f"plan {name}: IPv6 pool {ipv6_pool or '-'}, delegated pool "
               f"{delegated_ipv6_pool or '-'}, idle timeout {idle_timeout or '-'}")


# -- subscribers ------------------------------------------------------------------------------


@click.group()
def subscriber() -> None:
    """Subscriber accounts."""


@subscriber.command("create")
@click.argument("username")
@click.option("--password", required=True)
@click.option("--plan", required=True, help="Plan name.")
@click.option("--service", default="pppoe", type=click.Choice(["pppoe", "hotspot"]))
@click.option("--mac", help="Bind to this MAC (Calling-Station-Id).")
@click.option("--ip", help="Static IPv4 address (Framed-IP-Address).")
@click.option("--pool", help="IP pool (Framed-Pool), overriding the plan's.")
@click.option("--simultaneous-use", type=int, default=1, show_default=True)
@click.option("--name", "full_name")
@click.option("--phone")
@click.option("--email")
@click.option("--address", help="Postal (installation) address, printed on tax invoices.")
@click.option("--tax-id", help="The subscriber's BIN (Bangladesh) or GSTIN (India), if any.")
@click.option("--state-code", help="India: GST State code of the place of supply (e.g. 29).")
@click.option("--activated-on", type=DAY,
              help="First day of service (YYYY-MM-DD; default today; never in the future).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def subscriber_create(app: App, as_json: bool, **options: Any) -> None:
    """Create an active subscriber."""
    from billing import subscribers

    box = app.box()
    with app.transaction() as session:
        row = subscribers.create_subscriber(session, box, actor="cli", **options)
        from notify.outbox import welcome

        welcome(session, row)
        data = subscribers.summary(row)
    emit(data, as_json, lambda d: f"subscriber {d['username']} created on plan {d['plan']}")


@subscriber.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and preview; write nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def subscriber_import(app: App, path: str, dry_run: bool, as_json: bool) -> None:
    """Create subscribers from a CSV file (columns: see billing/imports.py): all or nothing,
    every bad row listed by line and reason."""
    from billing import imports

    box = app.box()
    with open(path, encoding="utf-8-sig", newline="") as f, app.transaction() as session:
        report = imports.import_csv(session, box, f, actor="cli", dry_run=dry_run)
        if report.errors:
            session.rollback()
    data = report.as_dict()

    def render(d: dict[str, Any]) -> str:
        if d["errors"]:
            return "\n".join([f"{len(d['errors'])} problem(s); nothing imported:",
                              *(f"line {e['line']}: {e['reason']}" for e in d["errors"])])
        if d["dry_run"]:
            return (f"dry run: {d['rows']} row(s) would be imported; the first:\n"
                    + table(d["preview"], ["line", "username", "plan", "status",
                                           "opening_balance", "next_renewal"]))
        return f"{d['created']} subscriber(s) imported"

    emit(data, as_json, render)
    if report.errors:
        raise SystemExit(1)


@subscriber.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--with-passwords", is_flag=True, help="Include the passwords (in clear).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def subscriber_export(app: App, path: str, with_passwords: bool, as_json: bool) -> None:
    """Write every subscriber to a CSV file (the columns import reads)."""
    from billing import imports

    box = app.box()
    with open(path, "w", encoding="utf-8", newline="") as f, app.transaction() as session:
        if with_passwords:
            from radbill import audit

            audit.record(session, actor="cli", action="subscriber.export", entity="subscriber",
                         entity_id="*", after={"with_passwords": True})
        count = imports.export_csv(session, box, f, with_passwords=with_passwords,
                                   today=app.today(session))
    emit({"exported": count, "path": path, "with_passwords": with_passwords}, as_json,
         lambda d: f"{d['exported']} subscriber(s) written to {d['path']}")


@subscriber.command("show")
@click.argument("username")
@as_of_option
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def subscriber_show(app: App, username: str, as_of: dt.date | None, as_json: bool) -> None:
    """Status, plan, what is owed (balance, overdue, open invoices) and sessions."""
    from billing import reports, subscribers
    from radius import accounting

    with app.transaction() as session:
        sub = subscribers.get_subscriber(session, username)
        day = not_future(as_of, app.today(session), "--as-of")
        data: dict[str, Any] = subscribers.summary(sub)
        data["account"] = reports.account(session, sub, day)
        sessions = [accounting.session_summary(s)
                    for s in accounting.sessions_for(session, username)]
        data["open_sessions"] = [s for s in sessions if s["open"]]
        data["recent_sessions"] = [s for s in sessions if not s["open"]]

    def render(d: dict[str, Any]) -> str:
        lines = [f"{k}: {v}" for k, v in d.items() if not k.endswith("_sessions")
                 and k != "account"]
        acct = d["account"]
        lines.append(f"balance: {acct['balance']} {acct['currency']} (amount due "
                     f"{acct['amount_due']}, overdue {acct['overdue']})")
        lines.append("open invoices:")
        lines.append(table(acct["open_invoices"], ["number", "kind", "issued_on", "due_on",
                                                   "total", "outstanding"]))
        lines.append("open sessions:")
        lines.append(table(d["open_sessions"], ["nas_ip", "acct_session_id", "framed_ip",
                                                "started_at", "input_bytes", "output_bytes"]))
        lines.append("recent sessions:")
        lines.append(table(d["recent_sessions"], ["nas_ip", "acct_session_id", "started_at",
                                                  "stopped_at", "input_bytes", "output_bytes",
                                                  "terminate_cause"]))
        return "\n".join(lines)

    emit(data, as_json, render)


@subscriber.command("list")
@click.option("--status", type=click.Choice(["active", "suspended", "disabled", "terminated"]))
@click.option("--search", help="Part of a username, name or phone number.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def subscriber_list(app: App, status: str | None, search: str | None, as_json: bool) -> None:
    """List subscribers."""
    from billing import subscribers

    with app.transaction() as session:
        data = [subscribers.summary(s)
                for s in subscribers.list_subscribers(session, status=status, search=search)]
    emit(data, as_json, lambda d: table(d, ["username", "status", "plan", "service",
                                            "static_ip", "full_name", "phone"]))


def _status_command(name: str, target: str, help_text: str) -> None:
    @subscriber.command(name, help=help_text)
    @click.argument("username")
    @click.option("--reason", help="Why (kept in the audit log).")
    @on_option
    @pass_app
    @guarded
    def command(app: App, username: str, reason: str | None, on: dt.date | None) -> None:
        from billing import accounts
        from billing.models import SubscriberStatus

        with app.transaction() as session:
            day = not_future(on, app.today(session), "--on")
            changed = accounts.set_status_by_operator(session, username, SubscriberStatus(target),
                                                      actor="cli", reason=reason or "", on=day)
        click.echo(f"subscriber {username} {'is now' if changed else 'was already'} {target}")


_status_command("suspend", "suspended", "Suspend for non-payment (walled garden or reject).")
_status_command("reconnect", "active", "Reactivate a suspended or disabled subscriber.")
_status_command("disable", "disabled", "Block logins for a reason other than non-payment.")
_status_command("terminate", "terminated", "End the contract; the account can never log in.")


@subscriber.command("password")
@click.argument("username")
@click.option("--password", required=True, prompt=True, hide_input=True)
@pass_app
@guarded
def subscriber_password(app: App, username: str, password: str) -> None:
    """Set a new password."""
    from billing import subscribers

    box = app.box()
    with app.transaction() as session:
        subscribers.set_password(session, box, username, password, actor="cli")
    click.echo(f"password of {username} changed")


@subscriber.command("set-plan")
@click.argument("username")
@click.argument("plan_name")
@click.option("--at", "effective", type=click.Choice(["now", "next_cycle"]), default="now",
              show_default=True, help="now: prorated at once; next_cycle: at the renewal.")
@on_option
@pass_app
@guarded
def subscriber_set_plan(app: App, username: str, plan_name: str, effective: str,
                        on: dt.date | None) -> None:
    """Move a subscriber to another plan (prorated when it takes effect now)."""
    from billing.plan_changes import change_plan

    with app.transaction() as session:
        day = not_future(on, app.today(session), "--on")
        result = change_plan(session, username, plan_name, effective=effective, today=day,
                             actor="cli")
    notes = f"; credit notes {', '.join(result.credit_notes)}" if result.credit_notes else ""
    if result.effective == "next_cycle":
        click.echo(f"{username} moves to {plan_name} when the next period starts{notes}")
    else:
        extra = (f"; invoice {result.invoice_number} {result.amount}"
                 if result.invoice_number else "")
        click.echo(f"{username} now on {plan_name}{extra}{notes}")


@subscriber.command("set-mac")
@click.argument("username")
@click.argument("mac", required=False)
@pass_app
@guarded
def subscriber_set_mac(app: App, username: str, mac: str | None) -> None:
    """Bind to MAC, or clear the binding when no MAC is given."""
    from billing import subscribers

    with app.transaction() as session:
        subscribers.set_mac(session, username, mac, actor="cli")
    click.echo(f"MAC binding of {username} {'set to ' + mac if mac else 'cleared'}")


@subscriber.command("set-ipv6")
@click.argument("username")
@click.option("--prefix", help="Fixed WAN prefix (Framed-IPv6-Prefix), e.g. 2001:db8:1::/64.")
@click.option("--delegated-prefix", help="Fixed prefix delegated to the LAN, e.g. /56.")
@click.option("--pool", help="NAS pool for the WAN prefix instead of a fixed one.")
@pass_app
@guarded
def subscriber_set_ipv6(app: App, username: str, prefix: str | None,
                        delegated_prefix: str | None, pool: str | None) -> None:
    """Set the subscriber's own IPv6 (an option left out is cleared: the plan's applies)."""
    from billing import subscribers

    with app.transaction() as session:
        subscribers.set_ipv6(session, username, framed_prefix=prefix,
                             delegated_prefix=delegated_prefix, pool=pool, actor="cli")
    click.echo(f"IPv6 of {username} set")


@subscriber.command("promise")
@click.argument("username")
@click.option("--until", "until", required=True, type=DAY, help="YYYY-MM-DD")
@on_option
@pass_app
@guarded
def subscriber_promise(app: App, username: str, until: dt.date, on: dt.date | None) -> None:
    """Promise to pay: hold suspension (and lift one) until a date."""
    from billing import promises

    with app.transaction() as session:
        promise = promises.promise_to_pay(session, username, until, today=app.today(session),
                                          on=on, actor="cli")
        click.echo(f"{username} promised to pay by {promise.until}; suspension held until then")


# -- billing ----------------------------------------------------------------------------------


@click.group()
def billing() -> None:
    """Billing runs, invoices and reports."""


@billing.command("run")
@click.option("--as-of", type=DAY, help="Default: today (ISP time).")
@click.option("--dry-run", is_flag=True, help="Print what would happen; change nothing.")
@click.option("--confirm-suspensions", is_flag=True,
              help="Suspend even if more than the guard share would be suspended.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_run_cmd(app: App, as_of: dt.date | None, dry_run: bool, confirm_suspensions: bool,
                    as_json: bool) -> None:
    """Invoices, reminders, late fees and suspensions for one day. Safe to repeat."""
    from billing.archive import render_pending
    from billing.run import billing_run
    from radbill.db import session_factory
    from radbill.errors import InvalidInput
    from radbill.jobs import recorded

    factory = session_factory(app.engine)
    with factory() as session:
        # a real run is for today: its documents are dated the day they are issued, never
        # ahead and never back (what came due on missed days is billed today, the ladder
        # keeping its spacing). A dry run may preview any day.
        today = app.today(session)
        day = as_of if dry_run and as_of else not_future(as_of, today, "--as-of")
        if day < today and not dry_run:
            raise InvalidInput(f"--as-of {day} is in the past: a run issues its documents "
                            "today and catches up what came due since; run it without "
                            "--as-of (or preview a past day with --dry-run)")
    with recorded(factory, "billing-run" + ("-dry" if dry_run else "")) as counts:
        report = billing_run(factory, day, dry_run=dry_run,
                             confirm_suspensions=confirm_suspensions, actor="cli",
                             holds=app.suspension_holds)
        counts.update(report.counts)
        counts["errors"] = len(report.errors)
        if not dry_run:
            counts["pdfs"] = render_pending(factory, app.settings.data_dir / "invoices")
    data = {"as_of": str(day), "dry_run": dry_run, "counts": report.counts,
            "suspensions_held": report.suspensions_blocked, "alert_id": report.alert_id,
            "events": [{"username": e.username, "kind": e.kind, "detail": e.detail}
                       for e in report.events],
            "errors": [{"username": e.username, "detail": e.detail} for e in report.errors]}

    def render(d: dict[str, Any]) -> str:
        lines = [f"billing run {d['as_of']}{' (dry run: nothing changed)' if dry_run else ''}"]
        lines += [str(e) for e in report.events]
        lines += [f"FAILED {e}" for e in report.errors]
        lines.append(f"totals: {d['counts'] or 'nothing to do'}")
        if report.suspensions_blocked and dry_run:
            lines.append(f"WOULD HOLD: {report.suspensions_blocked} suspensions exceed the "
                         "guard; a real run would suspend nobody and raise an alert")
        elif report.suspensions_blocked:
            lines.append(f"HELD: {report.suspensions_blocked} suspensions exceed the guard "
                         f"(alert {report.alert_id}); rerun with --confirm-suspensions")
        return "\n".join(lines)

    emit(data, as_json, render)


@billing.command("credit-note")
@click.argument("number")
@click.argument("amount", required=False)
@click.option("--reason", required=True)
@on_option
@pass_app
@guarded
def billing_credit_note(app: App, number: str, amount: str | None, reason: str,
                        on: dt.date | None) -> None:
    """Correct an issued invoice with a credit note (AMOUNT tax included; default: all of
    it not yet credited). Invoices are never edited."""
    from billing import invoices
    from billing.isp import settings
    from billing.plans import parse_money

    with app.transaction() as session:
        today = app.today(session)
        day = not_future(on, today, "--on")
        # the note is dated the day it is issued (numbers follow dates); the day the
        # correction is for goes into its reason
        why = reason if day == today else f"{reason} (as of {day:%d %b %Y})"
        note = invoices.credit_note(session, isp=settings(session, lock=True), number=number,
                                    amount=parse_money(amount) if amount is not None else None,
                                    reason=why, today=today, actor="cli")
        click.echo(f"credit note {note.number} for {number}: {note.currency} {-note.total}")


@billing.command("write-off")
@click.argument("number")
@click.option("--amount", help="How much (default: everything still owed on the invoice).")
@click.option("--reason", required=True)
@click.option("--reconnect", is_flag=True,
              help="Reconnect a suspended subscriber too (otherwise they stay suspended).")
@on_option
@pass_app
@guarded
def billing_write_off(app: App, number: str, amount: str | None, reason: str,
                      reconnect: bool, on: dt.date | None) -> None:
    """Give up what is owed on an invoice: it becomes written_off."""
    from billing import accounts
    from billing.plans import parse_money

    with app.transaction() as session:
        day = not_future(on, app.today(session), "--on")
        value, reconnected = accounts.write_off(
            session, number, parse_money(amount) if amount is not None else None,
            reason=reason, today=day, actor="cli", reconnect=reconnect)
    click.echo(f"{number}: {value} written off" + ("; reconnected" if reconnected else ""))


@billing.command("render-pdfs")
@pass_app
@guarded
def billing_render_pdfs(app: App) -> None:
    """Archive a PDF for every invoice that has none yet."""
    from billing.archive import render_pending
    from radbill.db import session_factory

    n = render_pending(session_factory(app.engine), app.settings.data_dir / "invoices")
    click.echo(f"archived {n} invoice PDFs")


@billing.command("invoices")
@click.option("--subscriber", "username")
@click.option("--status", type=click.Choice(["open", "paid", "credited", "written_off",
                                             "applied"]))
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_invoices(app: App, username: str | None, status: str | None, as_json: bool) -> None:
    """List invoices and credit notes, newest first."""
    from billing import invoices
    from billing.subscribers import get_subscriber

    with app.transaction() as session:
        sub_id = get_subscriber(session, username).id if username else None
        data = [invoices.summary(i) for i in invoices.list_invoices(
            session, subscriber_id=sub_id, status=status, limit=500)]
    emit(data, as_json, lambda d: table(d, ["number", "kind", "plan", "issued_on", "due_on",
                                            "total", "currency", "status"]))


@billing.command("renewals")
@click.option("--days", type=click.IntRange(0, 366), default=7, show_default=True)
@as_of_option
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_renewals(app: App, days: int, as_of: dt.date | None, as_json: bool) -> None:
    """Renewals due in the next days."""
    from billing import reports

    with app.transaction() as session:
        data = reports.renewals(session, as_of or app.today(session), days)
    emit(data, as_json, lambda d: table(d, ["renews_on", "username", "plan", "mode", "amount",
                                            "currency", "phone"]))


OVERDUE_SHOWN = 100  # `radbill billing overdue` lists this many unless told otherwise


@billing.command("overdue")
@as_of_option
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=OVERDUE_SHOWN,
              show_default=True, help="List the first N (oldest due date first, then "
                                      "username); the count and totals are of everyone.")
@click.option("--all", "everyone", is_flag=True, help="List everyone overdue.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_overdue(app: App, as_of: dt.date | None, limit: int, everyone: bool,
                    as_json: bool) -> None:
    """Who owes what past the due date (the first --limit of them, or --all), and the count
    and totals of everyone overdue."""
    from billing import reports

    with app.transaction() as session:
        today = app.today(session)
        data = reports.overdue(session, not_future(as_of, today, "--as-of"),
                               None if everyone else limit, as_of=today)

    def render(d: dict[str, Any]) -> str:
        shown = len(d["subscribers"])
        more = (f" (the first {shown}: --limit N or --all for more)"
                if shown < d["count"] else "")
        return (table(d["subscribers"], ["username", "status", "overdue", "currency",
                                         "days_overdue", "phone"])
                + f"\n{d['count']} overdue{more}"
                + "\ntotals: " + ", ".join(f"{c} {v}" for c, v in d["totals"].items()))

    emit(data, as_json, render)


DRIFT_SHOWN = 1_000


@billing.command("overdue-check")
@click.option("--repair", is_flag=True,
              help="Settle each account found (status, paid date and amount owed restated "
                   "from the ledger).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_overdue_check(app: App, repair: bool, as_json: bool) -> None:
    """Check what each document keeps as still owed (what the overdue figures read) against
    settling the ledger; exits 1 if they differ (and were not repaired)."""
    from billing import reports

    with app.transaction() as session:
        data = reports.overdue_check(session, app.today(session), repair=repair,
                                     shown=DRIFT_SHOWN)
    emit(data, as_json, lambda d: (table(d["drift"], ["username", "invoice", "kept", "settled"])
                                   + f"\n{d['documents']} document(s) differ"
                                   + (": repaired" if d["repaired"] else "")
                                   + "\n" + table(d["kept_figures_drift"],
                                                  ["table", "key", "kept", "actual"])
                                   + f"\n{d['kept_figures']} kept overdue figure(s) differ"
                                   + (": restated" if d["kept_figures_repaired"] else "")))
    if (data["documents"] or data["kept_figures"]) and not repair:
        raise SystemExit(1)


@billing.command("totals-check")
@click.option("--repair", is_flag=True,
              help="Restate each kept total found from the payments.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def billing_totals_check(app: App, repair: bool, as_json: bool) -> None:
    """Check the kept payment totals per day, currency and method (what the dashboard and
    the daily summary read) against the payments; exits 1 if they differ (and were not
    repaired)."""
    from billing import totals
    from billing.isp import settings

    with app.transaction() as session:
        drift = totals.check_payment_totals(session, settings(session).timezone,
                                            repair=repair)
    data = {"days": len(drift), "repaired": repair and bool(drift),
            "drift": [{"day": str(d.day), "currency": d.currency, "method": d.method,
                       "kept": str(d.kept[0]), "kept_payments": d.kept[1],
                       "actual": str(d.actual[0]), "actual_payments": d.actual[1]}
                      for d in drift[:DRIFT_SHOWN]]}
    emit(data, as_json, lambda d: (table(d["drift"], ["day", "currency", "method", "kept",
                                                      "kept_payments", "actual",
                                                      "actual_payments"])
                                   + f"\n{d['days']} total(s) differ"
                                   + (": repaired" if d["repaired"] else "")))
    if drift and not repair:
        raise SystemExit(1)


@click.group()
def payment() -> None:
    """Payments."""


@payment.command("record")
@click.argument("username")
@click.argument("amount")
@click.option("--method", default="cash", show_default=True)
@click.option("--reference", required=True, help="Receipt or transaction id (unique).")
@click.option("--invoice", help="The invoice paid (it is paid first; default: oldest first).")
@on_option
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def payment_record(app: App, username: str, amount: str, method: str, reference: str,
                   invoice: str | None, on: dt.date | None, as_json: bool) -> None:
    """Post a manual payment; reconnects at once if nothing is left overdue."""
    from billing import payments

    with app.transaction() as session:
        result = payments.record_payment(session, username, amount, method=method,
                                         reference=reference, today=app.today(session),
                                         on=on, invoice=invoice, actor="cli")
    data = {"username": username, "balance": str(result.balance),
            "overdue": str(result.overdue), "reconnected": result.reconnected,
            "invoices_paid": list(result.invoices_paid)}
    emit(data, as_json, lambda d: (
        f"payment recorded for {username}; balance {d['balance']}, overdue {d['overdue']}"
        + ("; reconnected" if d["reconnected"] else "")))


@payment.command("adjust")
@click.argument("username")
@click.argument("kind", type=click.Choice(["refund", "charge", "credit", "write-off"]))
@click.argument("amount")
@click.option("--reason", required=True)
@click.option("--invoice", help="The invoice a write-off gives up.")
@click.option("--reconnect", is_flag=True, help="A write-off also reconnects.")
@on_option
@pass_app
@guarded
def payment_adjust(app: App, username: str, kind: str, amount: str, reason: str,
                   invoice: str | None, reconnect: bool, on: dt.date | None) -> None:
    """Refund from credit, a manual charge (a one-line invoice), a goodwill credit, or a
    write-off of an invoice."""
    from billing import payments

    with app.transaction() as session:
        result = payments.adjust(session, username, kind, amount, reason=reason,
                                 today=app.today(session), on=on, invoice=invoice,
                                 reconnect=reconnect, actor="cli")
    doc = f" ({result.document})" if result.document else ""
    click.echo(f"{kind} of {amount} posted for {username}{doc}; balance {result.balance}"
               + ("; reconnected" if result.reconnected else ""))


@click.group()
def isp() -> None:
    """The ISP's own details and billing settings."""


@isp.command("set")
@click.option("--name")
@click.option("--address")
@click.option("--phone")
@click.option("--email")
@click.option("--logo", "logo_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--invoice-prefix", help="Up to 10 letters, digits, - and /.")
@click.option("--credit-note-prefix", help="Up to 10 letters, digits, - and /.")
@click.option("--timezone")
@click.option("--weekly-off", "weekly_off_days", help="e.g. fri or fri,sat")
@click.option("--guard-percent", "suspension_guard_percent", type=int)
@click.option("--payment-terms-days", "--postpaid-due-days", "postpaid_due_days", type=int,
              help="Days from issue to due (postpaid, and charges issued after they started).")
@click.option("--payment-link-base", help="http(s) URL of the payment pages.")
@click.option("--bill-while-suspended/--no-bill-while-suspended", default=None,
              help="Keep invoicing subscribers suspended for non-payment (default yes).")
@click.option("--credit-unused-on-termination/--no-credit-unused-on-termination",
              default=None, help="Prepaid: credit the unused days at termination.")
@click.option("--strict-prepay/--no-strict-prepay", default=None,
              help="Prepaid service starts when the first invoice is paid.")
@click.option("--late-fee-min-outstanding", help="No late fee below this outstanding.")
@click.option("--suspended-notice-days", type=int,
              help="Remind suspended subscribers every N days (0: never).")
@click.option("--tax-profile", type=click.Choice(["none", "bd-mushak", "in-gst"]),
              help="Tax documents: plain, Bangladesh Mushak-6.3, India GST.")
@click.option("--tax-id", help="The ISP's BIN (Bangladesh) or GSTIN (India).")
@click.option("--state-name")
@click.option("--state-code", help="India: GST State code (e.g. 29).")
@click.option("--sac-code", help="India: SAC of the service (998422: Internet access).")
@click.option("--supplementary-duty-percent")
@click.option("--late-fee-taxable/--no-late-fee-taxable", default=None,
              help="Tax late fees like the service (India: CGST Act s.15(2)(d)).")
@click.option("--financial-year-series/--no-financial-year-series", default=None,
              help="Restart document numbers every financial year (INV-2627/000001).")
@click.option("--financial-year-start-month", type=int,
              help="Month the financial year starts: 7 Bangladesh (default), 4 India.")
@click.option("--signatory-name")
@click.option("--signatory-designation")
@pass_app
@guarded
def isp_set(app: App, **values: Any) -> None:
    """Change ISP settings (only the options given)."""
    from billing.isp import update_settings

    if values.get("tax_profile") == "none":
        values["tax_profile"] = ""
    with app.transaction() as session:
        changed = update_settings(session, {k: v for k, v in values.items() if v is not None},
                                  actor="cli")
    click.echo(f"updated: {', '.join(changed) or 'nothing'}")


@isp.command("show")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def isp_show(app: App, as_json: bool) -> None:
    """The ISP's settings."""
    from billing.isp import settings_summary

    with app.transaction() as session:
        data = settings_summary(session)
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@isp.command("holiday")
@click.argument("day", type=DAY)
@click.argument("name")
@pass_app
@guarded
def isp_holiday(app: App, day: dt.date, name: str) -> None:
    """Add a holiday: nobody is suspended on it."""
    from billing.isp import add_holiday

    with app.transaction() as session:
        add_holiday(session, day, name, actor="cli")
    click.echo(f"holiday {day} ({name}) added")
