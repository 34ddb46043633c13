"""Retention: each kind pruned at its boundary (a row one day inside kept, one day outside
gone), the post-auth summary equal to the rows it replaces, batches bounded, runs idempotent,
and money (invoices, payments, the ledger) never pruned."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from billing.models import (
    EnforcementRequest,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    Subscriber,
)
from coa.models import EnforcementAttempt
from notify.models import Delivery, Outbox
from radbill.audit import AuditLog
from radbill.db import session_factory, utcnow
from radbill.ops import JobRun
from radius import postauth
from radius import retention as radius_retention
from radius.models import PostAuth, PostAuthDay, RadiusSession
from retention import service
from retention.policy import Policy, cutoffs, first_of_month_back
from tests.factories import make_plan, make_subscriber
from usage.models import UsageDay, UsageSessionDay

DHAKA = ZoneInfo("Asia/Dhaka")  # the ISP settings' default time zone
NOW = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # 12:00 on 30 Nov in Dhaka
TODAY = dt.date(2026, 11, 30)
POLICY = Policy(postauth_days=30, postauth_summary_days=400, sessions_months=6,
                outbox_days=180, audit_days=730, enforcement_days=90, job_runs_days=90,
                batch=2)


def local(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    """*day* at *hour*:*minute* in Dhaka, as UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=DHAKA).astimezone(dt.UTC)


def days_ago(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


def count(db: Any, column: Any, *where: Any) -> int:
    with session_factory(db)() as s:
        return int(s.scalar(select(func.count(column)).where(*where)) or 0)


# -- the cut-offs (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(("today", "months", "first"), [
    (dt.date(2026, 11, 30), 6, dt.date(2026, 5, 1)),
    (dt.date(2026, 11, 1), 6, dt.date(2026, 5, 1)),
    (dt.date(2026, 3, 15), 6, dt.date(2025, 9, 1)),
    (dt.date(2026, 1, 31), 1, dt.date(2025, 12, 1)),
    (dt.date(2026, 1, 31), 13, dt.date(2024, 12, 1)),
    (dt.date(2026, 12, 31), 0, dt.date(2026, 12, 1)),
])
def test_first_of_month_back(today: dt.date, months: int, first: dt.date) -> None:
    assert first_of_month_back(today, months) == first


def test_cutoffs_and_zero_keeps_for_ever() -> None:
    cut = cutoffs(POLICY, TODAY)
    assert (cut.postauth, cut.postauth_summary, cut.sessions, cut.outbox, cut.audit,
            cut.enforcement, cut.job_runs) == (
        dt.date(2026, 10, 31), dt.date(2025, 10, 26), dt.date(2026, 5, 1),
        dt.date(2026, 6, 3), dt.date(2024, 11, 30), dt.date(2026, 9, 1),
        dt.date(2026, 9, 1))
    never = cutoffs(Policy(postauth_days=0, postauth_summary_days=0, sessions_months=0,
                           outbox_days=0, audit_days=0, enforcement_days=0, job_runs_days=0),
                    TODAY)
    assert {getattr(never, f) for f in never.__dataclass_fields__} == {None}


def test_settings_default_and_bounds() -> None:
    from radbill.config import ConfigError, Settings

    s = Settings.from_env({})
    assert Policy.from_settings(s) == Policy()
    s = Settings.from_env({"RADBILL_KEEP_POSTAUTH_DAYS": "7", "RADBILL_KEEP_AUDIT_DAYS": "0"})
    assert (s.keep_postauth_days, s.keep_audit_days) == (7, 0)
    with pytest.raises(ConfigError):
        Settings.from_env({"RADBILL_RETENTION_BATCH": "10"})
    with pytest.raises(ConfigError):
        Settings.from_env({"RADBILL_KEEP_SESSIONS_MONTHS": "-1"})


# -- post-auth: summarised per user and day --------------------------------------------------


def auth(at: dt.datetime, decision: str, reason: str, user: str = "alice",
         **kw: Any) -> PostAuth:
    return PostAuth(at=at, username=user, decision=decision, reason=reason,
                    nas_ip=kw.get("nas_ip", "10.0.0.1"),
                    calling_station_id=kw.get("mac", "AA:BB:CC:00:00:01"),
                    reply_message=kw.get("reply"), auth_method=kw.get("method", "PAP"))


