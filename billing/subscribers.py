"""Subscriber service: accounts, their credentials and their billing status.

Status changes go through :func:`change_status` only: it locks the row, re-checks the state
after the lock, applies the transition table, stamps the auth change feed (so the RADIUS policy
sees the change within a second) and writes the audit row, all in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Collection, Sequence

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.cycles import period_end
from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.models import SEARCHED, Plan, ServiceType, Subscriber, SubscriberStatus
from billing.plans import cycle_of, get_plan
from radbill import audit
from radbill.crypto import SecretBox
from radbill.db import AUTH_FEED, bump, utcnow
from radbill.errors import Conflict, InvalidInput, NotFound
from radbill.pgarrays import column

S = SubscriberStatus

# Allowed status transitions. Terminated is final: a returning customer gets a new account.
TRANSITIONS: dict[SubscriberStatus, frozenset[SubscriberStatus]] = {
    S.ACTIVE: frozenset({S.SUSPENDED, S.DISABLED, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.DISABLED, S.TERMINATED}),
    S.DISABLED: frozenset({S.ACTIVE, S.SUSPENDED, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}

# PPPoE and Hotspot usernames as MikroTik accepts them; '@' and '.' for realm-style names.
_USERNAME_RE = re.compile(r"^[A-Za-z0-9._@+\-]{1,64}$")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:\-.]?[0-9A-Fa-f]{2}){5}$")
_PHONE_RE = re.compile(r"^\+?[0-9 \-]{5,32}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
_POOL_RE = re.compile(r"^[\w.\-]{1,64}$")
MAX_PASSWORD_BYTES = 128  # RFC 2865 User-Password carries at most 128 octets


def validate_username(username: str) -> str:
    """A username a NAS can send: 1-64 of letters, digits and . _ @ + -."""
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            f"invalid username {username!r}: 1-64 characters of letters, digits and . _ @ + -"
        )
    return username


def validate_password(password: str) -> str:
    """A password PAP, CHAP and MS-CHAPv2 can all carry."""
    if not password:
        raise InvalidInput("password must not be empty")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise InvalidInput("password must not contain control characters")
    return password


_TAX_ID_RE = re.compile(r"[A-Za-z0-9\-/]{5,32}")
_STATE_CODE_RE = re.compile(r"[0-9A-Za-z]{1,4}")


def validate_text(label: str, value: str, limit: int, *, multiline: bool = False) -> str:
    """Free text an operator typed: trimmed, at most *limit* characters, no control
    characters (newlines only where *multiline*)."""
    text = (value or "").strip()
    allowed = "\n" if multiline else ""
    if len(text) > limit:
        raise InvalidInput(f"{label} is longer than {limit} characters")
    if any((ord(c) < 0x20 and c not in allowed) or ord(c) == 0x7F for c in text):
        raise InvalidInput(f"{label} must not contain control characters")
    return text


def validate_tax_id(value: str) -> str:
    """A buyer's BIN (Bangladesh) or GSTIN (India): 5-32 letters, digits, - and /."""
    text = (value or "").strip().upper()
    if not _TAX_ID_RE.fullmatch(text):
        raise InvalidInput(f"invalid tax id {value!r}: 5-32 letters, digits, - or /")
    return text


def validate_state_code(value: str) -> str:
    """A State code (India: the GST State code, e.g. 29 for Karnataka)."""
    text = (value or "").strip().upper()
    if not _STATE_CODE_RE.fullmatch(text):
        raise InvalidInput(f"invalid State code {value!r}: 1-4 letters or digits")
    return text


def normalize_mac(mac: str) -> str:
    """``aabb.ccdd.eeff`` or ``AA-BB-...`` → ``AA:BB:CC:DD:EE:FF`` (MikroTik's form)."""
    text = (mac or "").strip(" ")
    if not _MAC_RE.fullmatch(text):
        raise InvalidInput(f"invalid MAC address {mac!r}: use AA:BB:CC:DD:EE:FF")
    digits = re.sub(r"[^0-9A-Fa-f]", "", text).upper()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def validate_ipv4(ip: str) -> str:
    """A unicast IPv4 address usable as Framed-IP-Address."""
    try:
        addr = ipaddress.IPv4Address((ip or "").strip())
    except ValueError:
        raise InvalidInput(f"invalid IPv4 address {ip!r}") from None
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        raise InvalidInput(f"{ip!r} cannot be assigned to a subscriber")
    return str(addr)


