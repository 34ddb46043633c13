"""Bulk import and export of subscribers as CSV (ISPs come from spreadsheets and other
systems).

Columns, in this order on export, any order on import (a header row names them; ``username``,
``password`` and ``plan`` are required, the others optional, unknown ones refused):

=================  ===========================================================================
username           the login (as ``radbill subscriber create``)
password           the login password (export: only with ``--with-passwords``)
plan               a plan's name
service            ``pppoe`` (default) or ``hotspot``
name               the subscriber's name
phone              phone number
email              e-mail address
mac                a MAC address the login is bound to
ip                 a static IPv4 address (or ``pool``, not both)
pool               an IP pool name
status             ``active`` (default), ``suspended`` (by the operator) or ``disabled``
opening_balance    carried over from the old system: owed (positive, a one-line ``charge``
                   invoice, untaxed, due after the ISP's payment terms) or credit in hand
                   (negative, a ledger credit); export: the balance now
next_renewal       the first day this system bills (the old one billed up to it): the first
                   period starts then; empty: today. Not in the past
=================  ===========================================================================

An import is all or nothing: every row is checked first (the same rules as creating one
subscriber, duplicates in the file and in the database included) and every bad row is listed
with its line number and reason; only a file with none is written, in one transaction. A dry
run checks and previews without writing.

The write is set-based: a few multi-row statements per table (``COPY`` on PostgreSQL, see
:class:`billing.batch.Rows`) write the rows the services would write for each row in file
order: the subscriber and its ``subscriber.create`` audit row; for a suspended or disabled
row what :func:`billing.accounts.set_status_by_operator` writes (the status audit row, the
billing pause and its audit row, the enforcement request, a second change-feed stamp); for an
opening balance owed the charge invoice :func:`billing.invoices.issue` writes (number in file
order, its line, ledger entry and ``invoice_issued`` event), for credit in hand the ledger
credit. :func:`import_csv` with ``one_by_one=True`` goes through those services row by row
instead: the reference the tests compare the set-based path with (same rows, same order).
A status set at import takes effect on the later of today and the row's first billing day
(its billing cannot be paused before it starts).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from billing import invoices, ledger, subscribers
from billing.batch import AUDIT, ENFORCEMENT, INVOICES, LEDGER, LINES, OUTBOX, Rows
from billing.cycles import period_end
from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.models import (
    InvoiceKind,
    IspSettings,
    LedgerEntry,
    LedgerKind,
    Plan,
    ServiceType,
    Subscriber,
    SubscriberStatus,
)
from billing.money import round_money
from billing.plans import cycle_of
from notify.outbox import notice_payload
from radbill import audit
from radbill.crypto import SecretBox
from radbill.db import AUTH_FEED, ChangeCounter, utcnow
from radbill.errors import DomainError, InvalidInput

COLUMNS = ("username", "password", "plan", "service", "name", "phone", "email", "mac", "ip",
           "pool", "status", "opening_balance", "next_renewal")
REQUIRED = ("username", "password", "plan")
IMPORT_STATUSES = ("active", "suspended", "disabled")
MAX_ROWS = 1_000_000
MAX_FIELD = 500  # characters in one cell
MAX_BALANCE = Decimal("10000000000")
CHUNK = 500  # bound on an IN list
PREVIEW_ROWS = 20
OPENING_TEXT = "Opening balance carried over from the previous system"
IMPORT_REASON = "imported"  # why an imported status was set


@dataclass(frozen=True)
class RowError:
    """A bad row: its line in the file (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Checked:
    """One good row, ready to write."""

    line: int
    username: str
    password: str
    plan: Plan
    service: ServiceType
    full_name: str | None
    phone: str | None
    email: str | None
    mac: str | None
    ip: str | None
    pool: str | None
    status: SubscriberStatus
    opening_balance: Decimal
    starts_on: dt.date


@dataclass
class ImportReport:
    """What an import found (and, unless a dry run or refused, wrote)."""

    rows: int
    errors: list[RowError] = field(default_factory=list)
    created: int = 0
    dry_run: bool = False
    preview: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "created": self.created, "dry_run": self.dry_run,
                "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
                "preview": self.preview}


