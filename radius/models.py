"""RADIUS models: NAS devices, accounting sessions, post-auth log, detail-file cursors, and
the records the ingester set aside."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from radbill import crypto
from radbill.db import Base, BigIntPK, UTCDateTime, utcnow


class Nas(Base):
    """A network access server (MikroTik router, BRAS) allowed to talk RADIUS to us."""

    __tablename__ = "nas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ip_address: Mapped[str] = mapped_column(String(45), unique=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    nas_type: Mapped[str] = mapped_column(String(16), default="mikrotik")
    coa_port: Mapped[int] = mapped_column(Integer, default=3799)
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    api_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    api_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    api_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # API-SSL: none | anon (no router certificate, anonymous DH; or one left unchecked) |
    # verify (against api_tls_ca, the system CAs, or the pinned SHA-256 fingerprint).
    api_tls_mode: Mapped[str] = mapped_column(String(8), default="none")
    api_tls_ca: Mapped[str | None] = mapped_column(Text, nullable=True)  # PEM
    api_tls_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # How enforcement reaches this NAS first: "coa" (RFC 5176, the API only as fallback) or
    # "api" (RouterOS API only, for routers with CoA closed).
    enforce_via: Mapped[str] = mapped_column(String(8), default="coa")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RadiusSession(Base):
    """One accounting session, keyed on (NAS, Acct-Session-Id, User-Name).

    Counters are 64-bit (Gigawords folded in) and only ever grow. ``state_seq`` stamps the
    session-feed value at which the session last opened or closed, so the RADIUS snapshot can
    keep simultaneous-use counts without scanning the table.
    """

    __tablename__ = "radius_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    nas_ip: Mapped[str] = mapped_column(String(45))
    # Text columns hold what a RADIUS attribute can (253 octets): NAS send NAS-Port-Id such as
    # "ether1-vlan100 pppoe-server <service name>" and Acct-Session-Ids well over 64.
    acct_session_id: Mapped[str] = mapped_column(String(253))
    username: Mapped[str] = mapped_column(String(253))
    # no index of its own: ix_radius_sessions_subscriber_stopped begins with it (0030)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    framed_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    calling_station_id: Mapped[str | None] = mapped_column(String(253), nullable=True)
    nas_port_id: Mapped[str | None] = mapped_column(String(253), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    session_time: Mapped[int] = mapped_column(BigInteger, default=0)
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    input_packets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_packets: Mapped[int] = mapped_column(BigInteger, default=0)
    terminate_cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state_seq: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # When enforcement last changed this session's policy live (CoA-ACK or API): a session
    # older than the subscriber's latest enforcement request is current only if this is newer.
    enforced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # No unique session key here: on PostgreSQL the table is partitioned by month of
    # started_at (migration 0028; radius.partitions), and a partitioned table's unique keys
    # must hold the partition key. The key is unique in RadiusSessionKey, on both databases.
    __table_args__ = (
        Index("ix_radius_sessions_open", "username", "stopped_at"),
        # the walled-garden page finds the visitor by source address (portal.garden)
        Index("ix_radius_sessions_framed_ip_open", "framed_ip", "stopped_at"),
        # the snapshot reads a user's open sessions whatever the case of the User-Name sent
        Index("ix_radius_sessions_lower_open", func.lower(text("username")), "stopped_at"),
        # The reconciliation reports (reports/): the open sessions alone, by subscriber (a few
        # per cent of the table; no column an Interim changes, so Interims stay HOT updates
        # on PostgreSQL; by NAS: ix_radius_sessions_online below); a subscriber's sessions
        # by end with the NAS (last seen, the NAS they were last on: read from the index
        # alone); the sessions an Accounting-On closed. Every index here is written by every
        # new session and every Stop: 0030 dropped three no query needed.
        Index("ix_radius_sessions_live_subscriber", "subscriber_id",
              postgresql_where=text("stopped_at IS NULL"),
              sqlite_where=text("stopped_at IS NULL")),
        Index("ix_radius_sessions_subscriber_stopped", "subscriber_id", "stopped_at", "nas_ip"),
        Index("ix_radius_sessions_nas_reboot", "nas_ip", "stopped_at",
              postgresql_where=text("terminate_cause = 'NAS-Reboot'"),
              sqlite_where=text("terminate_cause = 'NAS-Reboot'")),
        # subscribers seen on a NAS (the admin's NAS filter: a semi-join, no list of names)
        Index("ix_radius_sessions_nas_username", "nas_ip", "username"),
        # the open sessions only (a few percent of the rows): who is online, how many
        Index("ix_radius_sessions_online", "nas_ip", "username",
              postgresql_where=text("stopped_at IS NULL"),
              sqlite_where=text("stopped_at IS NULL")),
        # retention deletes the closed sessions oldest first, in bounded batches
        Index("ix_radius_sessions_closed", "stopped_at",
              postgresql_where=text("stopped_at IS NOT NULL"),
              sqlite_where=text("stopped_at IS NOT NULL")),
    )


class RadiusSessionKey(Base):
    """The session key (NAS, Acct-Session-Id, User-Name), unique across every month, and the
    session row it names: (id, started_at), the row's partition key on PostgreSQL, so the
    ingester's locked load reaches the row in its own partition. The ingester claims a new
    key here in the transaction that inserts the session: of two ingesters creating the same
    session at once, the second gets the unique-key conflict and is re-applied as an update.
    Its rows go with their sessions (retention)."""

    __tablename__ = "radius_session_keys"

    nas_ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    acct_session_id: Mapped[str] = mapped_column(String(253), primary_key=True)
    username: Mapped[str] = mapped_column(String(253), primary_key=True)
    session_id: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # a month's keys, removed with its partition
    __table_args__ = (Index("ix_radius_session_keys_started_at", "started_at"),)


class PostAuth(Base):
    """One authentication decision, with the reason, as FreeRADIUS logged it."""

    __tablename__ = "radius_postauth"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    username: Mapped[str] = mapped_column(String(253), index=True)
    nas_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    calling_station_id: Mapped[str | None] = mapped_column(String(253), nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # accept | reject
    reason: Mapped[str] = mapped_column(String(64))
    reply_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rate_limit: Mapped[str | None] = mapped_column(String(128), nullable=True)

    # a subscriber's last login (the suspended-online report)
    __table_args__ = (Index("ix_radius_postauth_username_at", "username", "at"),)


class PostAuthDay(Base):
    """One user's authentication decisions on one day (the ISP's local date), summarised
    from ``radius_postauth`` rows older than the post-auth retention (``retention/``): how
    many were accepted and rejected, the first and the last, and the last accept, so the
    subscriber page's "last logins" and the reports keep working once the rows are gone."""

    __tablename__ = "radius_postauth_days"

    username: Mapped[str] = mapped_column(String(253), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    accepts: Mapped[int] = mapped_column(Integer, default=0)
    rejects: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_decision: Mapped[str] = mapped_column(String(16))
    last_reason: Mapped[str] = mapped_column(String(64))
    last_reply_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_nas_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    last_calling_station_id: Mapped[str | None] = mapped_column(String(253), nullable=True)
    last_auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_accept_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_accept_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # pruning the summaries themselves, oldest day first
    __table_args__ = (Index("ix_radius_postauth_days_day", "day"),)

    # Read like a PostAuth row (its day's last decision), so "last logins" lists either.
    @property
    def at(self) -> dt.datetime:
        return self.last_at

    @property
    def decision(self) -> str:
        return self.last_decision

    @property
    def reason(self) -> str:
        return self.last_reason

    @property
    def reply_message(self) -> str | None:
        return self.last_reply_message

    @property
    def nas_ip(self) -> str | None:
        return self.last_nas_ip

    @property
    def calling_station_id(self) -> str | None:
        return self.last_calling_station_id

    @property
    def auth_method(self) -> str | None:
        return self.last_auth_method


class DetailCursor(Base):
    """How far the ingester has read a stream of FreeRADIUS detail files.

    Updated in the same transaction as the records it covers, so a crash replays at most
    the uncommitted batch, and replays are harmless because applying a record is idempotent.
    Each RADIUS node has its own spool, so its own cursors (``node``: its name; "" is the
    single node of a version before nodes had names).
    """

    __tablename__ = "radius_detail_cursors"

    node: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255), default="")
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RejectedRecord(Base):
    """A detail-file record the ingester could not apply, set aside with the reason.

    The record is kept as JSON text with every non-ASCII character escaped, so the bytes that
    made it fail (a NUL, invalid UTF-8) cannot make storing it fail too; it is bounded
    (``radius.rejects.MAX_RECORD_CHARS``). (stream, file, offset) is where it was read, unique
    so a spool read twice does not set a record aside twice. ``status`` is ``pending`` until a
    replay applies it (``replayed``); a replay that fails again leaves it pending with the new
    ``reason``.
    """

    __tablename__ = "radius_rejected_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(255))
    offset: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | replayed
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # replays tried
    replayed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("stream", "file_name", "offset"),
        Index("ix_radius_rejected_records_status", "status", "id"),
    )


crypto.encrypted(Nas.secret_enc, Nas.api_password_enc)
