"""Migration 0030 drops three indexes of radius_sessions no query needs (every new session
and every Stop wrote each of them) and builds them again on a downgrade; the queries they
served still find an index (on PostgreSQL, checked with EXPLAIN)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from radbill import migrate
from tests.conftest import BACKEND
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture
from tests.radbill.test_migration_0018 import downgrade

DROPPED = {"ix_radius_sessions_subscriber_id", "ix_radius_sessions_nas_open",
           "ix_radius_sessions_live_nas"}


def indexes(engine: Engine) -> set[str]:
    sql = ("SELECT indexname FROM pg_indexes WHERE tablename = 'radius_sessions'"
           if BACKEND == "postgresql" else
           "SELECT name FROM sqlite_master WHERE type = 'index' "
           "AND tbl_name = 'radius_sessions'")
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(sql))}


def plan(engine: Engine, sql: str) -> str:
    with engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))  # a small table: ask what it could use
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))


def test_the_three_indexes_go_and_come_back(fresh: Engine) -> None:  # noqa: F811
    migrate.upgrade(fresh, "0029")
    assert indexes(fresh) >= DROPPED
    migrate.upgrade(fresh, "0030")
    after = indexes(fresh)
    assert not DROPPED & after
    assert {"ix_radius_sessions_subscriber_stopped", "ix_radius_sessions_online"} <= after
    if BACKEND == "postgresql":
        # what they served (by subscriber; a NAS's open sessions, as Accounting-On closes
        # them) is still read through an index of each month's partition
        for sql in ("SELECT id FROM radius_sessions WHERE subscriber_id = 7",
                    "SELECT id FROM radius_sessions WHERE nas_ip = '10.0.0.1' "
                    "AND stopped_at IS NULL"):
            found = plan(fresh, sql)
            assert "Index" in found and "Seq Scan" not in found, found
    downgrade(fresh, "0029")
    assert indexes(fresh) >= DROPPED
    migrate.upgrade(fresh, "head")
    assert not DROPPED & indexes(fresh)
