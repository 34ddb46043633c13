"""Channel settings: saved from the CLI or the admin UI, secrets encrypted with the
installation's key and never shown back; adapters built from them."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.channels.base import ChatSender, Mailer, SmsGateway
from notify.models import Channel
from radbill.crypto import SecretBox
from radbill.db import utcnow
from radbill.errors import InvalidInput, NotFound

CHANNELS = ("sms", "email", "telegram")
SMS_PROVIDERS = ("generic-http", "sslwireless", "bulksmsbd", "msg91")
DEFAULT_URLS = {"sslwireless": "https://smsplus.sslwireless.com",
                "bulksmsbd": "https://bulksmsbd.net", "msg91": "https://control.msg91.com",
                "telegram": "https://api.telegram.org"}
SECRET_KEYS = {"sslwireless": ("api_token",), "bulksmsbd": ("api_key",),
               "msg91": ("authkey",), "generic-http": ("headers",), "smtp": ("password",),
               "telegram": ("token",)}
TEXT_MAX = 2000
PRICE_MAX = Decimal(1000)


@dataclass(frozen=True)
class SmsPolicy:
    """How SMS are sent, whatever the provider."""

    country: str = "BD"
    price_per_segment: Decimal = Decimal("0.00")
    currency: str = "BDT"
    rate: float = 50.0  # messages per second (token bucket)
    burst: int = 100
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(8, 0)


def _bounded(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if v is None:
            continue
        if not re.fullmatch(r"[a-z_]{1,40}", k):
            raise InvalidInput(f"setting name {k!r} is not allowed")
        if isinstance(v, str) and len(v) > TEXT_MAX:
            raise InvalidInput(f"{k} is longer than {TEXT_MAX} characters")
        if isinstance(v, str) and re.search(r"[\x00-\x1f\x7f]", v):
            raise InvalidInput(f"{k} contains control characters")
        out[k] = v
    return out


def save(session: Session, box: SecretBox, name: str, provider: str,
         settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> Channel:
    """Create or replace channel *name*; a secret left out keeps its saved value. Checks
    that an adapter can be built from the result (else nothing is written)."""
    if name not in CHANNELS:
        raise InvalidInput(f"unknown channel {name!r} (one of {', '.join(CHANNELS)})")
    if name == "sms" and provider not in SMS_PROVIDERS:
        raise InvalidInput(f"unknown SMS provider {provider!r} "
                           f"(one of {', '.join(SMS_PROVIDERS)})")
    row = session.get(Channel, name, with_for_update=True)
    old = _secrets(box, row) if row is not None and row.provider == provider else {}
    merged = {**old, **{k: v for k, v in secrets.items() if v not in (None, "")}}
    clean = _bounded(settings)
    if row is None:
        row = Channel(name=name, provider=provider, settings=clean)
        session.add(row)
    row.provider, row.settings = provider, clean
    row.secrets_enc = box.encrypt(json.dumps(merged)) if merged else None
    row.updated_at = utcnow()
    row.paused_at, row.pause_reason, row.enabled = None, None, True
    build(row, box)  # refuse what cannot work
    return row


def _secrets(box: SecretBox, row: Channel) -> dict[str, Any]:
    if not row.secrets_enc:
        return {}
    value = json.loads(box.decrypt(row.secrets_enc))
    return value if isinstance(value, dict) else {}


def listing(session: Session) -> list[dict[str, Any]]:
    """The channels with their settings; secrets masked."""
    out = []
    for row in session.scalars(select(Channel).order_by(Channel.name)):
        secret_names = SECRET_KEYS.get(row.provider, ())
        out.append({"channel": row.name, "provider": row.provider,
                    "settings": dict(row.settings),
                    "secrets": dict.fromkeys(secret_names, "********") if row.secrets_enc
                    else {}, "enabled": row.enabled,
                    "paused": row.paused_at.isoformat() if row.paused_at else None,
                    "pause_reason": row.pause_reason})
    return out


def resume(session: Session, name: str) -> Channel:
    """Resume a paused channel (after the operator topped up or fixed the credentials)."""
    row = session.get(Channel, name, with_for_update=True)
    if row is None:
        raise NotFound(f"channel {name!r} is not configured")
    row.paused_at, row.pause_reason = None, None
    return row


def sms_policy(row: Channel) -> SmsPolicy:
    s = row.settings
    try:
        policy = SmsPolicy(
            country=str(s.get("country", "BD")).upper(),
            price_per_segment=Decimal(str(s.get("price_per_segment", "0"))),
            currency=str(s.get("currency", "BDT")).upper(),
            rate=float(str(s.get("rate", 50))), burst=int(str(s.get("burst", 100))),
            quiet_start=dt.time.fromisoformat(str(s.get("quiet_start", "21:00"))),
            quiet_end=dt.time.fromisoformat(str(s.get("quiet_end", "08:00"))))
    except (ValueError, InvalidOperation) as exc:
        raise InvalidInput(f"sms channel settings: {exc}") from exc
    price = policy.price_per_segment
    if not price.is_finite() or not Decimal(0) <= price <= PRICE_MAX \
            or price != price.quantize(Decimal("0.0001")):
        raise InvalidInput(f"price per SMS part must be 0 to {PRICE_MAX}, at most 4 decimals")
    if not re.fullmatch(r"[A-Z]{3}", policy.currency):
        raise InvalidInput(f"currency {policy.currency!r} is not an ISO 4217 code")
    if policy.country not in ("BD", "IN"):
        raise InvalidInput("country must be BD or IN")
    if not (0.1 <= policy.rate <= 100_000 and 1 <= policy.burst <= 100_000):
        raise InvalidInput("rate must be 0.1 to 100000 per second and burst 1 to 100000")
    return policy


def build(row: Channel, box: SecretBox) -> SmsGateway | Mailer | ChatSender:
    """The adapter for a channel row (:class:`InvalidInput` when it cannot work)."""
    s, secret = row.settings, _secrets(box, row)
    url = str(s.get("base_url") or DEFAULT_URLS.get(row.provider, ""))
    if url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise InvalidInput(f"API root {url!r} is not an http(s) URL")
    try:
        if row.name == "sms":
            sms_policy(row)
            return _sms(row.provider, s, secret, url)
        if row.name == "email":
            return _email(s, secret)
        return _telegram(s, secret, url)
    except ValueError as exc:
        raise InvalidInput(f"{row.name} channel: {exc}") from exc


def _sms(provider: str, s: Mapping[str, Any], secret: Mapping[str, Any], url: str
         ) -> SmsGateway:
    if provider == "sslwireless":
        from notify.channels.sslwireless import SslWirelessGateway

        return SslWirelessGateway(url, _need(secret, "api_token"), _need(s, "sid"))
    if provider == "bulksmsbd":
        from notify.channels.bulksmsbd import BulkSmsBdGateway

        return BulkSmsBdGateway(url, _need(secret, "api_key"), _need(s, "sender_id"))
    if provider == "msg91":
        from notify.channels.msg91 import Msg91Gateway

        return Msg91Gateway(url, _need(secret, "authkey"))
    from notify.channels.generic_http import (
        GenericConfigError,
        GenericHttpGateway,
        GenericProfile,
    )

    try:
        return GenericHttpGateway(GenericProfile.from_settings(
            {**s, "headers": secret.get("headers") or {}}))
    except (GenericConfigError, TypeError) as exc:
        raise InvalidInput(f"generic-http: {exc}") from exc


def _email(s: Mapping[str, Any], secret: Mapping[str, Any]) -> Mailer:
    from notify.channels.smtp import SmtpMailer, SmtpSettings

    security = str(s.get("security", "starttls"))
    if security not in ("starttls", "ssl", "none"):
        raise InvalidInput("email security must be starttls, ssl or none")
    port = int(str(s.get("port", 587)))
    if not 0 < port < 65536:
        raise InvalidInput(f"SMTP port {port} is out of range")
    sender = _need(s, "sender")
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", sender) or len(sender) > 254:
        raise InvalidInput(f"sender {sender!r} is not an e-mail address")
    return SmtpMailer(SmtpSettings(
        host=_need(s, "host"), port=port, sender=sender, security=security,
        user=str(s["user"]) if s.get("user") else None, password=secret.get("password")))


def _telegram(s: Mapping[str, Any], secret: Mapping[str, Any], url: str) -> ChatSender:
    from notify.channels.telegram import TelegramSender

    for room in ("noc_chat", "finance_chat"):
        chat = str(s.get(room) or "")
        if chat and not re.fullmatch(r"-?\d{1,20}|@\w{5,32}", chat):
            raise InvalidInput(f"{room} {chat!r} is not a Telegram chat id")
    return TelegramSender(url, _need(secret, "token"))


def _need(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    if not value:
        raise InvalidInput(f"{key} is required")
    return str(value)
