"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 20:14:09.480783
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('change_counters',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_change_counters'))
    )
    op.create_table('nas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('ip_address', sa.String(length=45), nullable=False),
    sa.Column('secret_enc', sa.Text(), nullable=False),
    sa.Column('nas_type', sa.String(length=16), nullable=False),
    sa.Column('coa_port', sa.Integer(), nullable=False),
    sa.Column('require_message_authenticator', sa.Boolean(), nullable=False),
    sa.Column('api_port', sa.Integer(), nullable=True),
    sa.Column('api_username', sa.String(length=64), nullable=True),
    sa.Column('api_password_enc', sa.Text(), nullable=True),
    sa.Column('api_tls', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nas')),
    sa.UniqueConstraint('ip_address', name=op.f('uq_nas_ip_address')),
    sa.UniqueConstraint('name', name=op.f('uq_nas_name'))
    )
    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('price', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('download_bps', sa.BigInteger(), nullable=False),
    sa.Column('upload_bps', sa.BigInteger(), nullable=False),
    sa.Column('burst_download_bps', sa.BigInteger(), nullable=True),
    sa.Column('burst_upload_bps', sa.BigInteger(), nullable=True),
    sa.Column('burst_threshold_download_bps', sa.BigInteger(), nullable=True),
    sa.Column('burst_threshold_upload_bps', sa.BigInteger(), nullable=True),
    sa.Column('burst_time_s', sa.Integer(), nullable=True),
    sa.Column('data_cap_bytes', sa.BigInteger(), nullable=True),
    sa.Column('fup_download_bps', sa.BigInteger(), nullable=True),
    sa.Column('fup_upload_bps', sa.BigInteger(), nullable=True),
    sa.Column('ip_pool', sa.String(length=64), nullable=True),
    sa.Column('billing_cycle', sa.Enum('monthly', 'weekly', 'daily', 'days', name='billing_cycle', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=True),
    sa.Column('billing_mode', sa.Enum('prepaid', 'postpaid', name='billing_mode', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('grace_days', sa.Integer(), nullable=False),
    sa.Column('late_fee', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('auth_version', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('download_bps > 0 AND upload_bps > 0', name=op.f('ck_plans_rates_positive')),
    sa.CheckConstraint('grace_days >= 0', name=op.f('ck_plans_grace_not_negative')),
    sa.CheckConstraint('price >= 0', name=op.f('ck_plans_price_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('name', name=op.f('uq_plans_name'))
    )
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plans_auth_version'), ['auth_version'], unique=False)

    op.create_table('radius_detail_cursors',
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('stream', name=op.f('pk_radius_detail_cursors'))
    )
    op.create_table('radius_postauth',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=253), nullable=False),
    sa.Column('nas_ip', sa.String(length=45), nullable=True),
    sa.Column('calling_station_id', sa.String(length=64), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('reply_message', sa.Text(), nullable=True),
    sa.Column('auth_method', sa.String(length=16), nullable=True),
    sa.Column('rate_limit', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_radius_postauth'))
    )
    with op.batch_alter_table('radius_postauth', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_radius_postauth_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_radius_postauth_username'), ['username'], unique=False)

    op.create_table('radius_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('nas_ip', sa.String(length=45), nullable=False),
    sa.Column('acct_session_id', sa.String(length=128), nullable=False),
    sa.Column('username', sa.String(length=253), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('framed_ip', sa.String(length=45), nullable=True),
    sa.Column('calling_station_id', sa.String(length=64), nullable=True),
    sa.Column('nas_port_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('session_time', sa.BigInteger(), nullable=False),
    sa.Column('input_octets', sa.BigInteger(), nullable=False),
    sa.Column('output_octets', sa.BigInteger(), nullable=False),
    sa.Column('input_packets', sa.BigInteger(), nullable=False),
    sa.Column('output_packets', sa.BigInteger(), nullable=False),
    sa.Column('terminate_cause', sa.String(length=32), nullable=True),
    sa.Column('state_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_radius_sessions')),
    sa.UniqueConstraint('nas_ip', 'acct_session_id', 'username', name=op.f('uq_radius_sessions_nas_ip_acct_session_id_username'))
    )
    with op.batch_alter_table('radius_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_radius_sessions_nas_open', ['nas_ip', 'stopped_at'], unique=False)
        batch_op.create_index('ix_radius_sessions_open', ['username', 'stopped_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_radius_sessions_state_seq'), ['state_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_radius_sessions_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('subscribers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_enc', sa.Text(), nullable=False),
    sa.Column('service', sa.Enum('pppoe', 'hotspot', name='service_type', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('status', sa.Enum('active', 'suspended', 'disabled', 'terminated', name='subscriber_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('static_ip', sa.String(length=15), nullable=True),
    sa.Column('ip_pool', sa.String(length=64), nullable=True),
    sa.Column('mac_address', sa.String(length=17), nullable=True),
    sa.Column('simultaneous_use', sa.Integer(), nullable=False),
    sa.Column('paid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fup_throttled', sa.Boolean(), nullable=False),
    sa.Column('full_name', sa.String(length=128), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('auth_version', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('simultaneous_use >= 1', name=op.f('ck_subscribers_simultaneous_use_positive')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_subscribers_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('static_ip', name=op.f('uq_subscribers_static_ip')),
    sa.UniqueConstraint('username', name=op.f('uq_subscribers_username'))
    )
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscribers_auth_version'), ['auth_version'], unique=False)

    counters = sa.table("change_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "auth", "value": 0}, {"name": "sessions", "value": 0}])


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscribers_auth_version'))

    op.drop_table('subscribers')
    with op.batch_alter_table('radius_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_radius_sessions_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_radius_sessions_state_seq'))
        batch_op.drop_index('ix_radius_sessions_open')
        batch_op.drop_index('ix_radius_sessions_nas_open')

    op.drop_table('radius_sessions')
    with op.batch_alter_table('radius_postauth', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_radius_postauth_username'))
        batch_op.drop_index(batch_op.f('ix_radius_postauth_at'))

    op.drop_table('radius_postauth')
    op.drop_table('radius_detail_cursors')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plans_auth_version'))

    op.drop_table('plans')
    op.drop_table('nas')
    op.drop_table('change_counters')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity')

    op.drop_table('audit_log')
