"""Staff models: the ISP's operators, their browser sessions, their API tokens and the login
throttle."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from radbill.db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    """What a staff user may do (see ``admin.roles.PERMISSIONS``)."""

    ADMIN = "admin"  # everything, including plans, NAS devices and staff
    BILLING = "billing"  # subscribers, payments, promises, plan changes
    NOC = "noc"  # read-only: the network operations centre looks, it does not touch


class StaffUser(Base):
    """An operator who logs in to the admin UI or owns API tokens."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id, in the PHC string format argon2-cffi writes (parameters included).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'billing', 'noc')", name="role_known"),
    )


class StaffSession(Base):
    """A logged-in browser. The cookie carries the random id; only its SHA-256 is stored, so a
    copy of the database does not log anyone in. Deleted at logout."""

    __tablename__ = "staff_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for the JSON API, acting as its staff user with that user's role. Only
    the SHA-256 of the token is stored; the token is shown once when created. It stops working
    when revoked, when it expires, or while its user is disabled."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Written at most once a minute per token (see admin.users.token_user): a busy
    # integration must not turn every API read into a write.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginThrottle(Base):
    """Failed logins counted per client address, per (name, address) and per name, with the
    time the next attempt is allowed (see :mod:`admin.throttle`). Keyed by the *typed* name,
    whether or not such a user exists, so a throttled answer tells nothing about accounts."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
