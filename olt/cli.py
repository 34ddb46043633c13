"""The OLT part's commands: ``radbill olt create|list|discover|onus|poll`` and
``radbill subscriber set-onu`` (added to billing's group by the root)."""

from __future__ import annotations

from typing import Any

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.group()
def olt() -> None:
    """OLTs over SNMP: inventory, ONU discovery and signal."""


@olt.command("create")
@click.argument("name")
@click.option("--vendor", required=True, help="Profile: bdcom-epon, bdcom-gpon, vsol-gpon, "
              "vsol-epon, cdata-gpon, huawei-gpon, zte-gpon.")
@click.option("--ip", required=True)
@click.option("--port", type=int, default=161, show_default=True)
@click.option("--community", help="v2c read community.")
@click.option("--write-community", help="v2c write community (default: the read one).")
@click.option("--v3-user")
@click.option("--v3-auth-key", help="SNMPv3 SHA authentication key.")
@click.option("--v3-priv-key", help="SNMPv3 AES privacy key.")
@click.option("--overrides", help="JSON object of profile fields for this OLT's firmware.")
@click.option("--timeout-ms", type=int, default=2000, show_default=True)
@click.option("--retries", type=int, default=1, show_default=True)
@click.option("--weak-rx", "weak_rx_dbm", type=float, default=-27.0, show_default=True,
              help="Rx power (dBm) below which an ONU's signal is weak.")
@pass_app
@guarded
def olt_create(app: App, name: str, **options: Any) -> None:
    """Register an OLT."""
    from olt import inventory

    with app.transaction() as session:
        o = inventory.create_olt(session, app.box(), name=name, **options)
        warn = "" if inventory.profile_of(o).snmp_block else (
            " (warning: this model has no SNMP block: its subscribers are enforced at the "
            "NAS only)")
        click.echo(f"OLT {o.name} ({o.vendor}) at {o.host}:{o.port} created{warn}")


@olt.command("set")
@click.argument("name")
@click.option("--overrides", help="JSON object of profile fields ('{}' clears them).")
@click.option("--timeout-ms", type=int)
@click.option("--retries", type=int)
@click.option("--weak-rx", "weak_rx_dbm", type=float)
@pass_app
@guarded
def olt_set(app: App, name: str, **options: Any) -> None:
    """Change an OLT's overrides (firmware differences), timeout, retries or weak-signal
    threshold."""
    from olt import inventory

    with app.transaction() as session:
        o = inventory.update_olt(session, name, **options)
        click.echo(f"OLT {o.name}: overrides {sorted((o.overrides or {}).keys()) or 'none'}, "
                   f"timeout {o.timeout_ms} ms x {o.retries} retries, weak below "
                   f"{o.weak_rx_dbm} dBm")


@olt.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def olt_list(app: App, as_json: bool) -> None:
    """Every OLT with ONU counts."""
    from olt import inventory

    with app.transaction() as session:
        rows = inventory.list_olts(session)
    emit(rows, as_json, lambda r: table(r, ["name", "vendor", "host", "port", "snmp", "onus",
                                            "bound", "snmp_block", "last_error"]))


@olt.command("discover")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def olt_discover(app: App, name: str, as_json: bool) -> None:
    """Walk the OLT's ONUs (PON port, ONU id, serial/MAC, name, status, Rx) into the ONU
    table."""
    from olt import inventory, poller

    counts: dict[str, Any] = dict(poller.discover(app.engine, app.box(), name))
    if as_json:
        with app.transaction() as session:
            counts["onus"] = inventory.onus_of(session, inventory.get_olt(session, name))
    emit(counts, as_json, lambda d: f"{name}: {d['seen']} ONUs ({d['new']} new, "
         f"{d['online']} online, {d['weak']} weak signal); radbill olt onus {name} lists them")


@olt.command("onus")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def olt_onus(app: App, name: str, as_json: bool) -> None:
    """The OLT's ONUs as last discovered or polled, with bound subscribers."""
    from olt import inventory

    with app.transaction() as session:
        rows = inventory.onus_of(session, inventory.get_olt(session, name))
    emit(rows, as_json, lambda r: table(r, ["pon", "onu", "ident", "name", "status", "rx_dbm",
                                            "weak", "blocked", "subscriber"]))


@olt.command("poll")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def olt_poll(app: App, as_json: bool) -> None:
    """Poll every OLT once (status, Rx power, reboot check) and keep the samples."""
    from olt import poller

    counts = poller.poll_all(app.engine, app.box())
    emit(counts, as_json, lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items()))
         or "no OLTs")


@click.command("set-onu")
@click.argument("username")
@click.option("--olt", "olt_name", required=True)
@click.option("--serial")
@click.option("--mac")
@pass_app
@guarded
def set_onu(app: App, username: str, olt_name: str, serial: str | None,
            mac: str | None) -> None:
    """Bind the subscriber's line to an ONU by serial (GPON) or MAC (EPON)."""
    from olt import inventory

    with app.transaction() as session:
        b = inventory.bind(session, username, olt_name, serial=serial, mac=mac)
        click.echo(f"{username} bound to ONU {b.ident} on {olt_name}")
