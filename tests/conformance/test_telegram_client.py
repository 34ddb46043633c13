"""The Telegram simulator as a Bot API client we did not write sees it: python-telegram-bot
(the most used Python client) sends through it and reads its answers and errors, so the
simulator's replies are the Bot API's shapes, not only what radbill's own adapter expects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter

from simulators.sms.telegram import TelegramSimulator
from tests.coa.aio import arun

TOKEN = "123456:TEST-token"  # the simulator's test token


@pytest.fixture
def sim() -> Iterator[TelegramSimulator]:
    s = TelegramSimulator(token=TOKEN, chats={"-1001", "-1002"}, per_chat_interval=30.0)
    s.start()
    yield s
    s.stop()


def bot(sim: TelegramSimulator, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{sim.url}/bot")


def test_python_telegram_bot_sends_html_and_reads_the_message(sim: TelegramSimulator) -> None:
    async def send() -> object:
        async with bot(sim) as b:
            return await b.send_message(chat_id=-1001, text="<b>3 suspended</b> &amp; 1 paid",
                                        parse_mode=ParseMode.HTML)

    message = arun(send())
    assert message.chat.id == -1001 and message.message_id > 0  # type: ignore[attr-defined]
    assert message.date is not None  # type: ignore[attr-defined]


def test_the_bot_apis_errors_reach_the_client_as_the_bot_api_types(
        sim: TelegramSimulator) -> None:
    sim.blocked.add("-1002")

    async def attempt(chat: int, token: str = TOKEN) -> None:
        async with bot(sim, token) as b:
            await b.send_message(chat_id=chat, text="hello")

    with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
        arun(attempt(-1009))
    with pytest.raises(Forbidden):
        arun(attempt(-1002))
    with pytest.raises(InvalidToken):
        arun(attempt(-1001, "654321:WRONG-token"))
    arun(attempt(-1001))
    with pytest.raises(RetryAfter) as too_fast:  # the second message to one chat at once
        arun(attempt(-1001))
    assert too_fast.value.retry_after
