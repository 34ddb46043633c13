"""Subscribers logging in to the portal: by their PPPoE/Hotspot username and password, or by
a one-time code sent by SMS to the phone number on their account.

As strict as the staff side (:mod:`admin.users`):

* failures are slowed by :mod:`admin.throttle` under keys of their own (``portal/`` names, so
  a subscriber called ``admin`` never slows the staff user ``admin`` down), per address, per
  account from anywhere, and per account from one address;
* an unknown username, a wrong password and a disabled account get the same
  :class:`LoginFailed` after the same work (a password is always decrypted and compared);
* asking for a code answers the same whether or not the number is on an account, and the
  code is sent (through notify's outbox, so the SMS channels, their retries and their logs
  apply) only to numbers that are;
* a code is 6 digits, stored as an HMAC, valid for :data:`OTP_LIFETIME`, spent by its first
  right use, void after :data:`OTP_TRIES` wrong ones; a number gets at most
  :data:`OTP_PER_WINDOW` codes per :data:`OTP_WINDOW`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from admin import throttle
from billing.models import Subscriber, SubscriberStatus
from notify import rules
from notify.outbox import enqueue
from portal.models import PortalOtp, PortalSession
from radbill import audit
from radbill.crypto import SecretBox
from radbill.errors import DomainError

SESSION_LIFETIME = dt.timedelta(hours=12)
OTP_LIFETIME = dt.timedelta(minutes=5)
OTP_TRIES = 5
OTP_PER_WINDOW = 3
OTP_WINDOW = dt.timedelta(minutes=15)
MAX_NAME = 64
MAX_PASSWORD = 256
BARRED = (SubscriberStatus.DISABLED, SubscriberStatus.TERMINATED)
_DUMMY = "radbill-no-such-subscriber"


class LoginFailed(DomainError):
    """Wrong username or password (or code); one message for every reason."""


class LoginThrottled(DomainError):
    """Too many recent failures from this address or for this account."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts: try again in {retry_after} seconds")
        self.retry_after = retry_after


def actor(sub: Subscriber) -> str:
    """How the audit log names a subscriber acting in the portal."""
    return f"subscriber:{sub.username}"[:64]


def _keys(name: str, address: str | None) -> list[str]:
    return throttle.keys(f"portal/{name.strip().lower()[:MAX_NAME]}", address)


def _check_throttle(session: Session, keys: list[str], now: dt.datetime) -> None:
    wait = throttle.wait(session, keys, now)
    if wait > dt.timedelta(0):
        raise LoginThrottled(max(1, int(wait.total_seconds() + 0.999)))


def authenticate(session: Session, box: SecretBox, username: str, password: str,
                 now: dt.datetime, *, address: str | None) -> Subscriber:
    """The subscriber whose PPPoE/Hotspot credentials these are. Raises LoginThrottled
    (nothing counted) or LoginFailed (counted: the caller commits)."""
    name = (username or "").strip()[:MAX_NAME]
    password = (password or "")[:MAX_PASSWORD]
    keys = _keys(name, address)
    _check_throttle(session, keys, now)
    sub = None
    if name and "\x00" not in name:
        sub = session.scalars(select(Subscriber).where(
            func.lower(Subscriber.username) == name.lower())).unique().one_or_none()
    stored = _DUMMY
    if sub is not None:
        try:
            stored = box.decrypt(sub.password_enc)
        except Exception:  # noqa: BLE001 - an undecryptable password matches nothing
            stored = _DUMMY
    ok = hmac.compare_digest(stored.encode(), password.encode()) and sub is not None
    if not ok or sub is None or sub.status in BARRED:
        throttle.failed(session, keys, now)
        raise LoginFailed("wrong username or password")
    throttle.succeeded(session, f"portal/{name.lower()}", address)
    return sub


# -- one-time codes -------------------------------------------------------------------------


def _code_hash(secret: bytes, otp_id: int, code: str) -> str:
    return hmac.new(secret, f"{otp_id}:{code}".encode(), hashlib.sha256).hexdigest()


def phone_variants(msisdn: str) -> list[str]:
    """How a normalised number may have been typed into an account (``+8801...``,
    ``8801...``, ``01...``; ``+91...``, ``91...``, the 10 digits, ``0`` and the 10)."""
    out = [msisdn, f"+{msisdn}"]
    if msisdn.startswith("880"):
        out.append("0" + msisdn[3:])
    elif msisdn.startswith("91"):
        out += [msisdn[2:], "0" + msisdn[2:]]
    return out


def accounts_of(session: Session, msisdn: str) -> list[Subscriber]:
    """The accounts (not disabled or terminated) whose phone is *msisdn* (at most 20)."""
    return list(session.scalars(
        select(Subscriber).where(Subscriber.phone.in_(phone_variants(msisdn)),
                                 Subscriber.status.not_in(BARRED))
        .order_by(Subscriber.username).limit(20)).unique())


