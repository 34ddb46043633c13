"""billing engine

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:18:05.209069
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_kind'), ['kind'], unique=False)

    op.create_table('holidays',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_holidays'))
    )
    op.create_table('isp_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('logo_path', sa.Text(), nullable=True),
    sa.Column('invoice_prefix', sa.String(length=16), nullable=False),
    sa.Column('next_invoice_number', sa.BigInteger(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('weekly_off_days', sa.String(length=32), nullable=False),
    sa.Column('suspension_guard_percent', sa.Integer(), nullable=False),
    sa.Column('suspension_guard_min', sa.Integer(), nullable=False),
    sa.Column('postpaid_due_days', sa.Integer(), nullable=False),
    sa.Column('promises_per_period', sa.Integer(), nullable=False),
    sa.Column('payment_link_base', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_isp_settings'))
    )
    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_runs_job'), ['job'], unique=False)

    op.create_table('enforcement_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_enforcement_requests_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enforcement_requests'))
    )
    with op.batch_alter_table('enforcement_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enforcement_requests_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.Enum('period', 'plan_change', 'credit_note', name='invoice_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('credits_invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('plan_name', sa.String(length=64), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('tax_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('tax', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.Enum('open', 'paid', 'credited', name='invoice_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=True),
    sa.Column('payment_link', sa.Text(), nullable=True),
    sa.Column('pdf_path', sa.Text(), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credits_invoice_id'], ['invoices.id'], name=op.f('fk_invoices_credits_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_invoices_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('number', name=op.f('uq_invoices_number'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_open_due', ['status', 'due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoices_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index('uq_invoices_period', ['subscriber_id', 'period_start', 'kind'], unique=True, sqlite_where=sa.text("kind != 'credit_note'"), postgresql_where=sa.text("kind != 'credit_note'"))

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_outbox_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbox_dedupe_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_payments_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('method', 'reference', name=op.f('uq_payments_method_reference'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('promises',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_promises_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promises'))
    )
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promises_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('invoice_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=10, scale=4), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_invoice_lines_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_lines'))
    )
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_lines_invoice_id'), ['invoice_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('kind', sa.Enum('charge', 'late_fee', 'payment', 'credit', 'refund', 'adjustment', 'write_off', name='ledger_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_ledger_entries_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_ledger_entries_payment_id_payments')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_ledger_entries_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_subscriber_id'), ['subscriber_id'], unique=False)

    # Existing rows get the defaults the models use for new ones.
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cycle_anchor', sa.String(length=16), nullable=False, server_default='anniversary'))
        batch_op.add_column(sa.Column('billing_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('late_fee_percent', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('late_fee_cap', sa.Numeric(precision=14, scale=2), nullable=True))
        batch_op.add_column(sa.Column('tax_percent', sa.Numeric(precision=5, scale=2), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('setup_fee', sa.Numeric(precision=14, scale=2), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reminder_days', sa.Integer(), nullable=False, server_default='3'))
        batch_op.add_column(sa.Column('throttle_after_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('terminate_after_days', sa.Integer(), nullable=True))

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anchor_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('period_start', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('period_end', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('suspended_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('suspended_for_nonpayment', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('dunning_throttled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('setup_fee_charged', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('next_plan_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_subscribers_period_end'), ['period_end'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_subscribers_next_plan_id_plans'), 'plans', ['next_plan_id'], ['id'])

    settings = sa.table(
        "isp_settings", sa.column("id", sa.Integer), sa.column("name", sa.String),
        sa.column("address", sa.Text), sa.column("phone", sa.String),
        sa.column("email", sa.String), sa.column("invoice_prefix", sa.String),
        sa.column("next_invoice_number", sa.BigInteger), sa.column("timezone", sa.String),
        sa.column("weekly_off_days", sa.String), sa.column("suspension_guard_percent", sa.Integer),
        sa.column("postpaid_due_days", sa.Integer),
        sa.column("suspension_guard_min", sa.Integer),
        sa.column("promises_per_period", sa.Integer), sa.column("payment_link_base", sa.Text),
    )
    op.bulk_insert(settings, [{
        "id": 1, "name": "My ISP", "address": "", "phone": "", "email": "",
        "invoice_prefix": "INV-", "next_invoice_number": 1, "timezone": "Asia/Dhaka",
        "weekly_off_days": "", "suspension_guard_percent": 20, "postpaid_due_days": 7,
        "suspension_guard_min": 5, "promises_per_period": 1,
        "payment_link_base": "",
    }])


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subscribers_next_plan_id_plans'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subscribers_period_end'))
        batch_op.drop_column('next_plan_id')
        batch_op.drop_column('setup_fee_charged')
        batch_op.drop_column('dunning_throttled')
        batch_op.drop_column('suspended_for_nonpayment')
        batch_op.drop_column('suspended_on')
        batch_op.drop_column('period_end')
        batch_op.drop_column('period_start')
        batch_op.drop_column('anchor_day')

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('terminate_after_days')
        batch_op.drop_column('throttle_after_days')
        batch_op.drop_column('reminder_days')
        batch_op.drop_column('setup_fee')
        batch_op.drop_column('tax_percent')
        batch_op.drop_column('late_fee_cap')
        batch_op.drop_column('late_fee_percent')
        batch_op.drop_column('billing_day')
        batch_op.drop_column('cycle_anchor')

    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_invoice_id'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_lines_invoice_id'))

    op.drop_table('invoice_lines')
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promises_subscriber_id'))

    op.drop_table('promises')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_subscriber_id'))

    op.drop_table('payments')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_subscriber_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('uq_invoices_period', sqlite_where=sa.text("kind != 'credit_note'"), postgresql_where=sa.text("kind != 'credit_note'"))
        batch_op.drop_index(batch_op.f('ix_invoices_subscriber_id'))
        batch_op.drop_index('ix_invoices_open_due')

    op.drop_table('invoices')
    with op.batch_alter_table('enforcement_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enforcement_requests_subscriber_id'))

    op.drop_table('enforcement_requests')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_runs_job'))

    op.drop_table('job_runs')
    op.drop_table('isp_settings')
    op.drop_table('holidays')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_kind'))

    op.drop_table('alerts')
