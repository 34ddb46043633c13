"""Migration 0018 keeps the single node's detail-file cursors (under node "") and gives them
back on a downgrade."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from radbill import migrate
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture

ROWS = "SELECT {} stream, file_name, \"offset\", records FROM radius_detail_cursors ORDER BY stream"


def test_cursors_survive_the_upgrade_and_the_downgrade(fresh: Engine) -> None:  # noqa: F811
    cfg = migrate.alembic_config(fresh)
    before = ScriptDirectory.from_config(cfg).get_revision("0018").down_revision
    assert isinstance(before, str)
    migrate.upgrade(fresh, before)
    with fresh.begin() as conn:
        conn.execute(text("INSERT INTO radius_detail_cursors (stream, file_name, \"offset\", "
                          "records, updated_at) VALUES ('acct', 'detail-20261130-11', 4096, 12, "
                          "CURRENT_TIMESTAMP), ('postauth', 'detail-20261130-10', 512, 3, "
                          "CURRENT_TIMESTAMP)"))
    migrate.upgrade(fresh, "0018")
    with fresh.begin() as conn:
        assert conn.execute(text(ROWS.format("node,"))).all() == [
            ("", "acct", "detail-20261130-11", 4096, 12),
            ("", "postauth", "detail-20261130-10", 512, 3)]
        conn.execute(text("INSERT INTO radius_detail_cursors (node, stream, file_name, "
                          "\"offset\", records, updated_at) VALUES ('node-b', 'acct', "
                          "'detail-20261130-12', 1, 1, CURRENT_TIMESTAMP)"))
    downgrade(fresh, before)
    with fresh.begin() as conn:
        assert conn.execute(text(ROWS.format(""))).all() == [
            ("acct", "detail-20261130-11", 4096, 12),
            ("postauth", "detail-20261130-10", 512, 3)]


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = migrate.alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)
