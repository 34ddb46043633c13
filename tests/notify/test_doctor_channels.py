"""`radbill doctor` proves each enabled channel's credentials without sending a message:
Telegram by getMe, e-mail by an SMTP login; an SMS provider without a read-only call says
so. Wrong credentials are a problem, named."""

from __future__ import annotations

import json

from notify.config import save
from radbill.config import Settings
from radbill.crypto import secret_box
from radbill.db import engine_from_settings, session_factory


def _doctor(cli) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("doctor", "--json", ok=False).output)
    return [(r["level"], r["message"]) for r in rows if r["check"] == "channels"]


def _email(password: str, smtp_server) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env()
    engine = engine_from_settings(settings)
    try:
        with session_factory(engine)() as s, s.begin():
            save(s, secret_box(settings), "email", "smtp",
                 {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                  "user": smtp_server.user, "sender": "radbill@isp.example",
                  "operator_email": "noc@isp.example"}, {"password": password})
    finally:
        engine.dispose()


def test_channel_credentials_are_proved_without_sending(cli, ssl_sim, telegram_sim,  # type: ignore[no-untyped-def]
                                                         smtp_server) -> None:
    cli("notify", "channel", "sms", "--provider", "sslwireless", "--url", ssl_sim.url,
        "--api-token", ssl_sim.api_token, "--sid", ssl_sim.sid, "--price", "0.35")
    cli("notify", "channel", "telegram", "--token", telegram_sim.token, "--noc-chat", "-1001",
        "--finance-chat", "-1002", "--url", telegram_sim.url)
    _email(smtp_server.password, smtp_server)
    found = _doctor(cli)
    where = f"{smtp_server.host}:{smtp_server.port}"
    assert found == [
        ("ok", f"email (smtp): sending; {where} accepted the login of {smtp_server.user}"),
        ("warn", "sms (sslwireless): sending; its credentials are proved only by its first "
                 "message (the provider has no read-only call)"),
        ("ok", "telegram (telegram): sending; bot @radbill_test_bot accepted the token")]

    cli("notify", "channel", "telegram", "--token", "123:not-the-token", "--noc-chat", "-1001",
        "--finance-chat", "-1002", "--url", telegram_sim.url)
    _email("not-the-password", smtp_server)
    found = {m.split(":")[0]: (level, m) for level, m in _doctor(cli)}
    assert found["email (smtp)"] == ("problem", "email (smtp): SMTP login refused (535): "
                                                "messages through it fail")
    assert found["telegram (telegram)"] == ("problem", "telegram (telegram): bot token refused "
                                                       "(HTTP 401): messages through it fail")
    # nothing was sent anywhere
    assert ssl_sim.accepted == [] and smtp_server.inbox.messages == []
    assert telegram_sim.accepted == []
