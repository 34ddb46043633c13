"""payment_day_totals and invoices.username: payment_day_totals: payments received per ISP-local day, currency and method (sum and
count), kept by billing.payments.record_payment in the transaction that records each payment,
so the dashboard (revenue today, this month, the 30-day chart), /api/v1/dashboard and the
daily summary read a few rows instead of summing a month of payments (a million rows at a
large ISP).

Each document also keeps its subscriber's username (usernames never change), with a partial
index of the open documents by (due date, username): `radbill billing overdue` lists the
overdue in that order from the index, without joining every overdue subscriber.

The totals are filled in here from the existing payments, each on the day its received_at falls in the ISP's
time zone (billing.totals.from_payments: PostgreSQL works the day out itself, SQLite in
chunks of payment ids).

Revision ID: 0027
Revises: 0023, 0025 (the lead re-chains it after 0026)
Create Date: 2026-11-30 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


OPEN_DOCUMENT = sa.text("status = 'open' AND kind != 'credit_note'")


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('username', sa.String(length=64), nullable=False,
                                   server_default=''))
    conn = op.get_bind()
    if conn.dialect.name == 'postgresql':
        op.execute("UPDATE invoices SET username = s.username FROM subscribers s "
                   "WHERE s.id = invoices.subscriber_id")
        op.execute("ANALYZE invoices")
    else:
        op.execute("UPDATE invoices SET username = (SELECT username FROM subscribers s "
                   "WHERE s.id = invoices.subscriber_id)")
    op.create_index('ix_invoices_open_due_username', 'invoices',
                    ['due_on', 'username', 'subscriber_id'],
                    postgresql_where=OPEN_DOCUMENT, sqlite_where=OPEN_DOCUMENT)
    op.create_table(
        'payment_day_totals',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('method', sa.String(length=32), nullable=False),
        sa.Column('amount', sa.Numeric(16, 2), nullable=False),
        sa.Column('payments', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'currency', 'method', name=op.f('pk_payment_day_totals')),
    )
    from billing import totals  # the same recomputation the check command uses

    zone = conn.execute(sa.text("SELECT timezone FROM isp_settings ORDER BY id LIMIT 1")
                        ).scalar() or "Asia/Dhaka"
    totals.write(conn, sorted(totals.from_payments(conn, zone).items()))


def downgrade() -> None:
    op.drop_table('payment_day_totals')
    op.drop_index('ix_invoices_open_due_username', table_name='invoices')
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('username')
