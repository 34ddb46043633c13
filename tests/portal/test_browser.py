"""The portal in a real browser (Debian's chromium, driven by Playwright) on a 390 px phone,
with everything else real too: FreeRADIUS, the enforcement worker, the web app, the gateway
simulators and the NAS simulator in walled-garden mode (each subscriber's browser goes
through their *line*, a proxy whose requests leave from their session's address).

* A suspended subscriber opens any web site, lands on ``/portal/garden``, pays with each
  gateway (bKash, Nagad and SSLCommerz for taka, Razorpay for rupees), and the page follows
  the reconnection until the NAS has them online at full speed.
* An address without a session gets the login form and no data.
* Login by an SMS code; a portal user cannot open another subscriber's invoice or PDF.

Screenshots go to test-artifacts/portal/."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

from admin import create_app
from billing.models import EnforcementRequest, Invoice, Subscriber
from billing.payments import record_payment
from billing.run import run_days
from coa import queue
from notify.config import save
from notify.worker import NotifyWorker, WorkerConfig
from payments.config import adapter
from payments.gateways.base import GatewayConfig
from payments.models import PaymentIntent
from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import session_factory, utcnow
from radius.models import RadiusSession
from radius.nas import create_nas
from simulators.nas import NasSimulator
from simulators.radius_client import free_udp_port
from simulators.sms.sslwireless import SslWirelessSimulator
from tests.admin.helpers import today as isp_today
from tests.conftest import wipe
from tests.e2e.server import SECRET, EnforcementWorker, RadiusServer, wait_for
from tests.factories import make_plan, make_subscriber
from tests.pgserver import free_tcp_port

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser, pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing: "
                       "run scripts/setup-debian.sh"),
]
PHONE = {"width": 390, "height": 844}
SIMULATORS = {
    "bkash": "simulators.gateways.bkash:BkashSimulator",
    "nagad": "simulators.gateways.nagad:NagadSimulator",
    "sslcommerz": "simulators.gateways.sslcommerz:SslcommerzSimulator",
    "razorpay": "simulators.gateways.razorpay:RazorpaySimulator",
}
PAYERS = {"bkash": "gbkash", "nagad": "gnagad", "sslcommerz": "gssl", "razorpay": "grzp"}
RETURNS_THE_BROWSER = ("bkash", "nagad")  # the rest notify server to server
COA = free_udp_port()
PLAN_RATE = {"BDT": "5M/20M", "INR": "10M/10M"}


def load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("portal-browser")


@pytest.fixture(scope="module")
def world(engine: Engine, data_dir: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """Everything running: subscribers suspended in the walled garden, one per gateway, and
    an active one (olivia) who logs in by SMS code."""
    wipe(engine)
    box = SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(data_dir)})))
    factory = session_factory(engine)
    today = isp_today(factory)
    with factory() as s, s.begin():
        create_nas(s, box, name="garden-nas", ip="127.0.0.1", secret=SECRET, coa_port=COA)
        make_plan(s, name="Home-20", grace_days=0)
        make_plan(s, name="Home-INR", currency="INR", price="500", rate="10M/10M",
                  grace_days=0)
        for i, (gateway, name) in enumerate(sorted(PAYERS.items())):
            make_subscriber(s, box, name, plan="Home-INR" if gateway == "razorpay" else
                            "Home-20", password=f"pw-{name}", full_name=f"{name.title()} Khan",
                            phone=f"+88017000000{i:02d}",
                            activated_on=today - dt.timedelta(days=40))
        make_subscriber(s, box, "olivia", password="pw-olivia", full_name="Olivia Roy",
                        phone="+8801733333333", activated_on=today - dt.timedelta(days=40))
    run_days(factory, today - dt.timedelta(days=40), today)
    with factory() as s, s.begin():  # olivia paid (late): active, with a paid invoice
        record_payment(s, "olivia", "1000", method="cash", reference="C-olivia", today=today,
                       actor="test")
    radius = RadiusServer(database_url, data_dir).start()
    worker = EnforcementWorker(database_url, data_dir, RADBILL_COA_TIMEOUT_MS="300").start()

    def settled() -> bool:
        with factory() as s:
            return s.scalars(select(EnforcementRequest.id).where(
                EnforcementRequest.status.in_(queue.OPEN)).limit(1)).first() is None

    # The suspensions of the billing run are the worker's first round. They must be done
    # before anyone dials in: a worker that starts slowly (it takes seconds to import on a
    # loaded machine) would otherwise claim them just after the logins and Disconnect every
    # garden session right as the first test opens its page (its line down for the redial:
    # the browser stayed on http://news.example/today), and its Disconnect would stand for
    # the reconnection's in the NAS's acked_at.
    wait_for(settled, timeout=60, interval=0.1)
    sims = {name: load(path)().start() for name, path in SIMULATORS.items()}
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    sims["razorpay"].webhook_url = f"{base}/webhooks/razorpay"
    gateways = {name: adapter(GatewayConfig(name=name, base_url=sim.url,
                                            credentials=sim.credentials, timeout=5))
                for name, sim in sims.items()}
    settings = Settings(data_dir=data_dir, database_url=database_url, public_url=base)
    app = create_app(settings, engine=engine, config={"RADBILL_GATEWAYS": gateways})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    nas = NasSimulator(nas_ip="127.0.0.1", auth_port=radius.auth_port,
                       acct_port=radius.acct_port, secret=SECRET, coa_port=COA,
                       pool="127.100.0.0").start()
    nas.redial_after = 0.2
    allow = [f"127.0.0.1:{port}"] + [sim.url.split("/")[2] for sim in sims.values()]
    garden = nas.garden_mode(f"{base}/portal/garden", allow)
    results = nas.login_many((n, f"pw-{n}") for n in PAYERS.values())
    assert all(r.accepted for r in results)
    assert all(r.session and r.session.address_list == "radbill-suspended" for r in results)

    def stored() -> bool:
        with factory() as s:
            return len(s.scalars(select(RadiusSession.id).where(
                RadiusSession.stopped_at.is_(None))).all()) >= len(PAYERS)

    wait_for(stored, timeout=30)
    yield {"base": base, "nas": nas, "garden": garden, "sims": sims, "factory": factory,
           "box": box, "engine": engine}
    nas.stop()
    server.shutdown()
    for sim in sims.values():
        sim.stop()
    worker.stop()
    radius.stop()
    wipe(engine)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # (loopback through the proxy: Chromium bypasses proxies for it by default)
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu",
                                    "--proxy-bypass-list=<-loopback>"])
        yield b
        b.close()


def fits_the_phone(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


class Shots:
    """Screenshots at phone size, each page checked to fit it."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder = page, folder
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)
        assert fits_the_phone(self.page), f"{name} is wider than the phone"


