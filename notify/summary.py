"""The daily summary for operators (the finance chat and e-mail), at a configured time in the
ISP's time zone (``summary_time`` on the Telegram channel, default 20:00): collected today by
method and gateway, invoiced today, held payments, renewals in the next 7 days, suspended and
reconnected today, overdue totals per currency, messages sent today and their cost. Queued
once per day (its idempotency key names the day)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.alerts import queue_for_operators, recipients
from notify.models import Channel, Delivery, DeliveryStatus, Outbox


def figures(session: Session, day: dt.date, start: dt.datetime, end: dt.datetime
            ) -> list[str]:
    """The summary's lines for the ISP's *day* ([*start*, *end*) in UTC)."""
    from billing import reports, totals
    from payments.intents import held

    lines = [f"Collected {day}: " + (", ".join(
        f"{m} {t} {c}" for m, c, t in totals.collected(session, day, day)) or "nothing")]
    lines.append("Invoiced: " + (", ".join(
        f"{t} {c}" for c, t in reports.invoiced(session, day).items()) or "nothing"))
    lines.append(f"Payments held for review: {len(held(session))}")
    lines.append(f"Renewals in the next 7 days: {len(reports.renewals(session, day))}")
    changes = dict(session.execute(
        select(Outbox.kind, func.count()).where(Outbox.event_on == day,
                                                Outbox.kind.in_(("suspended", "reconnected")))
        .group_by(Outbox.kind)).all())
    lines.append(f"Suspended today: {changes.get('suspended', 0)}, reconnected today: "
                 f"{changes.get('reconnected', 0)}")
    # *day* is the real today (the summary is queued on its day): the kept amounts
    # (overdue totals only: the summary, not the page of who)
    _, owed = reports.overdue_summary(session, day, as_of=day)
    lines.append("Overdue: " + (", ".join(f"{v} {c}" for c, v in owed.items())
                                or "nothing"))
    sent = session.execute(
        select(Delivery.channel, func.count(), func.sum(Delivery.cost), Delivery.currency)
        .where(Delivery.sent_at >= start, Delivery.sent_at < end,
               Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.DELIVERED]))
        .group_by(Delivery.channel, Delivery.currency)).all()
    lines.append("Messages sent: " + (", ".join(
        f"{ch} {n}" + (f" ({Decimal(cost)} {cur})" if cost is not None else "")
        for ch, n, cost, cur in sent) or "none"))
    return lines


def maybe_queue(session: Session, now: dt.datetime) -> int:
    """Queue today's summary once its time has come. Returns messages queued."""
    from notify.delivery import isp_view

    chat = session.get(Channel, "telegram")
    mail = session.get(Channel, "email")
    if chat is None and mail is None:
        return 0
    at = str((chat or mail).settings.get("summary_time") or "20:00")  # type: ignore[union-attr]
    try:
        when = dt.time.fromisoformat(at)
    except ValueError:
        when = dt.time(20, 0)
    zone = ZoneInfo(isp_view(session).timezone)
    local = now.astimezone(zone)
    if local.time() < when:
        return 0
    day = local.date()
    key = f"summary:{day}"
    # exact keys (the unique index), not a LIKE: this runs every round after the time
    keys = [f"{key}:{channel}:{to}"[:200] for channel, to in recipients(session, "finance")]
    if not keys or len(set(session.scalars(select(Delivery.idempotency_key).where(
            Delivery.idempotency_key.in_(keys))))) == len(keys):
        return 0
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    return queue_for_operators(session, key, "summary", f"radbill daily summary {day}",
                  figures(session, day, start, end), now, "finance")
