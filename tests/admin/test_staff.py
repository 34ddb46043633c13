"""Staff and tokens: `radbill user disable|enable|password|unlock|token-list|token-revoke`,
token expiry and last use, and the same on the admin's staff page."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from admin import throttle, users
from admin.models import ApiToken, LoginThrottle, StaffSession
from radbill.audit import AuditLog
from radbill.cli import main
from radbill.db import utcnow
from tests.admin.conftest import PASSWORD, csrf, login

NEW_PASSWORD = "another-long-secret"


@pytest.fixture
def cli(db: Any, database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["user", *args])

    return run


def api(client: Any, token: str) -> int:
    return int(client.get("/api/v1/plans",
                          headers={"Authorization": f"Bearer {token}"}).status_code)


def actions(factory: Any) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def test_disable_and_enable_from_the_cli(cli: Any, app: Any, client_for: Any, staff: Any,
                                         factory: Any) -> None:
    browser = client_for("billing")
    token = cli("token", "billing", "--name", "crm").output.strip()
    assert api(app.test_client(), token) == 200
    out = cli("disable", "billing", "--reason", "left the company")
    assert out.exit_code == 0, out.output
    # the browser session ended at once, the token stopped, and logging in is refused
    resp = browser.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert api(app.test_client(), token) == 401
    assert login(client_for(None), "billing").status_code == 401
    with factory() as s:  # ended on the server, not only refused while disabled
        billing_id = users.get_user(s, "billing").id
        assert s.scalars(select(StaffSession).where(StaffSession.user_id == billing_id)
                         ).all() == []
    listed = json.loads(cli("list", "--json").output)
    assert next(u for u in listed if u["username"] == "billing")["active"] is False
    assert cli("enable", "billing").exit_code == 0
    assert api(app.test_client(), token) == 200
    assert login(client_for(None), "billing").status_code == 302
    assert [a for a in actions(factory) if a in ("staff.disable", "staff.enable")] == [
        "staff.disable", "staff.enable"]
    missing = cli("disable", "nobody")
    assert missing.exit_code == 1 and missing.output.startswith("error: unknown staff user")


def test_the_last_active_admin_cannot_be_disabled(cli: Any, staff: Any) -> None:
    out = cli("disable", "admin")
    assert out.exit_code == 1 and "last active admin" in out.output


def test_password_from_the_cli_ends_sessions(cli: Any, client_for: Any, staff: Any) -> None:
    browser = client_for("noc")
    short = cli("password", "noc", "--password", "short")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert cli("password", "noc", "--password", NEW_PASSWORD).exit_code == 0
    assert browser.get("/").status_code == 302
    assert login(client_for(None), "noc", PASSWORD).status_code == 401
    assert login(client_for(None), "noc", NEW_PASSWORD).status_code == 302


def test_unlock_from_the_cli(cli: Any, staff: Any, factory: Any) -> None:
    now = utcnow()
    with factory() as s, s.begin():
        for i in range(throttle.RULES["name"].free + 10):  # held the full 15 minutes: a
            # name held 2 s (one over) was free again by the time a loaded machine looked
            throttle.failed(s, throttle.keys("noc", f"203.0.113.{i}"), now)
        throttle.failed(s, throttle.keys("admin", "203.0.113.1"), now)
    listed = json.loads(cli("list", "--json").output)
    assert next(u for u in listed if u["username"] == "noc")["throttled_until"] is not None
    out = cli("unlock", "noc")
    assert out.exit_code == 0 and "cleared" in out.output
    with factory() as s:
        keys = set(s.scalars(select(LoginThrottle.key)))
    assert not any(k.startswith(("name:noc", "pair:noc|")) for k in keys)
    assert "name:admin" in keys  # only that name
    assert "addr:203.0.113.1" in keys  # addresses keep their count


def test_tokens_expire_are_listed_and_revoked(cli: Any, app: Any, staff: Any,
                                               factory: Any) -> None:
    bad = cli("token", "noc", "--name", "x", "--days", "0")
    assert bad.exit_code == 1 and "--days" in bad.output
    forever = cli("token", "noc", "--name", "forever", "--days", "never").output.strip()
    yearly = cli("token", "noc", "--name", "yearly").output.strip()
    listed = json.loads(cli("token-list", "--json").output)
    by_name = {t["name"]: t for t in listed}
    assert by_name["forever"]["expires_at"] is None
    assert by_name["yearly"]["expires_at"] is not None
    assert {t["state"] for t in listed} == {"active"}
    assert by_name["yearly"]["last_used_at"] is None
    assert api(app.test_client(), yearly) == 200
    used = json.loads(cli("token-list", "noc", "--json").output)
    assert next(t for t in used if t["name"] == "yearly")["last_used_at"] is not None
    out = cli("token-revoke", str(by_name["forever"]["id"]))
    assert out.exit_code == 0, out.output
    assert api(app.test_client(), forever) == 401
    assert {t["name"]: t["state"] for t in json.loads(cli("token-list", "--json").output)
            } == {"forever": "revoked", "yearly": "active"}
    assert cli("token-revoke", "99999").exit_code == 1
    # an expired token is refused like a wrong one
    with factory() as s, s.begin():
        row = s.scalars(select(ApiToken).where(ApiToken.name == "yearly")).one()
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert api(app.test_client(), yearly) == 401
    assert json.loads(cli("token-list", "--json").output)[0]["state"] == "expired"
    assert "staff.token_revoke" in actions(factory)


def test_last_use_is_written_at_most_once_a_minute(staff: Any, factory: Any) -> None:
    t0 = utcnow()
    with factory() as s, s.begin():
        token = users.create_token(s, "noc", "crm", actor="test", now=t0)
    seen = []
    for offset in (0, 30, 59, 61, 90):
        with factory() as s, s.begin():
            assert users.token_user(s, token, t0 + dt.timedelta(seconds=offset)) is not None
        with factory() as s:
            seen.append(s.scalars(select(ApiToken.last_used_at)).one())
    assert seen == [t0, t0, t0, t0 + dt.timedelta(seconds=61), t0 + dt.timedelta(seconds=61)]


def test_the_staff_page_does_the_same_for_admins(client_for: Any, staff: Any,
                                                 factory: Any) -> None:
    admin = client_for("admin")
    victim = client_for("billing")
    page = admin.get("/staff")
    assert page.status_code == 200 and 'id="staff-billing"' in page.get_data(as_text=True)
    assert client_for("billing").get("/staff").status_code == 403
    token = csrf(admin, "/staff")
    assert admin.post("/staff/billing/disable", data={"csrf_token": token}).status_code == 302
    assert victim.get("/").status_code == 302
    assert admin.post("/staff/billing/enable", data={"csrf_token": token}).status_code == 302
    resp = admin.post("/staff/password", data={"csrf_token": token, "username": "noc",
                                               "password": NEW_PASSWORD})
    assert resp.status_code == 302
    assert login(client_for(None), "noc", NEW_PASSWORD).status_code == 302
    created = admin.post("/staff/tokens", data={"csrf_token": token, "username": "noc",
                                                "name": "grafana", "days": "30"})
    assert created.status_code == 201
    shown = re.search(r"<code>(rbt_[^<]+)</code>", created.get_data(as_text=True))
    assert shown is not None
    with factory() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "grafana")).one()
        assert row.token_hash == users.sha256(shown.group(1))
        assert row.expires_at is not None
        left = row.expires_at - row.created_at
        assert left == dt.timedelta(days=30)
    page = admin.get("/staff").get_data(as_text=True)
    assert shown.group(1) not in page  # shown once
    resp = admin.post(f"/staff/tokens/{row.id}/revoke", data={"csrf_token": token})
    assert resp.status_code == 302
    with factory() as s:
        assert s.get(ApiToken, row.id).revoked_at is not None  # type: ignore[union-attr]
    bad = admin.post("/staff/new", data={"csrf_token": token, "username": "ops",
                                         "role": "admin", "password": "short"})
    assert bad.status_code == 422 and "at least 10 characters" in bad.get_data(as_text=True)
    ok = admin.post("/staff/new", data={"csrf_token": token, "username": "ops",
                                        "role": "noc", "password": NEW_PASSWORD})
    assert ok.status_code == 302
    assert login(client_for(None), "ops", NEW_PASSWORD).status_code == 302
    # an admin cannot disable their own account (and lock everyone out by accident)
    own = admin.post("/staff/admin/disable", data={"csrf_token": token})
    assert own.status_code == 422
    assert actions(factory).count("staff.password") == 1


def test_the_staff_page_unlocks_a_held_name(client_for: Any, staff: Any,
                                            factory: Any) -> None:
    now = utcnow()
    with factory() as s, s.begin():
        for i in range(throttle.RULES["name"].free + 10):  # held the full 15 minutes: a
            # name held 2 s (one over) was free again by the time a loaded machine looked
            throttle.failed(s, throttle.keys("noc", f"203.0.113.{i}"), now)
    admin = client_for("admin")
    page = admin.get("/staff").get_data(as_text=True)
    assert "logins held back until" in page
    assert admin.post("/staff/noc/unlock", data={"csrf_token": csrf(admin, "/staff")}
                      ).status_code == 302
    assert "logins held back until" not in admin.get("/staff").get_data(as_text=True)
    with factory() as s:
        assert s.scalars(select(StaffSession)).first() is not None
