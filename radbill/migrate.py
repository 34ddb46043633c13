"""Schema migrations (Alembic) driven from code: `radbill db upgrade`."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from radbill.config import PROJECT_ROOT
from radbill.errors import Conflict


def alembic_config(engine: Engine, scripts: Path | None = None) -> Config:
    """An Alembic configuration bound to *engine* (the migrations in *scripts*, by default
    the release's own)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts or PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def one_recorded_revision(connection: Connection) -> None:
    """Refuse a database whose ``alembic_version`` records several revisions: radbill's
    migrations are one line, so it holds one row; two mean a hand edit or a restore mixed
    into another schema, and Alembic would then fail with a message about heads."""
    if not inspect(connection).has_table("alembic_version"):
        return
    found = list(connection.execute(text(
        "SELECT version_num FROM alembic_version ORDER BY version_num LIMIT 6")).scalars())
    if len(found) > 1:
        raise Conflict(f"alembic_version records {len(found)} schema revisions "
                       f"({', '.join(v[:32] for v in found[:5])}) where there must be one: "
                       "delete the rows of the revisions the schema is not at "
                       "('radbill db check' compares the schema with the models); nothing "
                       "was changed")


def upgrade(engine: Engine, revision: str = "head", scripts: Path | None = None) -> None:
    """Bring the schema up to *revision*."""
    with engine.connect() as connection:
        one_recorded_revision(connection)
    cfg = alembic_config(engine, scripts)
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, cfg, revision)
        return
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def _upgrade_sqlite(engine: Engine, cfg: Config, revision: str) -> None:
    """SQLite's batch mode rebuilds a table by copy, drop and rename. With foreign keys
    enforced, dropping a table other rows point at fails (a plan with subscribers), and its
    ON DELETE actions would fire on the rows that point at it. So, as SQLite's documentation
    prescribes for schema changes, they are off during the migration (the pragma is ignored
    inside a transaction) and checked before it commits: a dangling reference rolls it all
    back."""
    with engine.connect() as connection:
        # on the driver's connection: SQLAlchemy's would open a transaction first (BEGIN)
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, revision)
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if dangling:
                    table, rowid, parent, _ = dangling[0]
                    raise RuntimeError(f"migration left {len(dangling)} rows pointing nowhere "
                                       f"(first: {table} row {rowid} -> {parent}); nothing "
                                       "was changed")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """The schema's revision, None for an empty database."""
    with engine.connect() as connection:
        one_recorded_revision(connection)
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine, scripts: Path | None = None) -> str | None:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config(engine, scripts)).get_current_head()


# -- long locks ----------------------------------------------------------------------------------

#: A table with at least this many rows is big: rewriting or scanning it under a lock that
#: blocks writers takes long enough for RADIUS accounting and logins to queue up behind it.
BIG_TABLE_ROWS = 100_000

# Statements that hold a lock blocking writes while PostgreSQL reads or rewrites every row,
# with what an operator should know about each. (ADD COLUMN with a constant default, DROP,
# RENAME and CREATE INDEX CONCURRENTLY do not: they are not listed.)
_LONG_LOCKS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I | re.S), why) for pattern, why in (
        (r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY)(?:IF NOT EXISTS\s+)?\S+\s+ON\s+"
         r"(?:ONLY\s+)?(?P<table>[\w\"]+)",
         "builds an index without CONCURRENTLY: writes to the table wait until it is built"),
        (r"^ALTER\s+TABLE\s+(?P<table>[\w\"]+)\s+ALTER\s+COLUMN\s+\S+\s+(?:SET\s+DATA\s+)?TYPE\b"
         # a longer VARCHAR or TEXT is a catalog change (PostgreSQL rewrites nothing)
         r"(?!\s+(?:VARCHAR\(\d+\)|TEXT)\s*(?:USING\b|$))",
         "changes a column's type: the table is rewritten, locked against reads and writes"),
        (r"^ALTER\s+TABLE\s+(?P<table>[\w\"]+)\s+ALTER\s+COLUMN\s+\S+\s+SET\s+NOT\s+NULL",
         "sets NOT NULL: every row is read, the table locked against reads and writes"),
        (r"^ALTER\s+TABLE\s+(?P<table>[\w\"]+)\s+ADD\s+COLUMN\s+[^;]*\bDEFAULT\s+[^;]*\(",
         "adds a column whose default is computed per row: the table is rewritten, locked"),
        (r"^ALTER\s+TABLE\s+(?P<table>[\w\"]+)\s+ADD\s+CONSTRAINT\s+\S+\s+"
         r"(?:FOREIGN\s+KEY|CHECK)\b(?![^;]*NOT\s+VALID)",
         "adds a constraint without NOT VALID: every row is checked under a lock"),
        (r"^ALTER\s+TABLE\s+(?P<table>[\w\"]+)\s+ADD\s+CONSTRAINT\s+\S+\s+(?:UNIQUE|PRIMARY)",
         "adds a unique constraint: its index is built with the table locked"),
        (r"^UPDATE\s+(?:ONLY\s+)?(?P<table>[\w\"]+)\s+SET\b",
         "updates rows in the migration's transaction: they stay locked until it commits"),
        (r"^DELETE\s+FROM\s+(?:ONLY\s+)?(?P<table>[\w\"]+)",
         "deletes rows in the migration's transaction: they stay locked until it commits"),
        (r"^INSERT\s+INTO\s+[\w\"]+\s*(?:\([^)]*\)\s*)?SELECT\b.*?\bFROM\s+(?:ONLY\s+)?"
         r"(?P<table>[\w\"]+)",
         "copies the table's rows in the migration's transaction: writes to it wait until "
         "the copy commits"),
    ))


