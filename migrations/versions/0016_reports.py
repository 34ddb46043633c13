"""Indexes for the reconciliation reports: open sessions by subscriber and by NAS (partial),
a subscriber's sessions by end (with the NAS), sessions closed by an Accounting-On, a user's
last login, invoices by issue day, payments by receipt, and the ledger's amounts by invoice,
payment and subscriber (summed from the indexes alone)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

OPEN = sa.text("stopped_at IS NULL")
REBOOT = sa.text("terminate_cause = 'NAS-Reboot'")


def upgrade() -> None:
    op.create_index('ix_radius_sessions_live_subscriber', 'radius_sessions', ['subscriber_id'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index('ix_radius_sessions_live_nas', 'radius_sessions', ['nas_ip'],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index('ix_radius_sessions_subscriber_stopped', 'radius_sessions',
                    ['subscriber_id', 'stopped_at', 'nas_ip'])
    op.create_index('ix_radius_sessions_nas_reboot', 'radius_sessions', ['nas_ip', 'stopped_at'],
                    postgresql_where=REBOOT, sqlite_where=REBOOT)
    op.create_index('ix_radius_postauth_username_at', 'radius_postauth', ['username', 'at'])
    op.create_index('ix_invoices_issued_on', 'invoices', ['issued_on'])
    op.create_index('ix_payments_received_at', 'payments', ['received_at'])
    op.create_index('ix_ledger_entries_invoice_kind_amount', 'ledger_entries',
                    ['invoice_id', 'kind', 'amount'])
    op.create_index('ix_ledger_entries_payment_kind_amount', 'ledger_entries',
                    ['payment_id', 'kind', 'amount'])
    op.create_index('ix_ledger_entries_subscriber_amount', 'ledger_entries',
                    ['subscriber_id', 'amount'])


def downgrade() -> None:
    op.drop_index('ix_ledger_entries_subscriber_amount', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_payment_kind_amount', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_invoice_kind_amount', table_name='ledger_entries')
    op.drop_index('ix_payments_received_at', table_name='payments')
    op.drop_index('ix_invoices_issued_on', table_name='invoices')
    op.drop_index('ix_radius_postauth_username_at', table_name='radius_postauth')
    op.drop_index('ix_radius_sessions_nas_reboot', table_name='radius_sessions')
    op.drop_index('ix_radius_sessions_subscriber_stopped', table_name='radius_sessions')
    op.drop_index('ix_radius_sessions_live_nas', table_name='radius_sessions')
    op.drop_index('ix_radius_sessions_live_subscriber', table_name='radius_sessions')
