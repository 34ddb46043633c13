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
    """List staff users (and whether their logins are being held back, until when)."""
    from admin import users
    from radbill.db import utcnow

    with app.transaction() as session:
        held = users.throttled(session, utcnow())
        data = [{"username": u.username, "role": u.role, "active": u.active,
                 "throttled_until": held.get(u.username), "last_login_at": u.last_login_at}
                for u in users.list_users(session)]
    emit(data, as_json, lambda d: table(d, ["username", "role", "active", "throttled_until",
                                            "last_login_at"]))


@user.command("disable")
@click.argument("username")
@click.option("--reason", default=None)
@pass_app
@guarded
def user_disable(app: App, username: str, reason: str | None) -> None:
    """Disable USERNAME: their browser sessions end now and their API tokens stop working."""
    from admin import users

    with app.transaction() as session:
        users.set_active(session, username, False, actor="cli", reason=reason)
    click.echo(f"staff user {username} disabled")


@user.command("enable")
@click.argument("username")
@pass_app
@guarded
def user_enable(app: App, username: str) -> None:
    """Enable USERNAME again (tokens not revoked work again)."""
    from admin import users

    with app.transaction() as session:
        users.set_active(session, username, True, actor="cli")
    click.echo(f"staff user {username} enabled")


@user.command("password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 10 characters (prompted for when not given).")
@pass_app
@guarded
def user_password(app: App, username: str, password: str) -> None:
    """Set USERNAME's password; their browser sessions end."""
    from admin import users

    with app.transaction() as session:
        users.set_password(session, username, password, actor="cli")
    click.echo(f"password of {username} changed")


@user.command("unlock")
@click.argument("username")
@pass_app
@guarded
def user_unlock(app: App, username: str) -> None:
    """Forget USERNAME's failed logins, so it can log in at once from anywhere."""
    from admin import users

    with app.transaction() as session:
        cleared = users.unlock(session, username, actor="cli")
    click.echo(f"{username}: {cleared} failed-login counter(s) cleared")


@user.command("token")
@click.argument("username")
@click.option("--name", "token_name", required=True, help="What the token is for.")
@click.option("--days", default="365", show_default=True,
              help="Days the token stays valid, or 'never'.")
@pass_app
@guarded
def user_token(app: App, username: str, token_name: str, days: str) -> None:
    """Create an API token acting as USERNAME (printed once, never stored in clear)."""
    import datetime as dt

    from admin import users
    from radbill.errors import InvalidInput

    if days == "never":
        lifetime = None
    elif days.isdigit() and 1 <= int(days) <= 3650:
        lifetime = dt.timedelta(days=int(days))
    else:
        raise InvalidInput(f"--days {days!r}: a whole number from 1 to 3650, or 'never'")
    with app.transaction() as session:
        token = users.create_token(session, username, token_name, actor="cli",
                                   lifetime=lifetime)
    click.echo(token)


@user.command("token-list")
@click.argument("username", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def user_token_list(app: App, username: str | None, as_json: bool) -> None:
    """List API tokens (of USERNAME, or everyone's): never the tokens themselves."""
    from admin import users
    from radbill.db import utcnow

    now = utcnow()
    with app.transaction() as session:
        data = [{"id": t.id, "username": t.username, "name": t.name, "state": t.state(now),
                 "created_at": t.created_at, "expires_at": t.expires_at,
                 "last_used_at": t.last_used_at}
                for t in users.list_tokens(session, username)]
    emit(data, as_json, lambda d: table(d, ["id", "username", "name", "state", "created_at",
                                            "expires_at", "last_used_at"]))


@user.command("token-revoke")
@click.argument("token_id", type=int)
@pass_app
@guarded
def user_token_revoke(app: App, token_id: int) -> None:
    """Revoke API token TOKEN_ID (see token-list); it stops working at once."""
    from admin import users

    with app.transaction() as session:
        row = users.revoke_token(session, token_id, actor="cli")
        name = row.name
    click.echo(f"token {token_id} ({name}) revoked")


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