def read_rows(stream: TextIO) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    """The file's rows by line number, and what is wrong with the file itself."""
    reader = csv.reader(stream)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return [], [RowError(1, "the file is empty: a header row is needed")]
    except csv.Error as exc:
        return [], [RowError(1, f"not a CSV file: {exc}")]
    problems = [RowError(1, f"unknown column {h!r} (columns: {', '.join(COLUMNS)})")
                for h in header if h not in COLUMNS]
    problems += [RowError(1, f"column {c!r} is missing") for c in REQUIRED if c not in header]
    if len(set(header)) != len(header):
        problems.append(RowError(1, "a column is named twice"))
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines
            if len(rows) >= MAX_ROWS:
                return [], [RowError(line, f"more than {MAX_ROWS:,} rows: split the file")]
            if len(values) != len(header):
                problems.append(RowError(line, f"{len(values)} values for {len(header)} "
                                               "columns"))
                continue
            rows.append((line, dict(zip(header, values, strict=True))))
    except csv.Error as exc:
        return [], [RowError(reader.line_num, f"not a CSV file: {exc}")]
    return rows, problems


def _one(  # noqa: PLR0912 - one check per column, each error next to its rule
        raw: dict[str, str], line: int, plans: dict[str, Plan], today: dt.date) -> Checked:
    """One row checked as :func:`billing.subscribers.create_subscriber` checks its input."""
    for k, v in raw.items():
        if len(v) > MAX_FIELD:
            raise InvalidInput(f"{k} is longer than {MAX_FIELD} characters")
    value = {k: v.strip() for k, v in raw.items()}
    username = subscribers.validate_username(raw.get("username", "").strip(" "))
    password = subscribers.validate_password(raw.get("password", ""))
    plan = plans.get(value.get("plan", ""))
    if plan is None:
        raise InvalidInput(f"unknown plan {value.get('plan', '')!r}")
    try:
        service = ServiceType(value.get("service") or "pppoe")
    except ValueError:
        raise InvalidInput(f"unknown service {value.get('service')!r}: use pppoe or "
                           "hotspot") from None
    mac = subscribers.normalize_mac(value["mac"]) if value.get("mac") else None
    ip = subscribers.validate_ipv4(value["ip"]) if value.get("ip") else None
    pool = value.get("pool") or None
    if ip and pool:
        raise InvalidInput("give a static IP or a pool, not both")
    if pool is not None and not subscribers._POOL_RE.fullmatch(pool):
        raise InvalidInput(f"invalid pool name {pool!r}")
    phone = value.get("phone") or None
    if phone is not None and not subscribers._PHONE_RE.fullmatch(phone):
        raise InvalidInput(f"invalid phone number {phone!r}")
    email = value.get("email") or None
    if email is not None and not subscribers._EMAIL_RE.fullmatch(email):
        raise InvalidInput(f"invalid e-mail address {email!r}")
    name = subscribers.validate_text("name", value["name"], 128) if value.get("name") else None
    status_text = (value.get("status") or "active").lower()
    if status_text not in IMPORT_STATUSES:
        raise InvalidInput(f"status {status_text!r}: use {', '.join(IMPORT_STATUSES)}")
    try:
        balance = Decimal(value.get("opening_balance") or "0")
    except InvalidOperation:
        raise InvalidInput(f"opening balance {value.get('opening_balance')!r} is not an "
                           "amount") from None
    if not balance.is_finite() or abs(balance) >= MAX_BALANCE:
        raise InvalidInput(f"opening balance {value.get('opening_balance')!r} is out of "
                           "range")
    if round_money(balance, plan.currency) != balance:
        raise InvalidInput(f"opening balance {balance} has more decimals than "
                           f"{plan.currency} takes")
    starts_on = today
    if value.get("next_renewal"):
        try:
            starts_on = dt.date.fromisoformat(value["next_renewal"])
        except ValueError:
            raise InvalidInput(f"next renewal {value['next_renewal']!r} is not a date "
                               "(YYYY-MM-DD)") from None
        if starts_on < today:
            raise InvalidInput(f"next renewal {starts_on} is in the past (today is {today})")
        if starts_on > today + dt.timedelta(days=366):
            raise InvalidInput(f"next renewal {starts_on} is more than a year away")
    return Checked(line, username, password, plan, service, name, phone, email, mac, ip, pool,
                   SubscriberStatus(status_text), balance, starts_on)


