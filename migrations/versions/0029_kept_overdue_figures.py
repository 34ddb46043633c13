"""kept overdue figures: overdue_day_totals, overdue_accounts and overdue_since_counts, kept by
triggers on invoices, so today's overdue count and totals (the dashboard, /api/v1/dashboard,
`radbill billing overdue`, the daily summary) are a read of a few rows instead of an
aggregate over every overdue document (100,000 at a million subscribers).

A document owes something when it is open, not a credit note, has a due date and its kept
`outstanding` (0023) is above zero. `overdue_day_totals` sums what those documents owe per
due date and currency (in cents, with how many documents); `overdue_accounts` keeps each
subscriber's oldest due date among them (`since`); `overdue_since_counts` counts the
subscribers per `since`. Today's figures: the rows due (since) before today.

Triggers, not Python: every path that writes a document (settlement, the billing run's COPY
and set-based updates, issue, import, a repair) moves the figures in its own transaction,
including paths added later. PostgreSQL: statement-level triggers with transition tables
(one set-based pass per statement, not per row: the run writes thousands of documents per
statement); the subscriber's `overdue_accounts` row is locked before it is restated, so two
transactions moving one subscriber's documents take turns. SQLite: row triggers.

Filled here from the existing documents. `radbill billing overdue-check` recomputes all
three from the documents (`--repair` restates them).

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-30 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

# what "owes something" means, on a row alias (the fields of billing.owed.OWES)
def _owes(r: str) -> str:
    return (f"{r}status = 'open' AND {r}kind <> 'credit_note' AND {r}due_on IS NOT NULL "
            f"AND {r}outstanding > 0")


_COLUMNS = "id, subscriber_id, status, kind, due_on, currency, outstanding"

PG_FUNCTION = """
CREATE FUNCTION invoices_keep_overdue() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed text;
    subs bigint[];
