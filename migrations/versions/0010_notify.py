"""notify: deliveries, channels, preferences, short links, templates, alert states; the
outbox's index of events not planned yet

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from radbill.db import BigIntPK, UTCDateTime

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notify_deliveries',
    sa.Column('id', BigIntPK, autoincrement=True, nullable=False),
    sa.Column('outbox_id', BigIntPK, nullable=True),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('provider_id', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('dead_letter', sa.Boolean(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('encoding', sa.String(length=8), nullable=True),
    sa.Column('segments', sa.Integer(), nullable=True),
    sa.Column('cost', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=True),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.Column('delivered_at', UTCDateTime(), nullable=True),
    sa.Column('provider_ref', sa.String(length=128), nullable=True),
    sa.Column('dlt_template_id', sa.String(length=32), nullable=True),
    sa.Column('variables', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_notify_deliveries_outbox_id_outbox')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_notify_deliveries_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_deliveries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notify_deliveries_idempotency_key'))
    )
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_notify_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notify_deliveries_provider_ref', ['provider_ref'], unique=False)
        batch_op.create_index('ix_notify_deliveries_provider_id', ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_deliveries_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('notify_early_reports',
    sa.Column('id', BigIntPK, autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.String(length=256), nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_early_reports'))
    )
    with op.batch_alter_table('notify_early_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notify_early_reports_reference'), ['reference'], unique=False)
    op.create_table('notify_channels',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('secrets_enc', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('paused_at', UTCDateTime(), nullable=True),
    sa.Column('pause_reason', sa.Text(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_notify_channels'))
    )
    op.create_table('notify_preferences',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=True),
    sa.Column('sms_opt_out', sa.Boolean(), nullable=False),
    sa.Column('email_opt_out', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_notify_preferences_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('subscriber_id', name=op.f('pk_notify_preferences'))
    )
    op.create_table('notify_short_links',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_notify_short_links')),
    sa.UniqueConstraint('target', name=op.f('uq_notify_short_links_target'))
    )
    op.create_table('notify_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('dlt_template_id', sa.String(length=32), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_templates')),
    sa.UniqueConstraint('kind', 'channel', 'locale', name=op.f('uq_notify_templates_kind_channel_locale'))
    )
    op.create_table('notify_alert_states',
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('last_alert_id', sa.Integer(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_notify_alert_states'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_unplanned', ['id'], unique=False,
                              sqlite_where=sa.text('sent_at IS NULL'),
                              postgresql_where=sa.text('sent_at IS NULL'))
    # Events written before notifications existed are history, not news: never sent now.
    op.execute("UPDATE outbox SET sent_at = created_at WHERE sent_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_unplanned')
    op.drop_table('notify_alert_states')
    op.drop_table('notify_templates')
    op.drop_table('notify_short_links')
    op.drop_table('notify_preferences')
    op.drop_table('notify_channels')
    with op.batch_alter_table('notify_early_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_early_reports_reference'))
    op.drop_table('notify_early_reports')
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_subscriber_id'))
        batch_op.drop_index('ix_notify_deliveries_provider_id')
        batch_op.drop_index('ix_notify_deliveries_provider_ref')
        batch_op.drop_index('ix_notify_deliveries_due')
    op.drop_table('notify_deliveries')
