"""radbill.pgarrays: lists dumped ahead of time as psycopg would dump them (the billing run
formats a batch in one thread and sends it from another), and known to any connection."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from radbill.pgarrays import predumped
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC

CASES = [
    ([1, 2, 3], "bigint"),
    ([10**12, None, -5], "bigint"),
    ([dt.date(2026, 12, 1), None], "date"),
    ([True, False, None], "boolean"),
    ([Decimal("1050.00"), Decimal("-0.01"), None], "numeric(12,2)"),
    (["INV-000001", "ক্ষ", None], "varchar(32)"),
    ([json.dumps({"amount": "1050.00"}), json.dumps([])], "json"),
    ([dt.datetime(2026, 12, 1, 18, tzinfo=UTC), None], "timestamptz"),
]


@pytest.fixture
def pg_only() -> None:
    if BACKEND != "postgresql":
        pytest.skip("PostgreSQL arrays")


@pytest.mark.parametrize(("values", "sql_type"), CASES, ids=[t for _, t in CASES])
def test_a_predumped_list_reads_back_as_the_list_itself(engine, pg_only, values, sql_type
                                                        ) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        plain = conn.exec_driver_sql(f"SELECT %b::{sql_type}[]", (values,)).scalar_one()
        dumped = conn.exec_driver_sql(f"SELECT %b::{sql_type}[]",
                                      (predumped(values),)).scalar_one()
    assert dumped == plain
    assert [json.loads(v) if isinstance(v, str) and sql_type == "json" else v
            for v in values] == dumped


def test_a_connection_opened_before_the_import_knows_the_types(pg_admin_url, pg_only
                                                               ) -> None:  # type: ignore[no-untyped-def]
    # The billing run imports billing.batch (and so this module) lazily, after the engine's
    # first connection: SQLAlchemy's dialect had already given that connection adapters of
    # its own, a copy without this module's types ("cannot adapt type ...").
    script = textwrap.dedent(f"""
        from radbill.db import make_engine
        engine = make_engine({pg_admin_url.replace("postgresql://", "postgresql+psycopg://", 1)!r})
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            from radbill.pgarrays import predumped, ready
            array = predumped([True, False])
            try:
                conn.exec_driver_sql("SELECT %b::boolean[]", (array,))
                print("known without ready")
            except Exception as exc:
                print("unknown:", type(exc).__name__)
                conn.rollback()
            ready(raw)
            print(conn.exec_driver_sql("SELECT %b::boolean[]", (array,)).scalar_one())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    assert out == ["unknown: ProgrammingError", "[True, False]"]