def _context(browser: Any, proxy: str | None = None) -> Any:
    kw: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 1}
    if proxy:
        kw["proxy"] = {"server": proxy}
    context = browser.new_context(**kw)
    context.set_default_timeout(20_000)
    return context


def _csp_watch(page: Any) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    return violations


def _open(page: Any, url: str, timeout: float = 20) -> None:
    """Open *url* as a subscriber would: while the router re-dials the line is down for a
    moment (the line answers 502), and they reload."""
    deadline = time.monotonic() + timeout
    while True:
        response = page.goto(url)
        if response is not None and response.status != 502:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: the line stayed down")
        time.sleep(0.2)


@pytest.mark.parametrize("gateway", sorted(PAYERS))
def test_garden_visitor_pays_and_is_reconnected(world: dict[str, Any], browser: Any,
                                                artifacts_dir: Path, gateway: str) -> None:
    username = PAYERS[gateway]
    nas: NasSimulator = world["nas"]
    sim = world["sims"][gateway]
    context = _context(browser, world["garden"].line(username))
    page = context.new_page()
    violations = _csp_watch(page)
    shot = Shots(page, artifacts_dir / "portal")
    # in the garden since the fixture, untouched: no Disconnect has reached this session yet
    # (the one the test waits for below is the reconnection's)
    assert username not in nas.acked_at, "the session was disconnected before the payment"
    page.goto("http://news.example/today")  # any web site: the router redirects
    assert "/portal/garden" in page.url
    page.wait_for_selector(f"text={username.title()}")
    assert page.get_attribute("#live-state", "data-state") == "suspended"
    offered = page.eval_on_selector_all("[data-gateway]", "els => els.map(e => e.dataset.gateway)")
    assert offered == (["razorpay"] if gateway == "razorpay" else
                       ["bkash", "nagad", "sslcommerz"])
    shot(f"garden-{gateway}")
    clicked = time.monotonic()
    page.click(f"[data-gateway={gateway}]")
    page.wait_for_url(re.compile(re.escape(sim.url.split("/")[2])))
    with world["factory"]() as s:
        intent = s.scalars(select(PaymentIntent).join(
            Subscriber, Subscriber.id == PaymentIntent.subscriber_id)
            .where(Subscriber.username == username)).one()
    if gateway in RETURNS_THE_BROWSER:
        # the gateway sends the browser back to us; the browser follows, through the line
        delivery = sim.pay(intent.gateway_reference, deliver=False)
        _open(page, delivery.url)
        page.wait_for_selector("text=Thank you")
        follow = page.get_attribute("#follow", "href")
        _open(page, f"{world['base']}{follow}")
    else:
        delivery = sim.pay(intent.gateway_reference)  # IPN / webhook, server to server
        assert delivery.status == 200, delivery
        _open(page, f"{world['base']}/portal/garden")
    # the page follows the reconnection: Disconnect, redial, a new address, full speed
    try:
        page.wait_for_selector("#live-state[data-state=online]", timeout=30_000)
    except Exception:
        _explain(world, page, username)
        raise
    took = time.monotonic() - clicked
    assert re.search(r"/portal/garden(\?|$)", page.url), page.url  # back where they landed
    shot(f"garden-{gateway}-online")
    [session] = nas.online(username)
    currency = "INR" if gateway == "razorpay" else "BDT"
    assert session.address_list is None
    assert (session.rate_limit or "").startswith(PLAN_RATE[currency])
    assert username in nas.acked_at  # the NAS saw the Disconnect of the reconnection
    print(f"{gateway}: click on pay -> online at full speed in {took:.2f} s")
    assert violations == []
    context.close()


