"""Every reconciliation report, declared once: name, title, what it finds, its columns."""

from __future__ import annotations

from reports import money, network
from reports.registry import Report, register

_SESSION = ("nas_ip", "acct_session_id", "framed_ip", "since")

register(Report(
    "suspended-online", "Suspended but online",
    "Suspended, disabled or terminated subscribers with an open session, or whose last "
    "login got full speed.",
    ("username", "status", "plan", "finding", *_SESSION, "action"),
    network.suspended_online))
register(Report(
    "never-online", "Paying, never online",
    "Active subscribers, billed, created over N days ago, not online for N days.",
    ("username", "plan", "phone", "last_seen", "days", "finding", "action"),
    network.never_online, uses_days=True))
register(Report(
    "over-cap", "Over the cap, not throttled",
    "Subscribers over their plan's data cap this period and not throttled to the "
    "fair-usage rate.",
    ("username", "plan", "cap_bytes", "used_bytes", "has_fup", "action"),
    network.over_cap, filters=("plan",)))
register(Report(
    "unknown-sessions", "Unknown sessions",
    "Open sessions of a user name no subscriber has, or from a NAS that is not registered.",
    ("username", "user_name", "finding", "nas_ip", "acct_session_id", "framed_ip",
     "calling_station_id", "since", "action"),
    network.unknown_sessions, filters=("nas",)))
register(Report(
    "stale-sessions", "Stale sessions",
    "Open sessions with no accounting for over three interim intervals.",
    ("username", "user_name", "nas_ip", "acct_session_id", "since", "last_update",
     "silent_minutes", "action"),
    network.stale_sessions, filters=("nas",)))
register(Report(
    "past-paid-period", "Online past the paid period",
    "Prepaid subscribers with an open session after their paid period ended.",
    ("username", "plan", "paid_until", "hours_past", *_SESSION, "action"),
    network.past_paid_period))
register(Report(
    "nas-gaps", "NAS accounting gaps",
    "NAS silent beyond three interim intervals while sessions are open, Accounting-On "
    "bursts, Interim interval outliers.",
    ("nas", "nas_ip", "finding", "open_sessions", "last_update", "detail", "action"),
    network.nas_gaps, filters=("nas",), per_subscriber=False))
register(Report(
    "duplicate-sessions", "Duplicate sessions",
    "More open sessions than the simultaneous-use limit; one Framed-IP on two sessions.",
    ("username", "plan", "finding", "detail", "framed_ip", "nas_ip", "acct_session_id",
     "action"),
    network.duplicate_sessions))
register(Report(
    "revenue-by-nas", "Revenue by NAS and plan",
    "Active and online subscribers, invoiced and collected this month, per NAS (where each "
    "subscriber is or was last online) and plan.",
    ("nas", "nas_ip", "plan", "currency", "active", "online", "billed", "collected", "month",
     "action"),
    money.revenue_by_nas, per_subscriber=False))
register(Report(
    "ledger-check", "Ledger check",
    "Invoices whose ledger charge is not their total or that are credited beyond it, "
    "payments not on the ledger, balances the open invoices do not show.",
    ("username", "finding", "document", "expected", "actual", "currency", "action"),
    money.ledger_check, filters=("plan",)))
register(Report(
    "suspensions-tomorrow", "Suspensions tomorrow",
    "Who tomorrow's billing run may suspend: active, a document open past its grace days, "
    "no promise (a notice sent late, a held payment or the suspension guard can still "
    "spare someone listed).",
    ("username", "plan", "phone", "oldest_due_on", "documents", "documents_total",
     "currency", "suspend_on", "action"),
    money.suspensions_tomorrow, filters=("plan",)))
