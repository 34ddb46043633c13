"""Migration 0026 gives the daily marks kept before it their session's run (its start and
last update from radius_sessions), so a session open across the upgrade goes on in the same
run: its next Interim adds only what it grew, not its whole counters again."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select, text

from radbill import migrate
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.ingest import apply_accounting
from tests.factories import make_plan, make_subscriber
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture
from tests.radbill.test_migration_0018 import downgrade
from tests.usage.helpers import acct
from usage.models import UsageDay

T1 = dt.datetime(2026, 11, 12, 6, 0, tzinfo=dt.UTC)


def test_marks_kept_before_the_upgrade_go_on_in_their_run(fresh: Engine,  # noqa: F811
                                                          box: SecretBox) -> None:
    migrate.upgrade(fresh)
    factory = session_factory(fresh)
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box, activated_on=dt.date(2026, 11, 1))
        assert apply_accounting(s, [acct("Interim-Update", "s1", "alice", T1, 3600, 10,
                                         1_000)]) == {}
    downgrade(fresh, "0022")  # as the marks were before runs
    with fresh.begin() as conn:
        assert conn.execute(text("SELECT output_octets FROM usage_session_days")).all() == [
            (1_000,)]
    migrate.upgrade(fresh)
    with fresh.begin() as conn:
        assert conn.execute(text("SELECT run_start, run_seen FROM usage_session_days")).all() \
            == [(int(T1.timestamp()) - 3600, int(T1.timestamp()))]
    with factory() as s, s.begin():
        assert apply_accounting(s, [acct("Interim-Update", "s1", "alice",
                                         T1 + dt.timedelta(minutes=10), 4200, 15, 1_500)]) == {}
    with factory() as s:
        assert [(r.download, r.upload, r.seconds) for r in s.scalars(select(UsageDay))] == [
            (1_500, 15, 4200)]
