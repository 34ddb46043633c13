"""Money totals kept as money moves: payments received per ISP-local day, currency and method
(:class:`billing.models.PaymentDayTotal`), added to in the transaction that records each
payment, read by the dashboard and the daily summary instead of summing a month of payments,
and checked (and restated) against the payments themselves.

A payment counts on the ISP-local day of its ``received_at`` in the ISP's time zone at the
moment it is recorded: the day the bounds ``[start_of_day_utc(day), start_of_day_utc(day +
1))`` the readers used to sum over would find it on. A later change of the ISP's time zone
does not move kept days: ``radbill billing totals-check --repair`` restates them in the new
zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.models import Payment, PaymentDayTotal

TOTALS = cast(Table, PaymentDayTotal.__table__)
Key = tuple[dt.date, str, str]  # ISP-local day, currency, method
Figure = tuple[Decimal, int]  # amount, number of payments

CENTS = Decimal("0.01")  # payments are Numeric(14, 2): their sums are exact in cents
NOTHING = Decimal("0.00")
RECOMPUTE_CHUNK = 50_000  # payments per read when the day is worked out in Python (SQLite)


def add_payment(session: Session, day: dt.date, currency: str, method: str,
                amount: Decimal) -> None:
    """Count one payment of *amount* received on the ISP-local *day*, in the caller's
    transaction (one statement: an insert that adds to the day's row if it is there)."""
    table = TOTALS
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(day=day, currency=currency, method=method, amount=amount,
                                payments=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "currency", "method"],
        set_={"amount": table.c.amount + stmt.excluded.amount,
              "payments": table.c.payments + 1})
    session.execute(stmt)


def revenue(session: Session, first: dt.date, last: dt.date) -> dict[str, Decimal]:
    """Payments received on the ISP-local days *first* to *last* (both included) per
    currency."""
    rows = session.execute(
        select(PaymentDayTotal.currency, func.sum(PaymentDayTotal.amount))
        .where(PaymentDayTotal.day >= first, PaymentDayTotal.day <= last)
        .group_by(PaymentDayTotal.currency).order_by(PaymentDayTotal.currency)).all()
    return {cur: Decimal(total) for cur, total in rows}


def revenue_by_day(session: Session, days: list[dt.date]
                   ) -> list[tuple[dt.date, dict[str, Decimal]]]:
    """Payments per currency on each ISP-local day of *days* (in the order given)."""
    if not days:
        return []
    totals: dict[dt.date, dict[str, Decimal]] = {d: {} for d in days}
    for day, cur, total in session.execute(
            select(PaymentDayTotal.day, PaymentDayTotal.currency,
                   func.sum(PaymentDayTotal.amount))
            .where(PaymentDayTotal.day >= min(days), PaymentDayTotal.day <= max(days))
            .group_by(PaymentDayTotal.day, PaymentDayTotal.currency)):
        if day in totals:
            totals[day][cur] = Decimal(total)
    return [(d, totals[d]) for d in days]


def collected(session: Session, first: dt.date, last: dt.date
              ) -> list[tuple[str, str, Decimal]]:
    """Payments received on the ISP-local days *first* to *last* per method and currency."""
    rows = session.execute(
        select(PaymentDayTotal.method, PaymentDayTotal.currency,
               func.sum(PaymentDayTotal.amount))
        .where(PaymentDayTotal.day >= first, PaymentDayTotal.day <= last)
        .group_by(PaymentDayTotal.method, PaymentDayTotal.currency)
        .order_by(PaymentDayTotal.method, PaymentDayTotal.currency)).all()
    return [(m, c, Decimal(t)) for m, c, t in rows]


def from_payments(conn: Connection, timezone: str) -> dict[Key, Figure]:
    """The totals recomputed from every payment row, each on the day its ``received_at``
    falls in *timezone*. Core statements on *conn*: the migration that introduced the
    totals fills them with this. PostgreSQL works the day out itself; on SQLite (no time
    zones) it is worked out here, chunk by chunk of payment ids."""
    out: dict[Key, Figure] = {}
    if conn.dialect.name == "postgresql":
        for day, cur, method, total, n in conn.execute(text(
                "SELECT (received_at AT TIME ZONE :tz)::date AS day, currency, method, "
                "sum(amount), count(*) FROM payments GROUP BY 1, 2, 3"), {"tz": timezone}):
            out[(day, cur, method)] = (Decimal(total).quantize(CENTS), int(n))
        return out
    zone = ZoneInfo(timezone)
    top = conn.execute(select(func.max(Payment.id))).scalar() or 0
    for first in range(1, int(top) + 1, RECOMPUTE_CHUNK):
        for received, cur, method, amount in conn.execute(
                select(Payment.received_at, Payment.currency, Payment.method, Payment.amount)
                .where(Payment.id.between(first, first + RECOMPUTE_CHUNK - 1))):
            key = (received.astimezone(zone).date(), cur, method)
            total, n = out.get(key, (NOTHING, 0))
            out[key] = ((total + amount).quantize(CENTS), n + 1)
    return out


def kept(conn: Connection) -> dict[Key, Figure]:
    """The totals as kept."""
    rows = conn.execute(select(PaymentDayTotal.day, PaymentDayTotal.currency,
                               PaymentDayTotal.method, PaymentDayTotal.amount,
                               PaymentDayTotal.payments))
    return {(day, cur, method): (Decimal(total).quantize(CENTS), int(n))
            for day, cur, method, total, n in rows}


def write(conn: Connection, figures: Iterable[tuple[Key, Figure]]) -> None:
    """Insert kept rows for *figures* (rows that are not there yet)."""
    rows = [{"day": d, "currency": c, "method": m, "amount": a, "payments": n}
            for (d, c, m), (a, n) in figures]
    for i in range(0, len(rows), 1_000):
        conn.execute(TOTALS.insert(), rows[i:i + 1_000])


@dataclass(frozen=True)
class TotalDrift:
    """A day, currency and method whose kept total is not the sum of its payments."""

    day: dt.date
    currency: str
    method: str
    kept: Figure  # (amount, payments) as kept; (0, 0) if no row is kept
    actual: Figure  # (amount, payments) summed from the payments


def check_payment_totals(session: Session, timezone: str, *, repair: bool = False
                         ) -> list[TotalDrift]:
    """Every (day, currency, method) whose kept total differs from the payments, in day,
    currency and method order. With *repair* the rows concerned are restated from the
    payments, in the caller's transaction."""
    session.flush()
    conn = session.connection()
    have = kept(conn)
    actual = from_payments(conn, timezone)
    none: Figure = (NOTHING, 0)
    found = [TotalDrift(k[0], k[1], k[2], have.get(k, none), actual.get(k, none))
             for k in sorted(set(have) | set(actual))
             if have.get(k, none) != actual.get(k, none)]
    if repair and found:
        for d in found:
            conn.execute(delete(PaymentDayTotal).where(
                PaymentDayTotal.day == d.day, PaymentDayTotal.currency == d.currency,
                PaymentDayTotal.method == d.method))
        write(conn, [((d.day, d.currency, d.method), d.actual) for d in found
                     if d.actual[1]])
    return found
