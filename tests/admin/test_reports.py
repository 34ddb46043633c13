"""The reconciliation reports' faces: the admin pages (filters, CSV export, links to the
subscriber), the API under /api/v1 with its token auth, and ``radbill report``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from radbill.db import utcnow
from radius.accounting import START, AcctRecord, apply
from reports import registry
from tests.factories import make_plan, make_subscriber


@pytest.fixture
def stale(factory: Any, box: Any) -> None:
    """quiet's session silent for 20 minutes (stale), fine's for one (a near miss)."""
    with factory() as s, s.begin():
        make_plan(s)
        for name, minutes in (("quiet", 20), ("fine", 1)):
            sub = make_subscriber(s, box, name)
            apply(s, AcctRecord(status=START, nas_ip="10.0.0.1", username=name,
                                acct_session_id=f"{name}-1",
                                event_time=utcnow() - dt.timedelta(minutes=minutes)), sub.id)


def test_every_report_has_a_page(client_for: Callable[[str | None], FlaskClient]) -> None:
    noc = client_for("noc")
    index = noc.get("/reports/").get_data(as_text=True)
    for name in registry.names():
        assert f'href="/reports/{name}"' in index
        page = noc.get(f"/reports/{name}")
        assert page.status_code == 200, name
        assert "nothing found" in page.get_data(as_text=True)
    assert noc.get("/reports/nope").status_code == 404
    assert client_for(None).get("/reports/stale-sessions").status_code == 302  # log in first


def test_page_rows_link_to_the_subscriber_and_export_csv(
        client_for: Callable[[str | None], FlaskClient], stale: None) -> None:
    noc = client_for("noc")
    html = noc.get("/reports/stale-sessions").get_data(as_text=True)
    assert 'href="/subscribers/quiet"' in html
    assert "fine" not in html
    assert "stale-session job is not closing sessions" in html
    resp = noc.get("/reports/stale-sessions?format=csv")
    assert resp.mimetype == "text/csv"
    assert "stale-sessions.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["username"] for r in rows] == ["quiet"]
    assert list(rows[0]) == list(registry.get("stale-sessions").columns)
    assert rows[0]["acct_session_id"] == "quiet-1"
    # filters: another NAS has nothing
    html = noc.get("/reports/stale-sessions?nas=10.9.9.9").get_data(as_text=True)
    assert "quiet" not in html and "nothing found" in html
    bad = noc.get("/reports/stale-sessions?limit=lots")
    assert bad.status_code == 422
    assert "limit must be a whole number" in bad.get_data(as_text=True)
    assert noc.get("/reports/stale-sessions?limit=0").status_code == 422


def test_api(client_for: Callable[[str | None], FlaskClient],
             token_for: Callable[[str], dict[str, str]], stale: None) -> None:
    client = client_for(None)
    auth = token_for("noc")
    listing = client.get("/api/v1/reports", headers=auth).get_json()
    assert [r["name"] for r in listing] == registry.names()
    body = client.get("/api/v1/reports/stale-sessions", headers=auth).get_json()
    assert [r["username"] for r in body["rows"]] == ["quiet"]
    assert body["rows"][0]["action"]
    assert body["columns"] == list(registry.get("stale-sessions").columns)
    assert client.get("/api/v1/reports/stale-sessions?nas=10.9.9.9",
                      headers=auth).get_json()["rows"] == []
    assert client.get("/api/v1/reports/stale-sessions").status_code == 401
    bad = client.get("/api/v1/reports/never-online?days=0", headers=auth)
    assert bad.status_code == 422 and "days" in bad.get_json()["fields"]
    assert client.get("/api/v1/reports/nope", headers=auth).status_code == 404
    assert client.get("/api/v1/reports/over-cap", headers=auth).status_code == 200
    doc = client.get("/api/v1/openapi.json").get_json()
    assert "/reports/{name}" in doc["paths"]


def test_cli(cli: Any, stale: None) -> None:
    listing = json.loads(cli("report", "--json").output)
    assert [r["name"] for r in listing] == registry.names()
    out = json.loads(cli("report", "stale-sessions", "--json").output)
    assert [r["username"] for r in out["rows"]] == ["quiet"]
    text = cli("report", "stale-sessions", "--csv").output
    assert text.splitlines()[0] == ",".join(registry.get("stale-sessions").columns)
    assert text.splitlines()[1].startswith("quiet,quiet,10.0.0.1,quiet-1,")
    table = cli("report", "stale-sessions").output
    assert "quiet" in table and "fine" not in table
    bad = cli("report", "nope", ok=False)
    assert bad.exit_code != 0 and "error: no report 'nope'" in bad.output
    assert json.loads(cli("report", "over-cap", "--json").output)["rows"] == []
    bad = cli("report", "stale-sessions", "--limit", "0", ok=False)
    assert bad.exit_code != 0 and "limit 0 must be between 1 and 10000" in bad.output
