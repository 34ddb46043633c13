"""Telegram Bot API for operators' chats: ``sendMessage {chat_id, text, parse_mode: HTML}``
(text at most 4096 characters). Errors are ``{ok: false, error_code, description,
parameters: {retry_after}}``: 429 asks us to wait ``retry_after`` seconds; 403 (bot blocked
or removed) and "chat not found" are permanent; 401 is a bad token."""

from __future__ import annotations

import html

import httpx

from notify.channels.base import ChatMessage, CredentialsRefused, Outcome, Result
from notify.channels.http import client, json_or_none, network_outcome, status_outcome

TEXT_MAX = 4096


def escape(text: str) -> str:
    """Text for HTML parse mode: only ``& < >`` are special."""
    return html.escape(text, quote=False)


class TelegramSender:
    """A Telegram bot."""

    name = "telegram"
    idempotent = False

    def __init__(self, base_url: str, token: str, http: httpx.AsyncClient | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.http = http or client()

    async def close(self) -> None:
        await self.http.aclose()

    async def check_credentials(self) -> str | None:
        """``getMe``: the bot the token belongs to (sends nothing)."""
        try:
            response = await self.http.get(f"{self.base}/bot{self.token}/getMe")
        except httpx.HTTPError as exc:
            raise CredentialsRefused(f"Bot API unreachable ({type(exc).__name__})") from None
        data = json_or_none(response)
        if response.status_code != 200 or not isinstance(data, dict) or not data.get("ok"):
            raise CredentialsRefused(f"bot token refused (HTTP {response.status_code})")
        name = str((data.get("result") or {}).get("username", ""))[:64]
        return f"bot @{name} accepted the token"

    async def send(self, message: ChatMessage) -> Result:  # noqa: PLR0911 - per error
        text = message.html
        if len(text) > TEXT_MAX:
            text = text[: TEXT_MAX - 1] + "…"
        try:
            response = await self.http.post(
                f"{self.base}/bot{self.token}/sendMessage",
                json={"chat_id": message.chat_id, "text": text, "parse_mode": "HTML"})
        except httpx.HTTPError as exc:
            return Result(message.provider_id, *network_outcome(exc))
        data = json_or_none(response)
        if not isinstance(data, dict) or "ok" not in data:
            return Result(message.provider_id, status_outcome(response.status_code),
                          f"HTTP {response.status_code}")
        if data["ok"]:
            ref = (data.get("result") or {}).get("message_id")
            return Result(message.provider_id, Outcome.SENT,
                          reference=str(ref) if ref is not None else None)
        code = int(data.get("error_code") or response.status_code)
        description = str(data.get("description", ""))
        if code == 429:
            wait = (data.get("parameters") or {}).get("retry_after")
            return Result(message.provider_id, Outcome.TRANSIENT, description,
                          retry_after=float(wait) if wait is not None else None)
        if code == 401:
            return Result(message.provider_id, Outcome.ACCOUNT, description)
        if code == 403 or "chat not found" in description.lower():
            return Result(message.provider_id, Outcome.PERMANENT, description)
        return Result(message.provider_id,
                      Outcome.TRANSIENT if code >= 500 else Outcome.PERMANENT, description)