def normalise(phone: str, country: str) -> str | None:
    """The number as an MSISDN, or None if it cannot be one."""
    try:
        return rules.normalise_msisdn((phone or "").strip()[:32], country)
    except rules.InvalidNumber:
        return None


def send_code(session: Session, secret: bytes, phone: str, country: str, now: dt.datetime,
              *, address: str | None) -> None:
    """Send a login code to *phone* if accounts use it and it has not had too many codes
    lately; answers the same (nothing) either way. Raises LoginThrottled when the address is
    held back by failures."""
    msisdn = normalise(phone, country)
    keys = _keys(f"otp:{msisdn or phone[:32]}", address)
    _check_throttle(session, keys, now)
    if msisdn is None:
        return
    recent = session.scalar(select(func.count()).where(
        PortalOtp.phone == msisdn, PortalOtp.created_at > now - OTP_WINDOW)) or 0
    if recent >= OTP_PER_WINDOW:
        return
    subs = accounts_of(session, msisdn)
    if not subs:
        return
    code = f"{secrets.randbelow(1_000_000):06d}"
    otp = PortalOtp(phone=msisdn, code_hash="", created_at=now, expires_at=now + OTP_LIFETIME,
                    attempts=0)
    session.add(otp)
    session.flush()
    otp.code_hash = _code_hash(secret, otp.id, code)
    # One message, to the number as the first account holds it (all hold the same number).
    enqueue(session, subs[0], "otp", f"otp:{otp.id}", code=code,
            send_by=otp.expires_at.isoformat())  # a dead code is not worth sending
    audit.record(session, actor=actor(subs[0]), action="portal.otp_sent", entity="subscriber",
                 entity_id=subs[0].id, after={"phone": msisdn})
    # Spent and expired codes are dead weight.
    session.execute(delete(PortalOtp).where(PortalOtp.expires_at < now - OTP_WINDOW))


def verify_code(session: Session, secret: bytes, phone: str, code: str, country: str,
                now: dt.datetime, *, address: str | None) -> list[Subscriber]:
    """The accounts of *phone* if *code* is its live code (which is then spent). Raises
    LoginThrottled or LoginFailed (counted: the caller commits)."""
    msisdn = normalise(phone, country)
    keys = _keys(f"otp:{msisdn or phone[:32]}", address)
    _check_throttle(session, keys, now)
    code = (code or "").strip()[:12]
    otp = None
    if msisdn is not None:
        otp = session.scalars(select(PortalOtp).where(
            PortalOtp.phone == msisdn, PortalOtp.used_at.is_(None),
            PortalOtp.expires_at > now).order_by(PortalOtp.created_at.desc(),
                                                 PortalOtp.id.desc())
            .limit(1).with_for_update()).one_or_none()
    if otp is None or otp.attempts >= OTP_TRIES or not hmac.compare_digest(
            otp.code_hash, _code_hash(secret, otp.id, code)):
        if otp is not None:
            otp.attempts += 1
        throttle.failed(session, keys, now)
        raise LoginFailed("wrong or expired code")
    otp.used_at = now
    subs = accounts_of(session, otp.phone)
    if not subs:
        raise LoginFailed("wrong or expired code")
    return subs


# -- sessions -------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def start_session(session: Session, sub: Subscriber, method: str, now: dt.datetime,
                  *, address: str | None) -> str:
    """A new portal session for *sub*; returns the id for the cookie."""
    sid = secrets.token_urlsafe(32)
    session.add(PortalSession(id_hash=_sha(sid), subscriber_id=sub.id, created_at=now,
                              expires_at=now + SESSION_LIFETIME, method=method))
    audit.record(session, actor=actor(sub), action="portal.login", entity="subscriber",
                 entity_id=sub.id, after={"method": method, "address": address})
    session.execute(delete(PortalSession).where(PortalSession.expires_at < now))
    return sid


def session_subscriber(session: Session, sid: str, now: dt.datetime) -> Subscriber | None:
    """The subscriber of a live portal session (None if ended, expired or barred)."""
    row = session.get(PortalSession, _sha(sid[:128]))
    if row is None or row.expires_at <= now:
        return None
    sub = session.get(Subscriber, row.subscriber_id)
    if sub is None or sub.status in BARRED:
        return None
    return sub


def end_session(session: Session, sid: str, sub: Subscriber | None = None) -> None:
    """Log out: the session is gone for good."""
    session.execute(delete(PortalSession).where(PortalSession.id_hash == _sha(sid[:128])))
    if sub is not None:
        audit.record(session, actor=actor(sub), action="portal.logout", entity="subscriber",
                     entity_id=sub.id)


def end_sessions_of(session: Session, subscriber_id: int) -> int:
    """End every portal session of a subscriber (after a password change)."""
    result = session.execute(delete(PortalSession).where(
        or_(PortalSession.subscriber_id == subscriber_id)))
    return int(getattr(result, "rowcount", 0) or 0)
