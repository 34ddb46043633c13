"""payments: intents, gateway events, gateway health

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 22:41:39.355038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_health',
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('failing', sa.Boolean(), nullable=False),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('gateway', name=op.f('pk_gateway_health'))
    )
    op.create_table('payment_intents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('gateway_reference', sa.String(length=128), nullable=True),
    sa.Column('transaction_id', sa.String(length=128), nullable=True),
    sa.Column('confirmed_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('confirmed_currency', sa.String(length=3), nullable=True),
    sa.Column('refunded_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_payment_intents_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_intents_payment_id_payments')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_payment_intents_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_intents')),
    sa.UniqueConstraint('gateway', 'gateway_reference', name=op.f('uq_payment_intents_gateway_gateway_reference')),
    sa.UniqueConstraint('gateway', 'transaction_id', name=op.f('uq_payment_intents_gateway_transaction_id')),
    sa.UniqueConstraint('reference', name=op.f('uq_payment_intents_reference'))
    )
    with op.batch_alter_table('payment_intents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_intents_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_intents_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_intents_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('gateway_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('event_key', sa.String(length=160), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('intent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['intent_id'], ['payment_intents.id'], name=op.f('fk_gateway_events_intent_id_payment_intents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_events')),
    sa.UniqueConstraint('gateway', 'event_key', name=op.f('uq_gateway_events_gateway_event_key'))
    )


def downgrade() -> None:
    op.drop_table('gateway_events')
    with op.batch_alter_table('payment_intents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_intents_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_payment_intents_status'))
        batch_op.drop_index(batch_op.f('ix_payment_intents_invoice_id'))

    op.drop_table('payment_intents')
    op.drop_table('gateway_health')
