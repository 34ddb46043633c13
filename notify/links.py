"""Short links for SMS: ``/p/<code>`` redirects to an invoice's payment page. One code per
target (a unique constraint), 48 random bits: not guessable from the invoice."""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from notify.models import ShortLink
from radbill.db import utcnow

CODE_BYTES = 6


def shorten(session: Session, target: str) -> str:
    """The short link (absolute, on the target's host) for *target*."""
    if not target.startswith(("http://", "https://")) or len(target) > 2000:
        raise ValueError("only http(s) links up to 2000 characters are shortened")
    code = session.scalar(select(ShortLink.code).where(ShortLink.target == target))
    if code is None:
        code = secrets.token_urlsafe(CODE_BYTES)
        with session.begin_nested():
            session.add(ShortLink(code=code, target=target))
    parts = urllib.parse.urlsplit(target)
    return f"{parts.scheme}://{parts.netloc}/p/{code}"


def shorten_all(session: Session, targets: set[str]) -> dict[str, str]:
    """Short links for many targets at once (a few queries, not a few per link)."""
    good = sorted(t for t in targets if t.startswith(("http://", "https://")) and len(t) <= 2000)
    codes: dict[str, str] = {}
    for i in range(0, len(good), 900):
        part = good[i : i + 900]
        codes.update(dict(session.execute(
            select(ShortLink.target, ShortLink.code).where(ShortLink.target.in_(part))).all()))
    new: list[dict[str, Any]] = [
        {"code": secrets.token_urlsafe(CODE_BYTES), "target": t, "created_at": utcnow()}
        for t in good if t not in codes]
    for i in range(0, len(new), 1000):
        session.execute(insert(cast(Table, ShortLink.__table__)), new[i : i + 1000])
    codes.update({str(s["target"]): str(s["code"]) for s in new})
    out = {}
    for target, code in codes.items():
        parts = urllib.parse.urlsplit(target)
        out[target] = f"{parts.scheme}://{parts.netloc}/p/{code}"
    return out


def resolve(session: Session, code: str) -> str | None:
    """Where ``/p/<code>`` goes (None: unknown code)."""
    if not 4 <= len(code) <= 16:
        return None
    return session.scalar(select(ShortLink.target).where(ShortLink.code == code))
