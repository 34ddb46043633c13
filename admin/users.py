"""Staff service: users, password checks with throttling, browser sessions and API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). Failed logins are slowed down by :mod:`admin.throttle` rather than locking the
account: a lock would let anyone who knows a staff name keep that operator out.

Every login attempt that is not throttled verifies exactly one argon2 hash (the user's, or a
dummy one for an unknown name), and unknown names, wrong passwords and disabled accounts get
the same :class:`LoginFailed`: neither the answer nor its timing tells which names exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin import throttle
from admin.models import ApiToken, Role, StaffSession, StaffUser
from radbill import audit
from radbill.db import utcnow
from radbill.errors import Conflict, DomainError, InvalidInput, NotFound

SESSION_LIFETIME = dt.timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is only load
TOKEN_LIFETIME = dt.timedelta(days=365)  # the default; ``None`` asks for a token that never ends
LAST_USED_EVERY = dt.timedelta(minutes=1)
_NAME_RE = re.compile(r"^[A-Za-z0-9._@\-]{1,64}$")

# Module level so tests can swap in cheaper parameters (still argon2id).
hasher = PasswordHasher()
_dummy_hashes: dict[tuple[object, ...], str] = {}


def dummy_hash() -> str:
    """A hash made with the current hasher's parameters, verified when the name is unknown so
    that a wrong name costs as much as a wrong password."""
    params = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len,
              hasher.salt_len, hasher.type)
    if params not in _dummy_hashes:
        _dummy_hashes[params] = hasher.hash("radbill-no-such-user")
    return _dummy_hashes[params]


class LoginFailed(DomainError):
    """Wrong username or password, or the account is disabled. One message for all, so the
    page does not tell an attacker which usernames exist."""


class LoginThrottled(DomainError):
    """Too many recent failures from this address or for this name: wait ``retry_after``
    seconds. Raised the same way whether or not the name exists."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} seconds")
        self.retry_after = retry_after


def sha256(text: str) -> str:
    """Hex SHA-256 of *text* (how session ids and API tokens are stored)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD_LENGTH} characters")


def create_user(session: Session, username: str, password: str, role: str, *,
                actor: str) -> StaffUser:
    """Create a staff user with an argon2id password hash."""
    if not _NAME_RE.fullmatch(username or ""):
        raise InvalidInput(f"invalid staff username {username!r}: 1-64 letters, digits, . _ @ -")
    try:
        role_ = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}: use admin, billing or noc") from None
    _check_password(password)
    user = StaffUser(username=username, password_hash=hasher.hash(password), role=str(role_),
                     active=True)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise Conflict(f"staff user {username!r} already exists") from None
    audit.record(session, actor=actor, action="staff.create", entity="staff", entity_id=user.id,
                 after={"username": username, "role": str(role_)})
    return user


def list_users(session: Session) -> list[StaffUser]:
    """Every staff user, by name."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))


def get_user(session: Session, username: str) -> StaffUser:
    """The staff user called *username*."""
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)).one_or_none()
    if user is None:
        raise NotFound(f"unknown staff user {username!r}")
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(hasher.verify(password_hash, password or "-"))
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, username: str, password: str, now: dt.datetime, *,
                 address: str | None = None, trusted_device: bool = False) -> StaffUser:
    """The user, if *password* is right and the account is active. Otherwise the failure is
    counted (the caller commits it even though this raises) and :class:`LoginFailed` is
    raised; while the attempt's address or name must wait, :class:`LoginThrottled` is raised
    before any password is looked at. *trusted_device*: the browser logged in to this name
    before, so the per-name back-off (which strangers can raise) does not hold it."""
    keys = throttle.keys(username, address, trusted_device=trusted_device)
    pause = throttle.wait(session, keys, now)
    if pause > dt.timedelta(0):
        raise LoginThrottled(max(1, math.ceil(pause.total_seconds())))
    user = session.scalars(select(StaffUser).where(StaffUser.username == username[:64])
                           ).one_or_none()
    # One argon2 verification on every path, so that no answer comes back sooner.
    right = _verify(user.password_hash if user is not None else dummy_hash(), password)
    if user is None or not right or not user.active:
        throttle.failed(session, keys, now)
        raise LoginFailed("wrong username or password")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = now
    throttle.succeeded(session, username, address)
    return user


def start_session(session: Session, user: StaffUser, now: dt.datetime) -> str:
    """A new browser session for *user*; returns the random id for the cookie."""
    sid = secrets.token_urlsafe(32)
    session.add(StaffSession(id_hash=sha256(sid), user_id=user.id, created_at=now,
                             expires_at=now + SESSION_LIFETIME))
    audit.record(session, actor=user.username, action="staff.login", entity="staff",
                 entity_id=user.id)
    return sid


def session_user(session: Session, sid: str, now: dt.datetime) -> StaffUser | None:
    """The active user a session id belongs to, if the session is still valid."""
    row = session.get(StaffSession, sha256(sid))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(StaffUser, row.user_id)
    return user if user is not None and user.active else None


