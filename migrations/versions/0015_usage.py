"""Usage metering, data caps, top-ups and Hotspot quotas: usage per subscriber and day, the
per-session daily high-water marks behind it, the current period's cap state, top-up packs
and purchases; what a plan's cap counts and its time quota; a subscriber's cap throttle and
quota remainders

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it for columns with a constant default), not batch mode:
    # a batch rebuild of subscribers on SQLite would silently drop the unique index on
    # lower(username), which SQLite cannot reflect.
    op.add_column('plans', sa.Column('cap_counts', sa.String(length=8), nullable=False,
                                     server_default='both'))
    op.add_column('plans', sa.Column('time_quota_s', sa.BigInteger(), nullable=True))
    op.add_column('subscribers', sa.Column('cap_throttled', sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column('subscribers', sa.Column('quota_left_bytes', sa.BigInteger(), nullable=True))
    op.add_column('subscribers', sa.Column('quota_left_seconds', sa.BigInteger(),
                                           nullable=True))
    op.create_table(
        'usage_days',
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('download', sa.BigInteger(), nullable=False),
        sa.Column('upload', sa.BigInteger(), nullable=False),
        sa.Column('seconds', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_usage_days_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('subscriber_id', 'day', name=op.f('pk_usage_days')),
    )
    op.create_table(
        'usage_session_days',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('nas_ip', sa.String(length=45), nullable=False),
        sa.Column('acct_session_id', sa.String(length=253), nullable=False),
        sa.Column('username', sa.String(length=253), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('input_octets', sa.BigInteger(), nullable=False),
        sa.Column('output_octets', sa.BigInteger(), nullable=False),
        sa.Column('session_time', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_usage_session_days_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_session_days')),
    )
    op.create_index('uq_usage_session_days_key', 'usage_session_days',
                    ['nas_ip', 'acct_session_id', 'username', 'day'], unique=True)
    op.create_table(
        'usage_states',
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('download', sa.BigInteger(), nullable=False),
        sa.Column('upload', sa.BigInteger(), nullable=False),
        sa.Column('seconds', sa.BigInteger(), nullable=False),
        sa.Column('extra_bytes', sa.BigInteger(), nullable=False),
        sa.Column('notified_80', sa.Boolean(), nullable=False),
        sa.Column('notified_100', sa.Boolean(), nullable=False),
        sa.Column('exempt', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_usage_states_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('subscriber_id', name=op.f('pk_usage_states')),
    )
    op.create_table(
        'usage_topup_packs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('price', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['plan_id'], ['plans.id'],
                                name=op.f('fk_usage_topup_packs_plan_id_plans')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_topup_packs')),
        sa.UniqueConstraint('plan_id', 'name', name=op.f('uq_usage_topup_packs_plan_id_name')),
    )
    op.create_table(
        'usage_topups',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('pack_id', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('price', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('document', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['pack_id'], ['usage_topup_packs.id'],
                                name=op.f('fk_usage_topups_pack_id_usage_topup_packs')),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_usage_topups_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_topups')),
    )
    op.create_index('ix_usage_topups_subscriber_id', 'usage_topups', ['subscriber_id'])


def downgrade() -> None:
    op.drop_index('ix_usage_topups_subscriber_id', table_name='usage_topups')
    op.drop_table('usage_topups')
    op.drop_table('usage_topup_packs')
    op.drop_table('usage_states')
    op.drop_index('uq_usage_session_days_key', table_name='usage_session_days')
    op.drop_table('usage_session_days')
    op.drop_table('usage_days')
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('quota_left_seconds')
        batch.drop_column('quota_left_bytes')
        batch.drop_column('cap_throttled')
    # the SQLite rebuild loses the expression index (see upgrade): put it back
    op.execute("CREATE UNIQUE INDEX IF NOT EXISTS uq_subscribers_username_lower "
               "ON subscribers (lower(username))")
    with op.batch_alter_table('plans') as batch:
        batch.drop_column('time_quota_s')
        batch.drop_column('cap_counts')
