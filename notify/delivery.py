"""Deliveries: planning them from outbox events, claiming them for the worker, recording
what the provider answered. One pipeline shape: claim a batch, bound and check each record,
set aside what fails with its reason, all in one transaction per step.

Policies (each tested in ``tests/notify``):

* One delivery per (event, channel, recipient): ``idempotency_key`` is unique; the provider
  id sent with it (SSL Wireless ``csms_id``) is derived from that key, so every attempt of a
  delivery carries the same id.
* An unknown outcome (a timeout after the request went, a worker killed mid-send) is re-sent
  only to providers that refuse a repeated id (they answer "duplicate", which counts as
  sent). To any other provider it is never re-sent automatically: the delivery fails into
  the dead-letter queue with the reason, and an operator may retry it by hand.
* An account-level error (auth, balance, sender id, IP) pauses the channel and raises one
  alert; the deliveries go back to the queue untouched and wait for the channel to resume.
* At send time a dunning notice for an invoice settled since, or a suspension notice for a
  subscriber no longer suspended, is skipped; dunning SMS wait out the quiet hours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from notify import links, rules, templates
from notify.channels.base import Outcome, Result
from notify.config import sms_policy
from notify.models import (
    OPEN_STATUSES,
    Channel,
    Delivery,
    DeliveryStatus,
    EarlyReport,
    Outbox,
    Preference,
    Template,
)
from radbill.ops import raise_alert

T = TypeVar("T")
log = logging.getLogger("radbill.notify")

CHUNK = 900  # bound IN (...) lists
DELIVERIES = cast(Table, Delivery.__table__)
_INSERTED = [c.key for c in DELIVERIES.columns if c.key != "id"]
LEASE = dt.timedelta(seconds=60)
MAX_ATTEMPTS = 8
EARLY_MAX = 100_000  # delivery reports kept waiting for their message, at most
TTL = dt.timedelta(days=3)
SUBSCRIBER_CHANNELS = ("sms", "email")
RECIPIENT_MAX = 254


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def provider_id(key: str) -> str:
    """The id a provider dedupes on: 20 characters (SSL Wireless' ``csms_id`` limit), the
    same for every attempt of a delivery."""
    return "rb" + hashlib.sha256(key.encode()).hexdigest()[:18]


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@dataclass(frozen=True)
class IspView:
    """What templates and rules need of the ISP."""

    name: str
    phone: str
    timezone: str
    country: str


def isp_view(session: Session) -> IspView:
    from billing.isp import settings

    isp = settings(session)
    country = "IN" if isp.tax_profile == "in-gst" or isp.timezone == "Asia/Kolkata" else "BD"
    return IspView(isp.name, isp.phone, isp.timezone, country)


class Templates:
    """The operator's templates (read once per round) over the shipped ones."""

    def __init__(self, session: Session) -> None:
        self.own = {(t.kind, t.channel, t.locale):
                    templates.Source(t.subject, t.body, t.dlt_template_id)
                    for t in session.scalars(select(Template))}

    def get(self, kind: str, channel: str, locale: str) -> templates.Source | None:
        for loc in (locale, "en"):
            own = self.own.get((kind, channel, loc))
            if own is not None:
                return own
            found = templates.SHIPPED.get((kind, channel, loc))
            if found:
                return templates.Source(*found)
        return None


# -- planning -------------------------------------------------------------------------------


def plan(session: Session, now: dt.datetime, limit: int = 2000) -> int:
    """Turn up to *limit* outbox events not planned yet into deliveries, one per channel
    and recipient. Returns how many events were planned."""
    stmt = (select(Outbox).where(Outbox.sent_at.is_(None)).order_by(Outbox.id).limit(limit))
    if _pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    events = list(session.scalars(stmt))
    if not events:
        return 0
    channels = {c.name: c for c in session.scalars(select(Channel).where(
        Channel.name.in_(SUBSCRIBER_CHANNELS), Channel.enabled.is_(True)))}
    isp = isp_view(session)
    prefs: dict[int, Preference] = {}
    ids = sorted({e.subscriber_id for e in events})
    for part in chunks(ids):
        prefs.update({p.subscriber_id: p for p in session.scalars(
            select(Preference).where(Preference.subscriber_id.in_(part)))})
    default_locale = "bn" if isp.country == "BD" else "en"
    book = Templates(session)
    shortened = links.shorten_all(session, {str(e.payload.get("payment_link"))
                                            for e in events if "sms" in channels
                                            and (e.payload or {}).get("payment_link")})
    rows: list[Delivery] = []
    for event in events:
        try:
            rows.extend(_plan_event(event, channels, prefs.get(event.subscriber_id),
                                    isp, default_locale, now, book, shortened))
        except Exception as exc:  # one bad event never stops the pipeline
            log.exception("notify: event %s could not be planned", event.id)
            raise_alert(session, "notify_event_failed",
                        f"outbox event {event.id} ({event.kind}) could not be planned: "
                        f"{type(exc).__name__}", {"outbox_id": event.id})
    ids = [e.id for e in events]
    for part in chunks(ids):
        session.execute(update(Outbox).where(Outbox.id.in_(part)).values(sent_at=now)
                        .execution_options(synchronize_session=False))
    keys = [r.idempotency_key for r in rows]
    existing: set[str] = set()
    for keys_part in chunks(keys):
        existing.update(session.scalars(select(Delivery.idempotency_key)
                                        .where(Delivery.idempotency_key.in_(keys_part))))
    new: list[dict[str, Any]] = []
    for r in rows:
        if r.idempotency_key not in existing:
            existing.add(r.idempotency_key)
            new.append({c: getattr(r, c) for c in _INSERTED})
    for start in range(0, len(new), 1000):
        # Core executemany: no identity map, no RETURNING (the ORM's flush of a round's
        # objects was two thirds of planning)
        session.execute(insert(DELIVERIES), new[start : start + 1000])
    # an event with a secret and nothing left to send it (no channel, no number, refused at
    # planning) keeps it no longer
    redact_secrets(session, [e.id for e in events if e.kind in rules.SECRET_FIELDS])
    return len(events)


def _plan_event(event: Outbox, channels: dict[str, Channel], pref: Preference | None,
                isp: IspView, default_locale: str, now: dt.datetime, book: Templates,
                shortened: dict[str, str]) -> list[Delivery]:
    payload = dict(event.payload or {})
    locale = (pref.locale if pref and pref.locale else default_locale)
    out = []
    for name, channel in channels.items():
        source = book.get(event.kind, name, locale)
        if source is None:
            continue
        raw = payload.get("phone" if name == "sms" else "email")
        recipient, problem = _recipient(name, raw, channel)
        if recipient is None:
            continue  # nothing to send to: no delivery
        key = f"outbox:{event.id}:{name}:{recipient}"
        row = Delivery(outbox_id=event.id, subscriber_id=event.subscriber_id,
                       kind=event.kind, channel=name, recipient=recipient[:RECIPIENT_MAX],
                       idempotency_key=key[:200], provider_id=provider_id(key),
                       status=DeliveryStatus.QUEUED, attempts=0, created_at=now,
                       next_attempt_at=now, expires_at=send_by(payload, now), dead_letter=False)
        out.append(row)
        if problem:
            _finish(row, DeliveryStatus.FAILED, problem)
            continue
        if (pref is not None and getattr(pref, f"{name}_opt_out")
                and event.kind not in rules.REQUESTED_KINDS):
            _finish(row, DeliveryStatus.SKIPPED, f"subscriber opted out of {name}")
            continue
        link = str(payload.get("payment_link") or "")
        if link and name == "sms":
            link = shortened.get(link, link)
        variables = templates.context(payload, isp_name=isp.name, isp_phone=isp.phone,
                                      link=link, kind=event.kind)
        try:
            rendered = templates.render(source, variables)
        except templates.TemplateProblem as exc:
            _finish(row, DeliveryStatus.FAILED, str(exc))
            continue
        # bounded before the database (render bounds the text; a subject may run long)
        row.subject = rendered.subject[:200] if rendered.subject else None
        row.body = rendered.text
        if source.dlt_template_id:
            # India: the provider renders the registered text from these
            row.dlt_template_id = source.dlt_template_id[:32]
            row.variables = {k: variables[k] for k in templates.used(source)}
        if name == "sms":
            size = rules.sms_size(rendered.text)
            policy = sms_policy(channel)
            row.encoding, row.segments = size.encoding.value, size.segments
            row.cost = rules.sms_cost(size, policy.price_per_segment)
            row.currency = policy.currency
    return out


def send_by(payload: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """When a message is given up: three days from planning, or sooner when its event says
    what it carries dies earlier (`send_by`: a portal login code is worthless five minutes
    after it was asked for, so a paused channel must not deliver it an hour later)."""
    deadline = now + TTL
    raw = payload.get("send_by")
    if isinstance(raw, str):
        try:
            until = dt.datetime.fromisoformat(raw[:40])
        except ValueError:
            log.warning("outbox payload send_by %r is not a time: the message keeps %s",
                        raw[:40], TTL)
            return deadline
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.UTC)
        return min(deadline, until)
    return deadline


def _recipient(channel: str, raw: object, row: Channel) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    text = str(raw).strip()[:RECIPIENT_MAX]
    if channel == "sms":
        try:
            return rules.normalise_msisdn(text, sms_policy(row).country), None
        except rules.InvalidNumber as exc:
            return text, f"invalid number: {exc}"
    if "@" not in text or any(c.isspace() for c in text):
        return text, f"invalid e-mail address {text!r}"
    return text, None


def _finish(row: Delivery, status: DeliveryStatus, reason: str | None,
            dead: bool = False) -> None:
    row.status, row.reason, row.dead_letter = status, (reason or None), dead


# -- claiming -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with what the adapter needs."""

    id: int
    channel: str
    kind: str
    provider_id: str
    recipient: str
    subject: str | None
    body: str
    invoice: str | None
    dlt_template_id: str | None
    variables: dict[str, str]
    attempts: int


def claim(session: Session, channel: str, now: dt.datetime, limit: int,
          idempotent: bool) -> list[Job]:
    """Claim up to *limit* due deliveries of *channel* (nothing when it is paused): check
    each at send time (expired, stale, quiet hours) and lease the rest to this worker."""
    row = session.get(Channel, channel)
    if row is None or row.paused_at is not None or not row.enabled:
        return []
    stmt = (select(Delivery)
            .where(Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.RETRYING,
                                        DeliveryStatus.SENDING]),
                   Delivery.next_attempt_at <= now, Delivery.channel == channel)
            .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    if _pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    due = list(session.scalars(stmt))
    if not due:
        return []
    facts, invoices = _facts(session, due)
    quiet = None
    if channel == "sms":
        policy = sms_policy(row)
        quiet = rules.QuietHours(policy.quiet_start, policy.quiet_end, isp_view(session).timezone)
    jobs = []
    for d in due:
        if d.status == DeliveryStatus.SENDING and not idempotent:
            # its worker died mid-send: it may have gone (see the module's policies)
            _finish(d, DeliveryStatus.FAILED, "outcome unknown (the worker stopped while "
                    "sending); not re-sent: the provider cannot refuse a repeat", dead=True)
            continue
        if d.expires_at is not None and d.expires_at <= now:
            _finish(d, DeliveryStatus.FAILED, "expired before it could be sent", dead=True)
            continue
        reason = rules.stale_reason(d.kind, facts.get(d.id, _NO_FACTS))
        if reason:
            _finish(d, DeliveryStatus.SKIPPED, f"stale: {reason}")
            continue
        if quiet is not None:
            until = rules.hold_until(d.kind, channel, now, quiet)
            if until is not None:
                d.next_attempt_at, d.reason = until, "quiet hours"
                continue
        d.status, d.attempts = DeliveryStatus.SENDING, d.attempts + 1
        d.next_attempt_at = now + LEASE
        jobs.append(Job(d.id, channel, d.kind, d.provider_id, d.recipient, d.subject,
                        d.body or "", invoices.get(d.id), d.dlt_template_id,
                        dict(d.variables or {}), d.attempts))
    _redact_finished(session, due)
    return jobs


