"""Every route, for every role and for anonymous visitors, is allowed or denied exactly as the
permission table says; a route without a declared permission cannot even be added."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from admin import auth
from admin.roles import Permission
from tests.admin.conftest import ROLES, csrf
from tests.factories import make_plan, make_subscriber

P = Permission
# What each route needs: the specification. A new route must be added here.
EXPECTED = {
    "auth.login": P.PUBLIC, "auth.logout": P.READ, "static": P.PUBLIC,
    "dashboard.index": P.READ,
    "subscribers.index": P.READ, "subscribers.detail": P.READ,
    "subscribers.create": P.OPERATE, "subscribers.suspend": P.OPERATE,
    "subscribers.reconnect": P.OPERATE, "subscribers.change_plan": P.OPERATE,
    "subscribers.record_payment": P.OPERATE, "subscribers.promise": P.OPERATE,
    "subscribers.clear_mac": P.OPERATE, "subscribers.disconnect": P.OPERATE,
    "subscribers.import_file": P.OPERATE, "subscribers.export_file": P.OPERATE,
    "catalog.plan_list": P.READ, "catalog.plan_create": P.MANAGE,
    "catalog.nas_list": P.READ, "catalog.nas_create": P.MANAGE,
    "usage.exempt": P.OPERATE, "usage.reset": P.OPERATE, "usage.topup": P.OPERATE,
    "usage.pack_create": P.MANAGE,
    "olts.index": P.READ, "olts.detail": P.READ,
    "money.invoice_list": P.READ, "money.invoice_pdf": P.READ, "money.payment_list": P.READ,
    "operations.audit_log": P.READ, "operations.jobs": P.READ,
    "plan_requests.index": P.READ, "plan_requests.decide": P.OPERATE,
    "staff.index": P.MANAGE, "staff.create": P.MANAGE, "staff.disable": P.MANAGE,
    "staff.enable": P.MANAGE, "staff.unlock": P.MANAGE, "staff.password": P.MANAGE,
    "staff.token_create": P.MANAGE, "staff.token_revoke": P.MANAGE,
    "accounting.rejected": P.READ, "accounting.replay_rejected": P.OPERATE,
    "reports.index": P.READ, "reports.show": P.READ,
    "api.report_list": P.READ, "api.report_run": P.READ,
    "api.openapi": P.PUBLIC, "api.dashboard": P.READ,
    "api.subscriber_list": P.READ, "api.subscriber_show": P.READ,
    "api.subscriber_create": P.OPERATE, "api.subscriber_suspend": P.OPERATE,
    "api.subscriber_reconnect": P.OPERATE, "api.subscriber_plan": P.OPERATE,
    "api.subscriber_payment": P.OPERATE, "api.subscriber_promise": P.OPERATE,
    "api.subscriber_clear_mac": P.OPERATE, "api.session_disconnect": P.OPERATE,
    "api.plan_list": P.READ, "api.plan_create": P.MANAGE, "api.nas_list": P.READ,
    "api.invoice_list": P.READ, "api.invoice_show": P.READ, "api.payment_list": P.READ,
    "api.session_list": P.READ,
    # the payment link, the browser's return from a gateway and gateways' webhooks: public,
    # authenticated by the link's random key (a capability) and by gateway signatures
    "payments.pay": P.PUBLIC, "payments.start": P.PUBLIC, "payments.returned": P.PUBLIC,
    "payments.webhook": P.PUBLIC,
    "messages.index": P.READ, "messages.retry": P.OPERATE, "messages.channels": P.MANAGE,
    "messages.channel_save": P.MANAGE, "messages.channel_resume": P.MANAGE,
    "messages.templates_page": P.MANAGE,
    "api.message_list": P.READ, "api.message_retry": P.OPERATE, "api.notify_status": P.READ,
    "api.notify_test": P.MANAGE,
    # the short links in SMS: public, a random code leading only to the public payment page
    "notify.short_link": P.PUBLIC,
    # MSG91's delivery reports: public, they only move our own sent messages (notify/web.py)
    "notify.msg91_reports": P.PUBLIC,
    # the subscribers' portal: public to staff roles; it has its own login, session cookie
    # and CSRF token (portal/web.py; tests/portal checks who sees what)
    **{f"portal.{name}": P.PUBLIC for name in (
        "static", "garden", "garden_status", "garden_pay", "login", "otp_send", "otp_verify",
        "otp_choose", "logout", "language", "home", "invoice_pdf", "pay", "promise",
        "plan_request", "sms", "logo")},
}
ALLOWED = {  # role -> permissions (the specification, written out)
    None: {P.PUBLIC},
    "noc": {P.PUBLIC, P.READ},
    "billing": {P.PUBLIC, P.READ, P.OPERATE},
    "admin": {P.PUBLIC, P.READ, P.OPERATE, P.MANAGE},
}
ARGS = {"username": "alice", "session_id": 1, "number": "INV-000001", "filename": "admin.css",
        "name": "bkash", "reference": "RB1NOTOURS", "key": "no-such-key", "token_id": 999999,
        "message_id": 999999, "code": "nosuchcode", "request_id": 999999}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        path = rule.build(ARGS, append_unknown=False)
        assert path is not None
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, path[1]))
    return out


def test_every_route_has_the_specified_permission(app: Flask) -> None:
    declared = {name: getattr(fn, "permission",
                              P.PUBLIC if name in ("static", "portal.static") else None)
                for name, fn in app.view_functions.items()}
    assert declared == EXPECTED


def test_a_route_without_a_permission_is_refused_at_start(app: Flask) -> None:
    app.view_functions["sneaky"] = lambda: "x"
    with pytest.raises(RuntimeError, match="sneaky"):
        auth.check_every_route_declares_a_permission(app)


@pytest.mark.parametrize("role", [None, *ROLES])
def test_every_route_allows_or_denies_each_role(role: str | None, app: Flask,
                                                client_for: Any, token_for: Any,
                                                factory: Any, box: Any) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box)
    client = client_for(role)
    headers = token_for(role) if role else {}
    token = csrf(client, "/login")
    checked = 0
    for endpoint, method, path in routes(app):
        if endpoint == "auth.logout":
            continue  # would end the session mid-test; covered in test_security
        expected = EXPECTED[endpoint] in ALLOWED[role]
        api = path.startswith("/api/")
        if endpoint.startswith("portal."):
            # a staff session means nothing there (the portal's own login: tests/portal)
            resp = client.open(path, method=method, data={"csrf_token": token})
            assert resp.status_code < 500, (endpoint, method, resp.get_data(as_text=True))
            assert resp.status_code != 200 or method == "GET", (endpoint, method)
            checked += 1
            continue
        kwargs: dict[str, Any] = {"headers": headers} if api else {
            "data": {"csrf_token": token}}
        if api and method == "POST":
            kwargs["json"] = {}
        resp = client.open(path, method=method, **kwargs)
        if api:
            denied = resp.status_code in (401, 403)
            if not expected:
                assert resp.status_code == (401 if role is None else 403), (endpoint, method)
        else:
            to_login = resp.status_code == 302 and "/login" in resp.headers["Location"]
            denied = to_login or resp.status_code == 403
            if not expected:
                assert (to_login if role is None else resp.status_code == 403), (
                    endpoint, method, resp.status_code)
        assert denied is not expected, (role, endpoint, method, resp.status_code)
        assert resp.status_code < 500, (endpoint, method, resp.get_data(as_text=True))
        checked += 1
    assert checked >= len(EXPECTED) - 2
