"""Retention of the notification part: deliveries that are over (sent, delivered, failed,
skipped) and outbox events whose deliveries are gone.

The dunning ladder reads its done steps from the outbox (``billing.standing.done_keys``):
deleting a reminder or late-fee event could make the ladder repeat it (a second late fee). So
only events no ladder reads are pruned (:data:`PRUNABLE_KINDS`); the ladder's stay, a few rows
per overdue invoice.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, select

from notify.models import OPEN_STATUSES, Delivery, Outbox
from radbill.pruning import Prunable

# Events whose dedupe key nothing asks about once they are sent: one welcome per subscriber,
# one notice per invoice, credit note or one-time code, one usage notice per period.
PRUNABLE_KINDS = ("welcome", "invoice_issued", "credit_note", "otp", "usage_80", "usage_100")

DELIVERIES = Prunable(
    "notify_deliveries", Delivery.id, Delivery.created_at,
    lambda before: and_(Delivery.created_at < before,
                        Delivery.status.not_in([str(s) for s in OPEN_STATUSES])))
"""Deliveries created before the cut-off that are over (nothing will send them again)."""

OUTBOX = Prunable(
    "outbox", Outbox.id, Outbox.created_at,
    lambda before: and_(Outbox.created_at < before, Outbox.sent_at.is_not(None),
                        Outbox.kind.in_(PRUNABLE_KINDS),
                        ~exists(select(Delivery.id).where(Delivery.outbox_id == Outbox.id))))
"""Events planned before the cut-off, of a kind no ladder reads, with no delivery left."""
