"""The subscriber portal: portal sessions, one-time login codes, plan-change requests, and an
index on subscribers.phone (a one-time code login finds the accounts of a number) and one on
open sessions' framed_ip (the walled-garden page finds its visitor by address)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'portal_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('method', sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_portal_sessions_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_portal_sessions')),
    )
    op.create_index(op.f('ix_portal_sessions_subscriber_id'), 'portal_sessions',
                    ['subscriber_id'])
    op.create_table(
        'portal_otps',
        sa.Column('id', BIGINT, autoincrement=True, nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_otps')),
    )
    op.create_index('ix_portal_otps_phone_created', 'portal_otps', ['phone', 'created_at'])
    op.create_table(
        'portal_plan_requests',
        sa.Column('id', BIGINT, autoincrement=True, nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('effective', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['plan_id'], ['plans.id'],
                                name=op.f('fk_portal_plan_requests_plan_id_plans')),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_portal_plan_requests_subscriber_id_subscribers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_plan_requests')),
    )
    op.create_index(op.f('ix_portal_plan_requests_status'), 'portal_plan_requests',
                    ['status'])
    op.create_index(op.f('ix_portal_plan_requests_subscriber_id'), 'portal_plan_requests',
                    ['subscriber_id'])
    op.create_index(op.f('ix_subscribers_phone'), 'subscribers', ['phone'])
    op.create_index('ix_radius_sessions_framed_ip_open', 'radius_sessions',
                    ['framed_ip', 'stopped_at'])


def downgrade() -> None:
    op.drop_index('ix_radius_sessions_framed_ip_open', table_name='radius_sessions')
    op.drop_index(op.f('ix_subscribers_phone'), table_name='subscribers')
    op.drop_table('portal_plan_requests')
    op.drop_table('portal_otps')
    op.drop_table('portal_sessions')