def get_subscriber(session: Session, username: str, *, lock: bool = False) -> Subscriber:
    """The subscriber called *username* (row-locked with *lock*), in any case and without
    surrounding spaces: usernames are unique in lower case."""
    key = username.strip().lower() if isinstance(username, str) else username
    stmt = select(Subscriber).where(func.lower(Subscriber.username) == key)
    if lock:
        stmt = stmt.with_for_update(of=Subscriber)  # not the joined plan row
    sub = session.scalars(stmt).unique().one_or_none()
    if sub is None:
        raise NotFound(f"unknown subscriber {username!r}")
    return sub


IN_CHUNK = 500  # the most values one IN list carries


def list_subscribers(
    session: Session, *, status: str | None = None, search: str | None = None, limit: int = 1000,
    plan: str | None = None, usernames: Collection[str] | Select[str] | None = None,
) -> Sequence[Subscriber]:
    """Subscribers by username, optionally filtered by status, a search term, a plan name or
    usernames: a set, or a query of them (e.g. those seen on one NAS, from the accounting's
    service: the database filters, however many there are)."""
    stmt = select(Subscriber).order_by(Subscriber.username).limit(limit)
    if plan:
        stmt = stmt.where(Subscriber.plan_id == get_plan(session, plan).id)
    if isinstance(usernames, Select):
        stmt = stmt.where(Subscriber.username.in_(usernames))
    elif usernames is not None and len(usernames) > IN_CHUNK:
        # a NAS may carry thousands: bounded IN lists, the pages merged in username order
        names = sorted(usernames)
        found = [sub for i in range(0, len(names), IN_CHUNK)
                 for sub in list_subscribers(session, status=status, search=search,
                                             limit=limit, plan=plan,
                                             usernames=names[i:i + IN_CHUNK])]
        return sorted(found, key=lambda sub: sub.username)[:limit]
    elif usernames is not None:
        stmt = stmt.where(Subscriber.username.in_(list(usernames)))
    if status:
        try:
            stmt = stmt.where(Subscriber.status == SubscriberStatus(status))
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}") from None
    if search:
        # ILIKE on the columns themselves: PostgreSQL answers it from the trigram indexes
        # (one bitmap OR of three, migration 0023) instead of reading every subscriber in
        # username order; SQLite (lower() LIKE lower()) reads the table
        # % and _ typed in the term match themselves, not any text or any character
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        stmt = stmt.where(or_(*(getattr(Subscriber, column).ilike(like, escape="\\")
                                for column in SEARCHED)))
    return session.scalars(stmt).unique().all()


def create_subscriber(
    session: Session,
    box: SecretBox,
    *,
    username: str,
    password: str,
    plan: str,
    service: str = "pppoe",
    mac: str | None = None,
    ip: str | None = None,
    pool: str | None = None,
    simultaneous_use: int = 1,
    full_name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    address: str | None = None,
    tax_id: str | None = None,
    state_code: str | None = None,
    activated_on: dt.date | None = None,
    today: dt.date | None = None,
    actor: str = "system",
) -> Subscriber:
    """Create an active subscriber on *plan*, its first billing period starting on
    *activated_on* (default: today in the ISP's time zone; never in the future). Validates
    before writing."""
    # Leading and trailing spaces are never part of a username (a pasted " bob "); a newline
    # or a tab is not a space someone pasted: it is refused with the rest of the junk.
    username = username.strip(" ") if isinstance(username, str) else username
    validate_username(username)
    validate_password(password)
    try:
        service_type = ServiceType(service)
    except ValueError:
        raise InvalidInput(f"unknown service {service!r}: use pppoe or hotspot") from None
    mac_norm = normalize_mac(mac) if mac else None
    ip_norm = validate_ipv4(ip) if ip else None
    if ip_norm and pool:
        raise InvalidInput("give a static IP or a pool, not both")
    if pool is not None and not _POOL_RE.fullmatch(pool):
        raise InvalidInput(f"invalid pool name {pool!r}")
    if not 1 <= simultaneous_use <= 100:
        raise InvalidInput(f"simultaneous-use {simultaneous_use} must be between 1 and 100")
    if phone is not None and not _PHONE_RE.fullmatch(phone):
        raise InvalidInput(f"invalid phone number {phone!r}")
    if email is not None and not _EMAIL_RE.fullmatch(email):
        raise InvalidInput(f"invalid e-mail address {email!r}")
    if full_name is not None:
        full_name = validate_text("name", full_name, 128)
    address = validate_text("address", address, 500, multiline=True) if address else None
    tax_id = validate_tax_id(tax_id) if tax_id else None
    state_code = validate_state_code(state_code) if state_code else None
    plan_row = get_plan(session, plan)
    today = today or local_today(isp_settings(session), utcnow())
    if activated_on is not None and activated_on > today:
        raise InvalidInput(f"activation date {activated_on} is in the future (today is "
                           f"{today})")

    sub = Subscriber(
        username=username,
        password_enc=box.encrypt(password),
        service=service_type,
        status=SubscriberStatus.ACTIVE,
        plan=plan_row,
        static_ip=ip_norm,
        ip_pool=pool,
        mac_address=mac_norm,
        simultaneous_use=simultaneous_use,
        full_name=full_name,
        phone=phone,
        email=email,
        address=address,
        tax_id=tax_id,
        state_code=state_code,
        auth_version=bump(session, AUTH_FEED),
    )
    start_billing(sub, plan_row, activated_on or today)
    try:
        # A savepoint keeps the caller's transaction usable after a unique violation, and
        # its rollback takes the half-made row out of the session again.
        with session.begin_nested():
            session.add(sub)
            session.flush()
    except IntegrityError as exc:
        text = str(exc.orig).lower()
        if "static_ip" in text:
            raise Conflict(f"IP address {ip_norm} is already assigned to another subscriber"
                           ) from None
        raise Conflict(f"subscriber {username!r} already exists") from None
    audit.record(session, actor=actor, action="subscriber.create", entity="subscriber",
                 entity_id=sub.id, after=summary(sub))
    return sub


