"""Today's overdue figures, kept: what is still owed per due date and currency, and how many
subscribers' oldest owed document is due on each day (:class:`billing.models.OverdueDayTotal`,
:class:`~billing.models.OverdueAccount`, :class:`~billing.models.OverdueSinceCount`).

Database triggers on ``invoices`` keep them (migration 0029): every statement that writes a
document's status, kind, due date, currency or kept ``outstanding`` (0023) moves them in the
same transaction, whichever code wrote it (the settlement, the billing run's ``COPY`` and
set-based updates, issue, import, a repair). A document *owes* when it is open, not a credit
note, has a due date and ``outstanding > 0`` (:data:`OWES`). Today's overdue count is then
the number of subscribers whose oldest owed due date is before today, and the totals the
sum owed on documents due before today, per currency: a read of a few rows
(:func:`summary`). :func:`check` recomputes all three from the documents; with *repair* it
restates them.

Amounts are kept in cents (``outstanding`` is ``Numeric(14, 2)``): integers, exact on SQLite
(whose triggers would add floats) as on PostgreSQL. A document's currency is its plan's
(plans do not change currency; a plan change across currencies is refused), so the totals
per currency are the overdue report's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    and_,
    cast,
    delete,
    except_,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    OverdueAccount,
    OverdueDayTotal,
    OverdueSinceCount,
)

CENT = Decimal("0.01")
SHOWN = 100  # drifted subscribers listed by the check (all are counted)

# the documents that owe something: what the triggers count
OWES: ColumnElement[bool] = and_(Invoice.status == InvoiceStatus.OPEN,
                                 Invoice.kind != InvoiceKind.CREDIT_NOTE,
                                 Invoice.due_on.is_not(None), Invoice.outstanding > 0)


def _cents() -> ColumnElement[int]:
    return cast(func.round(Invoice.outstanding * 100), BigInteger)


def summary(session: Session, today: dt.date) -> tuple[int, dict[str, Decimal]]:
    """How many subscribers have something owed past its due date on *today* (the real
    today: the figures say how the books stand now), and what they owe per currency, from
    the kept rows."""
    count = session.scalar(select(func.coalesce(func.sum(OverdueSinceCount.subscribers), 0))
                           .where(OverdueSinceCount.since < today))
    totals = {currency: (Decimal(int(cents)) * CENT)
              for currency, cents in session.execute(
                  select(OverdueDayTotal.currency, func.sum(OverdueDayTotal.amount_cents))
                  .where(OverdueDayTotal.due_on < today)
                  .group_by(OverdueDayTotal.currency).order_by(OverdueDayTotal.currency))
              if int(cents)}
    return int(count or 0), totals


def _fresh_accounts() -> Select[int, dt.date | None]:
    return (select(Invoice.subscriber_id, func.min(Invoice.due_on).label("since"))
            .where(OWES).group_by(Invoice.subscriber_id))


def fill(conn: Connection) -> None:
    """Fill the (empty) kept rows from the documents, set-based. Core statements on *conn*:
    the migration that introduced them uses it, and the repair."""
    conn.execute(insert(OverdueDayTotal).from_select(
        ["due_on", "currency", "amount_cents", "documents"],
        select(Invoice.due_on, Invoice.currency, func.sum(_cents()), func.count())
        .where(OWES).group_by(Invoice.due_on, Invoice.currency)))
    conn.execute(insert(OverdueAccount).from_select(["subscriber_id", "since"],
                                                    _fresh_accounts()))
    conn.execute(insert(OverdueSinceCount).from_select(
        ["since", "subscribers"],
        select(OverdueAccount.since, func.count()).where(OverdueAccount.since.is_not(None))
        .group_by(OverdueAccount.since)))


@dataclass(frozen=True)
class OwedDrift:
    """A kept figure that is not what the documents say: *table*, its key, kept and actual
    (None: no row)."""

    table: str
    key: str
    kept: str | None
    actual: str | None


@dataclass(frozen=True)
class OwedCheck:
    """What :func:`check` found: every drifted day total and per-day count, the first
    :data:`SHOWN` drifted subscribers, and how many subscribers drifted in all."""

    drift: list[OwedDrift]
    accounts: int

    @property
    def differ(self) -> int:
        """How many kept figures differ (rows of the day totals and counts, subscribers)."""
        return sum(d.table != "overdue_accounts" for d in self.drift) + self.accounts


def _compare(table: str, have: dict[object, object], want: dict[object, object]
             ) -> list[OwedDrift]:
    return [OwedDrift(table, str(k), None if have.get(k) is None else str(have[k]),
                      None if want.get(k) is None else str(want[k]))
            for k in sorted(set(have) | set(want), key=str) if have.get(k) != want.get(k)]


def check(session: Session, *, repair: bool = False) -> OwedCheck:
    """Every kept figure that differs from recomputing it from the documents: the day
    totals (cents, documents), the per-day counts and each subscriber's oldest owed due
    date. With *repair* all three are restated from the documents, in the caller's
    transaction (on PostgreSQL with the tables locked against concurrent writers'
    triggers)."""
    session.flush()
    conn = session.connection()
    if repair and conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE overdue_day_totals, overdue_accounts, "
                          "overdue_since_counts IN SHARE ROW EXCLUSIVE MODE"))
    days_have = {f"{d} {c}": (int(a), int(n)) for d, c, a, n in conn.execute(
        select(OverdueDayTotal.due_on, OverdueDayTotal.currency, OverdueDayTotal.amount_cents,
               OverdueDayTotal.documents))}
    days_want = {f"{d} {c}": (int(a), int(n)) for d, c, a, n in conn.execute(
        select(Invoice.due_on, Invoice.currency, func.sum(_cents()), func.count())
        .where(OWES).group_by(Invoice.due_on, Invoice.currency))}
    drift = _compare("overdue_day_totals", days_have, days_want)  # type: ignore[arg-type]
    counts_have = {str(d): int(n) for d, n in conn.execute(
        select(OverdueSinceCount.since, OverdueSinceCount.subscribers))}
    fresh = _fresh_accounts().subquery()
    counts_want = {str(d): int(n) for d, n in conn.execute(
        select(fresh.c.since, func.count()).group_by(fresh.c.since))}
    drift += _compare("overdue_since_counts", counts_have, counts_want)  # type: ignore[arg-type]
    # each subscriber's oldest owed due date, compared in the database (a million rows)
    kept_rows = select(OverdueAccount.subscriber_id, OverdueAccount.since).where(
        OverdueAccount.since.is_not(None))
    stale = except_(kept_rows, _fresh_accounts()).subquery()
    missing = except_(_fresh_accounts(), kept_rows).subquery()
    either = select(stale.c.subscriber_id).union(select(missing.c.subscriber_id)).subquery()
    accounts = int(conn.execute(select(func.count()).select_from(either)).scalar_one())
    if accounts:
        first = [r[0] for r in conn.execute(select(either.c.subscriber_id)
                                            .order_by(either.c.subscriber_id).limit(SHOWN))]
        have = dict(conn.execute(select(OverdueAccount.subscriber_id, OverdueAccount.since)
                                 .where(OverdueAccount.subscriber_id.in_(first))).all())
        want = dict(conn.execute(select(Invoice.subscriber_id, func.min(Invoice.due_on))
                                 .where(OWES, Invoice.subscriber_id.in_(first))
                                 .group_by(Invoice.subscriber_id)).all())
        drift += [OwedDrift("overdue_accounts", str(i),
                            None if have.get(i) is None else str(have[i]),
                            None if want.get(i) is None else str(want[i])) for i in first]
    found = OwedCheck(drift, accounts)
    if repair and found.differ:
        conn.execute(delete(OverdueDayTotal))
        conn.execute(delete(OverdueSinceCount))
        conn.execute(delete(OverdueAccount))
        fill(conn)
    return found
