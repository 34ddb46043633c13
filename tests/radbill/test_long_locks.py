"""A migration that would lock a big table for long is flagged before it runs: on PostgreSQL,
with 150,000 rows in radius_postauth (every login writes one; the line is drawn at 100,000),
a plain CREATE INDEX on it
is refused by `radbill db upgrade` until the operator says --allow-long-locks; the same
migration on a small table, and a cheap migration on the big one, pass."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from radbill import migrate
from radbill.cli import main
from radbill.db import make_engine
from tests import pgserver
from tests.conftest import BACKEND

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BACKEND != "postgresql",
                                reason="long locks are PostgreSQL's: SQLite locks the whole "
                                       "database for any write")]

BIG = 150_000  # past migrate.BIG_TABLE_ROWS: what the check counts is all that matters
REPO = Path(__file__).resolve().parents[2]


def _migration(scripts: Path, revision: str, down: str, body: str) -> None:
    (scripts / "versions" / f"{revision}_test.py").write_text(
        f'"""test migration {revision}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        f"depends_on = None\n\n\ndef upgrade() -> None:\n    {body}\n\n\n"
        "def downgrade() -> None:\n    pass\n")


@pytest.fixture(scope="module")
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[Engine, Path, str]]:
    """A PostgreSQL database at head with 150,000 post-auth rows, and a copy of the
    migrations the tests add to (in order: the cheap ones first, then the long one)."""
    tmp_path = tmp_path_factory.mktemp("long-locks")
    admin = request.getfixturevalue("pg_admin_url")
    name, url = pgserver.create_database(admin)
    engine = make_engine(pgserver.sqlalchemy_url(url))
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO radius_postauth (at, username, decision, reason) "
                "SELECT now() - make_interval(secs => g), 'user' || (g % 50000), "
                "CASE WHEN g % 7 = 0 THEN 'reject' ELSE 'accept' END, 'ok' "
                "FROM generate_series(1, :n) AS g"), {"n": BIG})
        scripts = tmp_path / "migrations"
        shutil.copytree(REPO / "migrations", scripts,
                        ignore=shutil.ignore_patterns("__pycache__"))
        yield engine, scripts, pgserver.sqlalchemy_url(url)
    finally:
        engine.dispose()
        pgserver.drop_database(admin, name)


def test_small_tables_and_cheap_changes_pass(big) -> None:  # type: ignore[no-untyped-def]
    engine, scripts, _ = big
    # an index on a small table is quick: not flagged
    _migration(scripts, "9001", str(migrate.head_revision(engine)),
               "op.create_index('ix_nas_type', 'nas', ['nas_type'])")
    # a nullable column on the big table is a catalog change: not flagged
    _migration(scripts, "9002", "9001",
               "op.add_column('radius_postauth', sa.Column('note', sa.Text(), nullable=True))")
    assert migrate.lock_risks(engine, scripts) == []
    migrate.upgrade(engine, scripts=scripts)
    assert migrate.current_revision(engine) == "9002"


def test_an_index_on_a_big_table_is_flagged_and_refused(big, monkeypatch, tmp_path  # type: ignore[no-untyped-def]
                                                          ) -> None:
    engine, scripts, url = big
    _migration(scripts, "9003", "9002", "op.create_index('ix_postauth_reason_at', "
               "'radius_postauth', ['reason', 'at'])")
    risks = migrate.lock_risks(engine, scripts)
    assert [(r.revision, r.table, r.rows) for r in risks] == [
        ("9003", "radius_postauth", migrate.BIG_TABLE_ROWS)]
    assert "without CONCURRENTLY" in risks[0].why
    assert risks[0].line().startswith("9003: radius_postauth (100,000+ rows): builds an index")

    # `radbill db upgrade` refuses it in one line and changes nothing ...
    monkeypatch.setenv("RADBILL_DATABASE_URL", url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(migrate, "PROJECT_ROOT", scripts.parent)
    runner = CliRunner()
    refused = runner.invoke(main, ["db", "upgrade"])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "error: this upgrade locks big tables for long")
    assert "9003: radius_postauth (100,000+ rows)" in refused.stderr
    assert migrate.current_revision(engine) != "9003"

    # ... until the operator takes the maintenance window; the lock it takes is real: a
    # login's post-auth row waits for the whole index build
    started = time.monotonic()
    done = runner.invoke(main, ["db", "upgrade", "--allow-long-locks"])
    took = time.monotonic() - started
    assert done.exit_code == 0, done.output
    assert migrate.current_revision(engine) == "9003"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname = "
                                 "'ix_postauth_reason_at'")).scalar_one() == 1
    print(f"\nCREATE INDEX on {BIG:,} radius_postauth rows: {took:.2f} s with writes "
          "blocked")
