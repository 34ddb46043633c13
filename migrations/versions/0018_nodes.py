"""Several RADIUS nodes on one database: detail-file cursors are kept per node

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_COLUMNS = ('stream', 'file_name', 'offset', 'records', 'updated_at')


def _table(with_node: bool) -> None:
    node = [sa.Column('node', sa.String(length=64), nullable=False)] if with_node else []
    op.create_table(
        'radius_detail_cursors',
        *node,
        sa.Column('stream', sa.String(length=32), nullable=False),
        sa.Column('file_name', sa.String(length=255), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*(('node', 'stream') if with_node else ('stream',)),
                                name=op.f('pk_radius_detail_cursors')),
    )


def _rows() -> list[dict[str, object]]:
    table = sa.table('radius_detail_cursors', *(sa.column(c) for c in _COLUMNS))
    return [dict(r._mapping) for r in op.get_bind().execute(sa.select(table))]


def upgrade() -> None:
    # A handful of rows (one per stream): recreating the table is simpler than swapping a
    # primary key on both databases. The existing cursors belong to the single node there
    # was (node ""); the first node started after the upgrade takes them over.
    rows = _rows()
    op.drop_table('radius_detail_cursors')
    _table(with_node=True)
    if rows:
        table = sa.table('radius_detail_cursors', sa.column('node'),
                         *(sa.column(c) for c in _COLUMNS))
        op.get_bind().execute(sa.insert(table), [{**r, 'node': ''} for r in rows])


def downgrade() -> None:
    table = sa.table('radius_detail_cursors', sa.column('node'),
                     *(sa.column(c) for c in _COLUMNS))
    rows = [dict(r._mapping) for r in op.get_bind().execute(
        sa.select(*(table.c[c] for c in _COLUMNS)).where(table.c.node == ''))]
    op.drop_table('radius_detail_cursors')
    _table(with_node=False)
    if rows:
        old = sa.table('radius_detail_cursors', *(sa.column(c) for c in _COLUMNS))
        op.get_bind().execute(sa.insert(old), rows)