def _taken(session: Session, column: Any, values: Sequence[str]) -> set[str]:
    """Which of *values* are already in *column* (lower-cased), in bounded IN lists."""
    found: set[str] = set()
    for i in range(0, len(values), CHUNK):
        found.update(v.lower() for v in session.scalars(
            select(column).where(func.lower(column).in_(values[i:i + CHUNK]))) if v)
    return found


def check(session: Session, rows: list[tuple[int, dict[str, str]]], today: dt.date
          ) -> tuple[list[Checked], list[RowError]]:
    """Every row checked; the good ones, and every bad one with its line and reason."""
    plans = {p.name: p for p in session.scalars(select(Plan))}
    good: list[Checked] = []
    errors: list[RowError] = []
    for line, raw in rows:
        try:
            good.append(_one(raw, line, plans, today))
        except DomainError as exc:
            errors.append(RowError(line, str(exc)))
    seen_names: dict[str, int] = {}
    seen_ips: dict[str, int] = {}
    for c in good:
        first = seen_names.setdefault(c.username.lower(), c.line)
        if first != c.line:
            errors.append(RowError(c.line, f"username {c.username!r} is also on line {first}"))
        if c.ip:
            first = seen_ips.setdefault(c.ip, c.line)
            if first != c.line:
                errors.append(RowError(c.line, f"IP address {c.ip} is also on line {first}"))
    names = _taken(session, Subscriber.username, sorted(seen_names))
    ips = _taken(session, Subscriber.static_ip, sorted(seen_ips))
    for c in good:
        if c.username.lower() in names:
            errors.append(RowError(c.line, f"subscriber {c.username!r} already exists"))
        if c.ip and c.ip in ips:
            errors.append(RowError(c.line, f"IP address {c.ip} is already assigned to "
                                           "another subscriber"))
    errors.sort(key=lambda e: e.line)
    return good, errors


def _column_defaults(table: Table) -> dict[str, Any]:
    """What the model fills in for a column left out (its Python-side default)."""
    out: dict[str, Any] = {}
    for col in table.columns:
        if col.primary_key:
            continue
        default = col.default
        arg = getattr(default, "arg", None)
        if default is None:
            out[col.name] = None
        elif callable(arg):
            out[col.name] = arg(None)
        else:
            out[col.name] = arg
    return out


def _status_day(c: Checked, today: dt.date) -> dt.date:
    """The day an imported status takes effect: today, or the row's first billing day if
    that is later (billing is paused from a day it has reached)."""
    return max(today, c.starts_on)


