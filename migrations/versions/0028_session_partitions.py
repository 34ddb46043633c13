"""session_partitions: radius_sessions partitioned by month of started_at on PostgreSQL, and
radius_session_keys, the session key unique across every month (both databases).

PostgreSQL: the table is rebuilt as a partitioned table (RANGE on started_at, one partition a
month, radius_sessions_YYYY_MM, from the oldest session's month (at most 60 months back) to two
months ahead, plus radius_sessions_default), its rows copied, the old table dropped, the primary
key (id, started_at) and the indexes built on the parent, the id sequence kept (the next id is
the one the old table would have given). The copy holds writers off for its whole length:
`radbill db upgrade` lists it (INSERT .. SELECT on a big table) and refuses it at 100,000 rows
or more without --allow-long-locks. A new database runs it on an empty table.

Both databases: the unique session key moves from radius_sessions to radius_session_keys
(nas_ip, acct_session_id, username) -> (session_id, started_at), filled from the sessions.

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-30 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from radbill.db import UTCDateTime

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

UNIQUE_KEY = "uq_radius_sessions_nas_ip_acct_session_id_username"
# The indexes of radius_sessions at 0027, rebuilt on the partitioned parent.
INDEXES = (
    ("ix_radius_sessions_closed", "(stopped_at) WHERE stopped_at IS NOT NULL"),
    ("ix_radius_sessions_framed_ip_open", "(framed_ip, stopped_at)"),
    ("ix_radius_sessions_live_nas", "(nas_ip) WHERE stopped_at IS NULL"),
    ("ix_radius_sessions_live_subscriber", "(subscriber_id) WHERE stopped_at IS NULL"),
    ("ix_radius_sessions_lower_open", "(lower(username::text), stopped_at)"),
    ("ix_radius_sessions_nas_open", "(nas_ip, stopped_at)"),
    ("ix_radius_sessions_nas_reboot",
     "(nas_ip, stopped_at) WHERE terminate_cause::text = 'NAS-Reboot'::text"),
    ("ix_radius_sessions_nas_username", "(nas_ip, username)"),
    ("ix_radius_sessions_online", "(nas_ip, username) WHERE stopped_at IS NULL"),
    ("ix_radius_sessions_open", "(username, stopped_at)"),
    ("ix_radius_sessions_state_seq", "(state_seq)"),
    ("ix_radius_sessions_subscriber_id", "(subscriber_id)"),
    ("ix_radius_sessions_subscriber_stopped", "(subscriber_id, stopped_at, nas_ip)"),
)

# Server-side (so the migration renders offline for `radbill db check`): one partition per
# month from the oldest session's (at most 60 months back: older ones, a NAS clock in the past,
# go to the DEFAULT partition) to two months ahead of now, UTC, fillfactor 70 (0025).
PARTITIONS = """
DO $$
DECLARE
    last date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months')::date;
    m date;
BEGIN
    SELECT date_trunc('month', min(started_at) AT TIME ZONE 'UTC')::date INTO m
        FROM radius_sessions;
    m := greatest(least(coalesce(m, last), last - interval '2 months'),
                  last - interval '60 months');
    WHILE m <= last LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF radius_sessions_new FOR VALUES FROM (%L) '
                       'TO (%L) WITH (fillfactor = 70)',
                       'radius_sessions_' || to_char(m, 'YYYY_MM'),
                       m::timestamp AT TIME ZONE 'UTC',
                       (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        m := m + interval '1 month';
    END LOOP;
END $$
"""


def _key_table() -> None:
    op.create_table(
        "radius_session_keys",
        sa.Column("nas_ip", sa.String(45), nullable=False),
        sa.Column("acct_session_id", sa.String(253), nullable=False),
        sa.Column("username", sa.String(253), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nas_ip", "acct_session_id", "username",
                                name="pk_radius_session_keys"),
    )


def upgrade() -> None:
    _key_table()
    if op.get_context().dialect.name != "postgresql":
        op.execute("INSERT INTO radius_session_keys (nas_ip, acct_session_id, username, "
                   "session_id, started_at) SELECT nas_ip, acct_session_id, username, id, "
                   "started_at FROM radius_sessions")
        op.create_index("ix_radius_session_keys_started_at", "radius_session_keys",
                        ["started_at"])
        with op.batch_alter_table("radius_sessions") as batch:
            batch.drop_constraint(UNIQUE_KEY, type_="unique")
        return
    # writers wait from here to the commit: a row written during the copy would be lost
    op.execute("LOCK TABLE radius_sessions IN EXCLUSIVE MODE")
    # the new table is filled beside the old one (INSERT .. SELECT FROM radius_sessions: what
    # lock_risks reports for a big table), then takes its name
    op.execute("CREATE TABLE radius_sessions_new (LIKE radius_sessions INCLUDING DEFAULTS) "
               "PARTITION BY RANGE (started_at)")
    op.execute(PARTITIONS)
    op.execute("CREATE TABLE radius_sessions_default PARTITION OF radius_sessions_new "
               "DEFAULT WITH (fillfactor = 70)")
    op.execute("INSERT INTO radius_sessions_new SELECT * FROM radius_sessions")
    op.execute("INSERT INTO radius_session_keys (nas_ip, acct_session_id, username, "
               "session_id, started_at) SELECT nas_ip, acct_session_id, username, id, "
               "started_at FROM radius_sessions")
    op.execute("ALTER SEQUENCE radius_sessions_id_seq OWNED BY NONE")  # kept: the same ids
    op.execute("DROP TABLE radius_sessions")
    op.execute("ALTER TABLE radius_sessions_new RENAME TO radius_sessions")
    op.execute("ALTER TABLE radius_sessions ADD CONSTRAINT pk_radius_sessions "
               "PRIMARY KEY (id, started_at)")
    for name, body in INDEXES:
        op.execute(f"CREATE INDEX {name} ON radius_sessions {body}")
    op.execute("ALTER SEQUENCE radius_sessions_id_seq OWNED BY radius_sessions.id")
    op.create_index("ix_radius_session_keys_started_at", "radius_session_keys",
                    ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_radius_session_keys_started_at", "radius_session_keys")
    op.drop_table("radius_session_keys")
    if op.get_context().dialect.name != "postgresql":
        with op.batch_alter_table("radius_sessions") as batch:
            batch.create_unique_constraint(UNIQUE_KEY,
                                           ["nas_ip", "acct_session_id", "username"])
        return
    op.execute("ALTER SEQUENCE radius_sessions_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE radius_sessions RENAME TO radius_sessions_part")
    op.execute("ALTER TABLE radius_sessions_part RENAME CONSTRAINT pk_radius_sessions "
               "TO pk_radius_sessions_part")
    for name, _ in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_part")
    op.execute("CREATE TABLE radius_sessions (LIKE radius_sessions_part INCLUDING DEFAULTS) "
               "WITH (fillfactor = 70)")
    op.execute("INSERT INTO radius_sessions SELECT * FROM radius_sessions_part")
    op.execute("DROP TABLE radius_sessions_part")
    op.execute("ALTER TABLE radius_sessions ADD CONSTRAINT pk_radius_sessions PRIMARY KEY (id)")
    op.execute(f"ALTER TABLE radius_sessions ADD CONSTRAINT {UNIQUE_KEY} "
               "UNIQUE (nas_ip, acct_session_id, username)")
    for name, body in INDEXES:
        op.execute(f"CREATE INDEX {name} ON radius_sessions {body}")
    op.execute("ALTER SEQUENCE radius_sessions_id_seq OWNED BY radius_sessions.id")