_NO_FACTS = rules.Now(invoice_open=None, subscriber_status="")


def _facts(session: Session, due: list[Delivery]
           ) -> tuple[dict[int, rules.Now], dict[int, str]]:
    """What holds now for each delivery's event, and the invoice each one names."""
    from billing.notices import facts

    events: dict[int, dict[str, Any]] = {}
    ids = sorted({d.outbox_id for d in due if d.outbox_id is not None})
    for part in chunks(ids):
        events.update({i: p or {} for i, p in session.execute(
            select(Outbox.id, Outbox.payload).where(Outbox.id.in_(part)))})
    numbers = {str(p["invoice"]) for p in events.values() if p.get("invoice")}
    subs = {d.subscriber_id for d in due if d.subscriber_id is not None}
    now = facts(session, subs, numbers)
    out, invoices = {}, {}
    for d in due:
        payload = events.get(d.outbox_id or -1, {})
        number = str(payload.get("invoice") or "") or None
        open_: bool | None = None
        if number:
            invoices[d.id] = number
            if number in now.known_invoices:
                open_ = number in now.open_invoices
        out[d.id] = rules.Now(invoice_open=open_,
                              subscriber_status=now.statuses.get(d.subscriber_id or -1, ""))
    return out, invoices


# -- secrets --------------------------------------------------------------------------------


