"""An installation of the first release (0.1.0, schema 0001), with data in it, upgraded to
this release's head on the test backend (the suite runs on SQLite and on PostgreSQL): the
schema ends up as the models describe it, and what the ISP had is still there and still
works: prices to the paisa, counters to the octet, passwords and NAS secrets decrypt, a
login is decided as before, and billing runs on it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

from billing.models import Plan, Subscriber, SubscriberStatus
from billing.run import billing_run
from radbill import migrate
from radbill.crypto import SecretBox
from radbill.db import Base, session_factory
from radius.models import Nas, RadiusSession
from radius.policy import AuthRequest, PolicyConfig, decide
from radius.snapshot import AuthSnapshot
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture
from tests.radbill.test_migrations import not_a_partition

FIRST_RELEASE_SCHEMA = "0001"
T0 = "2026-01-05 10:00:00+00:00"
BIG = 2**40 + 12_345  # octets beyond 32 bits: must survive to the byte


def _seed_first_release(engine: Engine, box: SecretBox) -> None:
    """Rows as 0.1.0 wrote them: raw SQL against its schema (today's models do not fit it)."""
    plan_cols = ("name, price, currency, download_bps, upload_bps, billing_cycle, billing_mode, "
                 "grace_days, late_fee, auth_version, created_at, updated_at")
    sub_cols = ("username, password_enc, service, status, status_reason, plan_id, "
                "simultaneous_use, fup_throttled, full_name, phone, auth_version, created_at, "
                "updated_at")
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO plans ({plan_cols}) VALUES "  # noqa: S608 - fixed columns
                          "('Home-10', 1234.56, 'BDT', 10000000, 5000000, 'monthly', "
                          "'postpaid', 3, 50.00, 1, :t, :t), "
                          "('Day', 20.00, 'BDT', 5000000, 2000000, 'days', 'prepaid', 0, 0, 2, "
                          ":t, :t)"), {"t": T0})
        plans = dict(conn.execute(text("SELECT name, id FROM plans")).all())
        for i, (name, status, plan) in enumerate((("alice", "active", "Home-10"),
                                                  ("bob", "suspended", "Home-10"),
                                                  ("carol", "disabled", "Day")), 3):
            conn.execute(text(f"INSERT INTO subscribers ({sub_cols}) VALUES (:u, :pw, 'pppoe', "  # noqa: S608
                              ":st, :why, :plan, 1, false, :full, '+8801700000001', :v, :t, :t)"),
                         {"u": name, "pw": box.encrypt(f"{name}-pw"), "st": status,
                          "why": None if status == "active" else "first release",
                          "plan": plans[plan], "full": f"{name.title()} Rahman", "v": i,
                          "t": T0})
        conn.execute(text("INSERT INTO nas (name, ip_address, secret_enc, nas_type, coa_port, "
                          "require_message_authenticator, api_tls, created_at) VALUES "
                          "('core-1', '10.9.0.1', :s, 'mikrotik', 3799, true, false, :t)"),
                     {"s": box.encrypt("nas-secret-0.1"), "t": T0})
        alice = conn.execute(text("SELECT id FROM subscribers WHERE username = 'alice'")
                             ).scalar_one()
        conn.execute(text(
            "INSERT INTO radius_sessions (nas_ip, acct_session_id, username, subscriber_id, "
            "framed_ip, started_at, updated_at, stopped_at, session_time, input_octets, "
            "output_octets, input_packets, output_packets, terminate_cause, state_seq) VALUES "
            "('10.9.0.1', 'S-1', 'alice', :sid, '100.64.0.9', :t, :t, :t, 3600, :big, 77, 5, 6, "
            "'User-Request', 1)"), {"sid": alice, "t": T0, "big": BIG})
        conn.execute(text("INSERT INTO audit_log (at, actor, action, entity, entity_id, reason) "
                          "VALUES (:t, 'cli', 'subscriber.status', 'subscriber', 'bob', "
                          "'first release')"), {"t": T0})


def test_first_release_with_data_upgrades_to_head(fresh: Engine, box: SecretBox  # noqa: F811
                                                  ) -> None:
    migrate.upgrade(fresh, FIRST_RELEASE_SCHEMA)
    _seed_first_release(fresh, box)

    migrate.upgrade(fresh, "head")

    assert migrate.current_revision(fresh) == migrate.head_revision(fresh)
    with fresh.connect() as conn:  # the upgraded schema is the one the models describe
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "include_name": not_a_partition})
        assert compare_metadata(ctx, Base.metadata) == []
        # the session's key moved to radius_session_keys (0028), naming its row
        assert conn.execute(text(
            "SELECT k.acct_session_id, s.input_octets FROM radius_session_keys k JOIN "
            "radius_sessions s ON s.id = k.session_id AND s.started_at = k.started_at")
            ).all() == [("S-1", BIG)]
    factory = session_factory(fresh)
    with factory() as s:
        plans = {p.name: p for p in s.scalars(select(Plan).order_by(Plan.id))}
        assert plans["Home-10"].price == Decimal("1234.56")
        assert plans["Home-10"].late_fee == Decimal("50.00")
        assert plans["Day"].price == Decimal("20.00")
        subs = {x.username: x for x in s.scalars(select(Subscriber).order_by(Subscriber.id))}
        assert [(n, x.status) for n, x in subs.items()] == [
            ("alice", SubscriberStatus.ACTIVE), ("bob", SubscriberStatus.SUSPENDED),
            ("carol", SubscriberStatus.DISABLED)]
        assert box.decrypt(subs["alice"].password_enc) == "alice-pw"
        assert subs["bob"].status_reason == "first release"
        nas = s.scalars(select(Nas)).one()
        assert box.decrypt(nas.secret_enc) == "nas-secret-0.1"
        session = s.scalars(select(RadiusSession)).one()
        assert (session.input_octets, session.output_octets) == (BIG, 77)
        assert session.subscriber_id == subs["alice"].id

        # a login is decided from the upgraded rows as it was before
        snap = AuthSnapshot()
        snap.refresh(s, box)
        now = dt.datetime(2026, 1, 6, tzinfo=dt.UTC)
        verdicts = {}
        for name in ("alice", "bob", "carol"):
            sub, plan, online = snap.lookup(name)
            verdicts[name] = decide(AuthRequest(name, "10.9.0.1"), sub, plan, online,
                                    PolicyConfig(suspended_mode="reject"), now)
        assert verdicts["alice"].accept and verdicts["alice"].password == "alice-pw"
        assert not verdicts["bob"].accept and not verdicts["carol"].accept

    # and billing runs on it: a postpaid monthly subscriber starts a period on the first
    # run after the upgrade and is invoiced for it when it ends
    for day in (dt.date(2026, 2, 1), dt.date(2026, 3, 1)):
        assert billing_run(factory, day, actor="test").errors == []
    with fresh.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.username, i.total FROM invoices i JOIN subscribers s "
            "ON s.id = i.subscriber_id ORDER BY s.username, i.id")).all()
    # billing's own rules decide who is billable (suspended: yes, disabled: no)
    assert [(name, Decimal(str(total))) for name, total in rows] == [
        ("alice", Decimal("1234.56")), ("bob", Decimal("1234.56"))]
