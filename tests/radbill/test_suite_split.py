"""`make test` leaves the tests that never touch the database to the SQLite pass
(tests/conftest.py `touches_database`): a wrong answer would silently drop a test from the
PostgreSQL pass, so the rule is checked here on this module and on fixtures like the suite's."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tests.conftest import runs_in_database_pass, touches_database
from tests.radbill import suite_split_fixture


def _item(*fixtures: object) -> SimpleNamespace:
    defs = {f"f{i}": [SimpleNamespace(func=func)] for i, func in enumerate(fixtures)}
    return SimpleNamespace(module=sys.modules[__name__],
                           _fixtureinfo=SimpleNamespace(name2fixturedefs=defs))


def test_this_test_runs_in_one_pass(request: pytest.FixtureRequest) -> None:
    assert touches_database(request.node) is False


def test_a_fixture_that_asks_for_the_database_by_name_counts() -> None:
    assert touches_database(_item(suite_split_fixture.plain_value)) is False  # type: ignore[arg-type]
    assert touches_database(_item(suite_split_fixture.plain_value,  # type: ignore[arg-type]
                                  suite_split_fixture.fresh_database)) is True


def test_a_test_using_the_engine_counts(engine: object, request: pytest.FixtureRequest) -> None:
    assert touches_database(request.node) is True


def test_unreadable_source_counts() -> None:
    assert touches_database(_item(len)) is True  # type: ignore[arg-type]



def test_a_test_with_its_own_postgresql_runs_in_the_other_pass() -> None:
    own = _item(suite_split_fixture.fresh_database)
    own.get_closest_marker = lambda name: object() if name == "own_postgresql" else None
    assert touches_database(own) is True  # type: ignore[arg-type]  # it asks for PostgreSQL ...
    assert runs_in_database_pass(own) is False  # type: ignore[arg-type]  # ... once, in the SQLite pass
    plain = _item(suite_split_fixture.fresh_database)
    plain.get_closest_marker = lambda name: None
    assert runs_in_database_pass(plain) is True  # type: ignore[arg-type]