def _redact_finished(session: Session, rows: Sequence[Delivery]) -> None:
    ids = {d.outbox_id for d in rows if d.kind in rules.SECRET_FIELDS
           and d.outbox_id is not None and d.status not in OPEN_STATUSES}
    if ids:
        session.flush()
        redact_secrets(session, sorted(ids))


def redact_secrets(session: Session, outbox_ids: Sequence[int]) -> int:
    """Blank the secrets (:data:`notify.rules.SECRET_FIELDS`, a login code) of these events
    in the texts of their messages that are done (sent, failed, skipped), and in the event
    itself once none of its messages is still to be sent. Returns how many messages were
    blanked. Called in the transaction that finishes them: the code is never readable after."""
    events: dict[int, tuple[str, dict[str, Any]]] = {}
    for part in chunks(sorted(set(outbox_ids))):
        for oid, kind, payload in session.execute(
                select(Outbox.id, Outbox.kind, Outbox.payload).where(
                    Outbox.id.in_(part), Outbox.kind.in_(sorted(rules.SECRET_FIELDS)))):
            events[oid] = (kind, dict(payload or {}))
    secrets = {oid: [str(p[f]) for f in rules.SECRET_FIELDS[kind]
                     if p.get(f) not in (None, "", rules.REDACTED)]
               for oid, (kind, p) in events.items()}
    secrets = {oid: values for oid, values in secrets.items() if values}
    if not secrets:
        return 0
    blanked = 0
    still_open: set[int] = set()
    for part in chunks(sorted(secrets)):
        for d in session.scalars(select(Delivery).where(Delivery.outbox_id.in_(part))
                                 .order_by(Delivery.id)):
            assert d.outbox_id is not None
            if d.status in OPEN_STATUSES:
                still_open.add(d.outbox_id)
                continue
            values = secrets[d.outbox_id]
            if d.body:
                d.body = rules.redact(d.body, values)
            if d.subject:
                d.subject = rules.redact(d.subject, values)
            if d.variables:
                d.variables = {k: rules.redact(str(v), values) for k, v in d.variables.items()}
            blanked += 1
    for part in chunks(sorted(set(secrets) - still_open)):
        for event in session.scalars(select(Outbox).where(Outbox.id.in_(part))):
            fields = rules.SECRET_FIELDS[event.kind]
            # a new dict: the JSON column notices a replaced value, not a mutated one
            event.payload = {k: (rules.REDACTED if k in fields and v is not None else v)
                             for k, v in (event.payload or {}).items()}
    return blanked


