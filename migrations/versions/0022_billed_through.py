"""isp_settings.billed_through: the last day a billing run completed for. RADIUS holds a
prepaid cut-off the billing run has not reached (the scheduler was down), so an outage of
radbill's own scheduler never cuts subscribers whose invoices were never issued. And document
number series per financial year (financial_year_series, financial_year_start_month,
series_year)

Revision ID: 0022
Revises: 0020
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('isp_settings') as batch:
        batch.add_column(sa.Column('billed_through', sa.Date(), nullable=True))
        batch.add_column(sa.Column('financial_year_series', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('financial_year_start_month', sa.Integer(), nullable=False,
                                   server_default='7'))
        batch.add_column(sa.Column('series_year', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('isp_settings') as batch:
        batch.drop_column('series_year')
        batch.drop_column('financial_year_start_month')
        batch.drop_column('financial_year_series')
        batch.drop_column('billed_through')