def test_postauth_pruned_at_its_boundary_and_summarised_exactly(db) -> None:  # type: ignore[no-untyped-def]
    out, inside = days_ago(31), days_ago(30)  # the cut-off is the start of 31 Oct (Dhaka)
    with session_factory(db)() as s, s.begin():
        s.add_all([
            # 30 Oct, Dhaka time: five decisions, one of them at 00:10 (29 Oct in UTC)
            auth(local(out, 0, 10), "reject", "bad-password", reply="Wrong password"),
            auth(local(out, 8), "accept", "active", nas_ip="10.0.0.2"),
            auth(local(out, 9), "reject", "simultaneous-use"),
            auth(local(out, 23, 59), "accept", "walled-garden", nas_ip="10.0.0.3",
                 mac="AA:BB:CC:00:00:09", method="CHAP"),
            auth(local(out, 23, 59), "reject", "bad-password", reply="Wrong password",
                 nas_ip="10.0.0.4"),  # same second: the later row (id) is the day's last
            auth(local(out, 7), "accept", "active", user="bob"),
            # 31 Oct 00:00 Dhaka: one day inside, kept as it is
            auth(local(inside, 0, 0), "accept", "active"),
        ])
    report = service.run(session_factory(db), POLICY, NOW)
    done = {k.kind: k for k in report.kinds}
    assert (done["postauth"].rows, done["postauth"].batches) == (6, 3)  # batches of 2
    with session_factory(db)() as s:
        kept = s.scalars(select(PostAuth)).all()
        assert [(r.username, r.at) for r in kept] == [("alice", local(inside, 0, 0))]
        days = {(d.username, d.day): d for d in s.scalars(select(PostAuthDay))}
    assert set(days) == {("alice", out), ("bob", out)}
    a = days[("alice", out)]
    assert (a.accepts, a.rejects, a.first_at, a.last_at) == (2, 3, local(out, 0, 10),
                                                             local(out, 23, 59))
    assert (a.last_decision, a.last_reason, a.last_reply_message, a.last_nas_ip,
            a.last_calling_station_id, a.last_auth_method) == (
        "reject", "bad-password", "Wrong password", "10.0.0.4", "AA:BB:CC:00:00:01", "PAP")
    assert (a.last_accept_at, a.last_accept_reason) == (local(out, 23, 59), "walled-garden")
    b = days[("bob", out)]
    assert (b.accepts, b.rejects, b.last_decision, b.last_accept_reason) == (1, 0, "accept",
                                                                             "active")
    # idempotent: a second run finds nothing, the summary stays
    again = {k.kind: k.rows for k in service.run(session_factory(db), POLICY, NOW).kinds}
    assert again["postauth"] == 0
    # a late row for a summarised day (a spool replayed) is added to that day
    with session_factory(db)() as s, s.begin():
        s.add(auth(local(out, 12), "accept", "active"))
    service.run(session_factory(db), POLICY, NOW)
    with session_factory(db)() as s:
        a = s.get(PostAuthDay, ("alice", out))
        assert a is not None
        assert (a.accepts, a.rejects, a.last_at, a.last_decision, a.first_at) == (
            3, 3, local(out, 23, 59), "reject", local(out, 0, 10))
        assert (a.last_accept_at, a.last_accept_reason) == (local(out, 23, 59), "walled-garden")


def test_last_logins_read_the_summary_once_the_log_is_pruned(db) -> None:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        s.add_all([auth(local(days_ago(40), 10), "accept", "active"),
                   auth(local(days_ago(35), 10), "reject", "bad-password"),
                   auth(local(days_ago(35), 11), "reject", "bad-password",
                        reply="Wrong password"),
                   auth(local(days_ago(2), 10), "accept", "active", nas_ip="10.0.0.9")])
    service.run(session_factory(db), POLICY, NOW)
    with session_factory(db)() as s:
        rows = postauth.recent_decisions(s, "alice", 10)
        assert [(r.at, r.decision, r.reason, r.nas_ip) for r in rows] == [
            (local(days_ago(2), 10), "accept", "active", "10.0.0.9"),
            (local(days_ago(35), 11), "reject", "bad-password", "10.0.0.1"),
            (local(days_ago(40), 10), "accept", "active", "10.0.0.1")]
        assert [(getattr(r, "accepts", None), getattr(r, "rejects", None)) for r in rows] == [
            (None, None), (0, 2), (1, 0)]
        assert len(postauth.recent_decisions(s, "alice", 2)) == 2
        # the reconciler's "last accepted login": the log first, then the summaries
        assert postauth.last_accept(s, "alice") == ("active", local(days_ago(2), 10))
    with session_factory(db)() as s, s.begin():
        s.execute(PostAuth.__table__.delete())
    with session_factory(db)() as s:
        assert postauth.last_accept(s, "alice") == ("active", local(days_ago(40), 10))
        assert postauth.last_accept(s, "nobody") is None


