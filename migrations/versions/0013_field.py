"""RADIUS in the field: usernames unique in lower case, IPv6 per plan and subscriber,
Idle-Timeout per plan, and an index for reading a user's open sessions in any case

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-30 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    clash = bind.execute(sa.text(
        "SELECT lower(username) FROM subscribers GROUP BY lower(username) "
        "HAVING count(*) > 1 LIMIT 5")).scalars().all()
    if clash:
        raise RuntimeError("usernames differing only in case must be renamed before this "
                           f"upgrade (BOB = bob): {', '.join(clash)}")
    with op.batch_alter_table('plans') as batch:
        batch.add_column(sa.Column('ipv6_pool', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('delegated_ipv6_pool', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('idle_timeout', sa.Integer(), nullable=True))
    with op.batch_alter_table('subscribers') as batch:
        batch.add_column(sa.Column('framed_ipv6_prefix', sa.String(length=43), nullable=True))
        batch.add_column(sa.Column('delegated_ipv6_prefix', sa.String(length=43),
                                   nullable=True))
        batch.add_column(sa.Column('ipv6_pool', sa.String(length=64), nullable=True))
    op.create_index('uq_subscribers_username_lower', 'subscribers',
                    [sa.text('lower(username)')], unique=True)
    op.create_index('ix_radius_sessions_lower_open', 'radius_sessions',
                    [sa.text('lower(username)'), 'stopped_at'])


def downgrade() -> None:
    op.drop_index('ix_radius_sessions_lower_open', table_name='radius_sessions')
    op.drop_index('uq_subscribers_username_lower', table_name='subscribers')
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('ipv6_pool')
        batch.drop_column('delegated_ipv6_pool')
        batch.drop_column('framed_ipv6_prefix')
    with op.batch_alter_table('plans') as batch:
        batch.drop_column('idle_timeout')
        batch.drop_column('delegated_ipv6_pool')
        batch.drop_column('ipv6_pool')
