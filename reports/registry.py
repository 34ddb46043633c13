"""The reconciliation reports: where billing and the network disagree, row by row.

Each report is declared once (:class:`Report`): its name, what it finds, its columns and the
query that finds it. The CLI (``radbill report NAME``), the admin page and the API
(``/api/v1/reports/NAME``) all run it through :func:`run`, so the three cannot drift apart.
Every row names its subscriber (``username``; None where there is none, a NAS's or a
plan's figures) and says what to do (``action``).

Reports are read-only and set-based: one or a few queries each, bounded by ``limit``, on
indexes (migration 0016); none reads every accounting session.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from radbill.errors import InvalidInput, NotFound

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
MAX_DAYS = 3_650


@dataclass(frozen=True)
class Params:
    """What a report is asked: when (``now``, UTC; ``today`` in the ISP's time zone), the
    filters (a NAS's address, a plan's name) and, for ``never-online``, how many days."""

    now: dt.datetime
    today: dt.date
    interim_interval: int = 300
    nas: str | None = None
    plan: str | None = None
    days: int = 30
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise InvalidInput("a report's time must be timezone-aware (UTC)")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit {self.limit} must be between 1 and {MAX_LIMIT}")
        if not 1 <= self.days <= MAX_DAYS:
            raise InvalidInput(f"days {self.days} must be between 1 and {MAX_DAYS}")
        if not 60 <= self.interim_interval <= 86_400:
            raise InvalidInput("the interim interval must be between 60 s and a day")
        for name, value, most in (("nas", self.nas, 45), ("plan", self.plan, 64)):
            if value is not None and (len(value) > most or "\x00" in value):
                raise InvalidInput(f"{name} filter must be at most {most} characters")


Row = dict[str, Any]
Query = Callable[[Session, Params], list[Row]]


@dataclass(frozen=True)
class Report:
    """One reconciliation report."""

    name: str
    title: str
    description: str
    columns: tuple[str, ...]  # in order; every row has these keys
    query: Query
    uses_days: bool = False
    filters: tuple[str, ...] = ("nas", "plan")
    per_subscriber: bool = True  # rows name a subscriber (else a NAS or plan)

    def run(self, session: Session, params: Params) -> list[Row]:
        """The rows, at most ``params.limit``, each with exactly :attr:`columns`."""
        if session.get_bind().dialect.name == "postgresql":
            # A report is a few set-based queries of many short index probes: compiling them
            # (JIT) cost seconds here for nothing, and a month's aggregates spilled to disk
            # at the default work_mem. For this transaction only.
            session.execute(text("SET LOCAL jit = off"))
            session.execute(text("SET LOCAL work_mem = '64MB'"))
            # parallel workers each rebuilt a whole aggregate (the ledger's, per invoice) to
            # hash it: three times the work on two shared cores
            session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        rows = self.query(session, params)[: params.limit]
        return [{c: row.get(c) for c in self.columns} for row in rows]


REPORTS: dict[str, Report] = {}


def register(report: Report) -> Report:
    """Add *report* to the registry (its name must be new)."""
    if report.name in REPORTS:
        raise ValueError(f"report {report.name} is registered twice")
    REPORTS[report.name] = report
    return report


def get(name: str) -> Report:
    """The report called *name*, or :class:`NotFound` naming the known ones."""
    try:
        return REPORTS[name]
    except KeyError:
        raise NotFound(f"no report {name[:40]!r}: use one of {', '.join(sorted(REPORTS))}"
                       ) from None


def names() -> list[str]:
    """Every report's name, in the order they were declared."""
    return list(REPORTS)


def run(session: Session, name: str, params: Params) -> list[Row]:
    """Run the report *name*."""
    return get(name).run(session, params)


def to_csv(columns: Sequence[str], rows: list[Row]) -> str:
    """*rows* as CSV with a header. A cell that a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@`` first; usernames and NAS ports are not ours to trust) is
    prefixed with a quote, except plain numbers such as ``-12.50``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text):
        return "'" + text
    return text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
