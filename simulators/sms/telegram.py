"""Telegram Bot API, simulated from its documentation (core.telegram.org/bots/api;
FIELD-NOTES): ``POST /bot<token>/sendMessage`` ``{chat_id, text, parse_mode}``. Errors are
``{ok: false, error_code, description, parameters: {retry_after}}``: 401 for a bad token, 400
"chat not found", 403 when the bot was blocked or removed, 400 for text over 4096 characters
or HTML that does not parse, 429 with ``retry_after`` past about one message per second per
chat."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from typing import Any

from simulators.sms.base import SimulatorBase

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                "tg-spoiler", "span", "blockquote"}


class _Check(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = f"unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = f"unexpected end tag \"{tag}\""


def parse_error(text: str) -> str | None:
    if re.search(r"<(?![a-zA-Z/])", text) or re.search(r"&(?!(amp|lt|gt|quot|#\d+);)", text):
        return "Can't parse entities: unescaped character"
    check = _Check()
    check.feed(text)
    check.close()
    if check.error:
        return f"Can't parse entities: {check.error}"
    if check.stack:
        return "Can't parse entities: can't find end tag"
    return None


class TelegramSimulator(SimulatorBase):
    """The Bot API's sendMessage over real HTTP."""

    name = "telegram"

    def __init__(self, token: str = "123456:TEST-token",  # noqa: S107 - a test token
                 chats: set[str] | None = None,
                 per_chat_interval: float = 1.0) -> None:
        super().__init__()
        self.token = token
        self.chats = chats if chats is not None else {"-1001", "-1002"}
        self.blocked: set[str] = set()
        self.per_chat_interval = per_chat_interval
        self.last: dict[str, float] = {}

    @staticmethod
    def _error(code: int, description: str, **params: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if params:
            body["parameters"] = params
        return code, body

    def route(  # noqa: PLR0911 - one Bot API error per refusal
            self, method: str, path: str, headers: dict[str, str], body: Any,
              client: str) -> tuple[int, Any]:
        m = re.fullmatch(r"/bot([^/]+)/(sendMessage|getMe)", path)
        if m is None:
            return self._error(404, "Not Found")
        if m.group(1) != self.token:
            return self._error(401, "Unauthorized")
        if m.group(2) == "getMe":  # what client libraries call first to check the token
            return 200, {"ok": True, "result": {
                "id": int(self.token.split(":")[0]), "is_bot": True,
                "first_name": "radbill", "username": "radbill_test_bot"}}
        if not isinstance(body, dict) or "chat_id" not in body or not body.get("text"):
            return self._error(400, "Bad Request: message text is empty")
        chat, text = str(body["chat_id"]), str(body["text"])
        if chat in self.blocked:
            return self._error(403, "Forbidden: bot was kicked from the group chat")
        if chat not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        if body.get("parse_mode") == "HTML":
            problem = parse_error(text)
            if problem:
                return self._error(400, f"Bad Request: {problem}")
        with self.lock:
            now = time.monotonic()
            wait = self.last.get(chat, -1e9) + self.per_chat_interval - now
            if wait > 0:
                return self._error(429, f"Too Many Requests: retry after {int(wait) + 1}",
                                   retry_after=int(wait) + 1)
            self.last[chat] = now
            item = self.accept(chat, text, None)
        # a Message as the Bot API returns it: id, date (Unix time), chat with its type
        return 200, {"ok": True, "result": {
            "message_id": int(item.reference.rsplit("-")[1]), "date": int(time.time()),
            "chat": {"id": int(chat), "type": "supergroup" if chat.startswith("-100")
                     else "group" if chat.startswith("-") else "private"},
            "text": text}}
