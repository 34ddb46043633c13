"""ingest hardening: set-aside records table; RADIUS text columns sized for what NAS send

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Widening a varchar is a catalogue change on PostgreSQL (no table rewrite, indexes kept);
# SQLite's batch mode copies the table.
WIDENED = {
    'radius_sessions': [('acct_session_id', 128, False), ('calling_station_id', 64, True),
                        ('nas_port_id', 64, True)],
    'radius_postauth': [('calling_station_id', 64, True)],
}


def upgrade() -> None:
    op.create_table('radius_rejected_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_radius_rejected_records')),
    sa.UniqueConstraint('stream', 'file_name', 'offset', name=op.f('uq_radius_rejected_records_stream_file_name_offset')),
    )
    with op.batch_alter_table('radius_rejected_records', schema=None) as batch_op:
        batch_op.create_index('ix_radius_rejected_records_status', ['status', 'id'], unique=False)
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, old, nullable in columns:
                batch_op.alter_column(name, existing_type=sa.String(length=old),
                                      type_=sa.String(length=253), existing_nullable=nullable)


def downgrade() -> None:
    # Values longer than the old sizes are cut to fit (they could not be stored before).
    for table, columns in WIDENED.items():
        for name, old, _nullable in columns:
            op.execute(sa.text(f"UPDATE {table} SET {name} = substr({name}, 1, {old}) "
                               f"WHERE length({name}) > {old}"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, old, nullable in columns:
                batch_op.alter_column(name, existing_type=sa.String(length=253),
                                      type_=sa.String(length=old), existing_nullable=nullable)
    with op.batch_alter_table('radius_rejected_records', schema=None) as batch_op:
        batch_op.drop_index('ix_radius_rejected_records_status')
    op.drop_table('radius_rejected_records')
