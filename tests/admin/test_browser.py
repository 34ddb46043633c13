"""A real browser (Debian's chromium, driven by Playwright) on a phone-sized screen: log in,
create a plan, create a subscriber, record a payment and watch a suspended subscriber become
active. Screenshots of the main pages go to test-artifacts/admin/."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from billing.models import Invoice
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import overdue_subscriber

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing: "
                       "run scripts/setup-debian.sh"),
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    # One thread: never two write transactions at once on SQLite.
    srv = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(10)


def fits_the_phone(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_operator_flow_on_a_phone(browser: Any, server: str, staff: Any, factory: Any,
                                  box: Any, artifacts_dir: Path) -> None:
    overdue_subscriber(factory, box)
    shots = artifacts_dir / "admin"
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    # The Content-Security-Policy allows no inline script or style: a page that needs any
    # shows up here as a console error.
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)

    def shot(name: str) -> None:
        # After a click the DOM can be queried before the stylesheet has arrived; unstyled
        # tables are wider than the phone. "load" waits for the stylesheet.
        page.wait_for_load_state("load")
        if not fits_the_phone(page):
            page.screenshot(path=str(shots / f"{name}-too-wide.png"), full_page=True)
            wide = page.evaluate(
                "[...document.querySelectorAll('body *')].filter(e => "
                "e.getBoundingClientRect().right > window.innerWidth + 1)"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className + ': '"
                " + (e.textContent || '').slice(0, 60))")
            raise AssertionError(f"{name} is wider than the phone: {wide}")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    page.goto(f"{server}/")
    assert "/login" in page.url
    shot("login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Dashboard")
    assert page.inner_text("#count-suspended") == "1"
    shot("dashboard")

    page.goto(f"{server}/plans")
    page.fill("input[name=name]", "Fiber-100")
    page.fill("input[name=price]", "2500")
    page.fill("input[name=rate]", "100M/20M")
    page.click("text=Create plan")
    page.wait_for_selector("text=Plan Fiber-100 created.")
    shot("plans")

    page.goto(f"{server}/subscribers/new")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "pw-123456")
    page.select_option("select[name=plan]", "Fiber-100")
    page.fill("input[name=full_name]", "Carol Khan")
    page.fill("input[name=phone]", "+8801733333333")
    page.click("text=Create subscriber")
    page.wait_for_selector("text=Subscriber carol created.")
    assert page.inner_text("#status") == "active"
    shot("subscriber-new")

    page.goto(f"{server}/subscribers/?q=rahman")
    page.click("text=bob")
    assert page.inner_text("#status") == "suspended"
    shot("subscriber-suspended")
    form = page.locator("form[aria-label='Record payment']")
    form.locator("input[name=amount]").fill("1000")
    form.locator("input[name=reference]").fill("RCPT-1")
    form.locator("button").click()
    page.wait_for_selector("text=Reconnected.")
    assert page.inner_text("#status") == "active"
    assert page.inner_text("#overdue") == "BDT 0.00"
    shot("subscriber-paid")

    from radius import rejects

    with factory() as s, s.begin():  # a record the ingester set aside, for its page
        rejects.set_aside(s, "acct", "detail-20261124-20", [rejects.Rejection(
            0, {"User-Name": "ann", "Acct-Session-Id": "81a0\x00", "NAS-Port-Id": "p" * 200},
            "Acct-Session-Id='81a0\\x00' contains a NUL byte")])
    for name in ("subscribers/", "invoices", "payments", "audit", "jobs", "nas", "staff",
                 "accounting/rejected"):
        page.goto(f"{server}/{name}")
        shot(name.strip("/"))
    page.goto(f"{server}/")
    assert page.inner_text("#count-suspended") == "0"
    assert page.inner_text("#count-active") == "2"
    with factory() as s:
        key = s.scalars(select(Invoice.pay_token)).first()
    page.goto(f"{server}/pay/{key}")
    page.wait_for_selector("text=Hello Bob.")
    shot("pay")
    assert violations == []
    context.close()