def end_session(session: Session, sid: str) -> None:
    """Log a browser session out (its cookie stops working at once)."""
    session.execute(delete(StaffSession).where(StaffSession.id_hash == sha256(sid)))


def _ended_sessions(session: Session, user: StaffUser) -> int:
    result = session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    return int(getattr(result, "rowcount", 0) or 0)


def set_active(session: Session, username: str, active: bool, *, actor: str,
               reason: str | None = None) -> StaffUser:
    """Disable or enable a staff user. Disabling ends the user's browser sessions at once and
    stops the user's API tokens (they work again when the user is enabled, unless revoked)."""
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)
                           .with_for_update()).one_or_none()
    if user is None:
        raise NotFound(f"unknown staff user {username!r}")
    if user.active == active:
        return user
    if not active and actor == username:
        raise InvalidInput("you cannot disable yourself")
    if not active and user.role == Role.ADMIN and session.scalar(
            select(func.count()).select_from(StaffUser).where(
                StaffUser.role == Role.ADMIN, StaffUser.active.is_(True))) == 1:
        raise Conflict(f"{username} is the last active admin")
    user.active = active
    ended = 0 if active else _ended_sessions(session, user)
    audit.record(session, actor=actor, action="staff.enable" if active else "staff.disable",
                 entity="staff", entity_id=user.id, before={"active": not active},
                 after={"active": active, "sessions_ended": ended}, reason=reason)
    return user


def set_password(session: Session, username: str, password: str, *, actor: str) -> StaffUser:
    """Give a staff user a new password; the user's browser sessions end (log in again)."""
    user = get_user(session, username)
    _check_password(password)
    user.password_hash = hasher.hash(password)
    ended = _ended_sessions(session, user)
    audit.record(session, actor=actor, action="staff.password", entity="staff",
                 entity_id=user.id, after={"sessions_ended": ended})
    return user


def unlock(session: Session, username: str, *, actor: str) -> int:
    """Forget the failed logins counted for *username* (its per-name and per-address-and-name
    back-off), so it can log in at once from anywhere. Returns how many counters went."""
    user = get_user(session, username)
    cleared = throttle.clear_name(session, username)
    audit.record(session, actor=actor, action="staff.unlock", entity="staff",
                 entity_id=user.id, after={"cleared": cleared})
    return cleared


def throttled(session: Session, now: dt.datetime) -> dict[str, dt.datetime]:
    """Staff names whose logins are being held back now, and until when."""
    return throttle.throttled_names(session, now)


def create_token(session: Session, username: str, name: str, *, actor: str,
                 now: dt.datetime | None = None,
                 lifetime: dt.timedelta | None = TOKEN_LIFETIME) -> str:
    """A new API token for *username*, valid for *lifetime* (None: until revoked); the
    returned token is shown once and never stored."""
    user = get_user(session, username)
    if not name or len(name) > 64:
        raise InvalidInput("a token needs a name of 1-64 characters")
    if lifetime is not None and lifetime <= dt.timedelta(0):
        raise InvalidInput("a token's lifetime must be at least a day")
    now = now or utcnow()
    token = "rbt_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=sha256(token), created_at=now,
                   expires_at=now + lifetime if lifetime is not None else None)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="staff.token", entity="staff", entity_id=user.id,
                 after={"token": name, "token_id": row.id, "expires_at": row.expires_at})
    return token


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never the token itself: only its hash is stored)."""

    id: int
    username: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def list_tokens(session: Session, username: str | None = None, *, limit: int = 500
                ) -> list[TokenInfo]:
    """API tokens, newest first, of one user or of everyone."""
    stmt = (select(ApiToken, StaffUser.username).join(StaffUser,
                                                      StaffUser.id == ApiToken.user_id)
            .order_by(ApiToken.id.desc()).limit(limit))
    if username is not None:
        stmt = stmt.where(StaffUser.username == get_user(session, username).username)
    return [TokenInfo(id=t.id, username=name, name=t.name, created_at=t.created_at,
                      expires_at=t.expires_at, last_used_at=t.last_used_at,
                      revoked_at=t.revoked_at)
            for t, name in session.execute(stmt)]


def revoke_token(session: Session, token_id: int, *, actor: str, now: dt.datetime | None = None
                 ) -> ApiToken:
    """Revoke API token *token_id* (from :func:`list_tokens`); it stops working at once."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"unknown API token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        audit.record(session, actor=actor, action="staff.token_revoke", entity="staff",
                     entity_id=row.user_id, after={"token": row.name, "token_id": row.id})
    return row


def token_user(session: Session, token: str, now: dt.datetime | None = None
               ) -> StaffUser | None:
    """The active user an unrevoked, unexpired API token belongs to; notes when the token was
    last used (at most once a minute, in the caller's transaction)."""
    now = now or utcnow()
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == sha256(token),
                                                 ApiToken.revoked_at.is_(None))).one_or_none()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active:
        return None
    if row.last_used_at is None or row.last_used_at <= now - LAST_USED_EVERY:
        row.last_used_at = now
    return user
