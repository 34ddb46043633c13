"""Operators' templates: preview for a real subscriber (with the SMS's parts), and save,
which refuses a template that does not render."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify import rules, templates
from notify.delivery import isp_view
from notify.models import Outbox, Template
from notify.outbox import notice_payload
from radbill.db import utcnow
from radbill.errors import InvalidInput

KINDS = ("invoice_issued", "reminder", "due_notice", "final_reminder", "late_fee",
         "suspended", "still_suspended", "reconnected", "payment_received", "welcome",
         "throttled", "promise", "promise_broken", "credit_note")
CHANNELS = ("sms", "email")
SAMPLE = {"invoice": "INV-000123", "amount_due": "1050.00", "amount": "1050.00",
          "currency": "BDT", "due_on": "2026-12-08", "period_start": "2026-11-01",
          "period_end": "2026-11-30", "payment_link": "https://isp.example/p/AbCdEfGh",
          "reason": "non-payment"}


@dataclass(frozen=True)
class Preview:
    """A template rendered for a subscriber."""

    subject: str | None
    text: str
    encoding: str | None
    segments: int | None


def _check_key(kind: str, channel: str, locale: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"unknown event kind {kind!r}")
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r} (sms or email)")
    if locale not in templates.LOCALES:
        raise InvalidInput(f"unknown locale {locale!r} ({', '.join(templates.LOCALES)})")


def preview(session: Session, kind: str, channel: str, locale: str, body: str,
            subject: str | None = None, dlt_template_id: str | None = None,
            username: str | None = None) -> Preview:
    """*body* rendered for subscriber *username* (their latest event of *kind*, or sample
    values with their details). :class:`radbill.errors.InvalidInput` if it does not render."""
    _check_key(kind, channel, locale)
    if len(body) > templates.BODY_MAX or (subject and len(subject) > 200):
        raise InvalidInput("template too long")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", body + (subject or "")
                 + (dlt_template_id or "")):
        raise InvalidInput("template contains control characters")
    payload: dict[str, object] = dict(SAMPLE)
    if username:
        from billing.subscribers import get_subscriber
        from notify.delivery import bounded_username

        sub = get_subscriber(session, bounded_username(username))
        latest = session.scalars(select(Outbox).where(
            Outbox.subscriber_id == sub.id, Outbox.kind == kind)
            .order_by(Outbox.id.desc()).limit(1)).first()
        payload = {**SAMPLE, **notice_payload(sub), **(latest.payload if latest else {})}
    isp = isp_view(session)
    variables = templates.context(payload, isp_name=isp.name, isp_phone=isp.phone,
                                  link=str(payload.get("payment_link") or ""), kind=kind)
    try:
        out = templates.render(templates.Source(subject, body, dlt_template_id or None),
                               variables)
    except templates.TemplateProblem as exc:
        raise InvalidInput(str(exc)) from exc
    if channel == "sms":
        size = rules.sms_size(out.text)
        return Preview(None, out.text, size.encoding.value, size.segments)
    return Preview(out.subject, out.text, None, None)


def save(session: Session, kind: str, channel: str, locale: str, body: str,
         subject: str | None = None, dlt_template_id: str | None = None,
         username: str | None = None) -> Template:
    """Create or replace the operator's template (after rendering it: one that fails is
    not saved)."""
    preview(session, kind, channel, locale, body, subject, dlt_template_id, username)
    if channel == "email" and not subject:
        raise InvalidInput("an e-mail template needs a subject")
    if dlt_template_id and (len(dlt_template_id) > 32 or not dlt_template_id.isdigit()):
        raise InvalidInput("a DLT template id is digits, at most 32")
    row = session.scalars(select(Template).where(
        Template.kind == kind, Template.channel == channel, Template.locale == locale)
        .with_for_update()).one_or_none()
    if row is None:
        row = Template(kind=kind, channel=channel, locale=locale, body=body)
        session.add(row)
    row.body, row.subject = body, subject or None
    row.dlt_template_id, row.updated_at = dlt_template_id or None, utcnow()
    return row


def current(session: Session, kind: str, channel: str, locale: str) -> templates.Source | None:
    """The template in force (the operator's, else the shipped one)."""
    row = session.scalars(select(Template).where(
        Template.kind == kind, Template.channel == channel, Template.locale == locale)
    ).one_or_none()
    if row is not None:
        return templates.Source(row.subject, row.body, row.dlt_template_id)
    return templates.shipped(kind, channel, locale)
