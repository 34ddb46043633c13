"""Staff service: users, password checks with lock-out, browser sessions and API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). After ``MAX_FAILED_LOGINS`` wrong passwords in a row an account is locked for
``LOCKOUT``; while locked even the right password is refused, so guessing gains nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin.models import ApiToken, Role, StaffSession, StaffUser
from radbill import audit
from radbill.errors import Conflict, DomainError, InvalidInput, NotFound

MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_LIFETIME = dt.timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
_NAME_RE = re.compile(r"^[A-Za-z0-9._@\-]{1,64}$")

# Module level so tests can swap in cheaper parameters (still argon2id).
hasher = PasswordHasher()
# Verified when the username is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = hasher.hash("radbill-no-such-user")


class LoginFailed(DomainError):
    """Wrong username or password, or the account is locked or disabled. One message for all,
    so the page does not tell an attacker which usernames exist."""


def sha256(text: str) -> str:
    """Hex SHA-256 of *text* (how session ids and API tokens are stored)."""
    return hashlib.sha256(text.encode()).hexdigest()


def create_user(session: Session, username: str, password: str, role: str, *,
                actor: str) -> StaffUser:
    """Create a staff user with an argon2id password hash."""
    if not _NAME_RE.match(username or ""):
        raise InvalidInput(f"invalid staff username {username!r}: 1-64 letters, digits, . _ @ -")
    try:
        role_ = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}: use admin, billing or noc") from None
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = StaffUser(username=username, password_hash=hasher.hash(password), role=str(role_),
                     active=True, failed_logins=0)
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


def authenticate(session: Session, username: str, password: str, now: dt.datetime
                 ) -> StaffUser:
    """The user, if *password* is right and the account is usable; otherwise count the failure
    (the caller commits it even though it raises) and raise :class:`LoginFailed`."""
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)
                           .with_for_update()).one_or_none()
    if user is None:
        with contextlib.suppress(VerificationError):
            hasher.verify(_DUMMY_HASH, password or "-")
        raise LoginFailed("wrong username or password")
    if user.locked_until is not None and user.locked_until > now:
        raise LoginFailed("wrong username or password, or the account is locked: "
                          "try again later")
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            audit.record(session, actor=username, action="staff.locked", entity="staff",
                         entity_id=user.id, after={"locked_until": user.locked_until},
                         reason=f"{MAX_FAILED_LOGINS} wrong passwords")
        raise LoginFailed("wrong username or password") from None
    if not user.active:
        raise LoginFailed("wrong username or password")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
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


def create_token(session: Session, username: str, name: str, *, actor: str) -> str:
    """A new API token for *username*; the returned token is shown once and never stored."""
    user = get_user(session, username)
    if not name or len(name) > 64:
        raise InvalidInput("a token needs a name of 1-64 characters")
    token = "rbt_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=sha256(token))
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="staff.token", entity="staff", entity_id=user.id,
                 after={"token": name, "token_id": row.id})
    return token


def token_user(session: Session, token: str) -> StaffUser | None:
    """The active user an unrevoked API token belongs to."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == sha256(token),
                                                 ApiToken.revoked_at.is_(None))).one_or_none()
    if row is None:
        return None
    user = session.get(StaffUser, row.user_id)
    return user if user is not None and user.active else None
