"""nas: API-SSL mode (none | anon | verify) with an optional CA or pinned fingerprint,
replacing the api_tls boolean; payment_intents.declared_at (a return or notification the
gateway never confirmed)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00

The old ``api_tls = true`` connected with TLS and checked nothing; it becomes ``anon``, the
mode that likewise encrypts without authenticating the router (and, unlike before, also
reaches a router without a certificate).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_tls_mode', sa.String(length=8), nullable=False,
                                      server_default='none'))
        batch_op.add_column(sa.Column('api_tls_ca', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('api_tls_fingerprint', sa.String(length=64), nullable=True))
    nas = sa.table('nas', sa.column('api_tls', sa.Boolean()),
                   sa.column('api_tls_mode', sa.String()))
    op.execute(nas.update().where(nas.c.api_tls == sa.true()).values(api_tls_mode='anon'))
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.alter_column('api_tls_mode', server_default=None)
        batch_op.drop_column('api_tls')
    with op.batch_alter_table('payment_intents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('declared_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment_intents', schema=None) as batch_op:
        batch_op.drop_column('declared_at')
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_tls', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    nas = sa.table('nas', sa.column('api_tls', sa.Boolean()),
                   sa.column('api_tls_mode', sa.String()))
    op.execute(nas.update().where(nas.c.api_tls_mode != 'none').values(api_tls=True))
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.alter_column('api_tls', server_default=None)
        batch_op.drop_column('api_tls_fingerprint')
        batch_op.drop_column('api_tls_ca')
        batch_op.drop_column('api_tls_mode')
