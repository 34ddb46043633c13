"""Template helpers: money, bytes, dates, and the current user's permissions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask import Flask, g

from admin.roles import Permission, allowed


def human_bytes(n: int | None) -> str:
    """``1234567`` → ``1.2 MB`` (powers of 1000, as ISPs sell caps)."""
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns


def money(value: Decimal | str | None, currency: str = "") -> str:
    """``Decimal('1050.00'), 'BDT'`` → ``BDT 1,050.00``."""
    if value is None:
        return ""
    text = f"{Decimal(value):,.2f}"
    return f"{currency} {text}".strip()


def when(value: dt.datetime | dt.date | None) -> str:
    """A timestamp to the minute (UTC), or a date."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def can(permission: str) -> bool:
    """Whether the current user may use routes needing *permission* (hides buttons)."""
    user = g.get("user")
    return allowed(user.role if user else None, Permission(permission))


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(bytes=human_bytes, money=money, when=when)
    app.jinja_env.globals.update(can=can)
    app.jinja_env.globals["g"] = g
    app.jinja_env.autoescape = True


__all__ = ["can", "human_bytes", "init_app", "money", "when"]
