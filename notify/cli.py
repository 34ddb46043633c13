"""The ``notify`` command group: the delivery worker, status, test messages, retries and
channel settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.group("notify")
def notify() -> None:
    """Notifications: SMS, e-mail and Telegram."""


@notify.command("run")
@click.option("--once", is_flag=True, help="One round, then exit.")
@pass_app
@guarded
def run(app: App, once: bool) -> None:
    """Deliver the outbox until stopped."""
    from notify.worker import NotifyWorker
    from radbill.db import session_factory

    worker = NotifyWorker(session_factory(app.engine), app.box())

    async def main() -> None:
        if once:
            counts = await worker.tick()
            await worker.close()
            click.echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        click.echo("notify worker running (Ctrl-C stops)")
        await worker.run(stop)

    asyncio.run(main())


@notify.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def status_cmd(app: App, as_json: bool) -> None:
    """Messages by channel and status, the dead-letter queue, cost, paused channels."""
    from notify.delivery import status

    with app.transaction() as session:
        data = status(session)

    def render(d: dict[str, Any]) -> str:
        rows = [{"channel": c, **dict(sorted(s.items()))}
                for c, s in sorted(d["deliveries"].items())]
        cols = ["channel", *sorted({k for r in rows for k in r} - {"channel"})]
        cost = ", ".join(f"{c['cost']} {c['currency']}" for c in d["cost"]) or "0"
        return (f"{table(rows, cols)}\ndead letter: {d['dead_letter']}  cost sent: {cost}  "
                f"events not planned: {d['events_not_planned']}  paused: "
                f"{', '.join(d['paused']) or 'none'}")

    emit(data, as_json, render)


@notify.command("messages")
@click.option("--status", "status_", type=click.Choice(
    ["queued", "sending", "sent", "delivered", "failed", "retrying", "skipped"]))
@click.option("--channel", type=click.Choice(["sms", "email", "telegram"]))
@click.option("--dead-letter", is_flag=True, help="Only the dead-letter queue.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def messages_cmd(app: App, status_: str | None, channel: str | None, dead_letter: bool,
                 limit: int, as_json: bool) -> None:
    """Messages, newest first."""
    from notify.delivery import messages

    with app.transaction() as session:
        data = [_message(d) for d in messages(session, status_=status_, channel=channel,
                                              dead_letter=dead_letter, limit=limit)]
    emit(data, as_json, lambda d: table(d, ["id", "channel", "kind", "recipient", "status",
                                            "segments", "cost", "reason"]))


def _message(d: Any) -> dict[str, Any]:
    return {"id": d.id, "channel": d.channel, "kind": d.kind, "recipient": d.recipient,
            "status": d.status, "reason": d.reason, "dead_letter": d.dead_letter,
            "attempts": d.attempts, "segments": d.segments,
            "cost": str(d.cost) if d.cost is not None else None, "currency": d.currency,
            "text": d.shown_text, "created_at": d.created_at.isoformat(),
            "sent_at": d.sent_at.isoformat() if d.sent_at else None}


@notify.command("retry")
@click.argument("delivery_id", type=click.IntRange(1, 2**63 - 1))
@pass_app
@guarded
def retry_cmd(app: App, delivery_id: int) -> None:
    """Queue a failed or skipped message again."""
    from notify.delivery import retry
    from radbill.db import utcnow

    with app.transaction() as session:
        d = retry(session, delivery_id, utcnow())
        click.echo(f"message #{d.id} queued again")


@notify.command("send-test")
@click.option("--channel", type=click.Choice(["sms", "email", "telegram"]), required=True)
@click.option("--to", "to", required=True, help="Number, address or chat id.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Deliver it now and print the provider's answer.")
@pass_app
@guarded
def send_test(app: App, channel: str, to: str, wait: bool) -> None:
    """Send a test message through a configured channel."""
    from notify.testmsg import send_test as send

    result = send(app, channel, to, wait)
    click.echo(result)
    if result.startswith("failed"):
        sys.exit(1)


@notify.command("preferences")
@click.argument("username")
@click.option("--locale", type=click.Choice(["en", "bn", "hi"]))
@click.option("--sms/--no-sms", "sms", default=None, help="Opt in to (or out of) SMS.")
@click.option("--email/--no-email", "email", default=None, help="Opt in to (or out of) e-mail.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def preferences(app: App, username: str, locale: str | None, sms: bool | None,
                email: bool | None, as_json: bool) -> None:
    """A subscriber's language and opt-outs per channel."""
    from notify.delivery import set_preference

    with app.transaction() as session:
        p = set_preference(session, username, locale=locale,
                           sms_opt_out=None if sms is None else not sms,
                           email_opt_out=None if email is None else not email)
        data = {"username": username, "locale": p.locale, "sms": not p.sms_opt_out,
                "email": not p.email_opt_out}
    emit(data, as_json, lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))


