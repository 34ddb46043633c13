"""`radbill usage ...` on a real database: show, exempt, reset, packs and top-ups, over-cap;
bad input is a one-line error that changes nothing."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine, func, select

from billing.isp import local_today
from billing.isp import settings as isp_settings
from coa.rules import Kind, desired, step_for
from radbill.audit import AuditLog
from radbill.crypto import SecretBox
from radbill.db import session_factory, utcnow
from radius.ingest import apply_accounting
from radius.policy import AuthRequest, PolicyConfig, decide
from radius.snapshot import plan_record, subscriber_record
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import acct
from usage.models import Topup

GB = 10**9


def seed(engine: Engine, box: SecretBox) -> dt.date:
    with session_factory(engine)() as s, s.begin():
        today = local_today(isp_settings(s), utcnow())
        make_plan(s, "Capped", rate="20M/5M", data_cap="10G", fup_rate="1M/512k")
        for name, service in (("alice", "pppoe"), ("hal", "hotspot")):
            make_subscriber(s, box, username=name, plan="Capped", service=service,
                            password="pw-12345", activated_on=today - dt.timedelta(days=3),
                            today=today)
        assert apply_accounting(s, [acct("Interim-Update", f"s-{n}", n, utcnow(), 60, 0,
                                         11 * GB) for n in ("alice", "hal")]) == {}
    return today


def test_usage_commands(cli, db: Engine, box: SecretBox) -> None:  # type: ignore[no-untyped-def]
    seed(db, box)
    shown = json.loads(cli("usage", "show", "alice", "--days", "2", "--json").output)
    assert (shown["counted"], shown["cap_bytes"], shown["throttled"]) == (11 * GB, 10 * GB, True)
    assert [d["download"] for d in shown["days"]] == [11 * GB]
    over = json.loads(cli("usage", "over-cap", "--json").output)
    assert [(r["username"], r["throttled"]) for r in over] == [("alice", True), ("hal", True)]
    cli("usage", "add-pack", "Capped", "5G", "--size", "5G", "--price", "99.50")
    bought = json.loads(cli("usage", "topup", "alice", "5G", "--json").output)
    assert bought["document"] and bought["price"] == "99.50"
    assert "exempt from the data cap" in cli("usage", "exempt", "hal", "--reason", "staff").output
    assert "reset" in cli("usage", "reset", "hal", "--reason", "meter fault").output
    assert json.loads(cli("usage", "over-cap", "--json").output) == []
    with session_factory(db)() as s:
        assert s.scalar(select(func.count()).select_from(Topup)) == 1
        assert sorted(s.scalars(select(AuditLog.action).where(
            AuditLog.action.in_(["usage.exempt", "usage.reset", "usage.topup"])))) == [
            "usage.exempt", "usage.reset", "usage.topup"]


def test_bad_input_is_one_line_and_changes_nothing(cli, db: Engine, box: SecretBox) -> None:  # type: ignore[no-untyped-def]
    seed(db, box)
    for args, words in ((("usage", "topup", "alice", "nope"), "no top-up pack"),
                        (("usage", "add-pack", "Capped", "x", "--size", "-1G", "--price", "1"),
                         "malformed size"),
                        (("usage", "add-pack", "Capped", "x", "--size", "1G", "--price", "-5"),
                         "amount"),
                        (("usage", "reset", "nobody", "--reason", "x"), "nobody"),
                        (("usage", "exempt", "alice", "--reason", ""), "reason")):
        result = cli(*args, ok=False)
        assert result.exit_code != 0 and words in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    with session_factory(db)() as s:
        assert s.scalar(select(func.count()).select_from(Topup)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action.in_(["usage.exempt", "usage.reset"]))) == 0


def test_a_throttled_hotspot_session_is_disconnected_not_changed(db: Engine,
                                                                 box: SecretBox) -> None:
    seed(db, box)
    with session_factory(db)() as s:
        from billing.subscribers import get_subscriber

        for name, kind in (("alice", Kind.CHANGE), ("hal", Kind.DISCONNECT)):
            sub = get_subscriber(s, name)
            assert sub.cap_throttled
            want = desired(decide(AuthRequest(username=name), subscriber_record(sub, box),
                                  plan_record(sub.plan), 0, PolicyConfig(), utcnow()))
            assert want.rate_limit == "512k/1M"
            assert step_for("throttle", want, str(sub.service)).kind is kind
