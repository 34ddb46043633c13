"""The channel Protocols and what they return.

An adapter sends what it is given and reports, per message, one :class:`Result`. It must NOT
retry on its own (the worker schedules retries so it can pause a channel, honour the
deadline and avoid re-sending an unknown outcome), must NOT raise for a provider's answer or a
network failure (map it to an :class:`Outcome`), and must NOT read or write the database.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Outcome(enum.StrEnum):
    """What a send came to."""

    SENT = "sent"  # accepted by the provider (or already accepted: a duplicate id)
    PERMANENT = "permanent"  # this message can never go (bad number, too long, blocked)
    TRANSIENT = "transient"  # try again later (rate limit, provider down)
    ACCOUNT = "account"  # the account cannot send anything (auth, balance, sender id, IP)
    UNKNOWN = "unknown"  # no answer: the provider may or may not have sent it


@dataclass(frozen=True)
class Result:
    """One message's outcome."""

    provider_id: str
    outcome: Outcome
    detail: str = ""
    reference: str | None = None  # the provider's id for the message
    retry_after: float | None = None  # seconds the provider asked us to wait


@dataclass(frozen=True)
class SmsMessage:
    """One SMS: *provider_id* is our idempotency id (SSL Wireless ``csms_id``), *to* the
    normalised MSISDN."""

    provider_id: str
    to: str
    text: str
    dlt_template_id: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    """A file attached to an e-mail."""

    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


@dataclass(frozen=True)
class Mail:
    """One e-mail: text and (optionally) HTML alternatives and attachments."""

    provider_id: str
    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: Sequence[Attachment] = ()


@dataclass(frozen=True)
class ChatMessage:
    """One message to an operators' chat, already HTML-escaped where it holds data."""

    provider_id: str
    chat_id: str
    html: str


class CredentialsRefused(Exception):
    """A provider refused the channel's credentials, or could not be reached to ask."""


class SmsGateway(Protocol):
    """An SMS provider's API."""

    name: str
    idempotent: bool  # True when the provider refuses a repeated provider_id (safe re-send)
    max_batch: int  # messages per call

    async def send(self, messages: Sequence[SmsMessage]) -> list[Result]:
        """Send *messages*; one result per message, in order."""

    async def check_credentials(self) -> str | None:
        """Prove the credentials without sending anything (for `radbill doctor`): what it
        proved, or None when the provider has no such call. Raises
        :class:`CredentialsRefused`. You may NOT send a message here."""

    async def close(self) -> None:
        """Release connections."""


class Mailer(Protocol):
    """An outgoing mail server."""

    name: str
    idempotent: bool

    async def send(self, mail: Mail) -> Result:
        """Send one e-mail."""

    async def check_credentials(self) -> str | None:
        """Prove the credentials without sending anything (for `radbill doctor`): what it
        proved, or None when the provider has no such call. Raises
        :class:`CredentialsRefused`. You may NOT send a message here."""

    async def close(self) -> None:
        """Release connections."""


class ChatSender(Protocol):
    """A chat service operators read (Telegram)."""

    name: str
    idempotent: bool

    async def send(self, message: ChatMessage) -> Result:
        """Send one chat message."""

    async def check_credentials(self) -> str | None:
        """Prove the credentials without sending anything (for `radbill doctor`): what it
        proved, or None when the provider has no such call. Raises
        :class:`CredentialsRefused`. You may NOT send a message here."""

    async def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class ErrorMap:
    """A provider's error codes by what they mean (data, overridable per provider): codes
    not listed are permanent; ``account_pattern`` catches account errors a provider reports
    only in words (``"insufficient balance"``)."""

    account: frozenset[str] = frozenset()
    transient: frozenset[str] = frozenset()
    already_sent: frozenset[str] = frozenset()
    account_pattern: str = r"balance|credit|auth|token|api.?key|sender|whitelist|blacklist"

    def classify(self, code: str, message: str = "") -> Outcome:
        if code in self.already_sent:
            return Outcome.SENT
        if code in self.account:
            return Outcome.ACCOUNT
        if code in self.transient:
            return Outcome.TRANSIENT
        if message and re.search(self.account_pattern, message, re.IGNORECASE):
            return Outcome.ACCOUNT
        return Outcome.PERMANENT