def _explain(world: dict[str, Any], page: Any, username: str) -> None:
    """What the page, the NAS and the database say, when the page did not get online."""
    print("page", page.url, page.get_attribute("#live-state", "data-state"),
          repr(page.inner_text("body")[:200]), "nas", world["nas"].online(username))
    with world["factory"]() as s:
        sid = s.scalars(select(Subscriber.id).where(Subscriber.username == username)).one()
        for r in s.scalars(select(EnforcementRequest).where(
                EnforcementRequest.subscriber_id == sid).order_by(EnforcementRequest.id)):
            print("request", r.id, r.action, r.status, r.created_at, r.completed_at, r.outcome)
        for row in s.scalars(select(RadiusSession).where(RadiusSession.username == username)
                             .order_by(RadiusSession.id)):
            print("session", row.framed_ip, row.started_at, row.stopped_at, row.enforced_at)


def test_an_address_without_a_session_sees_no_data(world: dict[str, Any], browser: Any,
                                                   artifacts_dir: Path) -> None:
    context = _context(browser)  # straight from 127.0.0.1: no session has that address
    page = context.new_page()
    page.goto(f"{world['base']}/portal/garden")
    page.wait_for_selector("#password-login")
    text = page.inner_text("body")
    assert not any(name.title() in text for name in PAYERS.values())
    assert "BDT" not in text and "INR" not in text
    Shots(page, artifacts_dir / "portal")("garden-unknown-address")
    context.close()


def _deliver_sms(world: dict[str, Any], ssl: SslWirelessSimulator) -> None:
    with world["factory"]() as s, s.begin():
        save(s, world["box"], "sms", "sslwireless",
             {"base_url": ssl.url, "sid": ssl.sid, "price_per_segment": "0.35",
              "currency": "BDT"}, {"api_token": ssl.api_token})
    worker = NotifyWorker(world["factory"], world["box"], WorkerConfig(alerts_every=0),
                          clock=utcnow)

    async def go() -> None:
        try:
            await worker.tick()
        finally:
            await worker.close()

    # (in a thread of its own: Playwright's sync API keeps an event loop on this one)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]


def test_otp_login_and_no_other_subscribers_invoice(world: dict[str, Any], browser: Any,
                                                   artifacts_dir: Path) -> None:
    ssl = SslWirelessSimulator().start()
    context = _context(browser)
    page = context.new_page()
    violations = _csp_watch(page)
    shot = Shots(page, artifacts_dir / "portal")
    try:
        page.goto(f"{world['base']}/portal/login")
        shot("login")
        page.fill("input[name=phone]", "01733333333")
        page.click("#otp-request button")
        page.wait_for_selector("input[name=code]")
        shot("otp")
        _deliver_sms(world, ssl)
        codes = [re.search(r"(?:code is|কোড) (\d{6})", m.text) for m in ssl.accepted
                 if m.to == "8801733333333"]
        [code] = [c for c in codes if c]
        page.fill("input[name=code]", code.group(1))
        page.click("#otp-verify button")
        page.wait_for_selector("#usage svg")
        assert "Home-20" in page.inner_text("#plan")
        shot("home-bn")
        page.click("button[value=en]")
        page.wait_for_selector("text=Usage this period")
        shot("home-en")
        with world["factory"]() as s:
            own = s.scalars(select(Invoice.number).join(
                Subscriber, Subscriber.id == Invoice.subscriber_id)
                .where(Subscriber.username == "olivia")).first()
            other = s.scalars(select(Invoice.number).join(
                Subscriber, Subscriber.id == Invoice.subscriber_id)
                .where(Subscriber.username == "gbkash")).first()
        assert own and other
        mine = page.request.get(f"{world['base']}/portal/invoices/{own}.pdf")
        assert mine.status == 200 and mine.body().startswith(b"%PDF")
        theirs = page.request.get(f"{world['base']}/portal/invoices/{other}.pdf")
        assert theirs.status == 404
        page.goto(f"{world['base']}/portal/invoices/{other}.pdf")
        assert other not in page.inner_text("body")
        assert violations == []
    finally:
        context.close()
        ssl.stop()
