"""Deleting old rows in bounded batches: what every part's retention uses (``retention/``).

A batch is the ids of at most *limit* rows, oldest first through an index, then one DELETE of
those ids: each batch is its own short transaction (the caller's), so no lock is held for
long and no IN list is longer than the batch. Running it again deletes nothing more: the
rows are gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

MAX_BATCH = 50_000


def delete_batch(session: Session, pk: InstrumentedAttribute[Any],
                 where: ColumnElement[bool], order: InstrumentedAttribute[Any],
                 limit: int) -> int:
    """Delete up to *limit* rows matching *where*, oldest by *order* first, in the caller's
    transaction. Returns how many."""
    limit = max(1, min(int(limit), MAX_BATCH))
    ids = list(session.scalars(select(pk).where(where).order_by(order, pk).limit(limit)))
    if not ids:
        return 0
    session.execute(delete(pk.class_).where(pk.in_(ids)).execution_options(
        synchronize_session=False))
    return len(ids)


def count_matching(session: Session, pk: InstrumentedAttribute[Any],
                   where: ColumnElement[bool], cap: int) -> int:
    """How many rows match *where*, counted up to *cap* (a bounded read, whatever the size)."""
    sub = select(pk).where(where).limit(max(1, cap)).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)


@dataclass(frozen=True)
class Prunable:
    """A kind of row a part lets retention delete: its key, the column that says how old it
    is (indexed), and which rows older than a cut-off may go (*where*: the cut-off in, the
    condition out; it may keep rows that are still needed, such as messages not sent yet)."""

    name: str
    pk: InstrumentedAttribute[Any]
    order: InstrumentedAttribute[Any]
    where: Callable[[Any], ColumnElement[bool]]

    def delete(self, session: Session, before: Any, limit: int) -> int:
        """One batch: at most *limit* rows older than *before*, in the caller's transaction."""
        return delete_batch(session, self.pk, self.where(before), self.order, limit)

    def count(self, session: Session, before: Any, cap: int) -> int:
        """How many rows older than *before* would go, up to *cap*."""
        return count_matching(session, self.pk, self.where(before), cap)
