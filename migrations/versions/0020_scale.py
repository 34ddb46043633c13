"""Indexes for operator pages at a million subscribers: the subscriber list filtered by status
or plan, payments by day, subscribers seen on a NAS, and the open sessions alone (partial)

Revision ID: 0020
Revises: 0018
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0018'
branch_labels = None
depends_on = None

OPEN = sa.text("stopped_at IS NULL")


def upgrade() -> None:
    op.create_index('ix_subscribers_status_username', 'subscribers', ['status', 'username'])
    op.create_index('ix_subscribers_plan_username', 'subscribers', ['plan_id', 'username'])
    op.create_index('ix_radius_sessions_nas_username', 'radius_sessions',
                    ['nas_ip', 'username'])
    op.create_index('ix_radius_sessions_online', 'radius_sessions', ['nas_ip', 'username'],
                    postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index('ix_radius_sessions_online', table_name='radius_sessions')
    op.drop_index('ix_radius_sessions_nas_username', table_name='radius_sessions')
    op.drop_index('ix_subscribers_plan_username', table_name='subscribers')
    op.drop_index('ix_subscribers_status_username', table_name='subscribers')
