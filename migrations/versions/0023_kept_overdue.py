"""invoices.outstanding: what is still owed on each document, kept by the settlement in the
transaction that moves the money, so the dashboard, /api/v1/dashboard and `radbill billing
overdue` read what is overdue today from one partial index (ix_invoices_open_owed) instead of
settling the whole ledger. The admin's subscriber search on trigram indexes (pg_trgm) on
PostgreSQL. Payments by receipt time with their currency and amount (the dashboard's revenue
summed from the index alone).

The amount is filled in from the ledger here, as billing.ledger.settle would (the rule
billing.ledger.allocate, in chunks of subscribers): open documents owe their total, then the
few whose account has credits, write-offs or partial payments are corrected.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30 15:30:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

OPEN_DOCUMENT = sa.text("status = 'open' AND kind != 'credit_note'")
SEARCHED = ("username", "full_name", "phone")
CHUNK = 5_000  # subscribers per settlement read


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('outstanding', sa.Numeric(14, 2), nullable=False,
                                   server_default='0'))
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE invoices SET outstanding = total "
                         "WHERE status = 'open' AND kind != 'credit_note' AND total > 0"))
    _settle_outstanding(conn)
    if conn.dialect.name == 'postgresql':
        # fresh statistics for the planner now; autovacuum then sets the visibility map
        # this bulk update cleared (until it has, the overdue figures read the table too)
        op.execute("ANALYZE invoices")
    op.create_index('ix_invoices_open_owed', 'invoices',
                    ['due_on', 'subscriber_id', 'outstanding'],
                    postgresql_where=OPEN_DOCUMENT, sqlite_where=OPEN_DOCUMENT)
    # the dashboard's revenue today, this month and per day summed from the index alone
    op.drop_index('ix_payments_received_at', table_name='payments')
    op.create_index('ix_payments_received_at', 'payments', ['received_at', 'currency', 'amount'])
    if conn.dialect.name == 'postgresql':
        # trusted since PostgreSQL 13: the database's owner may create it; Debian's server
        # package ships it (postgresql-contrib)
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED:
        # on SQLite an empty partial index (WHERE 0): the models declare one index for both
        op.create_index(f'ix_subscribers_{column}_trgm', 'subscribers', [column],
                        postgresql_using='gin', postgresql_ops={column: 'gin_trgm_ops'},
                        sqlite_where=sa.text('0'))


def _settle_outstanding(conn: sa.Connection) -> None:
    from billing.ledger import outstanding_drift  # the settlement rule as it is now

    top = conn.execute(sa.text("SELECT max(subscriber_id) FROM invoices")).scalar()
    if top is None:
        return
    today = dt.datetime.now(dt.UTC).date()  # only a paid date depends on it: not written
    invoices = sa.table('invoices', sa.column('id', sa.BigInteger),
                        sa.column('outstanding', sa.Numeric(14, 2)))
    for first in range(1, int(top) + 1, CHUNK):
        drift = outstanding_drift(conn, first, first + CHUNK - 1, today)
        if drift:
            conn.execute(invoices.update().where(invoices.c.id == sa.bindparam('b_id'))
                         .values(outstanding=sa.bindparam('b_owed')),
                         [{'b_id': d.invoice_id, 'b_owed': d.settled} for d in drift])


def downgrade() -> None:
    for column in reversed(SEARCHED):
        op.drop_index(f'ix_subscribers_{column}_trgm', table_name='subscribers')
    op.drop_index('ix_invoices_open_owed', table_name='invoices')
    op.drop_index('ix_payments_received_at', table_name='payments')
    op.create_index('ix_payments_received_at', 'payments', ['received_at'])
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('outstanding')
