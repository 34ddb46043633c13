"""The Alembic migrations produce exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from radbill import migrate
from radbill.db import Base
from radius.partitions import is_partition


def not_a_partition(name, type_, parent_names) -> bool:  # type: ignore[no-untyped-def]
    """radius_sessions' month partitions (PostgreSQL) are the parent's, not models."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return not (table and is_partition(table))


def test_models_and_migrations_agree(engine) -> None:  # type: ignore[no-untyped-def]
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                  "include_name": not_a_partition})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_change_counters_are_seeded(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM change_counters")}
    assert names == {"auth", "sessions"}


def test_two_recorded_revisions_are_one_clear_refusal(engine) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from sqlalchemy import text

    from radbill.errors import Conflict

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    try:
        for step in (migrate.upgrade, migrate.current_revision):
            with pytest.raises(Conflict, match=r"alembic_version records 2 schema revisions "
                                               r"\(0001, 0\d{3}\) where there must be one"):
                step(engine)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = '0001'"))
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
