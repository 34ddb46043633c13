"""Schema migrations (Alembic) driven from code: `radbill db upgrade`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from radbill.config import PROJECT_ROOT


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to *engine*."""
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to *revision*."""
    cfg = alembic_config(engine)
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
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