def _insert_subscribers(session: Session, box: SecretBox, good: list[Checked], actor: str,
                        stamps: int, final: bool, today: dt.date) -> list[int]:
    """The subscribers and their ``subscriber.create`` audit rows; returns their ids. The
    auth feed is bumped by *stamps*: one per row (file order), then one per status change.
    *final*: written with their imported status (the set-based path) rather than active."""
    table = cast(Table, Subscriber.__table__)
    defaults = _column_defaults(table)
    top = session.execute(update(ChangeCounter).where(ChangeCounter.name == AUTH_FEED)
                          .values(value=ChangeCounter.value + stamps)
                          .returning(ChangeCounter.value)).scalar_one()
    first_stamp = int(top) - stamps + 1
    later = iter(range(first_stamp + len(good), int(top) + 1))
    pause_suspended = final and not isp_settings(session).bill_while_suspended
    now = utcnow()
    rows = []
    for i, c in enumerate(good):
        cycle = cycle_of(c.plan)
        row = {**defaults,
               "username": c.username, "password_enc": box.encrypt(c.password),
               "service": c.service, "status": SubscriberStatus.ACTIVE,
               "plan_id": c.plan.id, "static_ip": c.ip, "ip_pool": c.pool,
               "mac_address": c.mac, "full_name": c.full_name, "phone": c.phone,
               "email": c.email, "anchor_day": c.starts_on.day,
               "period_start": c.starts_on,
               "period_end": period_end(cycle, c.starts_on, c.starts_on.day),
               "billing_started_on": c.starts_on, "auth_version": first_stamp + i,
               "created_at": now, "updated_at": now}
        if final and c.status is not SubscriberStatus.ACTIVE:
            # what accounts.set_status_by_operator leaves on the row
            day = _status_day(c, today)
            suspended = c.status is SubscriberStatus.SUSPENDED
            row.update(status=c.status, status_reason=IMPORT_REASON,
                       auth_version=next(later),
                       suspended_on=day if suspended else None,
                       billing_paused_on=day if not suspended or pause_suspended else None)
        rows.append(row)
    ids = Rows(session).insert_new(table, rows)
    Rows(session).insert(AUDIT, [
        {"at": now, "actor": actor, "action": "subscriber.create", "entity": "subscriber",
         "entity_id": str(sub_id), "before": None, "reason": "import",
         "after": {"username": c.username, "service": str(c.service), "status": "active",
                   "status_reason": None, "plan": c.plan.name, "static_ip": c.ip,
                   "ip_pool": c.pool, "mac_address": c.mac, "simultaneous_use": 1,
                   "paid_until": None, "full_name": c.full_name, "phone": c.phone,
                   "email": c.email, "address": None, "tax_id": None, "state_code": None,
                   "billing_started_on": str(c.starts_on), "billing_paused_on": None}}
        for c, sub_id in zip(good, ids, strict=True)])
    return ids


@dataclass(frozen=True)
class _Buyer:
    """An imported row as an invoice's addressee and an event's recipient."""

    id: int
    username: str
    full_name: str | None
    phone: str | None
    email: str | None
    address: None = None
    tax_id: None = None
    state_code: None = None


def _opening_invoice(isp: IspSettings, c: Checked, sub_id: int, today: dt.date
                     ) -> invoices.Draft:
    """The charge invoice :func:`billing.invoices.issue` writes for an opening balance owed
    (taking the next number of the locked *isp*)."""
    buyer = _Buyer(sub_id, c.username, c.full_name, c.phone, c.email)
    return invoices.draft(isp, invoices.next_number(isp, today), plan_name=c.plan.name,
                          currency=c.plan.currency, vat_percent=Decimal("0"),
                          buyer=invoices.buyer_of(isp, buyer), period_start=today,
                          period_end=today, issued_on=today,
                          due_on=today + dt.timedelta(days=isp.postpaid_due_days),
                          lines=[invoices.Line(OPENING_TEXT, c.opening_balance)],
                          previous_balance=Decimal("0"), kind=InvoiceKind.CHARGE)