def test_old_day_summaries_pruned_at_their_boundary(db) -> None:  # type: ignore[no-untyped-def]
    def day(d: dt.date) -> PostAuthDay:
        return PostAuthDay(username="alice", day=d, accepts=1, rejects=0, first_at=local(d),
                           last_at=local(d), last_decision="accept", last_reason="active")

    with session_factory(db)() as s, s.begin():
        s.add_all([day(days_ago(401)), day(days_ago(400))])
    service.run(session_factory(db), POLICY, NOW)
    with session_factory(db)() as s:
        assert s.scalars(select(PostAuthDay.day)).all() == [days_ago(400)]


# -- sessions, by month ----------------------------------------------------------------------


def session_row(sid: str, started: dt.datetime, stopped: dt.datetime | None) -> RadiusSession:
    return RadiusSession(nas_ip="10.0.0.1", acct_session_id=sid, username="alice",
                         started_at=started, updated_at=stopped or started, stopped_at=stopped)


def test_closed_sessions_pruned_by_month_open_ones_never(db, box) -> None:  # type: ignore[no-untyped-def]
    may1 = dt.date(2026, 5, 1)  # six months kept: May to November
    apr30 = dt.date(2026, 4, 30)
    with session_factory(db)() as s, s.begin():
        make_plan(s)
        sub = make_subscriber(s, box)
        s.add_all([
            session_row("gone", local(apr30, 9), local(apr30, 23, 59)),
            session_row("kept", local(apr30, 23), local(may1, 0, 0)),
            session_row("open", local(dt.date(2025, 1, 1)), None),
        ])
        for d in (apr30, may1):
            s.add(UsageSessionDay(nas_ip="10.0.0.1", acct_session_id="x", username="alice",
                                  day=d, subscriber_id=sub.id, input_octets=1,
                                  output_octets=2, session_time=3))
            s.add(UsageDay(subscriber_id=sub.id, day=d, download=10, upload=20, seconds=30))
    report = service.run(session_factory(db), POLICY, NOW)
    done = {k.kind: (k.before, k.rows) for k in report.kinds}
    assert done["sessions"] == ("2026-05-01", 1)
    assert done["usage_session_days"] == ("2026-05-01", 1)
    with session_factory(db)() as s:
        assert sorted(s.scalars(select(RadiusSession.acct_session_id))) == ["kept", "open"]
        assert s.scalars(select(UsageSessionDay.day)).all() == [may1]
        # usage per day (what reports and caps read) is kept longer: not pruned here
        assert sorted(s.scalars(select(UsageDay.day))) == [apr30, may1]


# -- outbox, audit, enforcement attempts, job runs -------------------------------------------