def start_billing(sub: Subscriber, plan: Plan, day: dt.date) -> None:
    """Open the first billing period on *day* (activation, or reconnection after billing was
    paused): the anniversary moves to *day*; a fixed billing day gives a short, prorated
    first period."""
    sub.anchor_day = day.day
    sub.period_start = day
    sub.period_end = period_end(cycle_of(plan), day, day.day)
    sub.billing_started_on = day


def change_status(
    session: Session,
    username: str,
    new_status: SubscriberStatus,
    *,
    actor: str,
    reason: str | None = None,
) -> bool:
    """Move a subscriber to *new_status*. Returns False (and writes nothing) if it is already
    there; raises :class:`Conflict` if the transition is not allowed."""
    sub = get_subscriber(session, username, lock=True)
    old = sub.status
    if old == new_status:
        return False
    if new_status not in TRANSITIONS[old]:
        raise Conflict(f"subscriber {username!r} is {old}; it cannot become {new_status}")
    sub.status = new_status
    sub.status_reason = reason
    sub.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action=f"subscriber.{new_status}", entity="subscriber",
                 entity_id=sub.id, before={"status": str(old)},
                 after={"status": str(new_status)}, reason=reason)
    return True


def set_password(
    session: Session, box: SecretBox, username: str, password: str, *, actor: str
) -> None:
    """Replace a subscriber's password."""
    validate_password(password)
    sub = get_subscriber(session, username, lock=True)
    sub.password_enc = box.encrypt(password)
    sub.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="subscriber.password", entity="subscriber",
                 entity_id=sub.id)


def set_plan(session: Session, username: str, plan: str, *, actor: str) -> None:
    """Move a subscriber to another plan (billing proration is the billing run's business)."""
    sub = get_subscriber(session, username, lock=True)
    new_plan: Plan = get_plan(session, plan)
    before = {"plan": sub.plan.name}
    sub.plan = new_plan
    sub.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="subscriber.plan", entity="subscriber",
                 entity_id=sub.id, before=before, after={"plan": new_plan.name})


def set_mac(session: Session, username: str, mac: str | None, *, actor: str) -> None:
    """Bind the subscriber to *mac*, or clear the binding with ``None``."""
    sub = get_subscriber(session, username, lock=True)
    before = {"mac_address": sub.mac_address}
    sub.mac_address = normalize_mac(mac) if mac else None
    sub.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="subscriber.mac", entity="subscriber",
                 entity_id=sub.id, before=before, after={"mac_address": sub.mac_address})


def validate_ipv6_prefix(value: str) -> str:
    """An IPv6 prefix as RADIUS carries it (``2001:db8:1::/64``), normalised."""
    try:
        net = ipaddress.IPv6Network((value or "").strip(), strict=True)
    except ValueError:
        raise InvalidInput(f"invalid IPv6 prefix {value[:50]!r}: use e.g. 2001:db8:1::/64 "
                           "(no host bits set)") from None
    if not 1 <= net.prefixlen <= 128:
        raise InvalidInput(f"IPv6 prefix length {net.prefixlen} must be 1-128")
    return str(net)


