"""OLT control over SNMP: OLTs, ONUs, subscriber bindings by serial/MAC, ONU signal
samples, and the OLT channel of the enforcement queue (olt_tasks)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 09:03:04.958763
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('olts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('vendor', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=45), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('community_enc', sa.Text(), nullable=True),
    sa.Column('write_community_enc', sa.Text(), nullable=True),
    sa.Column('v3_user', sa.String(length=64), nullable=True),
    sa.Column('v3_auth_key_enc', sa.Text(), nullable=True),
    sa.Column('v3_priv_key_enc', sa.Text(), nullable=True),
    sa.Column('overrides', sa.JSON(), nullable=True),
    sa.Column('timeout_ms', sa.Integer(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('weak_rx_dbm', sa.Float(), nullable=False),
    sa.Column('last_uptime', sa.BigInteger(), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_olts')),
    sa.UniqueConstraint('host', 'port', name=op.f('uq_olts_host_port')),
    sa.UniqueConstraint('name', name=op.f('uq_olts_name'))
    )
    op.create_table('onus',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('olt_id', sa.Integer(), nullable=False),
    sa.Column('ident', sa.String(length=32), nullable=False),
    sa.Column('snmp_index', sa.String(length=64), nullable=False),
    sa.Column('pon', sa.String(length=16), nullable=True),
    sa.Column('onu_no', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('rx_dbm', sa.Float(), nullable=True),
    sa.Column('weak', sa.Boolean(), nullable=False),
    sa.Column('blocked', sa.Boolean(), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['olt_id'], ['olts.id'], name=op.f('fk_onus_olt_id_olts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_onus')),
    sa.UniqueConstraint('olt_id', 'ident', name=op.f('uq_onus_olt_id_ident'))
    )
    op.create_table('onu_bindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('olt_id', sa.Integer(), nullable=False),
    sa.Column('ident', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['olt_id'], ['olts.id'], name=op.f('fk_onu_bindings_olt_id_olts')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_onu_bindings_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_onu_bindings')),
    sa.UniqueConstraint('olt_id', 'ident', name=op.f('uq_onu_bindings_olt_id_ident')),
    sa.UniqueConstraint('subscriber_id', name=op.f('uq_onu_bindings_subscriber_id'))
    )
    op.create_table('onu_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('onu_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('rx_dbm', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['onu_id'], ['onus.id'], name=op.f('fk_onu_samples_onu_id_onus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_onu_samples'))
    )
    with op.batch_alter_table('onu_samples', schema=None) as batch_op:
        batch_op.create_index('ix_onu_samples_onu_at', ['onu_id', 'at'], unique=False)

    op.create_table('olt_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('olt_id', sa.Integer(), nullable=False),
    sa.Column('ident', sa.String(length=32), nullable=False),
    sa.Column('block', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['olt_id'], ['olts.id'], name=op.f('fk_olt_tasks_olt_id_olts')),
    sa.ForeignKeyConstraint(['request_id'], ['enforcement_requests.id'], name=op.f('fk_olt_tasks_request_id_enforcement_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_olt_tasks'))
    )
    with op.batch_alter_table('olt_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_olt_tasks_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_olt_tasks_subscriber_id'), ['subscriber_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('olt_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_olt_tasks_subscriber_id'))
        batch_op.drop_index('ix_olt_tasks_due')

    op.drop_table('olt_tasks')
    with op.batch_alter_table('onu_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_onu_samples_onu_at')

    op.drop_table('onu_samples')
    op.drop_table('onu_bindings')
    op.drop_table('onus')
    op.drop_table('olts')
