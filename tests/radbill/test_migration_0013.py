"""Migration 0013 refuses to run while two usernames differ only in case (BOB = bob): the
unique index on lower(username) could not be built, and which account is which is the
operator's call, not the migration's."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from radbill import migrate
from radbill.db import session_factory
from tests.factories import make_plan, make_subscriber
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture


def test_usernames_differing_only_in_case_stop_the_upgrade(fresh: Engine, box  # noqa: F811
                                                           ) -> None:  # type: ignore[no-untyped-def]
    migrate.upgrade(fresh, "head")
    with fresh.begin() as conn:
        conn.execute(text("DROP INDEX uq_subscribers_username_lower"))
    with session_factory(fresh)() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box, username="bob")
    with fresh.begin() as conn:  # as a MySQL-era import could have left it
        conn.execute(text("INSERT INTO subscribers (username, password_enc, service, status, "
                          "plan_id, simultaneous_use, fup_throttled, suspended_for_nonpayment, "
                          "dunning_throttled, setup_fee_charged, auth_version, created_at, "
                          "updated_at) SELECT 'BOB', password_enc, service, status, plan_id, "
                          "simultaneous_use, fup_throttled, suspended_for_nonpayment, "
                          "dunning_throttled, setup_fee_charged, auth_version, created_at, "
                          "updated_at FROM subscribers WHERE username = 'bob'"))
    cfg = migrate.alembic_config(fresh)
    with fresh.begin() as connection:
        cfg.attributes["connection"] = connection
        # the revision before 0013, whatever the chain holds before it
        before = ScriptDirectory.from_config(cfg).get_revision("0013").down_revision
        command.stamp(cfg, before)
    with pytest.raises(RuntimeError, match=r"differing only in case.*bob"):
        migrate.upgrade(fresh, "head")