# -- channel ----------------------------------------------------------------------------------


@notify.group("channel")
def channel() -> None:
    """Channel settings (secrets are stored encrypted and never shown back)."""


def _save(app: App, name: str, provider: str, settings: dict[str, Any],
          secrets: dict[str, Any]) -> None:
    from notify.config import save

    with app.transaction() as session:
        save(session, app.box(), name, provider, settings, secrets)
    click.echo(f"{name} channel saved ({provider})")


@channel.command("sms")
@click.option("--provider", required=True,
              type=click.Choice(["generic-http", "sslwireless", "bulksmsbd", "msg91"]))
@click.option("--url", help="generic-http: the API URL; native: the API root (default the "
                            "provider's).")
@click.option("--method", type=click.Choice(["GET", "POST"]), default="POST")
@click.option("--content-type", type=click.Choice(["form", "json"]), default="form")
@click.option("--body", help="generic-http: body template with {to} and {text}.")
@click.option("--success", help="generic-http: a regex the reply matches on success.")
@click.option("--header", "headers", multiple=True, help="generic-http: NAME:VALUE (secret).")
@click.option("--errors", help='generic-http: JSON {"code": "permanent|transient|account"}.')
@click.option("--error-path", help="generic-http: JSON path of the error code in the reply.")
@click.option("--api-token", help="sslwireless: API token (secret).")
@click.option("--sid", help="sslwireless: SID.")
@click.option("--api-key", help="bulksmsbd: API key (secret).")
@click.option("--sender-id", help="bulksmsbd: sender id.")
@click.option("--authkey", help="msg91: auth key (secret).")
@click.option("--country", type=click.Choice(["BD", "IN"]), default="BD", show_default=True,
              help="Completes local numbers.")
@click.option("--price", "price", default="0", show_default=True,
              help="Price per SMS part.")
@click.option("--currency", default="BDT", show_default=True)
@click.option("--rate", type=click.FloatRange(0.1, 10000), default=50, show_default=True,
              help="Messages per second (token bucket).")
@click.option("--burst", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--quiet", default="21:00-08:00", show_default=True,
              help="Quiet hours for dunning SMS, ISP time (HH:MM-HH:MM).")
