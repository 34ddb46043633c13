"""usage_session_days.run_start, run_seen: a session's daily marks per run (its counters
from zero), so a NAS that reboots and reuses an Acct-Session-Id has its new run counted in
full instead of under the old run's peak. Existing marks take their session's start and
last update from radius_sessions.

Revision ID: 0026
Revises: 0022
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


BACKFILL_PG = """
UPDATE usage_session_days SET
  run_start = COALESCE((SELECT CAST(EXTRACT(EPOCH FROM r.started_at) AS BIGINT)
    FROM radius_sessions r WHERE r.nas_ip = usage_session_days.nas_ip
    AND r.acct_session_id = usage_session_days.acct_session_id
    AND r.username = usage_session_days.username), 0),
  run_seen = COALESCE((SELECT CAST(EXTRACT(EPOCH FROM r.updated_at) AS BIGINT)
    FROM radius_sessions r WHERE r.nas_ip = usage_session_days.nas_ip
    AND r.acct_session_id = usage_session_days.acct_session_id
    AND r.username = usage_session_days.username), 0)"""
# SQLite keeps UTC timestamps as naive text
BACKFILL_SQLITE = """
UPDATE usage_session_days SET
  run_start = COALESCE((SELECT CAST(strftime('%s', r.started_at) AS INTEGER)
    FROM radius_sessions r WHERE r.nas_ip = usage_session_days.nas_ip
    AND r.acct_session_id = usage_session_days.acct_session_id
    AND r.username = usage_session_days.username), 0),
  run_seen = COALESCE((SELECT CAST(strftime('%s', r.updated_at) AS INTEGER)
    FROM radius_sessions r WHERE r.nas_ip = usage_session_days.nas_ip
    AND r.acct_session_id = usage_session_days.acct_session_id
    AND r.username = usage_session_days.username), 0)"""


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default (SQLite has it), no batch rebuild.
    op.add_column('usage_session_days', sa.Column('run_start', sa.BigInteger(),
                                                  nullable=False, server_default='0'))
    op.add_column('usage_session_days', sa.Column('run_seen', sa.BigInteger(),
                                                  nullable=False, server_default='0'))
    op.execute(BACKFILL_PG if op.get_bind().dialect.name == 'postgresql' else BACKFILL_SQLITE)
    op.drop_index('uq_usage_session_days_key', table_name='usage_session_days')
    op.create_index('uq_usage_session_days_key', 'usage_session_days',
                    ['nas_ip', 'acct_session_id', 'username', 'run_start', 'day'], unique=True)


def downgrade() -> None:
    # One mark per session and day again: the newest run's is kept (the old arithmetic
    # cannot hold two).
    op.execute('DELETE FROM usage_session_days WHERE id NOT IN ('
               'SELECT max(id) FROM usage_session_days '
               'GROUP BY nas_ip, acct_session_id, username, day)')
    op.drop_index('uq_usage_session_days_key', table_name='usage_session_days')
    op.create_index('uq_usage_session_days_key', 'usage_session_days',
                    ['nas_ip', 'acct_session_id', 'username', 'day'], unique=True)
    with op.batch_alter_table('usage_session_days') as batch:
        batch.drop_column('run_seen')
        batch.drop_column('run_start')
