"""enforcement: request life cycle, attempts, live-enforced sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:09:28.664541
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enforcement_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('nas_ip', sa.String(length=45), nullable=False),
    sa.Column('acct_session_id', sa.String(length=128), nullable=True),
    sa.Column('session_pk', sa.BigInteger(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error_cause', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['enforcement_requests.id'], name=op.f('fk_enforcement_attempts_request_id_enforcement_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enforcement_attempts'))
    )
    with op.batch_alter_table('enforcement_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enforcement_attempts_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_enforcement_attempts_session', ['nas_ip', 'acct_session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_attempts_subscriber_id'), ['subscriber_id'], unique=False)

    with op.batch_alter_table('enforcement_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False,
                                      server_default=sa.func.current_timestamp()))
        batch_op.add_column(sa.Column('confirm_by', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('nas_ip', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('acct_session_id', sa.String(length=128), nullable=True))
        batch_op.create_index('ix_enforcement_requests_due', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enforce_via', sa.String(length=8), nullable=False,
                                      server_default='coa'))

    with op.batch_alter_table('radius_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enforced_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.drop_column('enforce_via')

    with op.batch_alter_table('radius_sessions', schema=None) as batch_op:
        batch_op.drop_column('enforced_at')

    with op.batch_alter_table('enforcement_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_enforcement_requests_due')
        batch_op.drop_column('acct_session_id')
        batch_op.drop_column('nas_ip')
        batch_op.drop_column('last_error')
        batch_op.drop_column('outcome')
        batch_op.drop_column('completed_at')
        batch_op.drop_column('confirm_by')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')

    with op.batch_alter_table('enforcement_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enforcement_attempts_subscriber_id'))
        batch_op.drop_index('ix_enforcement_attempts_session')
        batch_op.drop_index(batch_op.f('ix_enforcement_attempts_request_id'))

    op.drop_table('enforcement_attempts')
