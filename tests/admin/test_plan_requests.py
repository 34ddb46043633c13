"""The plan change requests page: staff see what subscribers asked for in the portal; an
operator approves (the plan changes through billing) or rejects, audited under their own
name, with the CSRF token and the role every other action needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing.models import Plan, Subscriber
from portal import account
from portal.models import PlanChangeRequest
from radbill.audit import AuditLog
from tests.admin.conftest import csrf
from tests.admin.helpers import overdue_subscriber
from tests.factories import make_plan


def _ask(factory: Any, plan: str = "Home-50", effective: str = "next_cycle") -> int:
    with factory() as s, s.begin():
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        return account.request_plan_change(s, bob, plan, effective).id


def _decisions(factory: Any) -> list[tuple[str, str, object]]:
    with factory() as s:
        return [(a.action, a.actor, (a.after or {}).get("request")) for a in s.scalars(
            select(AuditLog).where(AuditLog.action.like("portal.plan_change_%"),
                                   AuditLog.action != "portal.plan_change_requested")
            .order_by(AuditLog.id))]


def test_staff_list_and_an_operator_decides_plan_requests(
        client_for: Any, factory: Any, box: Any) -> None:
    overdue_subscriber(factory, box)
    with factory() as s, s.begin():
        make_plan(s, name="Home-50", price="1500")
    first = _ask(factory)

    noc = client_for("noc")
    page = noc.get("/plan-requests/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "bob" in html and "Home-20" in html and "Home-50" in html and "next cycle" in html
    assert f'id="decide-{first}"' not in html  # no buttons for a read-only role
    refused = noc.post(f"/plan-requests/{first}", data={"decision": "approve",
                                                        "csrf_token": csrf(noc)})
    assert refused.status_code == 403

    billing = client_for("billing")
    html = billing.get("/plan-requests/").get_data(as_text=True)
    assert f'id="decide-{first}"' in html
    no_token = billing.post(f"/plan-requests/{first}", data={"decision": "approve"})
    assert no_token.status_code == 400
    odd = billing.post(f"/plan-requests/{first}", data={"decision": "maybe",
                                                         "csrf_token": csrf(billing)})
    assert odd.status_code == 422
    done = billing.post(f"/plan-requests/{first}", data={
        "decision": "reject", "note": "not in your area", "csrf_token": csrf(billing)})
    assert done.status_code == 302
    listed = billing.get("/plan-requests/").get_data(as_text=True)
    assert f"Request {first} rejected: bob to Home-50" in listed
    assert "no requests waiting" in listed
    again = billing.post(f"/plan-requests/{first}", data={"decision": "approve",
                                                          "csrf_token": csrf(billing)})
    assert again.status_code == 409 and "already rejected" in again.get_data(as_text=True)
    assert billing.post("/plan-requests/999999", data={
        "decision": "approve", "csrf_token": csrf(billing)}).status_code == 404

    second = _ask(factory)
    admin = client_for("admin")
    assert admin.post(f"/plan-requests/{second}", data={
        "decision": "approve", "csrf_token": csrf(admin)}).status_code == 302
    with factory() as s:
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        assert s.get(Plan, bob.next_plan_id).name == "Home-50"  # type: ignore[union-attr]
        decided = {r.id: (r.status, r.decided_by, r.note) for r in s.scalars(
            select(PlanChangeRequest).order_by(PlanChangeRequest.id))}
    assert decided == {first: ("rejected", "billing", "not in your area"),
                       second: ("approved", "admin", None)}
    assert _decisions(factory) == [("portal.plan_change_rejected", "billing", first),
                                   ("portal.plan_change_approved", "admin", second)]
