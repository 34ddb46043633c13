"""The outbox service: what billing, payments and enforcement call to have a subscriber told
about an event. The event is written in the caller's transaction (so it exists exactly when
the change it reports does) and delivered later by the notify worker."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import Outbox

KIND_MAX = 32
KEY_MAX = 128


class Recipient(Protocol):
    """Whom an event is about (a subscriber, or a row of one)."""

    @property
    def username(self) -> str: ...
    @property
    def full_name(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...


class Identified(Recipient, Protocol):
    @property
    def id(self) -> int: ...


def notice_payload(sub: Recipient, **payload: object) -> dict[str, object]:
    """An outbox event's payload: who to tell, and what (values as text)."""
    return {"username": sub.username, "name": sub.full_name, "phone": sub.phone,
            "email": sub.email,
            **{k: str(v) if v is not None else None for k, v in payload.items()}}


def enqueue(session: Session, sub: Identified, kind: str, key: str, *,
            on: dt.date | None = None, **payload: object) -> bool:
    """Write an outbox event once per *key*, on the business day *on*. False if it was
    written before."""
    if not kind or len(kind) > KIND_MAX or not key or len(key) > KEY_MAX:
        raise ValueError(f"outbox event kind {kind!r} / key {key!r} out of bounds")
    session.flush()
    if session.scalar(select(Outbox.id).where(Outbox.dedupe_key == key)) is not None:
        return False
    session.add(Outbox(kind=kind, subscriber_id=sub.id, dedupe_key=key, event_on=on,
                       payload=notice_payload(sub, **payload)))
    return True


def welcome(session: Session, sub: Identified) -> bool:
    """The welcome message for a subscriber an operator just created (the CLI, the admin UI
    and the API call this; imports and billing's own tests create subscribers without it)."""
    return enqueue(session, sub, "welcome", f"welcome:{sub.id}")


def event_keys(session: Session, subscriber_id: int
               ) -> list[tuple[str, dt.date | None, dt.datetime]]:
    """The subscriber's events: (key, business day, written at)."""
    return [(k, on, at) for k, on, at in session.execute(
        select(Outbox.dedupe_key, Outbox.event_on, Outbox.created_at)
        .where(Outbox.subscriber_id == subscriber_id))]
