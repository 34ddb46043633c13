"""billing correctness: documents (credit note series, charges, late fees, taxes per line,
amount due, buyer), plan change history, billing pause, effective dates of events

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 05:52:45.484155
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OLD_KINDS = ('period', 'plan_change', 'credit_note')
NEW_KINDS = ('period', 'plan_change', 'charge', 'late_fee', 'credit_note')
OLD_STATUSES = ('open', 'paid', 'credited')
NEW_STATUSES = ('open', 'paid', 'credited', 'written_off', 'applied')
OLD_PERIOD_WHERE = "kind != 'credit_note'"
NEW_PERIOD_WHERE = "kind = 'period' AND status != 'credited'"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table('plan_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('changed_on', sa.Date(), nullable=False),
    sa.Column('from_plan_id', sa.Integer(), nullable=False),
    sa.Column('to_plan_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['from_plan_id'], ['plans.id'], name=op.f('fk_plan_changes_from_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_plan_changes_subscriber_id_subscribers')),
    sa.ForeignKeyConstraint(['to_plan_id'], ['plans.id'], name=op.f('fk_plan_changes_to_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_changes'))
    )
    with op.batch_alter_table('plan_changes', schema=None) as batch_op:
        batch_op.create_index('ix_plan_changes_subscriber_day', ['subscriber_id', 'changed_on'], unique=False)

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duty', sa.Numeric(precision=14, scale=2), nullable=True))
        batch_op.add_column(sa.Column('tax', sa.Numeric(precision=14, scale=2), nullable=True))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('uq_invoices_period', sqlite_where=sa.text(OLD_PERIOD_WHERE), postgresql_where=sa.text(OLD_PERIOD_WHERE))
        batch_op.drop_constraint(op.f('ck_invoices_invoice_kind'), type_='check')
        batch_op.drop_constraint(op.f('ck_invoices_invoice_status'), type_='check')
        batch_op.add_column(sa.Column('duty', sa.Numeric(precision=14, scale=2), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('tax_breakdown', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('previous_balance', sa.Numeric(precision=14, scale=2), nullable=True))
        batch_op.add_column(sa.Column('amount_due', sa.Numeric(precision=14, scale=2), nullable=True))
        batch_op.add_column(sa.Column('buyer_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('buyer_address', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('buyer_tax_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('place_of_supply', sa.String(length=4), nullable=True))
        batch_op.alter_column('due_on', existing_type=sa.DATE(), nullable=True)
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_check_constraint('invoice_kind', _in('kind', NEW_KINDS))
        batch_op.create_check_constraint('invoice_status', _in('status', NEW_STATUSES))
        batch_op.create_index('uq_invoices_period', ['subscriber_id', 'period_start', 'kind'], unique=True, sqlite_where=sa.text(NEW_PERIOD_WHERE), postgresql_where=sa.text(NEW_PERIOD_WHERE))
    # Credit notes have no due date and are applied when issued.
    op.execute("UPDATE invoices SET due_on = NULL, status = 'applied' WHERE kind = 'credit_note'")

    with op.batch_alter_table('isp_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_note_prefix', sa.String(length=16), nullable=False, server_default='CN-'))
        batch_op.add_column(sa.Column('next_credit_note_number', sa.BigInteger(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('bill_while_suspended', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('credit_unused_on_termination', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('strict_prepay', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('late_fee_min_outstanding', sa.Numeric(precision=14, scale=2), nullable=False, server_default='1.00'))
        batch_op.add_column(sa.Column('suspended_notice_days', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('tax_profile', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('tax_id', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('state_name', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('state_code', sa.String(length=4), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('sac_code', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('supplementary_duty_percent', sa.Numeric(precision=5, scale=2), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('late_fee_taxable', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('signatory_name', sa.String(length=128), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('signatory_designation', sa.String(length=128), nullable=False, server_default=''))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_on', sa.Date(), nullable=True))

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('tax_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('state_code', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('billing_started_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('billing_paused_on', sa.Date(), nullable=True))
    # Billing of the existing accounts started with their first period.
    op.execute("UPDATE subscribers SET billing_started_on = (SELECT MIN(i.period_start) FROM invoices i WHERE i.subscriber_id = subscribers.id AND i.kind = 'period')")
    op.execute("UPDATE subscribers SET billing_started_on = period_start WHERE billing_started_on IS NULL")
    op.execute("UPDATE subscribers SET billing_paused_on = period_start WHERE status IN ('disabled', 'terminated') AND period_start IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('billing_paused_on')
        batch_op.drop_column('billing_started_on')
        batch_op.drop_column('state_code')
        batch_op.drop_column('tax_id')
        batch_op.drop_column('address')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('event_on')

    with op.batch_alter_table('isp_settings', schema=None) as batch_op:
        for column in ('signatory_designation', 'signatory_name', 'late_fee_taxable',
                       'supplementary_duty_percent', 'sac_code', 'state_code', 'state_name',
                       'tax_id', 'tax_profile', 'suspended_notice_days',
                       'late_fee_min_outstanding', 'strict_prepay',
                       'credit_unused_on_termination', 'bill_while_suspended',
                       'next_credit_note_number', 'credit_note_prefix'):
            batch_op.drop_column(column)

    op.execute("UPDATE invoices SET due_on = issued_on WHERE due_on IS NULL")
    op.execute("UPDATE invoices SET status = 'credited' WHERE status IN ('applied', 'written_off')")
    op.execute("UPDATE invoices SET kind = 'plan_change' WHERE kind IN ('charge', 'late_fee')")
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('uq_invoices_period', sqlite_where=sa.text(NEW_PERIOD_WHERE), postgresql_where=sa.text(NEW_PERIOD_WHERE))
        batch_op.drop_constraint(op.f('ck_invoices_invoice_kind'), type_='check')
        batch_op.drop_constraint(op.f('ck_invoices_invoice_status'), type_='check')
        batch_op.alter_column('due_on', existing_type=sa.DATE(), nullable=False)
        for column in ('place_of_supply', 'buyer_tax_id', 'buyer_address', 'buyer_name',
                       'amount_due', 'previous_balance', 'tax_breakdown', 'duty'):
            batch_op.drop_column(column)
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_check_constraint('invoice_kind', _in('kind', OLD_KINDS))
        batch_op.create_check_constraint('invoice_status', _in('status', OLD_STATUSES))
        batch_op.create_index('uq_invoices_period', ['subscriber_id', 'period_start', 'kind'], unique=True, sqlite_where=sa.text(OLD_PERIOD_WHERE), postgresql_where=sa.text(OLD_PERIOD_WHERE))

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_column('tax')
        batch_op.drop_column('duty')

    with op.batch_alter_table('plan_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_changes_subscriber_day')

    op.drop_table('plan_changes')
