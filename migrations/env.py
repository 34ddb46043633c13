"""Alembic environment: runs against the connection radbill hands over (see radbill.migrate)."""

from __future__ import annotations

from alembic import context

import admin.models  # noqa: F401 - register the models on the metadata
import billing.models  # noqa: F401
import coa.models  # noqa: F401
import notify.models  # noqa: F401
import olt.models  # noqa: F401
import payments.models  # noqa: F401
import portal.models  # noqa: F401
import radbill.audit
import radbill.ops  # noqa: F401
import radius.models  # noqa: F401
import usage.models  # noqa: F401
from radbill.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from radbill.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """The SQL a migration would run, written out instead of run (radbill.migrate.lock_risks
    reads it before an upgrade)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