def set_ipv6(session: Session, username: str, *, framed_prefix: str | None,
             delegated_prefix: str | None, pool: str | None, actor: str) -> None:
    """The subscriber's own IPv6: a fixed WAN prefix (Framed-IPv6-Prefix) or a NAS pool for
    it (Framed-IPv6-Pool), and a fixed prefix delegated to its LAN (Delegated-IPv6-Prefix).
    None clears each; unset ones come from the plan."""
    framed = validate_ipv6_prefix(framed_prefix) if framed_prefix else None
    delegated = validate_ipv6_prefix(delegated_prefix) if delegated_prefix else None
    if framed and pool:
        raise InvalidInput("give a fixed IPv6 prefix or an IPv6 pool, not both")
    if pool is not None and not _POOL_RE.fullmatch(pool):
        raise InvalidInput(f"invalid IPv6 pool name {pool[:70]!r}")
    sub = get_subscriber(session, username, lock=True)
    before = {"framed_ipv6_prefix": sub.framed_ipv6_prefix,
              "delegated_ipv6_prefix": sub.delegated_ipv6_prefix, "ipv6_pool": sub.ipv6_pool}
    sub.framed_ipv6_prefix, sub.delegated_ipv6_prefix, sub.ipv6_pool = framed, delegated, pool
    sub.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="subscriber.ipv6", entity="subscriber",
                 entity_id=sub.id, before=before,
                 after={"framed_ipv6_prefix": framed, "delegated_ipv6_prefix": delegated,
                        "ipv6_pool": pool})


def summary(sub: Subscriber) -> dict[str, object]:
    """A plain dictionary of a subscriber (no password) for JSON output and audit rows."""
    return {
        "username": sub.username,
        "service": str(sub.service),
        "status": str(sub.status),
        "status_reason": sub.status_reason,
        "plan": sub.plan.name,
        "static_ip": sub.static_ip,
        "ip_pool": sub.ip_pool,
        "mac_address": sub.mac_address,
        "simultaneous_use": sub.simultaneous_use,
        "paid_until": sub.paid_until.isoformat() if sub.paid_until else None,
        "full_name": sub.full_name,
        "phone": sub.phone,
        "email": sub.email,
        "address": sub.address,
        "tax_id": sub.tax_id,
        "state_code": sub.state_code,
        "billing_started_on": str(sub.billing_started_on) if sub.billing_started_on else None,
        "billing_paused_on": str(sub.billing_paused_on) if sub.billing_paused_on else None,
    }


_NAMES_PER_ARRAY = 5000


def subscriber_ids(session: Session, usernames: set[str]) -> dict[str, int]:
    """Subscriber ids by username for the given names (unknown names are left out). A NAS
    may send a name in another case or with spaces around it (``BOB``, ``bob ``): names are
    unique in lower case, so each finds its one subscriber (bounded: arrays of 5,000 on
    PostgreSQL, IN lists of 500 elsewhere)."""
    if not usernames:
        return {}
    keys = sorted({n.strip().lower() for n in usernames})
    by_key: dict[str, int] = {}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # one array parameter per 5,000 names, sent in binary (the accounting ingester asks
        # for a batch's names at once: ten 500-name IN lists cost it 6 us a record), built
        # by radbill.pgarrays, and the answer taken whole from the driver's cursor (rows
        # fetched one by one through SQLAlchemy were ~7% of the ingester's applying thread)
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            for i in range(0, len(keys), _NAMES_PER_ARRAY):
                cur.execute("SELECT lower(username), id FROM subscribers "
                            "WHERE lower(username) = ANY(%b::text[])",
                            (column(keys[i:i + _NAMES_PER_ARRAY], "varchar"),))
                by_key.update(cur.fetchall())
        return {n: by_key[n.strip().lower()] for n in usernames if n.strip().lower() in by_key}
    for i in range(0, len(keys), 500):
        for name, sid in session.execute(
                select(Subscriber.username, Subscriber.id)
                .where(func.lower(Subscriber.username).in_(keys[i:i + 500]))):
            by_key[name.lower()] = sid
    return {n: by_key[n.strip().lower()] for n in usernames if n.strip().lower() in by_key}
