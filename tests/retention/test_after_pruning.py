"""The parts that read sessions still answer the same once retention has pruned the old
ones: every reconciliation report, and the usage per day and period (kept longer)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from billing.isp import local_today
from billing.isp import settings as isp_settings
from radbill.db import session_factory, utcnow
from radius.ingest import apply_accounting
from radius.models import RadiusSession
from reports import registry
from reports.registry import Params
from retention import service
from retention.policy import Policy
from tests.factories import make_plan, make_subscriber
from usage import service as usage


def acct(status: str, sid: str, at: dt.datetime, t: int, octets: int) -> dict[str, str]:
    return {"Packet-Src-IP-Address": "10.0.0.1", "NAS-IP-Address": "10.0.0.1",
            "User-Name": "alice", "Acct-Status-Type": status, "Acct-Session-Id": sid,
            "Acct-Input-Octets": str(octets), "Acct-Output-Octets": str(3 * octets),
            "Acct-Session-Time": str(t), "Timestamp": str(int(at.timestamp()))}


def test_reports_and_usage_answer_the_same_after_pruning(db, box) -> None:  # type: ignore[no-untyped-def]
    # 06:00 UTC (noon in Dhaka) of the last day that has reached it: each session's two hours
    # sit inside one ISP day whatever time the suite runs (at 18:00 UTC, Dhaka's midnight,
    # "two hours ago" crossed the day and every session counted on two days)
    real = utcnow().replace(microsecond=0)
    now = real.replace(hour=6, minute=0, second=0)
    if now > real:
        now -= dt.timedelta(days=1)
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box)
    for sid, age, stop in (("old", 300, True), ("recent", 40, True), ("live", 0, False)):
        start = now - dt.timedelta(days=age, hours=2)
        records = [acct("Start", sid, start, 0, 0),
                   acct("Interim-Update", sid, start + dt.timedelta(hours=1), 3600, 1000)]
        if stop:
            records.append(acct("Stop", sid, start + dt.timedelta(hours=2), 7200, 2000))
        with factory() as s, s.begin():
            assert apply_accounting(s, records) == {}

    def observe() -> dict[str, Any]:
        with factory() as s:
            today = local_today(isp_settings(s), now)
            params = Params(now=now, today=today, interim_interval=300)
            sub_id = s.scalar(select(RadiusSession.subscriber_id).limit(1))
            return {"reports": {name: registry.run(s, name, params)
                                for name in registry.names()},
                    "days": [(d.day, d.download, d.upload) for d in usage.daily_usage(
                        s, sub_id, today - dt.timedelta(days=366), today + dt.timedelta(days=1))],
                    "period": usage.usage_summary(s, "alice", today)}

    before = observe()
    assert len(before["days"]) == 3  # the old session's day among them
    report = service.run(factory, Policy(), now)
    assert {k.kind: k.rows for k in report.kinds}["sessions"] == 1
    with factory() as s:
        assert sorted(s.scalars(select(RadiusSession.acct_session_id))) == ["live", "recent"]
        assert s.scalar(select(func.count(RadiusSession.id))) == 2
    assert observe() == before