@dataclass(frozen=True)
class LockRisk:
    """A pending migration's statement that would lock a big table for long (or, with
    ``rows`` None, a migration that could not be checked)."""

    revision: str
    table: str
    rows: int | None
    why: str

    def line(self) -> str:
        if self.rows is None:
            return f"{self.revision}: not checked ({self.why})"
        more = "+" if self.rows >= BIG_TABLE_ROWS else ""
        return f"{self.revision}: {self.table} ({self.rows:,}{more} rows): {self.why}"


def _rows(engine: Engine, table: str, at_least: int) -> int:
    """The table's rows, counted up to *at_least* (a bounded read, whatever the size)."""
    from sqlalchemy import text

    name = table.strip('"')
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": name}).scalar()
        if exists is None:
            return 0
        quoted = engine.dialect.identifier_preparer.quote(name)
        return int(conn.execute(text(
            f"SELECT count(*) FROM (SELECT 1 FROM {quoted} LIMIT :n) AS t"),  # noqa: S608 - a quoted identifier
            {"n": at_least}).scalar_one())


def pending_statements(engine: Engine, scripts: Path | None = None
                       ) -> list[tuple[str, list[str] | Exception]]:
    """Each pending revision (oldest first) with the SQL it would run, rendered offline for
    the engine's dialect, or the reason it could not be (a migration that reads data)."""
    cfg = alembic_config(engine, scripts)
    script = ScriptDirectory.from_config(cfg)
    current = current_revision(engine)
    if current is None:
        return []  # a new database: nothing in it to lock
    out: list[tuple[str, list[str] | Exception]] = []
    revisions = list(script.iterate_revisions("heads", current))
    for rev in reversed(revisions):
        if rev.revision == current:
            continue
        buf = io.StringIO()
        cfg.output_buffer = buf
        cfg.attributes.pop("connection", None)
        try:
            command.upgrade(cfg, f"{rev.down_revision}:{rev.revision}", sql=True)
        except Exception as exc:  # noqa: BLE001 - reported as "not checked"
            out.append((rev.revision, exc))
            continue
        statements = [s.strip() for s in buf.getvalue().split(";\n") if s.strip()]
        out.append((rev.revision, [s for s in statements
                                   if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))
                                   and "alembic_version" not in s]))
    return out


def lock_risks(engine: Engine, scripts: Path | None = None,
               big: int = BIG_TABLE_ROWS) -> list[LockRisk]:
    """What the pending migrations would lock for long, on PostgreSQL: statements from
    :data:`_LONG_LOCKS` on tables of at least *big* rows. SQLite locks the whole database
    for any write, whatever the migration: nothing is reported there."""
    if engine.dialect.name != "postgresql":
        return []
    risks: list[LockRisk] = []
    for revision, statements in pending_statements(engine, scripts):
        if isinstance(statements, Exception):
            first = (str(statements).strip().splitlines() or [type(statements).__name__])[0]
            risks.append(LockRisk(revision, "", None, f"could not render it offline: {first}"))
            continue
        for sql in statements:
            body = "\n".join(x for x in sql.splitlines() if not x.lstrip().startswith("--"))
            for pattern, why in _LONG_LOCKS:
                found = pattern.search(body.strip())
                if found:
                    table = found.group("table").strip('"')
                    rows = _rows(engine, table, big)
                    if rows >= big:
                        risks.append(LockRisk(revision, table, rows, why))
                    break
    return risks
