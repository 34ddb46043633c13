"""Operator alerts on Telegram (the NOC chat) and e-mail: once per change of state of an
alert kind (raised, resolved), not once per occurrence, grouped when many arrive together;
and the daily summary (the finance chat and e-mail)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.channels.telegram import escape
from notify.delivery import TTL, provider_id
from notify.models import AlertState, Channel, Delivery, DeliveryStatus
from radbill.ops import Alert

SCAN = 1000  # alerts read per round


def recipients(session: Session, room: str) -> list[tuple[str, str]]:
    """(channel, recipient) for operators: the chat for *room* (noc | finance) and the
    operators' e-mail address."""
    out = []
    for row in session.scalars(select(Channel).where(Channel.enabled.is_(True))):
        if row.name == "telegram" and row.settings.get(f"{room}_chat"):
            out.append(("telegram", str(row.settings[f"{room}_chat"])))
        if row.name == "email" and row.settings.get("operator_email"):
            out.append(("email", str(row.settings["operator_email"])))
    return out


def queue_for_operators(session: Session, key: str, kind: str, subject: str, lines: list[str],
           now: dt.datetime, room: str) -> int:
    n = 0
    for channel, to in recipients(session, room):
        full = f"{key}:{channel}:{to}"
        if session.scalar(select(Delivery.id).where(Delivery.idempotency_key == full)):
            continue
        body = (f"<b>{escape(subject)}</b>\n" + "\n".join(escape(x) for x in lines)
                if channel == "telegram" else "\n".join(lines))
        session.add(Delivery(kind=kind, channel=channel, recipient=to[:254],
                             idempotency_key=full[:200], provider_id=provider_id(full),
                             status=DeliveryStatus.QUEUED, subject=subject[:200],
                             body=body[:4000], attempts=0, created_at=now,
                             next_attempt_at=now, expires_at=now + TTL, dead_letter=False))
        n += 1
    return n


def forward(session: Session, now: dt.datetime) -> int:
    """Queue operator messages for alert kinds whose state changed since the last round.
    Returns how many messages were queued."""
    states = {s.kind: s for s in session.scalars(select(AlertState).with_for_update())}
    since = max((s.last_alert_id for s in states.values()), default=0)
    new = list(session.scalars(select(Alert).where(Alert.id > since)
                               .order_by(Alert.id).limit(SCAN)))
    by_kind: dict[str, list[Alert]] = defaultdict(list)
    for a in new:
        by_kind[a.kind].append(a)
    raised, resolved = [], []
    for kind, alerts in sorted(by_kind.items()):
        state = states.get(kind)
        if state is None:
            state = states[kind] = AlertState(kind=kind, open=False, last_alert_id=0,
                                              changed_at=now)
            session.add(state)
        state.last_alert_id = max(state.last_alert_id, alerts[-1].id)
        if not state.open and any(a.resolved_at is None for a in alerts):
            state.open, state.changed_at = True, now
            extra = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
            raised.append(f"{kind}: {alerts[-1].message[:300]}{extra}")
    # kinds open with nothing unresolved any more: resolved
    open_kinds = [s.kind for s in states.values() if s.open]
    if open_kinds:
        still = set(session.scalars(select(Alert.kind).where(
            Alert.kind.in_(open_kinds), Alert.resolved_at.is_(None)).group_by(Alert.kind)))
        for kind in open_kinds:
            if kind not in still:
                states[kind].open, states[kind].changed_at = False, now
                resolved.append(f"{kind}: resolved")
    # the last alert id bounds every state so the next round reads only newer alerts
    top = max((a.id for a in new), default=since)
    for s in states.values():
        s.last_alert_id = max(s.last_alert_id, top)
    if not (raised or resolved):
        return 0
    count = session.scalar(select(func.count()).select_from(Alert)
                           .where(Alert.resolved_at.is_(None))) or 0
    subject = (f"radbill: {len(raised)} alert(s) raised, {len(resolved)} resolved; "
               f"{count} open")
    key = f"alert:{since}:{top}:{len(resolved)}:{now.isoformat()[:16]}"
    return queue_for_operators(session, key, "alert", subject, raised + resolved, now, "noc")
