"""The ISP's settings as the billing rules need them: calendar, time zone, numbering."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.documents import IspProfile
from billing.dunning import Calendar
from billing.models import Holiday, IspSettings

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def settings(session: Session, *, lock: bool = False) -> IspSettings:
    """The ISP settings row (locked with *lock*, which serialises invoice numbering)."""
    stmt = select(IspSettings).where(IspSettings.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise RuntimeError("ISP settings missing: run 'radbill db upgrade'")
    return row


def calendar(session: Session) -> Calendar:
    """Weekly off-days and holidays: the days nobody is suspended."""
    isp = settings(session)
    off = frozenset(WEEKDAYS[d.strip().lower()[:3]] for d in isp.weekly_off_days.split(",")
                    if d.strip())
    holidays = frozenset(session.scalars(select(Holiday.day)))
    return Calendar(weekly_off=off, holidays=holidays)


def local_today(isp: IspSettings, now: dt.datetime) -> dt.date:
    """The ISP's calendar date at *now*."""
    return now.astimezone(ZoneInfo(isp.timezone)).date()


def start_of_day_utc(isp: IspSettings, day: dt.date) -> dt.datetime:
    """Midnight at the start of *day* in the ISP's time zone, as UTC."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(isp.timezone))
    return local.astimezone(dt.UTC)


def profile(isp: IspSettings) -> IspProfile:
    """The issuer printed on invoices."""
    from pathlib import Path

    return IspProfile(name=isp.name, address=isp.address, phone=isp.phone, email=isp.email,
                      logo_path=Path(isp.logo_path) if isp.logo_path else None)


def update_settings(session: Session, values: dict[str, object], actor: str) -> list[str]:
    """Change ISP settings, validated and audited. Returns the names changed."""
    from zoneinfo import ZoneInfoNotFoundError

    from radbill import audit
    from radbill.errors import InvalidInput

    isp = settings(session, lock=True)
    if "timezone" in values:
        try:
            ZoneInfo(str(values["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {values['timezone']!r}") from None
    if "weekly_off_days" in values:
        days = [d.strip().lower()[:3] for d in str(values["weekly_off_days"]).split(",")
                if d.strip()]
        if any(d not in WEEKDAYS for d in days):
            raise InvalidInput(f"weekly off-days {values['weekly_off_days']!r}: use mon..sun")
        values["weekly_off_days"] = ",".join(days)
    pct = values.get("suspension_guard_percent")
    if pct is not None and not 1 <= int(str(pct)) <= 100:
        raise InvalidInput("guard percent must be between 1 and 100")
    before = {k: getattr(isp, k) for k in values}
    for key, value in values.items():
        setattr(isp, key, value)
    audit.record(session, actor=actor, action="isp.settings", entity="isp", entity_id=1,
                 before=before, after=values)
    return sorted(values)
