"""The ISP's settings as the billing rules need them: calendar, time zone, numbering."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.authfeed import end_of_billed_day
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


def mark_billed_through(session: Session, day: dt.date) -> None:
    """A billing run completed for *day*: prepaid cut-offs up to the end of it are now
    backed by issued invoices and the ladder (see :func:`billed_until`)."""
    from radbill.db import AUTH_FEED, bump

    isp = settings(session, lock=True)
    if isp.billed_through is None or day > isp.billed_through:
        isp.billed_through = day
        bump(session, AUTH_FEED)  # the policy snapshot reads it with the next refresh


def billed_until(session: Session) -> dt.datetime | None:
    """The end of the last day billing ran for, as UTC (None before the first run). RADIUS
    enforces a prepaid ``paid_until`` only up to this instant: a cut-off later than it was
    computed ahead, for a period whose invoice and reminders were never issued because the
    billing run has not run since (radbill's own outage). Such subscribers stay served, and
    the catch-up run bills them with the ladder's full spacing."""
    isp = settings(session)
    return end_of_billed_day(isp.billed_through, isp.timezone)


def profile(isp: IspSettings) -> IspProfile:
    """The issuer printed on invoices."""
    from pathlib import Path

    return IspProfile(name=isp.name, address=isp.address, phone=isp.phone, email=isp.email,
                      logo_path=Path(isp.logo_path) if isp.logo_path else None,
                      tax_profile=isp.tax_profile, tax_id=isp.tax_id,
                      state_name=isp.state_name, state_code=isp.state_code,
                      sac_code=isp.sac_code, signatory_name=isp.signatory_name,
                      signatory_designation=isp.signatory_designation)


# What `radbill isp set` may change, and how each value is checked (see update_settings).
_TEXT_LIMITS = {"name": 128, "address": 500, "phone": 32, "email": 254, "tax_id": 32,
                "state_name": 64, "sac_code": 16, "signatory_name": 128,
                "signatory_designation": 128}
_DAY_LIMITS = {"postpaid_due_days": (0, 90), "suspension_guard_percent": (1, 100),
               "suspension_guard_min": (0, 1_000_000), "promises_per_period": (0, 10),
               "suspended_notice_days": (0, 365), "financial_year_start_month": (1, 12)}
_FLAGS = ("bill_while_suspended", "credit_unused_on_termination", "strict_prepay",
          "late_fee_taxable", "financial_year_series")
# With a series per financial year the number carries the year ("2627/"): the prefixes must
# leave room for it within the 16 characters of CGST rule 46(b).
FY_PREFIX_MAX = 5
_PERCENTS = ("supplementary_duty_percent",)
_AMOUNTS = ("late_fee_min_outstanding",)


def _check(key: str, value: object) -> object:  # noqa: PLR0911, PLR0912 - one rule per setting
    """*value* for the setting *key*, checked and normalised. Raises InvalidInput."""
    import re
    from zoneinfo import ZoneInfoNotFoundError

    from billing.plans import parse_money
    from billing.subscribers import validate_state_code, validate_text
    from billing.tax import NUMBER_PREFIX_RE, PROFILES
    from radbill.errors import InvalidInput

    text = str(value)
    if key in _TEXT_LIMITS:
        return validate_text(key.replace("_", " "), text, _TEXT_LIMITS[key],
                             multiline=key == "address")
    if key in _DAY_LIMITS:
        low, high = _DAY_LIMITS[key]
        try:
            number = int(text)
        except ValueError:
            raise InvalidInput(f"{key.replace('_', ' ')} {value!r} is not a whole number"
                               ) from None
        if not low <= number <= high:
            raise InvalidInput(f"{key.replace('_', ' ')} must be between {low} and {high}")
        return number
    if key in _FLAGS:
        if not isinstance(value, bool):
            raise InvalidInput(f"{key.replace('_', ' ')} is yes or no")
        return value
    if key in _PERCENTS:
        pct = parse_money(text)
        if pct > 100:
            raise InvalidInput(f"{key.replace('_', ' ')} {pct}% is above 100%")
        return pct
    if key in _AMOUNTS:
        amount = parse_money(text)
        if amount > 1_000_000:
            raise InvalidInput(f"{key.replace('_', ' ')} {amount} is implausibly large")
        return amount
    if key in ("invoice_prefix", "credit_note_prefix"):
        if not NUMBER_PREFIX_RE.fullmatch(text):
            raise InvalidInput(f"{key.replace('_', ' ')} {value!r}: up to 10 letters, digits, "
                               "- and / (a tax invoice number has at most 16 characters)")
        return text
    if key == "timezone":
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {value!r}") from None
        return text
    if key == "weekly_off_days":
        days = [d.strip().lower()[:3] for d in text.split(",") if d.strip()]
        if any(d not in WEEKDAYS for d in days) or len(days) > 6:
            raise InvalidInput(f"weekly off-days {value!r}: use mon..sun, at most six")
        return ",".join(days)
    if key == "payment_link_base":
        if text and not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?(/[\w.\-/~%]*)?", text):
            raise InvalidInput(f"payment link base {value!r} must be an http(s) URL")
        return text.rstrip("/")
    if key == "tax_profile":
        if text not in PROFILES:
            raise InvalidInput(f"tax profile {value!r}: use none, bd-mushak or in-gst")
        return text
    if key == "state_code":
        return validate_state_code(text) if text else ""
    if key == "logo_path":
        return _check_logo(text)
    raise InvalidInput(f"unknown ISP setting {key!r}")


def _check_logo(path: str) -> str:
    """A logo must be a PNG or JPEG image of reasonable size."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    from radbill.errors import InvalidInput

    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"logo {path!r} is not a file")
    if file.stat().st_size > 2_000_000:
        raise InvalidInput(f"logo {path!r} is larger than 2 MB")
    try:
        with Image.open(file) as img:
            if img.format not in ("PNG", "JPEG"):
                raise InvalidInput(f"logo {path!r} is {img.format}: use a PNG or JPEG image")
            img.verify()
    except (UnidentifiedImageError, OSError):
        raise InvalidInput(f"logo {path!r} is not an image") from None
    return str(file.resolve())


def update_settings(session: Session, values: dict[str, object], actor: str) -> list[str]:
    """Change ISP settings, each value checked first (nothing is written if one is bad), and
    audited. Returns the names changed."""
    checked = {key: _check(key, value) for key, value in values.items()}
    isp = settings(session, lock=True)
    before = {k: getattr(isp, k) for k in checked}
    for key, value in checked.items():
        setattr(isp, key, value)
    if isp.financial_year_series:
        from radbill.errors import InvalidInput

        for key in ("invoice_prefix", "credit_note_prefix"):
            if len(getattr(isp, key)) > FY_PREFIX_MAX:
                raise InvalidInput(
                    f"{key.replace('_', ' ')} {getattr(isp, key)!r}: at most {FY_PREFIX_MAX} "
                    "characters with a series per financial year (the number carries the "
                    "year, INV-2627/000001, within 16 characters)")
    from radbill import audit

    audit.record(session, actor=actor, action="isp.settings", entity="isp", entity_id=1,
                 before={k: str(v) for k, v in before.items()},
                 after={k: str(v) for k, v in checked.items()})
    return sorted(checked)


def settings_summary(session: Session) -> dict[str, object]:
    """Every ISP setting, as text (the invoice counters included)."""
    isp = settings(session)
    return {column.key: (str(getattr(isp, column.key))
                         if getattr(isp, column.key) is not None else None)
            for column in IspSettings.__table__.columns if column.key != "id"}


def add_holiday(session: Session, day: dt.date, name: str, *, actor: str) -> None:
    """A holiday: nobody is suspended on it."""
    from billing.subscribers import validate_text
    from radbill import audit

    label = validate_text("holiday name", name, 128)
    session.merge(Holiday(day=day, name=label))
    audit.record(session, actor=actor, action="isp.holiday", entity="isp", entity_id=1,
                 after={"day": str(day), "name": label})
