"""Retention: the post-auth summary per user and day (radius_postauth_days), and the indexes
the retention job deletes through, oldest first, in bounded batches (closed sessions, audit,
job runs, enforcement attempts, outbox and deliveries, usage per session and day)

On PostgreSQL each CREATE INDEX holds writes to its table until it is built: on a big
radius_sessions (or audit_log, ...) `radbill db upgrade` refuses it without
--allow-long-locks; run it in a maintenance window (how long it takes was not measured).

Revision ID: 0024
Revises: 0022
Create Date: 2026-11-30 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from radbill.db import UTCDateTime

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

CLOSED = sa.text("stopped_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        'radius_postauth_days',
        sa.Column('username', sa.String(253), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('accepts', sa.Integer(), nullable=False),
        sa.Column('rejects', sa.Integer(), nullable=False),
        sa.Column('first_at', UTCDateTime(), nullable=False),
        sa.Column('last_at', UTCDateTime(), nullable=False),
        sa.Column('last_decision', sa.String(16), nullable=False),
        sa.Column('last_reason', sa.String(64), nullable=False),
        sa.Column('last_reply_message', sa.Text(), nullable=True),
        sa.Column('last_nas_ip', sa.String(45), nullable=True),
        sa.Column('last_calling_station_id', sa.String(253), nullable=True),
        sa.Column('last_auth_method', sa.String(16), nullable=True),
        sa.Column('last_accept_at', UTCDateTime(), nullable=True),
        sa.Column('last_accept_reason', sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint('username', 'day', name=op.f('pk_radius_postauth_days')),
    )
    op.create_index('ix_radius_postauth_days_day', 'radius_postauth_days', ['day'])
    op.create_index('ix_radius_sessions_closed', 'radius_sessions', ['stopped_at'],
                    postgresql_where=CLOSED, sqlite_where=CLOSED)
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])
    op.create_index('ix_job_runs_started_at', 'job_runs', ['started_at'])
    op.create_index('ix_enforcement_attempts_at', 'enforcement_attempts', ['at'])
    op.create_index('ix_outbox_created_at', 'outbox', ['created_at'])
    op.create_index('ix_notify_deliveries_created_at', 'notify_deliveries', ['created_at'])
    op.create_index('ix_notify_deliveries_outbox_id', 'notify_deliveries', ['outbox_id'])
    op.create_index('ix_usage_session_days_day', 'usage_session_days', ['day'])


def downgrade() -> None:
    op.drop_index('ix_usage_session_days_day', table_name='usage_session_days')
    op.drop_index('ix_notify_deliveries_outbox_id', table_name='notify_deliveries')
    op.drop_index('ix_notify_deliveries_created_at', table_name='notify_deliveries')
    op.drop_index('ix_outbox_created_at', table_name='outbox')
    op.drop_index('ix_enforcement_attempts_at', table_name='enforcement_attempts')
    op.drop_index('ix_job_runs_started_at', table_name='job_runs')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_index('ix_radius_sessions_closed', table_name='radius_sessions')
    op.drop_index('ix_radius_postauth_days_day', table_name='radius_postauth_days')
    op.drop_table('radius_postauth_days')
