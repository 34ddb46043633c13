"""E-mail over SMTP with the standard library (``email.message.EmailMessage`` + ``smtplib``):
text and HTML alternatives, attachments; STARTTLS or SSL, AUTH. ``smtplib`` blocks, so each
send runs in a thread. The Message-ID is derived from the delivery's provider id, so a
repeat after an unknown outcome is recognisable as the same message."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from notify.channels.base import CredentialsRefused, Mail, Outcome, Result


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send."""

    host: str
    port: int
    sender: str
    security: str = "starttls"  # starttls | ssl | none
    user: str | None = None
    password: str | None = None
    timeout: float = 20.0
    verify_tls: bool = True


def build(mail: Mail, sender: str) -> EmailMessage:
    """The MIME message for *mail*."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{mail.provider_id}@{sender.rpartition('@')[2] or 'radbill'}>"
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    for a in mail.attachments:
        msg.add_attachment(a.content, maintype=a.maintype, subtype=a.subtype,
                           filename=a.filename)
    return msg


class SmtpMailer:
    """An SMTP server."""

    name = "smtp"
    idempotent = False

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def close(self) -> None:
        return None

    async def send(self, mail: Mail) -> Result:
        return await asyncio.to_thread(self._send, mail)

    async def check_credentials(self) -> str | None:
        """Connect, STARTTLS, log in and NOOP, then QUIT: no message is sent."""
        return await asyncio.to_thread(self._check)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _check(self) -> str:
        s = self.settings
        try:
            server: smtplib.SMTP
            if s.security == "ssl":
                server = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                          context=self._context())
            else:
                server = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with server:
                if s.security == "starttls":
                    server.starttls(context=self._context())
                if s.user:
                    server.login(s.user, s.password or "")
                server.noop()
        except smtplib.SMTPAuthenticationError as exc:
            raise CredentialsRefused(f"SMTP login refused ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise CredentialsRefused(f"SMTP {s.host}:{s.port}: {type(exc).__name__}: "
                                     f"{exc}"[:200]) from None
        return (f"{s.host}:{s.port} accepted the login of {s.user}" if s.user
                else f"{s.host}:{s.port} answers (no login configured)")

    def _send(self, mail: Mail) -> Result:  # noqa: PLR0911 - one outcome per SMTP failure
        s = self.settings
        context = ssl.create_default_context()
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        msg = build(mail, s.sender)
        data_started = False
        try:
            server: smtplib.SMTP
            if s.security == "ssl":
                server = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                server = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with server:
                if s.security == "starttls":
                    server.starttls(context=context)
                if s.user:
                    server.login(s.user, s.password or "")
                data_started = True
                server.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            return Result(mail.provider_id, Outcome.ACCOUNT, f"SMTP auth refused: {exc.smtp_code}")
        except smtplib.SMTPSenderRefused as exc:
            return Result(mail.provider_id, Outcome.ACCOUNT, f"sender refused: {exc.smtp_code}")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            outcome = Outcome.TRANSIENT if all(400 <= c < 500 for c in codes) \
                else Outcome.PERMANENT
            return Result(mail.provider_id, outcome, f"recipient refused: {codes}")
        except smtplib.SMTPResponseException as exc:
            outcome = Outcome.TRANSIENT if 400 <= exc.smtp_code < 500 else Outcome.PERMANENT
            return Result(mail.provider_id, outcome, f"SMTP {exc.smtp_code}")
        except (smtplib.SMTPServerDisconnected, TimeoutError) as exc:
            outcome = Outcome.UNKNOWN if data_started else Outcome.TRANSIENT
            return Result(mail.provider_id, outcome, f"SMTP {type(exc).__name__}")
        except (OSError, smtplib.SMTPException) as exc:
            outcome = Outcome.UNKNOWN if data_started else Outcome.TRANSIENT
            return Result(mail.provider_id, outcome, f"SMTP {type(exc).__name__}: {exc}"[:200])
        return Result(mail.provider_id, Outcome.SENT, reference=str(msg["Message-ID"]))
