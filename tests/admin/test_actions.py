"""The operator's actions through the pages and the API: exact effects, audit rows, and bad
input that gets a clear error and loses nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from billing import ledger
from billing.models import EnforcementRequest, Payment, Plan
from billing.subscribers import get_subscriber
from radbill.audit import AuditLog
from radbill.db import utcnow
from radius.models import RadiusSession
from tests.admin.conftest import csrf
from tests.admin.helpers import overdue_subscriber
from tests.factories import make_plan, make_subscriber


def audit_rows(factory: Any, action: str) -> list[AuditLog]:
    with factory() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_payment_reconnects_a_suspended_subscriber(client_for: Any, factory: Any,
                                                   box: Any) -> None:
    day = overdue_subscriber(factory, box)
    client = client_for("billing")
    page = client.get("/subscribers/bob").get_data(as_text=True)
    assert "Suspended for non-payment" in page and "BDT 1,000.00" in page
    resp = client.post("/subscribers/bob/payment", data={
        "amount": "1000", "method": "cash", "reference": "R-1", "csrf_token": csrf(client)})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Reconnected" in page and 'id="status">active' in page
    with factory() as s:
        sub = get_subscriber(s, "bob")
        assert str(sub.status) == "active"
        assert ledger.settle(s, sub.id, day).overdue(day) == Decimal("0.00")
        payment = s.scalars(select(Payment)).one()
        assert (payment.amount, payment.actor) == (Decimal("1000.00"), "billing")
        actions = [e.action for e in s.scalars(select(EnforcementRequest)
                                               .order_by(EnforcementRequest.id))]
        assert actions == ["suspend", "reconnect"]
    [row] = audit_rows(factory, "payment.record")
    assert row.actor == "billing" and row.after == {"amount": "1000.00", "method": "cash",
                                                    "reference": "R-1", "on": str(day)}
    [status] = list(audit_rows(factory, "subscriber.active"))
    assert (status.before, status.after) == ({"status": "suspended"}, {"status": "active"})


def test_bad_payment_input_is_refused_keeps_the_values_and_writes_nothing(
        client_for: Any, factory: Any, box: Any) -> None:
    overdue_subscriber(factory, box)
    client = client_for("billing")
    resp = client.post("/subscribers/bob/payment", data={
        "amount": "12.345", "method": "cash", "reference": "RCPT-77",
        "csrf_token": csrf(client)})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "more than two decimals" in page
    assert 'value="12.345"' in page and 'value="RCPT-77"' in page
    with factory() as s:
        assert s.scalars(select(Payment)).all() == []
        assert str(get_subscriber(s, "bob").status) == "suspended"


def test_suspend_and_reconnect_by_hand(client_for: Any, factory: Any, box: Any) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box)
    client = client_for("billing")
    token = csrf(client)
    assert client.post("/subscribers/alice/suspend", data={
        "reason": "asked to pause", "csrf_token": token}).status_code == 302
    with factory() as s:
        assert str(get_subscriber(s, "alice").status) == "suspended"
    [row] = audit_rows(factory, "subscriber.suspended")
    assert (row.actor, row.reason, row.before, row.after) == (
        "billing", "asked to pause", {"status": "active"}, {"status": "suspended"})
    assert client.post("/subscribers/alice/reconnect", data={
        "csrf_token": token}).status_code == 302
    with factory() as s:
        assert str(get_subscriber(s, "alice").status) == "active"
        assert [e.action for e in s.scalars(select(EnforcementRequest)
                                            .order_by(EnforcementRequest.id))] == [
            "suspend", "reconnect"]


def test_clear_mac_promise_and_plan_change(client_for: Any, factory: Any, box: Any) -> None:
    day = overdue_subscriber(factory, box)
    with factory() as s, s.begin():
        make_plan(s, name="Home-50", rate="50M/10M", price="2000")
        from billing.subscribers import set_mac

        set_mac(s, "bob", "aa:bb:cc:dd:ee:ff", actor="test")
    client = client_for("admin")
    token = csrf(client)
    assert client.post("/subscribers/bob/clear-mac", data={"csrf_token": token}
                       ).status_code == 302
    [row] = [r for r in audit_rows(factory, "subscriber.mac") if r.actor == "admin"]
    assert (row.before, row.after) == ({"mac_address": "AA:BB:CC:DD:EE:FF"},
                                       {"mac_address": None})
    until = day.fromordinal(day.toordinal() + 5)
    assert client.post("/subscribers/bob/promise", data={
        "until": until.isoformat(), "csrf_token": token}).status_code == 302
    with factory() as s:
        assert str(get_subscriber(s, "bob").status) == "active"
    bad = client.post("/subscribers/bob/promise", data={"until": "next week",
                                                        "csrf_token": token})
    assert bad.status_code == 422 and "not a date" in bad.get_data(as_text=True)
    assert client.post("/subscribers/bob/plan", data={
        "plan": "Home-50", "effective": "next_cycle", "csrf_token": token}).status_code == 302
    with factory() as s:
        sub = get_subscriber(s, "bob")
        assert sub.next_plan is not None and sub.next_plan.name == "Home-50"


def test_disconnect_writes_an_enforcement_request(client_for: Any, factory: Any,
                                                  box: Any) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        sub = make_subscriber(s, box)
        now = utcnow()
        row = RadiusSession(nas_ip="10.0.0.1", acct_session_id="81000001", username="alice",
                            subscriber_id=sub.id, started_at=now, updated_at=now,
                            input_octets=5_000_000, output_octets=70_000_000)
        s.add(row)
        s.flush()
        session_id = row.id
    client = client_for("billing")
    page = client.get("/subscribers/alice").get_data(as_text=True)
    assert "online" in page and "70.0 MB" in page and "<svg" in page
    resp = client.post(f"/subscribers/alice/sessions/{session_id}/disconnect",
                       data={"csrf_token": csrf(client)})
    assert resp.status_code == 302
    with factory() as s:
        req = s.scalars(select(EnforcementRequest)).one()
        assert (req.action, req.status) == ("disconnect", "pending")
        assert req.reason == "session 10.0.0.1/81000001: operator request"
    [row_] = audit_rows(factory, "subscriber.disconnect")
    assert row_.actor == "billing"
    # the enforcement history on the page shows it
    assert "disconnect" in client.get("/subscribers/alice").get_data(as_text=True)


def test_create_plan_and_nas_and_subscriber_pages(client_for: Any, factory: Any) -> None:
    client = client_for("admin")
    token = csrf(client)
    resp = client.post("/plans/new", data={"name": "Fiber-100", "price": "2500",
                                           "currency": "BDT", "rate": "100M/20M",
                                           "csrf_token": token})
    assert resp.status_code == 302
    bad = client.post("/plans/new", data={"name": "Broken", "price": "10", "currency": "BDT",
                                          "rate": "fast", "csrf_token": token})
    assert bad.status_code == 422 and 'value="Broken"' in bad.get_data(as_text=True)
    with factory() as s:
        assert [p.name for p in s.scalars(select(Plan))] == ["Fiber-100"]
    resp = client.post("/nas/new", data={"name": "core-1", "ip": "10.9.9.9",
                                         "secret": "long-random-secret", "coa_port": "3799",
                                         "csrf_token": token})
    assert resp.status_code == 302
    page = client.get("/nas").get_data(as_text=True)
    assert "core-1" in page
    assert all(f"<option>{t}</option>" in page for t in ("accel-ppp", "wispr", "cisco",
                                                          "juniper", "other"))
    odd = client.post("/nas/new", data={"name": "edge-9", "ip": "10.9.9.10",
                                        "secret": "long-random-secret", "nas_type": "huawei",
                                        "csrf_token": token})
    assert odd.status_code == 422 and "unknown NAS type" in odd.get_data(as_text=True)
    resp = client.post("/subscribers/new", data={
        "username": "carol", "password": "pw-123456", "plan": "Fiber-100",
        "service": "pppoe", "full_name": "Carol Khan", "phone": "+8801733333333",
        "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/subscribers/carol")
    dup = client.post("/subscribers/new", data={
        "username": "carol", "password": "pw-123456", "plan": "Fiber-100",
        "full_name": "Carol Again", "csrf_token": token})
    assert dup.status_code == 422 and "already exists" in dup.get_data(as_text=True)
    assert 'value="Carol Again"' in dup.get_data(as_text=True)
    # carol and CAROL are one account (usernames are unique in lower case)
    upper = client.post("/subscribers/new", data={
        "username": "CAROL", "password": "pw-123456", "plan": "Fiber-100",
        "csrf_token": token})
    assert upper.status_code == 422 and "already exists" in upper.get_data(as_text=True)
    assert [r.actor for r in audit_rows(factory, "plan.create")] == ["admin"]
    assert [r.actor for r in audit_rows(factory, "nas.create")] == ["admin"]
    assert [r.actor for r in audit_rows(factory, "subscriber.create")] == ["admin"]


def test_search_and_filters(client_for: Any, factory: Any, box: Any) -> None:
    overdue_subscriber(factory, box)
    with factory() as s, s.begin():
        make_subscriber(s, box, "alice", full_name="Alice Akter", phone="+8801711111111")
    client = client_for("noc")

    def names(query: str) -> list[str]:
        html = client.get(f"/subscribers/?{query}").get_data(as_text=True)
        return [u for u in ("alice", "bob") if f'/subscribers/{u}"' in html]

    assert names("q=akter") == ["alice"]
    assert names("q=017222") == ["bob"]
    assert names("q=BO") == ["bob"]
    assert names("status=suspended") == ["bob"]
    assert names("status=active&plan=Home-20") == ["alice"]
    assert names("") == ["alice", "bob"]
    assert client.get("/subscribers/?nas=nowhere").status_code == 422


def test_dashboard_figures(client_for: Any, factory: Any, box: Any) -> None:
    overdue_subscriber(factory, box)
    client = client_for("billing")
    page = client.get("/").get_data(as_text=True)
    assert 'id="count-suspended">1<' in page and 'id="count-active">0<' in page
    assert "BDT 1,000.00" in page  # overdue
    client.post("/subscribers/bob/payment", data={"amount": "400", "method": "cash",
                                                  "reference": "R-9",
                                                  "csrf_token": csrf(client)})
    page = client.get("/").get_data(as_text=True)
    assert "BDT 400.00" in page  # revenue today and this month
    assert "BDT 600.00" in page  # still overdue
    assert "<svg" in page


def test_invoice_pdf(client_for: Any, factory: Any, box: Any) -> None:
    overdue_subscriber(factory, box)
    client = client_for("noc")
    html = client.get("/invoices").get_data(as_text=True)
    assert "INV-000001" in html
    pdf = client.get("/invoices/INV-000001.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert client.get("/invoices/INV-999999.pdf").status_code == 404


def test_api_actions_and_errors(client_for: Any, token_for: Any, factory: Any,
                                box: Any) -> None:
    overdue_subscriber(factory, box)
    client = client_for(None)
    h = token_for("billing")
    bad = client.post("/api/v1/subscribers/bob/payments", headers=h,
                      json={"amount": 5, "reference": "", "colour": "red"})
    assert bad.status_code == 422
    assert bad.json["fields"] == {"amount": "must be a string", "reference": "must not be empty",
                                  "colour": "unknown field"}
    bad = client.post("/api/v1/subscribers/bob/payments", headers=h,
                      json={"amount": "-3", "reference": "X-1"})
    assert bad.status_code == 422 and "amount" in bad.json["fields"]
    assert client.post("/api/v1/subscribers/nobody/payments", headers=h,
                       json={"amount": "1", "reference": "X"}).status_code == 404
    ok = client.post("/api/v1/subscribers/bob/payments", headers=h,
                     json={"amount": "1000.00", "reference": "GW-1", "method": "bank"})
    assert ok.status_code == 201
    assert ok.json["reconnected"] is True and Decimal(ok.json["overdue"]) == 0
    again = client.post("/api/v1/subscribers/bob/payments", headers=h,
                        json={"amount": "1000.00", "reference": "GW-1", "method": "bank"})
    assert again.status_code == 409
    bob = client.get("/api/v1/subscribers/bob", headers=h).json
    assert bob["status"] == "active" and bob["balance"] == "0.00"
    assert [e["action"] for e in bob["enforcement"]] == ["reconnect", "suspend"]
    [row] = audit_rows(factory, "payment.record")
    assert row.actor == "billing (api)"
    assert client.post("/api/v1/subscribers/bob/suspend", headers=token_for("noc"),
                       json={}).status_code == 403
    listed = client.get("/api/v1/subscribers?q=rahman", headers=h).json
    assert [s["username"] for s in listed] == ["bob"]
    assert client.get("/api/v1/subscribers?status=nope", headers=h).json["fields"] == {
        "status": "must be one of active, suspended, disabled, terminated"}
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.") and "/subscribers/{username}/payments" in doc["paths"]