def _write(session: Session, box: SecretBox, good: list[Checked], actor: str,
           today: dt.date) -> None:
    """Every row set-based: the rows :func:`_write_one_by_one` writes, in the same order,
    with a few multi-row statements per table."""
    from billing.accounts import OPERATOR_ACTIONS

    changed = [c for c in good if c.status is not SubscriberStatus.ACTIVE]
    ids = _insert_subscribers(session, box, good, actor, len(good) + len(changed), True,
                              today)
    by_line = dict(zip((c.line for c in good), ids, strict=True))
    now = utcnow()
    pause_suspended = not isp_settings(session).bill_while_suspended
    audit_rows: list[dict[str, Any]] = []
    for c in changed:  # subscribers.change_status, accounts.pause_billing
        sub_id, day = str(by_line[c.line]), _status_day(c, today)
        audit_rows.append({"at": now, "actor": actor, "action": f"subscriber.{c.status}",
                           "entity": "subscriber", "entity_id": sub_id,
                           "before": {"status": "active"}, "after": {"status": str(c.status)},
                           "reason": IMPORT_REASON})
        if c.status is SubscriberStatus.DISABLED or pause_suspended:
            audit_rows.append({"at": now, "actor": actor, "action": "billing.pause",
                               "entity": "subscriber", "entity_id": sub_id, "before": None,
                               "after": {"paused_on": str(day)}, "reason": None})
    rows = Rows(session)
    rows.insert(AUDIT, audit_rows)
    rows.insert(ENFORCEMENT, [  # accounts.enforce
        {"subscriber_id": by_line[c.line], "action": OPERATOR_ACTIONS[c.status],
         "reason": IMPORT_REASON, "status": "pending", "created_at": now, "attempts": 0,
         "next_attempt_at": now, "confirm_by": None, "completed_at": None, "outcome": None,
         "last_error": None, "nas_ip": None, "acct_session_id": None} for c in changed])
    owed = [c for c in good if c.opening_balance > 0]
    drafts: dict[int, invoices.Draft] = {}
    if owed:
        isp = isp_settings(session, lock=True)
        drafts = {c.line: _opening_invoice(isp, c, by_line[c.line], today) for c in owed}
    invoice_defaults = _column_defaults(INVOICES)
    usernames = {c.line: c.username for c in owed}
    invoice_ids = dict(zip(drafts, rows.insert_new(INVOICES, [
        {**invoice_defaults, **d.columns(), "subscriber_id": by_line[line],
         "username": usernames[line], "created_at": now}
        for line, d in drafts.items()]), strict=True))
    rows.insert(LINES, [{"invoice_id": invoice_ids[line], **values}
                        for line, d in drafts.items() for values in d.line_values()])
    entries: list[dict[str, Any]] = []
    for c in good:  # invoices.issue's charge, or ledger.post's credit, in file order
        d = drafts.get(c.line)
        if d is not None and (entry := d.ledger_entry()) is not None:
            entries.append({"subscriber_id": by_line[c.line], "kind": entry[0],
                            "amount": round_money(d.total, d.currency),
                            "currency": d.currency, "effective_on": today,
                            "description": entry[1], "actor": actor,
                            "invoice_id": invoice_ids[c.line], "payment_id": None,
                            "posted_at": now})
        elif c.opening_balance < 0:
            entries.append({"subscriber_id": by_line[c.line], "kind": LedgerKind.CREDIT,
                            "amount": round_money(c.opening_balance, c.plan.currency),
                            "currency": c.plan.currency, "effective_on": today,
                            "description": OPENING_TEXT, "actor": actor, "invoice_id": None,
                            "payment_id": None, "posted_at": now})
    rows.insert(LEDGER, entries)
    rows.insert(OUTBOX, [  # invoices.issue's event (its key is new: no duplicate possible)
        {"kind": "invoice_issued", "subscriber_id": by_line[c.line],
         "dedupe_key": f"invoice:{invoice_ids[c.line]}",
         "payload": notice_payload(c, **drafts[c.line].notice()), "created_at": now,
         "sent_at": None, "event_on": today} for c in owed])
    audit.record(session, actor=actor, action="subscriber.import", entity="subscriber",
                 entity_id="*", after={"created": len(good)})
    session.flush()


