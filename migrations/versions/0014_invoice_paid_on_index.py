"""An index on invoices.paid_on: the overdue report of a past day reads what was open then
(not settled, or settled after that day)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_invoices_paid_on', 'invoices', ['paid_on'])


def downgrade() -> None:
    op.drop_index('ix_invoices_paid_on', table_name='invoices')
