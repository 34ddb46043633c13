"""The admin part's commands: staff users and API tokens, and serving the web app."""

from __future__ import annotations

import click

from radbill.cliutil import App, emit, guarded, pass_app, table

# -- staff and the admin UI -------------------------------------------------------------------


@click.group()
def user() -> None:
    """Staff users of the admin UI and API."""


@user.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["admin", "billing", "noc"]))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 10 characters (prompted for when not given).")
@pass_app
@guarded
def user_create(app: App, username: str, role: str, password: str) -> None:
    """Create a staff user (admin, billing operator or read-only NOC)."""
    from admin import users

    with app.transaction() as session:
        users.create_user(session, username, password, role, actor="cli")
    click.echo(f"staff user {username} created with role {role}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def user_list(app: App, as_json: bool) -> None:
    """List staff users."""
    from admin import users

    with app.transaction() as session:
        data = [{"username": u.username, "role": u.role, "active": u.active,
                 "locked_until": u.locked_until, "last_login_at": u.last_login_at}
                for u in users.list_users(session)]
    emit(data, as_json, lambda d: table(d, ["username", "role", "active", "locked_until",
                                            "last_login_at"]))


@user.command("token")
@click.argument("username")
@click.option("--name", "token_name", required=True, help="What the token is for.")
@pass_app
@guarded
def user_token(app: App, username: str, token_name: str) -> None:
    """Create an API token acting as USERNAME (printed once, never stored in clear)."""
    from admin import users

    with app.transaction() as session:
        token = users.create_token(session, username, token_name, actor="cli")
    click.echo(token)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; put a TLS proxy in front for anything but loopback.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@pass_app
@guarded
def serve(app: App, host: str, port: int, threads: int) -> None:
    """Serve the admin UI and the JSON API."""
    from werkzeug.serving import run_simple

    from admin import create_app
    from radbill.secure import warn_if_exposed

    warn_if_exposed(app.settings)
    web = create_app(app.settings, engine=app.engine)
    click.echo(f"radbill admin on http://{host}:{port}/  (API: /api/v1, "
               f"OpenAPI: /api/v1/openapi.json)")
    # SQLite serialises writers anyway; PostgreSQL gets a few threads.
    run_simple(host, port, web, threaded=threads > 1 and not app.settings.is_sqlite,
               use_reloader=False)
