"""Shared fixtures. ``RADBILL_TEST_DB=sqlite`` (default) or ``postgresql`` picks the database
every database test runs on; ``make test`` runs the suite once for each."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

import admin.models  # noqa: F401 - every model on the metadata
import coa.models  # noqa: F401
import notify.models  # noqa: F401
import olt.models  # noqa: F401
import payments.models  # noqa: F401
import portal.models  # noqa: F401
import radbill.ops  # noqa: F401
import radius.models  # noqa: F401
import usage.models  # noqa: F401
from billing.models import IspSettings
from radbill import migrate
from radbill.crypto import SecretBox
from radbill.db import Base, ChangeCounter, make_engine, session_factory
from tests import pgserver

BACKEND = os.environ.get("RADBILL_TEST_DB", "sqlite")

# Property-based and schema-generated tests draw the same examples on every run (CI must not
# fail by chance) and keep no example database between runs: a failure found locally is
# reproduced by its printed example, not by a file CI does not have. Set
# RADBILL_HYPOTHESIS=explore to search with fresh random examples.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("RADBILL_HYPOTHESIS", "ci"))


def pytest_report_header() -> str:
    header = f"radbill database backend: {BACKEND}"
    if DATABASE_TESTS_ONLY:
        header += " (database tests only: the others run in the other pass)"
    return header


# `make test` runs the suite once per database side by side. A test that never touches the
# database (rules, money arithmetic, wire protocols, simulators) would do the same thing twice:
# with RADBILL_TEST_DATABASE_ONLY=1 the PostgreSQL pass leaves it to the SQLite pass. A test
# touches the database when its module or one of its fixtures names the backend or a database
# fixture (the fixtures are read, not guessed: `fresh` fixtures that call
# request.getfixturevalue("pg_admin_url") count).
DATABASE_TESTS_ONLY = os.environ.get("RADBILL_TEST_DATABASE_ONLY") == "1"
_DATABASE_WORDS = re.compile(r"\b(BACKEND|RADBILL_TEST_DB|pg_admin_url|database_url)\b")
_mentions_database: dict[object, bool] = {}


def _mentions(obj: object) -> bool:
    if obj not in _mentions_database:
        try:
            _mentions_database[obj] = bool(_DATABASE_WORDS.search(inspect.getsource(obj)))  # type: ignore[arg-type]
        except (OSError, TypeError):
            _mentions_database[obj] = True  # source unreadable: assume it does
    return _mentions_database[obj]


def touches_database(item: pytest.Item) -> bool:
    """Whether this test's module or any fixture it uses names the database backend."""
    module = getattr(item, "module", None)
    if module is None or _mentions(module):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return True
    return any(_mentions(d.func) for defs in info.name2fixturedefs.values() for d in defs)


def runs_in_database_pass(item: pytest.Item) -> bool:
    """Whether the PostgreSQL pass of `make test` runs this test: it touches the database under
    test, and is not marked `own_postgresql` (a test that needs PostgreSQL itself whatever
    RADBILL_TEST_DB says: a benchmark's smoke test on its own databases; it runs
    once, in the other pass, which is the shorter one)."""
    return touches_database(item) and item.get_closest_marker("own_postgresql") is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not DATABASE_TESTS_ONLY:
        return
    keep = [item for item in items if runs_in_database_pass(item)]
    if len(keep) < len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for this run: the machine's, or a private one started here."""
    url = os.environ.get("RADBILL_TEST_PG_URL", pgserver.DEFAULT_ADMIN_URL)
    if pgserver.server_answers(url):
        yield url
        return
    cluster = pgserver.PrivateCluster().init()
    cluster.start()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
                 ) -> Iterator[str]:
    """The URL of a migrated, empty database for this run."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'radbill.db'}"
        return
    if BACKEND != "postgresql":
        raise RuntimeError(f"RADBILL_TEST_DB={BACKEND!r}: use sqlite or postgresql")
    admin = request.getfixturevalue("pg_admin_url")
    name, url = pgserver.create_database(admin)
    try:
        yield pgserver.sqlalchemy_url(url)
    finally:
        pgserver.drop_database(admin, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def wipe(engine: Engine) -> None:
    """Delete every row (children first) and reset the change counters."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "change_counters":
                conn.execute(delete(table))
        # the overdue figures the invoices' triggers keep (billing.owed) moved as the
        # invoices went, perhaps after they were emptied: emptied last
        for name in ("overdue_day_totals", "overdue_since_counts", "overdue_accounts"):
            conn.execute(delete(Base.metadata.tables[name]))
        conn.execute(update(ChangeCounter).values(value=0))
    # the ISP settings row the migration seeds, with the models' defaults
    with session_factory(engine)() as s, s.begin():
        s.add(IspSettings(id=1))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The engine, on an empty database (wiped before and after the test)."""
    wipe(engine)
    yield engine
    wipe(engine)


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    """A session on an empty database; the test commits or not as it likes."""
    with session_factory(db)() as s:
        yield s


@pytest.fixture(scope="session")
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def cli(db, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Run the real `radbill ARGS` on the test database (data directory: the test's
    tmp_path); asserts exit 0 unless ``ok=False``."""
    from click.testing import CliRunner

    from radbill.cli import main

    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    return run
