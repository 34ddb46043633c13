"""admin hardening: payment-link keys, login throttle, token expiry, no account lock

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Every change here is done in place on SQLite too (ADD/DROP COLUMN, CREATE INDEX): a batch
# rebuild of invoices or staff_users would drop and recreate tables that others reference,
# and with foreign keys on, dropping staff_users would cascade to its sessions and tokens.


def upgrade() -> None:
    # Invoices issued before this revision keep their number links (see payments.web.pay).
    op.add_column('invoices', sa.Column('pay_token', sa.String(length=32), nullable=True))
    op.create_index('uq_invoices_pay_token', 'invoices', ['pay_token'], unique=True)
    op.add_column('api_tokens', sa.Column('expires_at', sa.DateTime(timezone=True),
                                          nullable=True))
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    op.create_index(op.f('ix_login_throttle_last_failure_at'), 'login_throttle',
                    ['last_failure_at'], unique=False)
    # The hard account lock is gone (admin.throttle replaces it).
    op.drop_column('staff_users', 'locked_until')
    op.drop_column('staff_users', 'failed_logins')


def downgrade() -> None:
    op.add_column('staff_users', sa.Column('failed_logins', sa.Integer(), nullable=False,
                                           server_default='0'))
    op.add_column('staff_users', sa.Column('locked_until', sa.DateTime(timezone=True),
                                           nullable=True))
    op.drop_index(op.f('ix_login_throttle_last_failure_at'), table_name='login_throttle')
    op.drop_table('login_throttle')
    op.drop_column('api_tokens', 'expires_at')
    op.drop_index('uq_invoices_pay_token', table_name='invoices')
    op.drop_column('invoices', 'pay_token')
