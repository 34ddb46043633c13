"""A fixture body as the suite's `fresh` fixtures write it (tests/radbill/test_suite_split.py)."""

from __future__ import annotations

import pytest


def fresh_database(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue("pg_admin_url")


def plain_value() -> int:
    return 42
