"""RADIUS's commands: NAS devices, the FreeRADIUS server, accounting."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from radbill.cliutil import App, F, emit, fail, guarded, pass_app, table

# -- NAS --------------------------------------------------------------------------------------


@click.group()
def nas() -> None:
    """Routers (NAS) allowed to send RADIUS."""


@nas.command("create")
@click.argument("name")
@click.option("--ip", required=True)
@click.option("--secret", required=True)
@click.option("--type", "nas_type", default="mikrotik", show_default=True,
              help="What kind of NAS: decides the reply attributes and the walled garden "
                   "(list them with 'radbill nas types').")
@click.option("--coa-port", type=int, default=3799, show_default=True)
@click.option("--no-message-authenticator", "relax", is_flag=True,
              help="Accept Access-Requests without Message-Authenticator (old RouterOS only).")
@click.option("--api-user", "api_username")
@click.option("--api-password")
@click.option("--api-port", type=int)
@click.option("--api-tls", type=click.Choice(["none", "anon", "verify"]), default="none",
              show_default=True,
              help="API-SSL: anon for a router without a certificate (anonymous DH) or whose "
                   "certificate is not checked; verify to check it (--api-tls-ca or "
                   "--api-tls-fingerprint, else the system CAs).")
@click.option("--api-tls-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM file of the CA that signed the router's certificate (verify); the "
                   "certificate must name the NAS's IP address.")
@click.option("--api-tls-fingerprint",
              help="SHA-256 fingerprint of the router's certificate (verify), e.g. from "
                   "'openssl x509 -noout -fingerprint -sha256'.")
@click.option("--enforce-via", type=click.Choice(["coa", "api"]), default="coa", show_default=True,
              help="How suspensions reach this NAS first (the API is also CoA's fallback).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def nas_create(app: App, relax: bool, as_json: bool, api_tls_ca: Path | None,
               **options: Any) -> None:
    """Register a NAS (every running 'radbill radius run' answers it within seconds)."""
    from radius import nas as nas_service

    ca_pem = None
    if api_tls_ca is not None:
        if api_tls_ca.stat().st_size > nas_service.MAX_CA_PEM:
            fail(f"{api_tls_ca} is larger than 64 KiB: not a CA certificate")
        try:
            ca_pem = api_tls_ca.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {api_tls_ca}: {exc}")
    box = app.box()
    with app.transaction() as session:
        row = nas_service.create_nas(session, box, require_message_authenticator=not relax,
                                     actor="cli", api_tls_ca=ca_pem, **options)
        data = nas_service.summary(row)
    emit(data, as_json, lambda d: f"NAS {d['name']} at {d['ip_address']} created")


@nas.command("update")
@click.argument("name")
@click.option("--ip")
@click.option("--secret")
@click.option("--type", "nas_type", help="See 'radbill nas types'.")
@click.option("--coa-port", type=int)
@click.option("--message-authenticator/--no-message-authenticator", "require_ma", default=None,
              help="Require Message-Authenticator in Access-Requests (--no-...: old RouterOS).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def nas_update(app: App, name: str, require_ma: bool | None, as_json: bool,
               **options: Any) -> None:
    """Change a NAS (what is not given stays)."""
    from radius import nas as nas_service

    box = app.box()
    with app.transaction() as session:
        row = nas_service.update_nas(session, box, name, require_message_authenticator=require_ma,
                                     actor="cli", **options)
        data = nas_service.summary(row)
    emit(data, as_json, lambda d: f"NAS {d['name']} at {d['ip_address']} updated")


@nas.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Even with sessions open on it.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def nas_delete(app: App, name: str, force: bool, as_json: bool) -> None:
    """Remove a NAS: RADIUS stops answering it."""
    from radius import nas as nas_service

    with app.transaction() as session:
        data = nas_service.delete_nas(session, name, force=force, actor="cli")
    emit(data, as_json, lambda d: f"NAS {d['name']} at {d['ip_address']} deleted"
         + (f" ({d['open_sessions']} sessions were open on it)" if d["open_sessions"] else ""))


@nas.command("types")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def nas_types(app: App, as_json: bool) -> None:
    """List the supported NAS types (radius/profiles/nas_types.toml)."""
    from radius.nas_profiles import GardenSettings, profiles

    garden = GardenSettings("x", "x", "x")
    data = [{"type": p.name, "walled_garden": p.garden_form if p.can_garden(garden) else "none",
             "needs": ", ".join(p.garden_requires), "label": p.label}
            for p in profiles().values()]
    emit(data, as_json, lambda d: table(d, ["type", "walled_garden", "needs", "label"]))


@nas.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def nas_list(app: App, as_json: bool) -> None:
    """List NAS devices."""
    from radius import nas as nas_service

    with app.transaction() as session:
        data = [nas_service.summary(n) for n in nas_service.list_nas(session)]
    emit(data, as_json, lambda d: table(d, ["name", "ip_address", "type", "coa_port",
                                            "require_message_authenticator"]))


# -- RADIUS -----------------------------------------------------------------------------------


@click.group()
def radius() -> None:
    """The FreeRADIUS server."""


def _radius_options(fn: F) -> F:
    fn = click.option("--auth-port", type=int, help="Default RADBILL_RADIUS_AUTH_PORT or 1812.")(fn)
    fn = click.option("--acct-port", type=int, help="Default RADBILL_RADIUS_ACCT_PORT or 1813.")(fn)
    fn = click.option("--listen", help="Address to listen on (default RADBILL_RADIUS_LISTEN).")(fn)
    return click.option("--runtime-dir", type=click.Path(path_type=Path),
                        help="Where to render the config (default <data>/radius).")(fn)


@radius.command("run")
@_radius_options
@click.option("--debug", is_flag=True, help="FreeRADIUS debug logging (-xx).")
@pass_app
@guarded
def radius_run(app: App, auth_port: int | None, acct_port: int | None, listen: str | None,
               runtime_dir: Path | None, debug: bool) -> None:
    """Render the configuration and run FreeRADIUS in the foreground."""
    from radius import server

    s = app.settings
    try:
        code = server.run(s, runtime_dir or s.data_dir / "radius",
                          auth_port=auth_port or s.radius_auth_port,
                          acct_port=acct_port or s.radius_acct_port,
                          listen=listen or s.radius_listen, debug=debug)
    except server.RadiusError as exc:
        fail(str(exc))
    sys.exit(code)


@radius.command("check")
@_radius_options
@pass_app
@guarded
def radius_check(app: App, auth_port: int | None, acct_port: int | None, listen: str | None,
                 runtime_dir: Path | None) -> None:
    """Render the configuration and have FreeRADIUS check it."""
    from radius import server

    s = app.settings
    try:
        _, layout = server.prepare(s, runtime_dir or s.data_dir / "radius",
                                   auth_port=auth_port or s.radius_auth_port,
                                   acct_port=acct_port or s.radius_acct_port,
                                   listen=listen or s.radius_listen)
    except server.RadiusError as exc:
        fail(str(exc))
    click.echo(f"configuration OK in {layout.raddb}")

# -- accounting -------------------------------------------------------------------------------


@click.group()
def accounting() -> None:
    """Accounting sessions and the records the ingester set aside."""


@accounting.command("close-stale")
@pass_app
@guarded
def accounting_close_stale(app: App) -> None:
    """Close sessions silent for three interim intervals."""
    from radbill.db import utcnow
    from radius import accounting as acct

    with app.transaction() as session:
        n = acct.close_stale_sessions(session, utcnow(), app.settings.interim_interval)
    click.echo(f"closed {n} stale sessions")


@accounting.command("ingest")
@click.option("--spool-dir", type=click.Path(path_type=Path), help="Default <data>/radius/spool.")
@pass_app
@guarded
def accounting_ingest(app: App, spool_dir: Path | None) -> None:
    """Apply what is waiting in the detail spools now (radius run does this continuously)."""
    from radbill.db import session_factory
    from radius.accounting import Limits
    from radius.ingest import Ingester

    ingester = Ingester(session_factory(app.engine),
                        spool_dir or app.settings.data_dir / "radius" / "spool",
                        limits=Limits.from_settings(app.settings),
                        node=app.settings.node_name)
    n = ingester.run_once()
    click.echo(f"applied {n} records, set aside {ingester.rejected}")


@accounting.command("lag")
@click.option("--spool-dir", type=click.Path(path_type=Path), help="Default <data>/radius/spool.")
@click.option("--prometheus", is_flag=True, help="The Prometheus text format.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def accounting_lag(app: App, spool_dir: Path | None, prometheus: bool, as_json: bool) -> None:
    """How far the database is behind this node's detail spools: the age of the oldest
    record not applied yet and the bytes behind, per stream. Exits 1 when a stream is
    further behind than RADBILL_INGEST_LAG_ALERT_S."""
    from radius import lag

    with app.transaction() as session:
        cursors = lag.positions(session, app.settings.node_name)
    lags = lag.measure(spool_dir or app.settings.data_dir / "radius" / "spool", cursors)
    if prometheus:
        click.echo(lag.prometheus_text(lags, app.settings.node_name), nl=False)
    else:
        emit([g.as_dict() for g in lags], as_json, lambda rows: table(
            rows, ["stream", "age_seconds", "bytes_behind", "files_behind",
                   "oldest_unapplied"]))
    if max((g.age_seconds for g in lags), default=0.0) > app.settings.ingest_lag_alert_s:
        sys.exit(1)


def _printable(value: object) -> str:
    """A value safe to print on a terminal: control characters escaped, kept short."""
    from radius.rejects import printable

    text = printable(value)
    return text if len(text) <= 80 else text[:77] + "..."


@accounting.command("rejected")
@click.option("--status", type=click.Choice(["pending", "replayed", "all"]), default="pending",
              show_default=True)
@click.option("--stream", type=click.Choice(["acct", "postauth"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Show the newest N.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def accounting_rejected(app: App, status: str, stream: str | None, limit: int,
                        as_json: bool) -> None:
    """Records the ingester set aside (newest first), with the reason."""
    from radius import rejects

    with app.transaction() as session:
        rows = rejects.list_rejected(session, status=None if status == "all" else status,
                                     stream=stream, limit=limit)
        data = [rejects.summary(r) for r in rows]
        pending = rejects.count_pending(session)

    def render(items: list[dict[str, Any]]) -> str:
        shown = [{k: _printable(v) for k, v in d.items()} for d in items]
        return (table(shown, ["id", "first_seen", "stream", "status_type", "user_name",
                              "acct_session_id", "status", "reason"])
                + f"\n{pending} pending in all")

    emit(data, as_json, render)


@accounting.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Every pending record.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def accounting_replay(app: App, ids: tuple[int, ...], replay_all: bool, as_json: bool) -> None:
    """Apply set-aside records again after a fix (the ones that still fail stay set aside
    with the new reason). Safe to repeat."""
    from radbill.db import session_factory
    from radius.accounting import Limits
    from radius.ingest import replay

    if bool(ids) == replay_all:
        fail("give the ids of set-aside records to replay, or --all (not both)")
    report = replay(session_factory(app.engine), ids=None if replay_all else list(ids),
                    actor="cli", limits=Limits.from_settings(app.settings))
    data = {"replayed": report.replayed, "failed": {str(k): v for k, v in
                                                    report.failed.items()},
            "skipped": report.skipped, "alert_resolved": report.alert_resolved}

    def render(d: dict[str, Any]) -> str:
        lines = [f"replayed {len(d['replayed'])}, still set aside {len(d['failed'])}, "
                 f"already replayed {len(d['skipped'])}"]
        lines += [f"  {k}: {_printable(v)}" for k, v in list(d["failed"].items())[:20]]
        return "\n".join(lines)

    emit(data, as_json, render)