# -- recording ------------------------------------------------------------------------------


def record(session: Session, channel: str, results: Sequence[Result], now: dt.datetime,
           idempotent: bool, max_attempts: int = MAX_ATTEMPTS) -> dict[str, int]:
    """Record the providers' answers; pause the channel on an account error. Counts by
    new status."""
    by_id = {r.provider_id: r for r in results}
    counts: dict[str, int] = {}
    rows: list[Delivery] = []
    for part in chunks(sorted(by_id)):
        rows.extend(session.scalars(select(Delivery).where(
            Delivery.provider_id.in_(part), Delivery.channel == channel,
            Delivery.status == DeliveryStatus.SENDING)))
    account: Result | None = None
    for d in rows:
        r = by_id[d.provider_id]
        if r.outcome is Outcome.SENT:
            _finish(d, DeliveryStatus.SENT, r.detail or None)
            d.sent_at, d.provider_ref = now, (r.reference or None) and r.reference[:128]
        elif r.outcome is Outcome.PERMANENT:
            _finish(d, DeliveryStatus.FAILED, r.detail[:500] or "refused by the provider")
        elif r.outcome is Outcome.ACCOUNT:
            account = r
            # not this message's fault: back to the queue, this attempt not counted
            d.status, d.attempts, d.reason = DeliveryStatus.QUEUED, d.attempts - 1, None
            d.next_attempt_at = now
        elif r.outcome is Outcome.UNKNOWN and not idempotent:
            _finish(d, DeliveryStatus.FAILED, f"outcome unknown ({r.detail}); not re-sent: "
                    "the provider cannot refuse a repeat", dead=True)
        elif d.attempts >= max_attempts:
            _finish(d, DeliveryStatus.FAILED, f"gave up after {d.attempts} attempts: "
                    f"{r.detail}", dead=True)
        else:
            wait = rules.backoff(d.attempts, d.idempotency_key)
            if r.retry_after:
                wait = max(wait, dt.timedelta(seconds=r.retry_after))
            d.status, d.reason = DeliveryStatus.RETRYING, r.detail[:500] or None
            d.next_attempt_at = now + wait
        counts[d.status] = counts.get(d.status, 0) + 1
    _early_reports(session, [d for d in rows if d.status == DeliveryStatus.SENT], now)
    _redact_finished(session, rows)
    if account is not None:
        pause(session, channel, account.detail or "account error", now)
        counts["paused"] = 1
    return counts