@pass_app
@guarded
def channel_sms(app: App, provider: str, url: str | None, method: str, content_type: str,
                body: str | None, success: str | None, headers: tuple[str, ...],
                errors: str | None, error_path: str | None, api_token: str | None,
                sid: str | None, api_key: str | None, sender_id: str | None,
                authkey: str | None, country: str, price: str, currency: str, rate: float,
                burst: int, quiet: str) -> None:
    """Configure the SMS channel."""
    from radbill.errors import InvalidInput

    start, _, end = quiet.partition("-")
    settings: dict[str, Any] = {"country": country, "price_per_segment": price,
                                "currency": currency.upper()[:3], "rate": rate,
                                "burst": burst, "quiet_start": start, "quiet_end": end}
    secrets: dict[str, Any] = {}
    if provider == "generic-http":
        if not url:
            raise InvalidInput("--url is required for generic-http")
        try:
            codes = json.loads(errors) if errors else {}
        except ValueError as exc:
            raise InvalidInput(f"--errors is not JSON: {exc}") from exc
        if not isinstance(codes, dict):
            raise InvalidInput("--errors must be a JSON object")
        pairs = [h.split(":", 1) for h in headers]
        if any(len(p) != 2 for p in pairs):
            raise InvalidInput("--header must be NAME:VALUE")
        settings.update({"url": url, "method": method, "content_type": content_type,
                         "body": body or ("to={to}&text={text}" if content_type == "form"
                                          else '{"to": "{to}", "text": "{text}"}'),
                         "success_regex": success, "error_json_path": error_path,
                         "errors": {str(k): str(v) for k, v in codes.items()}})
        if not success:
            raise InvalidInput("--success is required for generic-http")
        secrets["headers"] = {k.strip(): v.strip() for k, v in pairs}
    else:
        settings["base_url"] = url
        settings.update({"sid": sid, "sender_id": sender_id})
        secrets.update({"api_token": api_token, "api_key": api_key, "authkey": authkey})
    _save(app, "sms", provider, settings, secrets)


@channel.command("email")
@click.option("--smtp-host", required=True)
@click.option("--smtp-port", type=click.IntRange(1, 65535), required=True)
@click.option("--starttls", "security", flag_value="starttls", default=True)
@click.option("--ssl", "security", flag_value="ssl")
@click.option("--plain", "security", flag_value="none", help="No TLS (a local relay only).")
@click.option("--user")
@click.option("--password", help="SMTP password (secret).")
@click.option("--from", "sender", required=True, help="The From address.")
@click.option("--operator-email", help="Where operator alerts and the summary go.")
@pass_app
@guarded
def channel_email(app: App, smtp_host: str, smtp_port: int, security: str, user: str | None,
                  password: str | None, sender: str, operator_email: str | None) -> None:
    """Configure the e-mail channel."""
    _save(app, "email", "smtp", {"host": smtp_host, "port": smtp_port, "security": security,
                                 "user": user, "sender": sender,
                                 "operator_email": operator_email},
          {"password": password})


@channel.command("telegram")
@click.option("--token", help="Bot token (secret).")
@click.option("--noc-chat", required=True, help="Chat id for alerts.")
@click.option("--finance-chat", required=True, help="Chat id for the daily summary.")
@click.option("--url", help="Bot API root (default https://api.telegram.org).")
@pass_app
@guarded
def channel_telegram(app: App, token: str | None, noc_chat: str, finance_chat: str,
                     url: str | None) -> None:
    """Configure the Telegram channel for operators."""
    _save(app, "telegram", "telegram", {"noc_chat": noc_chat, "finance_chat": finance_chat,
                                        "base_url": url}, {"token": token})


@channel.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def channel_list(app: App, as_json: bool) -> None:
    """The channels; secrets masked."""
    from notify.config import listing

    with app.transaction() as session:
        data = listing(session)
    emit(data, as_json, lambda d: table(
        [{**r, "secrets": ", ".join(f"{k}={v}" for k, v in r["secrets"].items()),
          "settings": ", ".join(f"{k}={v}" for k, v in sorted(r["settings"].items())
                                if not isinstance(v, dict))} for r in d],
        ["channel", "provider", "paused", "secrets", "settings"]))


@channel.command("resume")
@click.argument("name", type=click.Choice(["sms", "email", "telegram"]))
@pass_app
@guarded
def channel_resume(app: App, name: str) -> None:
    """Resume a channel paused by an account error."""
    from notify.config import resume

    with app.transaction() as session:
        resume(session, name)
    click.echo(f"{name} channel resumed")