def test_each_kind_pruned_at_its_boundary(db, box) -> None:  # type: ignore[no-untyped-def]
    def at(n: int) -> dt.datetime:
        return local(days_ago(n), 0, 0)  # the first instant of that ISP day

    with session_factory(db)() as s, s.begin():
        make_plan(s)
        sub = make_subscriber(s, box)
        req = EnforcementRequest(subscriber_id=sub.id, action="suspend", reason="test",
                                 status="done")
        s.add(req)
        s.flush()
        for n, tag in ((91, "gone"), (90, "kept")):
            s.add(EnforcementAttempt(request_id=req.id, subscriber_id=sub.id,
                                     nas_ip="10.0.0.1", channel="coa", outcome="ack",
                                     detail=tag, at=at(n) - dt.timedelta(seconds=n == 91)))
            s.add(JobRun(job=tag, started_at=at(n) - dt.timedelta(seconds=n == 91),
                         status="ok"))
        s.add(JobRun(job="running", started_at=at(400), status="running"))
        for n, tag in ((731, "gone"), (730, "kept")):
            s.add(AuditLog(at=at(n) - dt.timedelta(seconds=n == 731), actor="t", action=tag,
                           entity="x", entity_id="1"))
        events = {}
        for key, kind, n, sent in (("inv:gone", "invoice_issued", 181, True),
                                   ("inv:kept", "invoice_issued", 180, True),
                                   ("inv:unsent", "invoice_issued", 400, False),
                                   ("ladder:old", "late_fee", 400, True),
                                   ("welcome:deliv", "welcome", 400, True),
                                   ("welcome:open", "welcome", 400, True)):
            created = at(n) - dt.timedelta(seconds=n == 181)
            row = Outbox(kind=kind, subscriber_id=sub.id, dedupe_key=key, payload={},
                         created_at=created, sent_at=created if sent else None)
            s.add(row)
            s.flush()
            events[key] = row.id
        for key, status, n in (("welcome:deliv", "delivered", 181),
                               ("welcome:open", "retrying", 400)):
            s.add(Delivery(outbox_id=events[key], subscriber_id=sub.id, kind="welcome",
                           channel="sms", recipient="8801700000000", idempotency_key=key,
                           provider_id=key[:20], status=status,
                           created_at=at(n) - dt.timedelta(seconds=1)))
    report = service.run(session_factory(db), POLICY, NOW)
    rows = {k.kind: k.rows for k in report.kinds}
    assert rows == {"postauth": 0, "postauth_days": 0, "enforcement_attempts": 1,
                    "notify_deliveries": 1, "outbox": 2, "sessions": 0,
                    "usage_session_days": 0, "audit_log": 1, "job_runs": 1}
    with session_factory(db)() as s:
        assert s.scalars(select(EnforcementAttempt.detail)).all() == ["kept"]
        assert sorted(s.scalars(select(JobRun.job))) == ["kept", "running"]
        assert s.scalars(select(AuditLog.action).where(AuditLog.actor == "t")).all() == ["kept"]
        # the unsent event, the ladder's step and the event with a delivery still open stay
        assert sorted(s.scalars(select(Outbox.dedupe_key))) == [
            "inv:kept", "inv:unsent", "ladder:old", "welcome:open"]
        assert s.scalars(select(Delivery.status)).all() == ["retrying"]
        run = s.scalars(select(AuditLog).where(AuditLog.action == "retention.run")).one()
        assert (run.actor, run.entity_id, (run.after or {})["outbox"]) == (
            "retention", "2026-11-30", 2)


def test_dry_run_counts_what_a_run_deletes_and_changes_nothing(db, box) -> None:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        s.add_all([auth(local(days_ago(31 + i), 10), "accept", "active") for i in range(5)])
        s.add_all([session_row(f"s{i}", local(dt.date(2026, 3, 1)),
                               local(dt.date(2026, 3, 2 + i))) for i in range(3)])
    dry = service.run(session_factory(db), POLICY, NOW, dry_run=True)
    assert count(db, PostAuth.id) == 5 and count(db, RadiusSession.id) == 3
    assert count(db, AuditLog.id) == 0  # a dry run is not audited: it changed nothing
    real = service.run(session_factory(db), POLICY, NOW)
    assert [(k.kind, k.rows) for k in dry.kinds] == [(k.kind, k.rows) for k in real.kinds]
    assert {k.kind: k.rows for k in real.kinds}["postauth"] == 5
    assert {k.kind: k.rows for k in real.kinds}["sessions"] == 3


def test_batches_are_bounded_and_a_stopped_run_resumes(db) -> None:  # type: ignore[no-untyped-def]
    with session_factory(db)() as s, s.begin():
        s.add_all([session_row(f"s{i}", local(dt.date(2026, 1, 1)),
                               local(dt.date(2026, 1, 2), 0, i)) for i in range(7)])
    policy = Policy(batch=3)
    first = service.run(session_factory(db), policy, NOW, max_batches=2)
    assert {k.kind: (k.rows, k.batches) for k in first.kinds}["sessions"] == (6, 2)
    assert count(db, RadiusSession.id) == 1
    second = service.run(session_factory(db), policy, NOW)
    assert {k.kind: (k.rows, k.batches) for k in second.kinds}["sessions"] == (1, 1)
    assert count(db, RadiusSession.id) == 0


