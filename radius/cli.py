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
@click.option("--type", "nas_type", default="mikrotik", type=click.Choice(["mikrotik", "other"]))
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
    """Register a NAS (takes effect when 'radbill radius run' next starts)."""
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
    """Accounting sessions."""


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
    from radius.ingest import Ingester

    ingester = Ingester(session_factory(app.engine),
                        spool_dir or app.settings.data_dir / "radius" / "spool")
    n = ingester.run_once()
    click.echo(f"applied {n} records, set aside {ingester.rejected}")
