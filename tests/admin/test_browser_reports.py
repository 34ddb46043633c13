"""A real browser on a phone-sized screen opens the reconciliation reports: the list, a
report with a finding whose row links to the subscriber, the filters, the CSV export."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from radbill.db import utcnow
from radius.accounting import START, AcctRecord, apply
from tests.admin.conftest import PASSWORD
from tests.admin.test_browser import (  # noqa: F401 - the fixtures, shared
    CHROMIUM,
    PHONE,
    browser,
    fits_the_phone,
    server,
)
from tests.factories import make_plan, make_subscriber

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing: "
                       "run scripts/setup-debian.sh"),
]


def test_reports_on_a_phone(browser: Any, server: str, staff: Any, factory: Any,  # noqa: F811
                            box: Any, artifacts_dir: Path, tmp_path: Path) -> None:
    with factory() as s, s.begin():
        make_plan(s)
        sub = make_subscriber(s, box, "quiet")
        apply(s, AcctRecord(status=START, nas_ip="10.0.0.1", username="quiet",
                            acct_session_id="quiet-1",
                            event_time=utcnow() - dt.timedelta(minutes=20)), sub.id)
    shots = artifacts_dir / "admin"
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "noc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Dashboard")
    page.click("nav >> text=Reports")
    page.wait_for_selector("text=Reconciliation reports")
    assert fits_the_phone(page)
    page.screenshot(path=str(shots / "reports.png"), full_page=True)
    page.click("text=Stale sessions")
    page.wait_for_selector("#report >> text=quiet-1")
    page.wait_for_load_state("load")
    assert fits_the_phone(page)
    page.screenshot(path=str(shots / "report-stale-sessions.png"), full_page=True)
    with page.expect_download() as info:
        page.click("text=Export CSV")
    csv_file = tmp_path / "stale.csv"
    info.value.save_as(csv_file)
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("username,user_name,nas_ip,acct_session_id")
    assert lines[1].startswith("quiet,quiet,10.0.0.1,quiet-1,")
    page.fill("input[name=nas]", "10.9.9.9")  # the filter: another NAS has nothing
    page.click("button:has-text('Show')")
    page.wait_for_selector("text=nothing found")
    page.goto(f"{server}/reports/stale-sessions")
    page.click("#report >> a:has-text('quiet')")
    page.wait_for_url(f"{server}/subscribers/quiet")
    assert violations == []
    context.close()