def pause(session: Session, channel: str, reason: str, now: dt.datetime) -> bool:
    """Pause *channel* and raise one alert (none if it was paused already)."""
    row = session.get(Channel, channel, with_for_update=True)
    if row is None or row.paused_at is not None:
        return False
    row.paused_at, row.pause_reason = now, reason[:500]
    raise_alert(session, "notify_channel_paused",
                f"{channel} channel ({row.provider}) paused: {reason[:200]}. Fix the account "
                f"(balance, credentials, sender id), then 'radbill notify channel resume "
                f"{channel}'.", {"channel": channel, "provider": row.provider})
    log.warning("notify: %s channel paused: %s", channel, reason)
    return True


def report(session: Session, reference: str, number: str, delivered: bool, detail: str,
           now: dt.datetime) -> bool:
    """A provider's delivery report for the message it calls *reference* to *number*: sent
    becomes delivered, or failed with the provider's reason. False if no such message."""
    d = session.scalars(select(Delivery).where(
        Delivery.provider_ref == reference[:128], Delivery.recipient == number[:254],
        Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.DELIVERED]))
        .with_for_update()).first()
    if d is None:
        # maybe not recorded as sent yet: kept for when it is (bounded: a day's worth)
        if reference and number and (session.scalar(
                select(func.count()).select_from(EarlyReport)) or 0) < EARLY_MAX:
            session.add(EarlyReport(reference=reference[:128], recipient=number[:254],
                                    delivered=delivered, detail=detail[:256],
                                    received_at=now))
        return False
    _apply_report(d, delivered, detail, now)
    return True


def _apply_report(d: Delivery, delivered: bool, detail: str, now: dt.datetime) -> None:
    if delivered:
        d.status, d.delivered_at = DeliveryStatus.DELIVERED, now
    else:
        _finish(d, DeliveryStatus.FAILED, f"not delivered: {detail[:200]}")


def sweep_reports(session: Session, now: dt.datetime, limit: int = 1000) -> int:
    """Apply kept reports whose message is recorded as sent by now (a report that raced the
    worker's recording), and forget those a day old. Returns how many were applied."""
    early = list(session.scalars(select(EarlyReport).order_by(EarlyReport.id).limit(limit)))
    if not early:
        return 0
    sent: list[Delivery] = []
    refs = sorted({e.reference for e in early})
    for part in chunks(refs):
        sent.extend(session.scalars(select(Delivery).where(
            Delivery.provider_ref.in_(part), Delivery.status == DeliveryStatus.SENT)))
    by_key = {(d.provider_ref, d.recipient): d for d in sent}
    applied = 0
    for e in early:
        d = by_key.get((e.reference, e.recipient))
        if d is not None:
            _apply_report(d, e.delivered, e.detail, now)
            applied += 1
        if d is not None or e.received_at < now - dt.timedelta(days=1):
            session.delete(e)
    return applied


def _early_reports(session: Session, sent: list[Delivery], now: dt.datetime) -> None:
    """Apply reports that came before these messages were recorded as sent."""
    refs = sorted({d.provider_ref for d in sent if d.provider_ref})
    by_key = {(d.provider_ref, d.recipient): d for d in sent}
    for part in chunks(refs):
        for early in session.scalars(select(EarlyReport).where(
                EarlyReport.reference.in_(part))):
            d = by_key.get((early.reference, early.recipient))
            if d is not None:
                _apply_report(d, early.delivered, early.detail, now)
                session.delete(early)