# -- money -----------------------------------------------------------------------------------


def test_money_is_never_pruned(db, box) -> None:  # type: ignore[no-untyped-def]
    from tests.billing.sim import Sim

    sim = Sim(db, box, dt.date(2021, 1, 1))
    sim.plan("Home", price="1000")
    sim.subscriber("alice", "Home")
    sim.run()
    sim.today = dt.date(2021, 2, 1)
    sim.run()  # the February invoice
    sim.pay("alice", "1000")

    def money() -> dict[str, Any]:
        with session_factory(db)() as s:
            return {"invoices": s.execute(select(Invoice.number, Invoice.total)
                                          .order_by(Invoice.id)).all(),
                    "lines": s.scalar(select(func.count(InvoiceLine.id))),
                    "payments": s.execute(select(Payment.amount).order_by(Payment.id)).all(),
                    "ledger": s.execute(select(LedgerEntry.kind, LedgerEntry.amount)
                                        .order_by(LedgerEntry.id)).all(),
                    "subscribers": s.scalar(select(func.count(Subscriber.id)))}

    before = money()
    assert before["invoices"] and before["lines"]
    assert before["payments"] == [(Decimal("1000.00"),)]
    assert len(before["ledger"]) >= 2
    # five years on, keeping everything a single day (or month): all the rest is old
    tiny = Policy(postauth_days=1, postauth_summary_days=1, sessions_months=1, outbox_days=1,
                  audit_days=1, enforcement_days=1, job_runs_days=1, batch=100)
    # (audit rows carry the wall clock's time: five years after it)
    service.run(session_factory(db), tiny, utcnow() + dt.timedelta(days=5 * 365))
    assert money() == before
    assert count(db, AuditLog.id, AuditLog.action != "retention.run") == 0  # pruned: old


# -- the set-based post-auth fold ------------------------------------------------------------


def _random_auths(rng: random.Random, first_id: int, n: int) -> list[PostAuth]:
    """*n* decisions of four users over three days around Dhaka midnight, many in the same
    second (ties broken by id), with and without the optional details."""
    rows = []
    for i in range(n):
        day = days_ago(rng.choice((40, 41, 42)))
        at = local(day, rng.choice((0, 5, 23)), rng.choice((0, 0, 59)))
        row = auth(at, rng.choice(("accept", "reject", "reject")),
                   rng.choice(("active", "bad-password", "walled-garden")),
                   user=rng.choice(("alice", "bob", "carol", "dave")),
                   reply=rng.choice((None, "Wrong password")),
                   nas_ip=rng.choice(("10.0.0.1", "10.0.0.2")),
                   method=rng.choice(("PAP", "CHAP", None)))
        row.id = first_id + i
        rows.append(row)
    return rows


def test_set_based_fold_gives_the_row_by_row_summaries(db) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(14)
    first, late = _random_auths(rng, 1, 120), _random_auths(rng, 1000, 60)
    before = local(days_ago(30), 0)
    got = {}
    for name, fold in (("by row", radius_retention.summarise_postauth_by_row),
                       ("set-based", radius_retention.summarise_postauth)):
        with session_factory(db)() as s, s.begin():
            s.execute(PostAuth.__table__.delete())
            s.execute(PostAuthDay.__table__.delete())
        for rows in (first, late):  # the late rows land on days already summarised
            with session_factory(db)() as s, s.begin():
                s.add_all(PostAuth(**{c: getattr(r, c) for c in (
                    "id", "at", "username", "decision", "reason", "nas_ip",
                    "calling_station_id", "reply_message", "auth_method")}) for r in rows)
            while True:
                with session_factory(db)() as s, s.begin():
                    if not fold(s, before, DHAKA, 7):
                        break
        with session_factory(db)() as s:
            assert s.scalar(select(func.count(PostAuth.id))) == 0, name
            got[name] = [tuple(getattr(d, c.name) for c in PostAuthDay.__table__.columns)
                         for d in s.scalars(select(PostAuthDay).order_by(PostAuthDay.username,
                                                                          PostAuthDay.day))]
    assert got["set-based"] == got["by row"]
    assert len(got["by row"]) == 12  # four users, three days
    assert sum(d[2] + d[3] for d in got["by row"]) == 180  # accepts + rejects: every row
