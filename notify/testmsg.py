"""``radbill notify send-test``: one test message through a configured channel."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy.orm import Session

from notify import rules, templates
from notify.channels.base import ChatMessage, Mail, Result, SmsMessage
from notify.config import build, sms_policy
from notify.delivery import LEASE, TTL, isp_view, provider_id, record
from notify.models import Channel, Delivery, DeliveryStatus
from radbill.db import utcnow
from radbill.errors import InvalidInput


def queue_test(session: Session, channel: str, to: str, *, sending: bool = False
               ) -> Delivery:
    """A test message to *to* through *channel*, queued for the worker (or, with *sending*,
    claimed for the caller to send now)."""
    if channel not in ("sms", "email", "telegram"):
        raise InvalidInput(f"unknown channel {channel!r}")
    row = session.get(Channel, channel)
    if row is None:
        raise InvalidInput(f"the {channel} channel is not configured "
                           f"('radbill notify channel {channel} ...')")
    recipient = to.strip()[:254]
    if channel == "sms":
        try:
            recipient = rules.normalise_msisdn(recipient, sms_policy(row).country)
        except rules.InvalidNumber as exc:
            raise InvalidInput(str(exc)) from exc
    elif channel == "email" and ("@" not in recipient or any(c.isspace() for c in recipient)):
        raise InvalidInput(f"{to!r} is not an e-mail address")
    elif channel == "telegram" and not (recipient.lstrip("-").isdigit()
                                        and len(recipient) <= 32):
        raise InvalidInput(f"{to!r} is not a Telegram chat id")
    now = utcnow()
    isp = isp_view(session)
    source = templates.shipped("test", "email" if channel == "email" else "sms", "en")
    assert source is not None
    text = templates.render(source, templates.context(
        {}, isp_name=isp.name, isp_phone=isp.phone, link="")).text
    key = f"test:{secrets.token_hex(8)}:{channel}:{recipient}"
    d = Delivery(kind="test", channel=channel, recipient=recipient, idempotency_key=key[:200],
                 provider_id=provider_id(key), subject="radbill test", body=text,
                 status=DeliveryStatus.SENDING if sending else DeliveryStatus.QUEUED,
                 attempts=1 if sending else 0, created_at=now,
                 next_attempt_at=now + LEASE if sending else now, expires_at=now + TTL,
                 dead_letter=False)
    session.add(d)
    session.flush()
    return d


def send_test(app: Any, channel: str, to: str, wait: bool) -> str:
    """Queue (and with *wait*, send now) a test message; what came of it, in one line."""
    with app.transaction() as session:
        d = queue_test(session, channel, to, sending=wait)
        ident, pid, recipient, text = d.id, d.provider_id, d.recipient, d.body or ""
        row = session.get(Channel, channel)
        adapter: Any = build(row, app.box()) if wait and row is not None else None
    if adapter is None:
        return f"queued: message #{ident}"

    async def go() -> Result:
        try:
            if channel == "sms":
                return (await adapter.send([SmsMessage(pid, recipient, text)]))[0]
            if channel == "email":
                return await adapter.send(Mail(pid, recipient, "radbill test", text))
            return await adapter.send(ChatMessage(pid, recipient, text))
        finally:
            await adapter.close()

    result = asyncio.run(go())
    with app.transaction() as session:
        record(session, channel, [result], utcnow(), bool(adapter.idempotent))
        final = session.get(Delivery, ident)
        assert final is not None
        state = final.status
    word = "sent" if state == DeliveryStatus.SENT else f"failed ({state})"
    return f"{word}: message #{ident} to {recipient}" + (f": {result.detail}"
                                                         if result.detail else "")