def bounded_username(username: str) -> str:
    """*username* if it can be one (NUL bytes and the like never reach the database)."""
    import re

    from radbill.errors import NotFound

    if not re.fullmatch(r"[A-Za-z0-9._@+\-]{1,64}", username):
        raise NotFound(f"unknown subscriber {username[:64]!r}")
    return username


def set_preference(session: Session, username: str, *, locale: str | None = None,
                   sms_opt_out: bool | None = None, email_opt_out: bool | None = None
                   ) -> Preference:
    """A subscriber's language and opt-outs (what is not given stays)."""
    from billing.subscribers import get_subscriber
    from radbill.errors import InvalidInput

    if locale is not None and locale not in templates.LOCALES:
        raise InvalidInput(f"unknown locale {locale!r} ({', '.join(templates.LOCALES)})")
    sub = get_subscriber(session, bounded_username(username))
    pref = session.get(Preference, sub.id, with_for_update=True)
    if pref is None:
        pref = Preference(subscriber_id=sub.id, sms_opt_out=False, email_opt_out=False)
        session.add(pref)
    if locale is not None:
        pref.locale = locale
    if sms_opt_out is not None:
        pref.sms_opt_out = sms_opt_out
    if email_opt_out is not None:
        pref.email_opt_out = email_opt_out
    return pref


def retry(session: Session, delivery_id: int, now: dt.datetime) -> Delivery:
    """An operator's retry of a failed or skipped delivery: queued again, now, with a fresh
    deadline (the same provider id: a provider that dedupes still refuses a repeat)."""
    from radbill.errors import Conflict, NotFound

    d = session.get(Delivery, delivery_id, with_for_update=True)
    if d is None:
        raise NotFound(f"no message #{delivery_id}")
    if d.status not in (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED):
        raise Conflict(f"message #{delivery_id} is {d.status}: only failed or skipped "
                       "messages are retried")
    if d.kind in rules.SECRET_FIELDS:
        raise Conflict(f"message #{delivery_id} carried a one-time secret, blanked since: "
                       "it is not re-sent (the subscriber asks for a new code)")
    d.status, d.dead_letter, d.reason = DeliveryStatus.QUEUED, False, "retried by an operator"
    d.next_attempt_at, d.expires_at, d.attempts = now, now + TTL, 0
    return d


def status(session: Session) -> dict[str, Any]:
    """Counts by channel and status, the dead-letter queue's size, cost sent, channels."""
    counts: dict[str, dict[str, int]] = {}
    for channel, st, n in session.execute(
            select(Delivery.channel, Delivery.status, func.count())
            .group_by(Delivery.channel, Delivery.status)):
        counts.setdefault(channel, {})[st] = n
    dead = session.scalar(select(func.count()).select_from(Delivery)
                          .where(Delivery.dead_letter.is_(True))) or 0
    cost = [{"currency": c, "cost": str(v)} for c, v in session.execute(
        select(Delivery.currency, func.sum(Delivery.cost))
        .where(Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.DELIVERED]),
               Delivery.cost.is_not(None)).group_by(Delivery.currency))]
    unplanned = session.scalar(select(func.count()).select_from(Outbox)
                               .where(Outbox.sent_at.is_(None))) or 0
    oldest = session.scalar(select(func.min(Delivery.created_at)).where(
        Delivery.status.in_(list(OPEN_STATUSES))))
    return {"deliveries": counts, "dead_letter": dead, "cost": cost,
            "events_not_planned": unplanned,
            "oldest_open": oldest.isoformat() if oldest else None,
            "paused": [c.name for c in session.scalars(
                select(Channel).where(Channel.paused_at.is_not(None)))]}


def messages(session: Session, *, subscriber_id: int | None = None,
             status_: str | None = None, channel: str | None = None,
             dead_letter: bool = False, limit: int = 100) -> list[Delivery]:
    """Messages, newest first, filtered."""
    stmt = select(Delivery).order_by(Delivery.id.desc()).limit(max(1, min(limit, 1000)))
    if subscriber_id is not None:
        stmt = stmt.where(Delivery.subscriber_id == subscriber_id)
    if status_:
        stmt = stmt.where(Delivery.status == status_)
    if channel:
        stmt = stmt.where(Delivery.channel == channel)
    if dead_letter:
        stmt = stmt.where(Delivery.dead_letter.is_(True))
    return list(session.scalars(stmt))