def _write_one_by_one(session: Session, box: SecretBox, good: list[Checked], actor: str,
                      today: dt.date) -> None:
    """The subscribers set-based, then each row's status and opening balance through their
    services, row by row (the reference for :func:`_write`)."""
    # the services bump the feed themselves for each status change
    ids = _insert_subscribers(session, box, good, actor, len(good), False, today)
    session.flush()
    from billing import accounts

    isp = None
    for c, sub_id in zip(good, ids, strict=True):
        if c.status is not SubscriberStatus.ACTIVE:
            accounts.set_status_by_operator(session, c.username, c.status,
                                            reason=IMPORT_REASON, actor=actor,
                                            on=_status_day(c, today))
        if c.opening_balance > 0:
            isp = isp or isp_settings(session, lock=True)
            sub = session.get(Subscriber, sub_id)
            assert sub is not None
            invoices.issue(session, isp=isp, sub=sub, plan_name=c.plan.name,
                           currency=c.plan.currency, vat_percent=Decimal("0"),
                           period_start=today, period_end=today, issued_on=today,
                           due_on=today + dt.timedelta(days=isp.postpaid_due_days),
                           lines=[invoices.Line(OPENING_TEXT, c.opening_balance)],
                           kind=InvoiceKind.CHARGE, actor=actor)
        elif c.opening_balance < 0:
            ledger.post(session, subscriber_id=sub_id, kind=LedgerKind.CREDIT,
                        amount=c.opening_balance, currency=c.plan.currency,
                        effective_on=today, description=OPENING_TEXT, actor=actor)
    audit.record(session, actor=actor, action="subscriber.import", entity="subscriber",
                 entity_id="*", after={"created": len(good)})
    session.flush()


def import_csv(session: Session, box: SecretBox, stream: TextIO, *, actor: str,
               dry_run: bool = False, today: dt.date | None = None,
               one_by_one: bool = False) -> ImportReport:
    """Check every row of *stream*; unless *dry_run* or a row is bad, create them all in the
    caller's transaction. The caller commits (or, with errors, writes nothing).
    *one_by_one*: statuses and opening balances through their services row by row (the
    reference path; see the module documentation)."""
    today = today or local_today(isp_settings(session), utcnow())
    raw, problems = read_rows(stream)
    report = ImportReport(rows=len(raw), dry_run=dry_run)
    good, errors = check(session, raw, today) if raw else ([], [])
    report.errors = sorted(problems + errors, key=lambda e: e.line)
    report.preview = [{"line": str(c.line), "username": c.username, "plan": c.plan.name,
                       "status": str(c.status), "opening_balance": str(c.opening_balance),
                       "next_renewal": str(c.starts_on)} for c in good[:PREVIEW_ROWS]]
    if report.errors or dry_run or not good:
        return report
    (_write_one_by_one if one_by_one else _write)(session, box, good, actor, today)
    report.created = len(good)
    return report


def export_rows(session: Session, box: SecretBox, *, with_passwords: bool,
                today: dt.date) -> Iterator[list[str]]:
    """The header, then every subscriber in username order (read in chunks, balances summed
    in the database a chunk at a time)."""
    yield list(COLUMNS)
    after = ""
    while True:
        chunk = list(session.scalars(select(Subscriber).where(Subscriber.username > after)
                                     .order_by(Subscriber.username).limit(CHUNK)).unique())
        if not chunk:
            return
        balances = dict(session.execute(
            select(LedgerEntry.subscriber_id, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.subscriber_id.in_([s.id for s in chunk]))
            .group_by(LedgerEntry.subscriber_id)).all())
        for s in chunk:
            renews = s.period_start if s.period_start and s.period_start > today \
                else s.period_end
            yield [s.username, box.decrypt(s.password_enc) if with_passwords else "",
                   s.plan.name, str(s.service), s.full_name or "", s.phone or "",
                   s.email or "", s.mac_address or "", s.static_ip or "", s.ip_pool or "",
                   str(s.status), str(round_money(Decimal(balances.get(s.id, 0)),
                                                   s.plan.currency)),
                   str(renews) if renews else ""]
        after = chunk[-1].username
        session.expunge_all()


def export_csv(session: Session, box: SecretBox, out: TextIO, *, with_passwords: bool,
               today: dt.date) -> int:
    """Write every subscriber to *out*; returns how many."""
    writer = csv.writer(out)
    rows = export_rows(session, box, with_passwords=with_passwords, today=today)
    writer.writerow(next(rows))  # the header
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def text_stream(data: bytes) -> TextIO:
    """An uploaded file as text (UTF-8, a spreadsheet's byte-order mark allowed)."""
    try:
        return io.StringIO(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8 text (save it as CSV UTF-8)") from None
