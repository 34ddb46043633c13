"""One contract per channel Protocol, parametrised over every implementation, each against
a real server on loopback (the provider simulators; aiosmtpd for SMTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from notify.channels.base import (
    Attachment,
    ChatMessage,
    ChatSender,
    Mail,
    Mailer,
    Outcome,
    SmsGateway,
    SmsMessage,
)
from notify.channels.bulksmsbd import BulkSmsBdGateway
from notify.channels.generic_http import GenericHttpGateway, GenericProfile
from notify.channels.msg91 import Msg91Gateway
from notify.channels.smtp import SmtpMailer, SmtpSettings
from notify.channels.sslwireless import SslWirelessGateway
from notify.channels.telegram import TelegramSender
from simulators.sms.bulksmsbd import BulkSmsBdSimulator
from simulators.sms.msg91 import Msg91Simulator
from simulators.sms.sslwireless import SslWirelessSimulator
from tests.notify.conftest import Smtp, free_port


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# Each: (name, make simulator, make gateway from (sim url, credentials, good=True/False))
def _ssl(sim: Any, good: bool = True, url: str | None = None) -> SmsGateway:
    return SslWirelessGateway(url or sim.url, sim.api_token if good else "wrong", sim.sid)


def _bulk(sim: Any, good: bool = True, url: str | None = None) -> SmsGateway:
    return BulkSmsBdGateway(url or sim.url, sim.api_key if good else "wrong", sim.sender_id)


def _msg91(sim: Any, good: bool = True, url: str | None = None) -> SmsGateway:
    return Msg91Gateway(url or sim.url, sim.authkey if good else "wrong")


def _generic(sim: Any, good: bool = True, url: str | None = None) -> SmsGateway:
    # BulkSMSBD's API as pure data: no code for this provider in the generic gateway
    key = sim.api_key if good else "wrong"
    return GenericHttpGateway(GenericProfile(
        url=(url or sim.url) + "/api/smsapi", method="POST", content_type="form",
        body=f"api_key={key}&type=text&senderid={sim.sender_id}&number={{to}}"
             "&message={text}",
        success_json_path="response_code", success_value="202",
        error_json_path="response_code",
        errors={"1001": "permanent", "1002": "account", "1007": "account",
                "1011": "account", "1032": "account"}))


SMS: dict[str, tuple[Callable[[], Any], Callable[..., SmsGateway]]] = {
    "sslwireless": (SslWirelessSimulator, _ssl),
    "bulksmsbd": (BulkSmsBdSimulator, _bulk),
    "msg91": (Msg91Simulator, _msg91),
    "generic-http": (BulkSmsBdSimulator, _generic),
}
TEMPLATE = "1207160000000000001"


def _messages(name: str, n: int, number: str | None = None) -> list[SmsMessage]:
    to = number or ("919876543210" if name == "msg91" else "8801711000001")
    return [SmsMessage(provider_id=f"rbt{i}", to=to, text=f"Bill {i}: ৳1,200.00 due",
                       dlt_template_id=TEMPLATE, variables={"amount": f"{i}"})
            for i in range(n)]


@pytest.fixture(params=sorted(SMS))
def sms(request: pytest.FixtureRequest) -> Any:
    make_sim, make_gateway = SMS[request.param]
    sim = make_sim()
    if request.param == "msg91":
        sim.register(TEMPLATE, "Bill ##amount##")
    sim.start()
    yield request.param, sim, make_gateway
    sim.stop()


def test_sms_sends_each_message_once_in_order(sms: Any) -> None:
    name, sim, make = sms
    gateway = make(sim)
    messages = _messages(name, 3)
    results = run(_send(gateway, messages))
    assert [r.provider_id for r in results] == ["rbt0", "rbt1", "rbt2"]
    assert all(r.outcome is Outcome.SENT for r in results), results
    assert len(sim.accepted) == 3
    assert {a.to for a in sim.accepted} == {messages[0].to}
    if name != "msg91":  # MSG91 sends the registered DLT text
        assert [a.text for a in sim.accepted] == [m.text for m in messages]
    assert sim.accepted[0].encoding == ("ucs2" if name != "msg91" else "gsm7")


def test_sms_invalid_number_is_permanent(sms: Any) -> None:
    name, sim, make = sms
    results = run(_send(make(sim), _messages(name, 1, number="8801200")))
    assert results[0].outcome is Outcome.PERMANENT
    assert sim.accepted == []


def test_sms_bad_credentials_are_an_account_error(sms: Any) -> None:
    name, sim, make = sms
    results = run(_send(make(sim, good=False), _messages(name, 2)))
    assert [r.outcome for r in results] == [Outcome.ACCOUNT, Outcome.ACCOUNT]
    assert sim.accepted == []


def test_sms_out_of_balance_is_an_account_error(sms: Any) -> None:
    name, sim, make = sms
    sim.balance = 0
    results = run(_send(make(sim), _messages(name, 1)))
    assert results[0].outcome is Outcome.ACCOUNT, results
    assert sim.accepted == []


def test_sms_unreachable_provider_is_transient(sms: Any) -> None:
    name, sim, make = sms
    gateway = make(sim, url=f"http://127.0.0.1:{free_port()}")
    results = run(_send(gateway, _messages(name, 1)))
    assert results[0].outcome is Outcome.TRANSIENT


def test_sms_lost_answer_is_unknown_and_a_resend_is_safe_only_with_ids(sms: Any) -> None:
    name, sim, make = sms
    gateway = make(sim)
    sim.drop_replies = 1
    first = run(_send(gateway, _messages(name, 1)))
    assert first[0].outcome is Outcome.UNKNOWN
    assert len(sim.accepted) == 1  # it did go
    if gateway.idempotent:
        again = run(_send(make(sim), _messages(name, 1)))
        assert again[0].outcome is Outcome.SENT
        assert "already sent" in again[0].detail
        assert len(sim.accepted) == 1


async def _send(gateway: SmsGateway, messages: list[SmsMessage]) -> list[Any]:
    try:
        return await gateway.send(messages)
    finally:
        await gateway.close()


def test_sslwireless_batch_with_one_bad_number_sends_the_others(ssl_sim: Any) -> None:
    messages = _messages("sslwireless", 3)
    messages[1] = SmsMessage("rbt-bad", "8801200", "x")
    results = run(_send(_ssl(ssl_sim), messages))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.PERMANENT, Outcome.SENT]
    assert len(ssl_sim.accepted) == 2


# -- Mailer -----------------------------------------------------------------------------------

MAILERS: dict[str, Callable[[Smtp, bool], Mailer]] = {
    "smtp": lambda s, good: SmtpMailer(SmtpSettings(
        host=s.host, port=s.port, sender="billing@isp.example", security="none",
        user=s.user, password=s.password if good else "wrong")),
}


@pytest.mark.parametrize("name", sorted(MAILERS))
def test_mailer_sends_text_html_and_attachment(name: str, smtp_server: Smtp) -> None:
    pdf = b"%PDF-1.4 test\n"
    mail = Mail("rbm1", "alice@example.net", "Invoice INV-000001", "Pay ৳1,200.00",
                "<p>Pay ৳1,200.00</p>", [Attachment("INV-000001.pdf", pdf)])
    result = run(MAILERS[name](smtp_server, True).send(mail))
    assert result.outcome is Outcome.SENT
    [msg] = smtp_server.inbox.messages
    assert msg["Subject"] == "Invoice INV-000001"
    assert msg["Message-ID"] == "<rbm1@isp.example>"
    assert msg.get_body(("plain",)).get_content().strip() == "Pay ৳1,200.00"
    assert "<p>Pay ৳1,200.00</p>" in msg.get_body(("html",)).get_content()
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "INV-000001.pdf" and att.get_content() == pdf


@pytest.mark.parametrize("name", sorted(MAILERS))
def test_mailer_refused_login_is_an_account_error(name: str, smtp_server: Smtp) -> None:
    result = run(MAILERS[name](smtp_server, False).send(Mail("rbm2", "a@b.example", "s", "t")))
    assert result.outcome is Outcome.ACCOUNT
    assert smtp_server.inbox.messages == []


@pytest.mark.parametrize("name", sorted(MAILERS))
def test_mailer_unreachable_is_transient(name: str) -> None:
    s = Smtp("127.0.0.1", free_port(), inbox=None)  # type: ignore[arg-type]
    result = run(MAILERS[name](s, True).send(Mail("rbm3", "a@b.example", "s", "t")))
    assert result.outcome is Outcome.TRANSIENT


# -- ChatSender -------------------------------------------------------------------------------

CHATS: dict[str, Callable[[Any, bool], ChatSender]] = {
    "telegram": lambda sim, good: TelegramSender(sim.url, sim.token if good else "1:bad"),
}


@pytest.mark.parametrize("name", sorted(CHATS))
def test_chat_sends_escaped_html(name: str, telegram_sim: Any) -> None:
    from notify.channels.telegram import escape

    text = f"<b>Alert</b> {escape('gateway <bkash> & co')}"
    result = run(CHATS[name](telegram_sim, True).send(ChatMessage("c1", "-1001", text)))
    assert result.outcome is Outcome.SENT and result.reference == "1"
    assert telegram_sim.accepted[0].text == text


@pytest.mark.parametrize("name", sorted(CHATS))
def test_chat_errors(name: str, telegram_sim: Any) -> None:
    async def scenario() -> list[Any]:
        sender, bad = CHATS[name](telegram_sim, True), CHATS[name](telegram_sim, False)
        out = [await sender.send(ChatMessage("c", "-999", "x"))]
        telegram_sim.blocked.add("-1002")
        out.append(await sender.send(ChatMessage("c", "-1002", "x")))
        out.append(await bad.send(ChatMessage("c", "-1001", "x")))
        out.append(await sender.send(ChatMessage("c", "-1001", "a <b>broken")))
        telegram_sim.per_chat_interval = 30.0
        out.append(await sender.send(ChatMessage("c", "-1001", "one")))
        out.append(await sender.send(ChatMessage("c", "-1001", "two")))
        await sender.close()
        await bad.close()
        return out

    results = run(scenario())
    assert [r.outcome for r in results] == [
        Outcome.PERMANENT, Outcome.PERMANENT, Outcome.ACCOUNT, Outcome.PERMANENT,
        Outcome.SENT, Outcome.TRANSIENT]
    assert results[-1].retry_after == 30


# -- check_credentials (radbill doctor): proves or says it cannot, and never sends ---------------


def test_sms_check_credentials_sends_nothing(sms: Any) -> None:
    _, sim, make = sms
    assert run(make(sim).check_credentials()) is None  # no read-only call: the doctor says so
    assert sim.accepted == []


@pytest.mark.parametrize("name", sorted(MAILERS))
def test_mailer_check_credentials(name: str, smtp_server: Smtp) -> None:
    from notify.channels.base import CredentialsRefused

    proved = run(MAILERS[name](smtp_server, True).check_credentials())
    assert proved == f"{smtp_server.host}:{smtp_server.port} accepted the login of radbill"
    with pytest.raises(CredentialsRefused, match=r"SMTP login refused \(535\)"):
        run(MAILERS[name](smtp_server, False).check_credentials())
    s = Smtp("127.0.0.1", free_port(), inbox=None)  # type: ignore[arg-type]
    with pytest.raises(CredentialsRefused, match="ConnectionRefusedError"):
        run(MAILERS[name](s, True).check_credentials())
    assert smtp_server.inbox.messages == []


@pytest.mark.parametrize("name", sorted(CHATS))
def test_chat_check_credentials(name: str, telegram_sim: Any) -> None:
    from notify.channels.base import CredentialsRefused

    async def scenario() -> str | None:
        good, bad = CHATS[name](telegram_sim, True), CHATS[name](telegram_sim, False)
        try:
            with pytest.raises(CredentialsRefused, match=r"bot token refused \(HTTP 401\)"):
                await bad.check_credentials()
            return await good.check_credentials()
        finally:
            await good.close()
            await bad.close()

    assert run(scenario()) == "bot @radbill_test_bot accepted the token"
    assert telegram_sim.accepted == []
