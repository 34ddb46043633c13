"""Fixtures for the notify tests: simulators on loopback, an SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from simulators.sms.bulksmsbd import BulkSmsBdSimulator
from simulators.sms.msg91 import Msg91Simulator
from simulators.sms.sslwireless import SslWirelessSimulator
from simulators.sms.telegram import TelegramSimulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ssl_sim() -> Iterator[SslWirelessSimulator]:
    sim = SslWirelessSimulator()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def bulk_sim() -> Iterator[BulkSmsBdSimulator]:
    sim = BulkSmsBdSimulator()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def msg91_sim() -> Iterator[Msg91Simulator]:
    sim = Msg91Simulator()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def telegram_sim() -> Iterator[TelegramSimulator]:
    sim = TelegramSimulator(per_chat_interval=0.0)
    sim.start()
    yield sim
    sim.stop()


@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raw = envelope.original_content or envelope.content  # type: ignore[attr-defined]
        self.messages.append(message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))  # type: ignore[attr-defined]
        return "250 OK"


@dataclass
class Smtp:
    host: str
    port: int
    inbox: Inbox
    user: str = "radbill"
    password: str = "smtp-secret"


def _authenticator(user: str, password: str):  # type: ignore[no-untyped-def]
    def check(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False)
    return check


@pytest.fixture
def smtp_server() -> Iterator[Smtp]:
    """A real SMTP server (aiosmtpd) with AUTH on a free loopback port."""
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                     authenticator=_authenticator("radbill", "smtp-secret"))
    ctl.start()
    yield Smtp("127.0.0.1", port, inbox)
    ctl.stop()


