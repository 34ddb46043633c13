"""fewer session indexes: drop three indexes of radius_sessions that no query needs

Every new session and every Stop (which moves ``stopped_at``: not a HOT update) writes an
entry into each index of ``radius_sessions``, a large part of what the accounting ingester
costs the database (issue 14). An audit of the 55 statements that read the table (the code's
own, captured, and the raw-SQL readers; EXPLAIN with each index dropped in turn, on 200,000
sessions in three monthly partitions) found three that none of them needs:

* ``ix_radius_sessions_subscriber_id`` (subscriber_id): ``ix_radius_sessions_subscriber_
  stopped`` (subscriber_id, stopped_at, nas_ip) has the same first column and was always
  chosen; no plan changed without it.
* ``ix_radius_sessions_nas_open`` (nas_ip, stopped_at): no query asks for a NAS's sessions by
  stop time; no plan changed without it.
* ``ix_radius_sessions_live_nas`` (nas_ip) WHERE open: ``ix_radius_sessions_online`` (nas_ip,
  username) WHERE open serves the same queries (Accounting-On's close, the reconciler, the
  open-session count) at 1-4% more planner cost, the same plan shapes.

Index entries written per new session: 12.2 before, 9.2 after; per Stop 10.1 and 8.1 (WAL
bytes 1,084 and 892 per new session, 1,178 and 999 per Stop). Dropping takes the table's
lock for a moment (no scan); the downgrade builds them again.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None

DROPPED = (
    ("ix_radius_sessions_subscriber_id", "(subscriber_id)"),
    ("ix_radius_sessions_nas_open", "(nas_ip, stopped_at)"),
    ("ix_radius_sessions_live_nas", "(nas_ip) WHERE stopped_at IS NULL"),
)


def upgrade() -> None:
    for name, _ in DROPPED:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def downgrade() -> None:
    for name, body in DROPPED:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON radius_sessions {body}")