BEGIN
    -- the rows of this statement whose figures may have moved (__COLUMNS__, sign): -1 for
    -- what a row was, +1 for what it is. An update's unchanged rows cancel out (EXCEPT ALL:
    -- hashed, no join of the two transition tables, which have no statistics)
    IF TG_OP = 'INSERT' THEN
        changed := 'SELECT __COLUMNS__, 1 AS sign FROM new_rows';
    ELSIF TG_OP = 'DELETE' THEN
        changed := 'SELECT __COLUMNS__, -1 AS sign FROM old_rows';
    ELSE
        changed := '(SELECT __COLUMNS__, -1 AS sign FROM old_rows '
                   'EXCEPT ALL SELECT __COLUMNS__, -1 FROM new_rows) UNION ALL '
                   '(SELECT __COLUMNS__, 1 FROM new_rows '
                   'EXCEPT ALL SELECT __COLUMNS__, 1 FROM old_rows)';
    END IF;
    EXECUTE 'SELECT array_agg(DISTINCT subscriber_id ORDER BY subscriber_id) FROM ('
        || changed || ') c' INTO subs;
    IF subs IS NULL THEN
        RETURN NULL;  -- nothing that counts moved (a PDF path, a payment link...)
    END IF;
    -- what is owed per due date and currency: deltas, keys in order
    EXECUTE 'INSERT INTO overdue_day_totals AS t (due_on, currency, amount_cents, documents) '
        'SELECT due_on, currency, sum(sign * round(outstanding * 100)::bigint), sum(sign) '
        'FROM (' || changed || ') c WHERE __OWES__ '
        'GROUP BY due_on, currency '
        'HAVING sum(sign) <> 0 OR sum(sign * round(outstanding * 100)::bigint) <> 0 '
        'ORDER BY due_on, currency '
        'ON CONFLICT (due_on, currency) DO UPDATE SET '
        'amount_cents = t.amount_cents + excluded.amount_cents, '
        'documents = t.documents + excluded.documents';
    DELETE FROM overdue_day_totals WHERE documents = 0 AND amount_cents = 0;
    -- each subscriber concerned: its row made and locked (in id order), then its oldest
    -- owed due date restated from its documents and the per-day counts moved
    INSERT INTO overdue_accounts (subscriber_id)
        SELECT s FROM unnest(subs) AS s ON CONFLICT DO NOTHING;
    -- joined to the array, not "= ANY (subs)": a filter that searches the array for each
    -- row read is quadratic in a statement's size
    PERFORM 1 FROM overdue_accounts b JOIN unnest(subs) AS a(s) ON b.subscriber_id = a.s
        ORDER BY b.subscriber_id FOR UPDATE OF b;
    WITH fresh AS (
        SELECT a.s AS subscriber_id,
               -- by subscriber, from its index: "+ 0" and "|| ''" keep the planner off
               -- the indexes of every open document ((status, due_on) and the partial
               -- ones), which it would walk whole for each subscriber (quadratic in a
               -- statement's size: a plan made while the tables look small)
               (SELECT min(i.due_on + 0) FROM invoices i
                 WHERE i.subscriber_id = a.s AND (i.status || '') = 'open'
                   AND i.kind <> 'credit_note' AND i.due_on IS NOT NULL
                   AND i.outstanding > 0) AS since
          FROM unnest(subs) AS a(s)),
    d AS (
        SELECT b.subscriber_id, b.since AS was, f.since AS now_since
          FROM overdue_accounts b JOIN fresh f ON f.subscriber_id = b.subscriber_id
         WHERE b.since IS DISTINCT FROM f.since),
    u AS (
        UPDATE overdue_accounts b SET since = d.now_since FROM d
         WHERE b.subscriber_id = d.subscriber_id)
    INSERT INTO overdue_since_counts AS t (since, subscribers)
        SELECT m.since, sum(m.n) FROM (
            SELECT was AS since, -1 AS n FROM d WHERE was IS NOT NULL
            UNION ALL SELECT now_since, 1 FROM d WHERE now_since IS NOT NULL) m
         GROUP BY m.since HAVING sum(m.n) <> 0 ORDER BY m.since
        ON CONFLICT (since) DO UPDATE SET subscribers = t.subscribers + excluded.subscribers;
    DELETE FROM overdue_since_counts WHERE subscribers = 0;
    RETURN NULL;
END
$fn$
""".replace("__OWES_I__", _owes("i.")).replace(
    "__OWES__", _owes("").replace("'", "''")).replace("__COLUMNS__", _COLUMNS)

PG_TRIGGERS = (
    "CREATE TRIGGER invoices_overdue_insert AFTER INSERT ON invoices "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION invoices_keep_overdue()",
    "CREATE TRIGGER invoices_overdue_update AFTER UPDATE ON invoices "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION invoices_keep_overdue()",
    "CREATE TRIGGER invoices_overdue_delete AFTER DELETE ON invoices "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION invoices_keep_overdue()",
)


def _sqlite_less(r: str) -> str:
    """Take a document (row alias r: OLD or NEW) out of the day totals, if it owed."""
    return (f"UPDATE overdue_day_totals SET amount_cents = amount_cents - "  # noqa: S608
            f"CAST(round({r}.outstanding * 100) AS INTEGER), documents = documents - 1 "
            f"WHERE due_on = {r}.due_on AND currency = {r}.currency AND {_owes(r + '.')};")


def _sqlite_more(r: str) -> str:
    """Add a document to the day totals, if it owes."""
    return (f"INSERT INTO overdue_day_totals (due_on, currency, amount_cents, documents) "
            f"SELECT {r}.due_on, {r}.currency, CAST(round({r}.outstanding * 100) AS INTEGER), 1 "
            f"WHERE {_owes(r + '.')} ON CONFLICT (due_on, currency) DO UPDATE SET "
            f"amount_cents = amount_cents + excluded.amount_cents, "
            f"documents = documents + 1;")


def _sqlite_restate(r: str) -> str:
    """Restate the subscriber's oldest owed due date and move the per-day counts."""
    s = f"{r}.subscriber_id"
    return (
        f"INSERT OR IGNORE INTO overdue_accounts (subscriber_id, since) VALUES ({s}, NULL);"  # noqa: S608
        f"UPDATE overdue_since_counts SET subscribers = subscribers - 1 WHERE since = "
        f"(SELECT since FROM overdue_accounts WHERE subscriber_id = {s});"
        f"UPDATE overdue_accounts SET since = (SELECT min(i.due_on) FROM invoices i "
        f"WHERE i.subscriber_id = {s} AND {_owes('i.')}) WHERE subscriber_id = {s};"
        f"INSERT INTO overdue_since_counts (since, subscribers) SELECT since, 1 "
        f"FROM overdue_accounts WHERE subscriber_id = {s} AND since IS NOT NULL "
        f"ON CONFLICT (since) DO UPDATE SET subscribers = subscribers + 1;"
        f"DELETE FROM overdue_since_counts WHERE subscribers = 0;")


_CLEAN = "DELETE FROM overdue_day_totals WHERE documents = 0 AND amount_cents = 0;"
_MOVED = ("OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind OR "
          "OLD.due_on IS NOT NEW.due_on OR OLD.currency IS NOT NEW.currency OR "
          "OLD.outstanding IS NOT NEW.outstanding OR OLD.subscriber_id IS NOT NEW.subscriber_id")

SQLITE_TRIGGERS = (
    f"CREATE TRIGGER invoices_overdue_insert AFTER INSERT ON invoices WHEN {_owes('NEW.')} "
    f"BEGIN {_sqlite_more('NEW')} {_sqlite_restate('NEW')} END",
    f"CREATE TRIGGER invoices_overdue_update AFTER UPDATE ON invoices WHEN {_MOVED} "
    f"BEGIN {_sqlite_less('OLD')} {_sqlite_more('NEW')} {_CLEAN} {_sqlite_restate('OLD')} "
    f"{_sqlite_restate('NEW')} END",
    f"CREATE TRIGGER invoices_overdue_delete AFTER DELETE ON invoices WHEN {_owes('OLD.')} "
    f"BEGIN {_sqlite_less('OLD')} {_CLEAN} {_sqlite_restate('OLD')} END",
)
TRIGGER_NAMES = ("invoices_overdue_insert", "invoices_overdue_update",
                 "invoices_overdue_delete")


def upgrade() -> None:
    op.create_table(
        'overdue_day_totals',
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('documents', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('due_on', 'currency', name=op.f('pk_overdue_day_totals')),
    )
    op.create_table(
        'overdue_accounts',
        sa.Column('subscriber_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('since', sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint('subscriber_id', name=op.f('pk_overdue_accounts')),
    )
    op.create_table(
        'overdue_since_counts',
        sa.Column('since', sa.Date(), nullable=False),
        sa.Column('subscribers', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('since', name=op.f('pk_overdue_since_counts')),
    )
    conn = op.get_bind()
    from billing import owed  # the same recomputation the check command uses

    owed.fill(conn)
    if conn.dialect.name == 'postgresql':
        op.execute(PG_FUNCTION)
        for ddl in PG_TRIGGERS:
            op.execute(ddl)
        op.execute("ANALYZE overdue_accounts")
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    conn = op.get_bind()
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}"
                   + (" ON invoices" if conn.dialect.name == 'postgresql' else ""))
    if conn.dialect.name == 'postgresql':
        op.execute("DROP FUNCTION IF EXISTS invoices_keep_overdue()")
    op.drop_table('overdue_since_counts')
    op.drop_table('overdue_accounts')
    op.drop_table('overdue_day_totals')
