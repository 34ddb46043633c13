"""The subscriber page with usage: the per-day chart is metered per ISP day (a session over
midnight counts on both days), and a subscriber over the cap is told why they are slow."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from admin.filters import human_bytes
from radius.ingest import apply_accounting
from tests.admin.helpers import today
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import acct

GB = 10**9


def test_the_page_shows_metered_days_and_the_cap(client_for: Any, factory: Any,
                                                  box: Any) -> None:
    day = today(factory)
    tz = ZoneInfo("Asia/Dhaka")
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    with factory() as s, s.begin():
        make_plan(s, "Capped", data_cap="10G", fup_rate="1M/512k")
        make_subscriber(s, box, username="cap", plan="Capped",
                        activated_on=day - dt.timedelta(days=3), today=day)
        assert apply_accounting(s, [
            acct("Interim-Update", "s1", "cap", midnight - dt.timedelta(minutes=5), 600, 0,
                 4 * GB),
            acct("Interim-Update", "s1", "cap", midnight + dt.timedelta(minutes=5), 1200, 0,
                 11 * GB)]) == {}
    page = client_for("billing").get("/subscribers/cap").get_data(as_text=True)
    assert "Over this period&#39;s data cap" in page or "Over this period's data cap" in page
    yesterday = day - dt.timedelta(days=1)
    assert f"{yesterday:%d %b}: {human_bytes(4 * GB)}" in page
    assert f"{day:%d %b}: {human_bytes(7 * GB)}" in page


def capped_and_throttled(factory: Any, box: Any) -> dt.date:
    """"cap" on a 10G plan with a 5G pack, 11G used today: throttled. Returns today."""
    from usage import service

    day = today(factory)
    with factory() as s, s.begin():
        make_plan(s, "Capped", data_cap="10G", fup_rate="1M/512k")
        make_subscriber(s, box, username="cap", plan="Capped",
                        activated_on=day - dt.timedelta(days=3), today=day)
        service.add_pack(s, "Capped", "5G", "5G", "150", actor="test")
        now = dt.datetime.now(dt.UTC)
        assert apply_accounting(s, [acct("Interim-Update", "s1", "cap", now, 600, GB,
                                         11 * GB)]) == {}
    return day


def audit_of(factory: Any, action: str) -> list[tuple[str, Any, Any, Any]]:
    from sqlalchemy import select

    from radbill.audit import AuditLog

    with factory() as s:
        return [(a.actor, a.before, a.after, a.reason) for a in s.scalars(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))]


def test_the_usage_panel_shows_the_period_the_cap_and_the_throttle(
        client_for: Any, factory: Any, box: Any) -> None:
    day = capped_and_throttled(factory, box)
    page = client_for("noc").get("/subscribers/cap").get_data(as_text=True)
    assert f'<strong id="usage-counted">{human_bytes(12 * GB)}</strong>' in page
    assert f'<strong id="usage-cap">{human_bytes(10 * GB)}</strong> cap, 120%' in page
    assert '<span class="badge suspended">throttled</span>' in page
    assert f"<td>{day}</td><td class=\"num\">{human_bytes(11 * GB)}</td>" in page
    assert "Exempt from the data cap" not in page  # noc reads, does not act


def test_exempt_reset_and_top_up_through_the_page_are_audited_as_the_staff_user(
        client_for: Any, factory: Any, box: Any) -> None:
    from decimal import Decimal

    from sqlalchemy import select

    from billing.models import EnforcementRequest, LedgerEntry
    from billing.subscribers import get_subscriber
    from tests.admin.conftest import csrf
    from usage.models import Topup

    capped_and_throttled(factory, box)
    client = client_for("billing")
    page = client.get("/subscribers/cap").get_data(as_text=True)
    assert "Exempt from the data cap" in page and "5G: 5.0 GB for BDT 150.00" in page
    token = csrf(client)

    resp = client.post("/subscribers/cap/usage/exempt", data={
        "exempt": "on", "reason": "hospital line", "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("#usage")
    page = client.get("/subscribers/cap").get_data(as_text=True)
    assert "is exempt from the data cap" in page and '<span class="badge active">exempt' in page
    assert audit_of(factory, "usage.exempt") == [
        ("billing", {"exempt": False}, {"exempt": True}, "hospital line")]
    assert [a[0] for a in audit_of(factory, "usage.unthrottle")] == ["billing"]

    assert client.post("/subscribers/cap/usage/exempt", data={
        "exempt": "off", "reason": "discharged", "csrf_token": token}).status_code == 302
    with factory() as s:
        assert get_subscriber(s, "cap").cap_throttled  # over the cap again: throttled

    assert client.post("/subscribers/cap/usage/reset", data={
        "reason": "metering fault", "csrf_token": token}).status_code == 302
    [(who, before, after, why)] = audit_of(factory, "usage.reset")
    assert (who, before["download"], after["download"], why) == (
        "billing", 11 * GB, 0, "metering fault")
    with factory() as s:
        assert not get_subscriber(s, "cap").cap_throttled

    resp = client.post("/subscribers/cap/usage/topup", data={"pack": "5G",
                                                            "csrf_token": token})
    assert resp.status_code == 302
    with factory() as s:
        sub = get_subscriber(s, "cap")
        topup = s.scalars(select(Topup)).one()
        assert (topup.actor, topup.size_bytes, topup.price) == ("billing", 5 * GB,
                                                                Decimal("150.00"))
        charge = s.scalars(select(LedgerEntry).where(LedgerEntry.subscriber_id == sub.id,
                                                     LedgerEntry.kind == "charge")).one()
        assert charge.amount == Decimal("150.00")
        assert [r.action for r in s.scalars(select(EnforcementRequest)
                                            .order_by(EnforcementRequest.id))] == [
            "throttle", "unthrottle", "throttle", "unthrottle"]
    page = client.get("/subscribers/cap").get_data(as_text=True)
    assert f"{human_bytes(15 * GB)}</strong> cap" in page and topup.document in page


def test_usage_actions_refuse_bad_input_another_role_and_a_missing_token(
        client_for: Any, factory: Any, box: Any) -> None:
    from sqlalchemy import select

    from usage.models import Topup

    capped_and_throttled(factory, box)
    noc = client_for("noc")
    from tests.admin.conftest import csrf

    assert noc.post("/subscribers/cap/usage/reset", data={
        "reason": "x", "csrf_token": csrf(noc)}).status_code == 403
    billing = client_for("billing")
    assert billing.post("/subscribers/cap/usage/reset",
                        data={"reason": "no token"}).status_code == 400
    resp = billing.post("/subscribers/cap/usage/reset", data={
        "reason": " ", "csrf_token": csrf(billing)})
    assert resp.status_code == 422 and "a reason is needed" in resp.get_data(as_text=True)
    resp = billing.post("/subscribers/cap/usage/topup", data={
        "pack": "50G", "csrf_token": csrf(billing)})
    assert resp.status_code == 404 and "no top-up pack" in resp.get_data(as_text=True)
    assert audit_of(factory, "usage.reset") == []
    with factory() as s:
        assert s.scalars(select(Topup)).all() == []


def test_the_plan_form_sets_what_the_cap_counts_and_offers_packs(
        client_for: Any, factory: Any) -> None:
    from tests.admin.conftest import csrf

    admin = client_for("admin")
    token = csrf(admin, "/plans")
    assert admin.post("/plans/new", data={
        "name": "Up-10", "price": "500", "currency": "BDT", "rate": "10M/2M",
        "data_cap": "100G", "cap_counts": "upload", "fup_rate": "1M/512k",
        "csrf_token": token}).status_code == 302
    assert admin.post("/plans/packs", data={
        "pack_plan": "Up-10", "pack_name": "Night 20G", "pack_size": "20G",
        "pack_price": "99.50", "csrf_token": token}).status_code == 302
    page = admin.get("/plans").get_data(as_text=True)
    assert f"{human_bytes(100 * 10**9)} (upload)" in page
    assert (f"<td>Up-10</td><td>Night 20G</td><td>{human_bytes(20 * 10**9)}</td>"
            '<td class="num">99.50</td>') in page
    resp = admin.post("/plans/packs", data={"pack_plan": "Up-10", "pack_name": "Night 20G",
                                            "pack_size": "20G", "pack_price": "1",
                                            "csrf_token": token})
    assert resp.status_code == 409 and "already has a pack" in resp.get_data(as_text=True)
    billing = client_for("billing")
    assert billing.post("/plans/packs", data={
        "pack_plan": "Up-10", "pack_name": "x", "pack_size": "1G", "pack_price": "1",
        "csrf_token": csrf(billing, "/plans")}).status_code == 403
