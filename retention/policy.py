"""What retention keeps: the policy from the settings, and the cut-off of each kind for a
day. Pure: no database, the ISP's today passed in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from radbill.config import Settings


@dataclass(frozen=True)
class Policy:
    """How long each kind is kept (days, or months for sessions); 0 keeps it for ever."""

    postauth_days: int = 30
    postauth_summary_days: int = 400
    spool_days: int = 7
    sessions_months: int = 6
    outbox_days: int = 180
    audit_days: int = 730
    enforcement_days: int = 90
    job_runs_days: int = 90
    batch: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the ``RADBILL_KEEP_*`` settings describe."""
        return cls(postauth_days=settings.keep_postauth_days,
                   postauth_summary_days=settings.keep_postauth_summary_days,
                   spool_days=settings.keep_spool_days,
                   sessions_months=settings.keep_sessions_months,
                   outbox_days=settings.keep_outbox_days, audit_days=settings.keep_audit_days,
                   enforcement_days=settings.keep_enforcement_days,
                   job_runs_days=settings.keep_job_runs_days, batch=settings.retention_batch)

    def settings(self) -> list[tuple[str, str, int]]:
        """(kind, setting, value) for display."""
        return [("post-auth log (days, then summarised)", "RADBILL_KEEP_POSTAUTH_DAYS",
                 self.postauth_days),
                ("post-auth day summaries (days)", "RADBILL_KEEP_POSTAUTH_SUMMARY_DAYS",
                 self.postauth_summary_days),
                ("detail spools (days, gzip once applied)", "RADBILL_KEEP_SPOOL_DAYS",
                 self.spool_days),
                ("closed sessions (months)", "RADBILL_KEEP_SESSIONS_MONTHS",
                 self.sessions_months),
                ("outbox and deliveries (days)", "RADBILL_KEEP_OUTBOX_DAYS", self.outbox_days),
                ("audit log (days)", "RADBILL_KEEP_AUDIT_DAYS", self.audit_days),
                ("enforcement attempts (days)", "RADBILL_KEEP_ENFORCEMENT_DAYS",
                 self.enforcement_days),
                ("job runs (days)", "RADBILL_KEEP_JOB_RUNS_DAYS", self.job_runs_days),
                ("rows per batch", "RADBILL_RETENTION_BATCH", self.batch)]


def first_of_month_back(today: dt.date, months: int) -> dt.date:
    """The first day of the month *months* before *today*'s month."""
    index = today.year * 12 + today.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Cutoffs:
    """Per kind, the ISP day whose start is the cut-off: what is older goes (None: kept for
    ever). A row on the cut-off day itself is kept."""

    postauth: dt.date | None
    postauth_summary: dt.date | None
    sessions: dt.date | None  # the first of a month: whole months go
    outbox: dt.date | None
    audit: dt.date | None
    enforcement: dt.date | None
    job_runs: dt.date | None


def cutoffs(policy: Policy, today: dt.date) -> Cutoffs:
    """The cut-offs on *today* (the ISP's date)."""

    def back(days: int) -> dt.date | None:
        return today - dt.timedelta(days=days) if days > 0 else None

    return Cutoffs(
        postauth=back(policy.postauth_days),
        postauth_summary=back(policy.postauth_summary_days),
        sessions=(first_of_month_back(today, policy.sessions_months)
                  if policy.sessions_months > 0 else None),
        outbox=back(policy.outbox_days), audit=back(policy.audit_days),
        enforcement=back(policy.enforcement_days), job_runs=back(policy.job_runs_days))
