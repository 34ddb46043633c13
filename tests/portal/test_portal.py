"""The portal through the web app: who the walled-garden page recognises (and whom not),
logging in by password and by SMS code, what a subscriber may see and do, and the security
rules it shares with the staff side."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from admin.db import now as _now  # noqa: F401 - the app's clock is utcnow
from billing.models import Invoice, Plan, Subscriber
from notify.config import save
from notify.models import Outbox, Preference
from notify.worker import NotifyWorker, WorkerConfig
from portal import auth as portal_auth
from portal.models import PlanChangeRequest, PortalOtp
from radbill.audit import AuditLog
from radbill.db import utcnow
from radbill.errors import DomainError
from simulators.sms.sslwireless import SslWirelessSimulator
from tests.admin.helpers import overdue_subscriber
from tests.admin.helpers import today as isp_today
from tests.admin.test_headers import check_headers, check_no_inline_code
from tests.factories import make_plan, make_subscriber
from tests.portal.conftest import csrf_of, offline, online, portal_login


@dataclass
class FakeGateway:
    """Only what the page reads of a gateway: the currencies it collects."""

    currencies: frozenset[str]


GATEWAYS = {"bkash": FakeGateway(frozenset({"BDT"})), "nagad": FakeGateway(frozenset({"BDT"})),
            "sslcommerz": FakeGateway(frozenset({"BDT"})),
            "razorpay": FakeGateway(frozenset({"INR"}))}


@pytest.fixture
def world(app: Any, factory: Any, box: Any) -> dict[str, Any]:
    """bob: suspended for an overdue BDT invoice, online at 100.64.0.5; carol: active, INR,
    her own invoice; the ISP in Bangladesh (Bengali by default)."""
    app.config["RADBILL_GATEWAYS"] = GATEWAYS
    app.extensions["box"] = box
    today = overdue_subscriber(factory, box)  # bob, Home-20 (BDT), suspended
    with factory() as s, s.begin():
        make_plan(s, name="Home-INR", currency="INR", price="500")
        make_plan(s, name="Home-50", price="1500")
        make_subscriber(s, box, "carol", plan="Home-INR", full_name="Carol Das",
                        phone="+919812345678",
                        activated_on=today - dt.timedelta(days=40))
    from billing.run import run_days

    run_days(factory, today - dt.timedelta(days=40), today)
    online(factory, "bob", "100.64.0.5", bytes_down=7_000_000, bytes_up=1_000_000)
    with factory() as s:
        return {u: s.scalars(select(Invoice.number).join(
            Subscriber, Subscriber.id == Invoice.subscriber_id)
            .where(Subscriber.username == u).order_by(Invoice.id)).first()
            for u in ("bob", "carol")}


def _audit(factory: Any, action: str) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(AuditLog.actor).where(AuditLog.action == action)
                              .order_by(AuditLog.id)))


# -- the walled garden ----------------------------------------------------------------------


def test_garden_recognises_the_visitor_by_address_and_offers_their_currency(
        world: dict[str, Any], client_at: Any) -> None:
    page = client_at("100.64.0.5").get("/portal/garden")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Bob" in html and "1000.00 BDT" in html and world["bob"] in html
    offered = re.findall(r'data-gateway="(\w+)"', html)
    assert offered == ["bkash", "nagad", "sslcommerz"]  # BDT: never Razorpay
    status = client_at("100.64.0.5").get("/portal/garden/status").get_json()
    assert status == {"state": "suspended"}
    check_headers(page, "/portal/garden")
    check_no_inline_code(page, "/portal/garden")


@pytest.mark.parametrize("address", ["100.64.0.6", "not-an-address", "::ffff:100.64.0.7"])
def test_an_address_without_a_session_gets_the_login_form_and_no_data(
        world: dict[str, Any], client_at: Any, address: str) -> None:
    page = client_at(address).get("/portal/garden")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="password-login"' in html
    assert "Bob" not in html and "1000.00" not in html and world["bob"] not in html
    assert client_at(address).get("/portal/garden/status").get_json() == {"state": "unknown"}
    pay = client_at(address).post("/portal/garden/pay", data={"gateway": "bkash"})
    assert pay.status_code in (400, 404)  # no session of theirs (nor a CSRF token)


def test_a_closed_session_or_an_address_on_two_nas_shows_nothing(
        world: dict[str, Any], factory: Any, client_at: Any) -> None:
    offline(factory, "bob", "100.64.0.5")
    assert 'id="password-login"' in client_at("100.64.0.5").get("/portal/garden").get_data(
        as_text=True)
    online(factory, "bob", "10.0.0.8", nas="127.0.0.1")
    online(factory, "carol", "10.0.0.8", nas="127.0.0.2")  # the same private pool twice
    html = client_at("10.0.0.8").get("/portal/garden").get_data(as_text=True)
    assert "Bob" not in html and "Carol" not in html
    named = client_at("10.0.0.8").get("/portal/garden?nas=127.0.0.2").get_data(as_text=True)
    assert "Carol" in named and "Bob" not in named and 'data-gateway="razorpay"' in named


# -- logging in -----------------------------------------------------------------------------


def test_password_login_and_no_enumeration(world: dict[str, Any], client_at: Any,
                                           factory: Any) -> None:
    unknown = portal_login(client_at(), "nobody", "whatever")
    wrong = portal_login(client_at(), "bob", "whatever")
    assert unknown.status_code == wrong.status_code == 401
    error = re.compile(r'<div class="error" role="alert">(.*?)</div>')
    assert error.findall(unknown.get_data(as_text=True)) == error.findall(
        wrong.get_data(as_text=True))
    client = client_at()
    ok = portal_login(client, "BOB")
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/portal/")
    response = client.get("/portal/")
    check_headers(response, "/portal/")
    check_no_inline_code(response, "/portal/")
    home = response.get_data(as_text=True)
    assert "Home-20" in home and world["bob"] in home
    assert _audit(factory, "portal.login") == ["subscriber:bob"]


def test_brute_force_is_slowed_per_account_and_per_address(
        world: dict[str, Any], client_at: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # a frozen clock: a back-off of a second must not run out on a slow machine
    frozen = utcnow()
    monkeypatch.setattr("portal.web.now", lambda: frozen)
    client = client_at("203.0.113.7")
    codes = [portal_login(client, "bob", f"guess-{i}").status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]
    # the right password from that address waits too; from elsewhere the account is usable
    assert portal_login(client, "bob").status_code == 429
    assert portal_login(client_at("203.0.113.8"), "bob").status_code == 302
    # spraying many names from one address is held by the address key
    sprayer = client_at("203.0.113.9")
    answers = [portal_login(sprayer, f"user{i}", "x").status_code for i in range(22)]
    assert 429 in answers[20:]


def test_portal_and_staff_sessions_and_csrf_are_separate(world: dict[str, Any],
                                                         client_at: Any) -> None:
    client = client_at()
    response = portal_login(client, "bob")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("radbill_portal=") and "Path=/portal" in cookie
    assert "HttpOnly" in cookie and "Secure" in cookie
    assert client.get("/").status_code == 302  # not a staff session
    # a form without this session's token is refused
    assert client.post("/portal/sms", data={"reminders": "off"}).status_code == 400
    assert client.post("/portal/sms", data={"reminders": "off",
                                            "csrf_token": "x" * 43}).status_code == 400


def test_a_subscriber_cannot_open_anothers_invoice_or_pdf(world: dict[str, Any],
                                                          client_at: Any) -> None:
    client = client_at()
    portal_login(client, "carol")
    own = client.get(f"/portal/invoices/{world['carol']}.pdf")
    assert own.status_code == 200 and own.data.startswith(b"%PDF")
    other = client.get(f"/portal/invoices/{world['bob']}.pdf")
    missing = client.get("/portal/invoices/INV-999999.pdf")
    assert other.status_code == missing.status_code == 404
    assert world["bob"] not in client.get("/portal/").get_data(as_text=True)
    anonymous = client_at().get(f"/portal/invoices/{world['bob']}.pdf")
    assert anonymous.status_code == 302 and "/portal/login" in anonymous.headers["Location"]


# -- one-time codes by SMS ------------------------------------------------------------------


def _deliver(factory: Any, box: Any, ssl: SslWirelessSimulator) -> None:
    with factory() as s, s.begin():
        save(s, box, "sms", "sslwireless", {"base_url": ssl.url, "sid": ssl.sid,
                                            "price_per_segment": "0.35", "currency": "BDT"},
             {"api_token": ssl.api_token})
    worker = NotifyWorker(factory, box, WorkerConfig(alerts_every=0), clock=utcnow)

    async def go() -> None:
        try:
            await worker.tick()
        finally:
            await worker.close()

    asyncio.run(go())


def _ask_code(client: Any, phone: str) -> Any:
    page = client.get("/portal/login")
    return client.post("/portal/otp", data={"phone": phone,
                                            "csrf_token": csrf_of(page.get_data(as_text=True))})


def _enter(client: Any, code: str) -> Any:
    page = client.get("/portal/login")
    return client.post("/portal/otp/verify", data={
        "code": code, "csrf_token": csrf_of(page.get_data(as_text=True))})


def test_otp_login_through_the_sms_outbox(world: dict[str, Any], client_at: Any, factory: Any,
                                          box: Any) -> None:
    ssl = SslWirelessSimulator().start()
    try:
        with factory() as s, s.begin():  # bob opted out of reminders: a code still goes
            s.add(Preference(subscriber_id=s.scalars(select(Subscriber.id).where(
                Subscriber.username == "bob")).one(), sms_opt_out=True, email_opt_out=False))
        client = client_at()
        unknown = _ask_code(client_at(), "01799999999")
        answer = _ask_code(client, "01722222222")  # bob's +8801722222222, typed locally
        assert unknown.status_code == answer.status_code == 200
        assert re.findall(r'role="status">(.*?)<', unknown.get_data(as_text=True)) == \
            re.findall(r'role="status">(.*?)<', answer.get_data(as_text=True))
        with factory() as s:
            assert [o.kind for o in s.scalars(select(Outbox).where(Outbox.kind == "otp"))] == [
                "otp"]
        _deliver(factory, box, ssl)
        assert len(ssl.accepted) == 1 and ssl.accepted[0].to == "8801722222222"
        code = re.search(r"\b(\d{6})\b", ssl.accepted[0].text)
        assert code, ssl.accepted[0].text
        assert _enter(client, "000000" if code.group(1) != "000000" else "111111"
                      ).status_code == 401
        ok = _enter(client, code.group(1))
        assert ok.status_code == 302 and ok.headers["Location"].endswith("/portal/")
        assert "Home-20" in client.get("/portal/").get_data(as_text=True)
        # single use
        again = client_at()
        _ask_code(again, "+8801722222222")  # (a new code is sent; the old one is spent)
        assert _enter(again, code.group(1)).status_code == 401
    finally:
        ssl.stop()


def _everything_staff_see(factory: Any, client_for: Any, token_for: Any) -> tuple[str, str]:
    """What staff are shown (the messages page, bob's page, the API's and the CLI's
    messages), and what is stored (every outbox payload and message text)."""
    from notify.cli import _message
    from notify.delivery import messages
    from notify.models import Delivery

    staff = client_for("noc")
    seen = [staff.get("/messages/").get_data(as_text=True),
            staff.get("/subscribers/bob").get_data(as_text=True),
            client_for("admin").get("/api/v1/messages",
                                    headers=token_for("noc")).get_data(as_text=True)]
    with factory() as s:
        seen += [repr(_message(d)) for d in messages(s)]
        stored = [repr(p) for p in s.scalars(select(Outbox.payload).order_by(Outbox.id))]
        stored += [repr((d.subject, d.body, d.variables)) for d in s.scalars(
            select(Delivery).order_by(Delivery.id))]
    return "\n".join(seen), "\n".join(stored)


def test_the_code_is_shown_to_no_staff_and_blanked_once_sent(
        world: dict[str, Any], client_at: Any, factory: Any, box: Any, client_for: Any,
        token_for: Any) -> None:
    from notify import delivery

    ssl = SslWirelessSimulator().start()
    try:
        with factory() as s, s.begin():
            save(s, box, "sms", "sslwireless", {"base_url": ssl.url, "sid": ssl.sid,
                                                "price_per_segment": "0.35",
                                                "currency": "BDT"},
                 {"api_token": ssl.api_token})
        visitor = client_at()
        _ask_code(visitor, "01722222222")
        with factory() as s, s.begin():
            code = str(s.scalars(select(Outbox.payload).where(Outbox.kind == "otp")).one()[
                "code"])
            assert delivery.plan(s, utcnow()) >= 1  # planned, not sent yet
        assert re.fullmatch(r"\d{6}", code)
        shown, stored = _everything_staff_see(factory, client_for, token_for)
        assert "one-time code" in shown
        assert code not in shown  # no page, API or CLI shows it before it is sent
        assert code in stored  # (the message to send holds it until then)
        _deliver(factory, box, ssl)
        # it went to the phone...
        assert [m.to for m in ssl.accepted if code in m.text] == ["8801722222222"]
        shown, stored = _everything_staff_see(factory, client_for, token_for)
        assert code not in shown + stored  # ...and is readable nowhere here any more
        assert "******" in shown and "******" in stored
        with factory() as s, s.begin():
            [sent] = s.scalars(select(delivery.Delivery).where(
                delivery.Delivery.kind == "otp")).all()
            sent.status = "failed"
            s.flush()
            with pytest.raises(DomainError, match="not re-sent"):
                delivery.retry(s, sent.id, utcnow())
        ok = _enter(visitor, code)  # (the code itself still works: blanked, not spent)
        assert ok.status_code == 302
    finally:
        ssl.stop()


def test_a_code_not_sent_before_it_dies_is_given_up(world: dict[str, Any], factory: Any,
                                                    app: Any, box: Any) -> None:
    """A login code is worthless five minutes after it was asked for: a channel paused (or a
    worker stopped) longer than that must not deliver it later, as other messages would be."""
    from notify import delivery

    secret = str(app.secret_key).encode() + b"|portal-otp"
    t0 = utcnow()
    with factory() as s, s.begin():  # a channel nothing is sent through here
        save(s, box, "sms", "sslwireless", {"base_url": "http://127.0.0.1:9", "sid": "x",
                                            "price_per_segment": "0.35", "currency": "BDT"},
             {"api_token": "t"})
        portal_auth.send_code(s, secret, "01722222222", "BD", t0, address="1.2.3.4")
        assert delivery.plan(s, t0 + dt.timedelta(minutes=1)) >= 1
        [queued] = s.scalars(select(delivery.Delivery).where(
            delivery.Delivery.kind == "otp")).all()
        assert queued.expires_at == t0 + portal_auth.OTP_LIFETIME  # not the three days of others
        queued_id = queued.id
    with factory() as s, s.begin():
        later = t0 + portal_auth.OTP_LIFETIME + dt.timedelta(seconds=1)
        claimed = delivery.claim(s, "sms", later, 10, idempotent=True)
        assert [j.kind for j in claimed if j.kind == "otp"] == []  # the code is not sent ...
        gone = s.get(delivery.Delivery, queued_id)
        assert gone is not None and gone.status == "failed"  # ... it was given up
        assert gone.reason == "expired before it could be sent"


def test_otp_expires_limits_tries_and_codes_per_number(world: dict[str, Any], client_at: Any,
                                                       factory: Any, app: Any) -> None:
    secret = str(app.secret_key).encode() + b"|portal-otp"
    t0 = utcnow()
    with factory() as s, s.begin():
        portal_auth.send_code(s, secret, "01722222222", "BD", t0, address="1.2.3.4")
        code = s.scalars(select(Outbox.payload).where(Outbox.kind == "otp")).one()["code"]
    with factory() as s, s.begin(), pytest.raises(portal_auth.LoginFailed):
        portal_auth.verify_code(s, secret, "01722222222", str(code), "BD",
                                t0 + portal_auth.OTP_LIFETIME + dt.timedelta(seconds=1),
                                address="1.2.3.4")
    with factory() as s, s.begin():
        for i in range(5):
            portal_auth.send_code(s, secret, "01722222222", "BD", t0 + dt.timedelta(seconds=i),
                                  address="1.2.3.4")
        assert s.scalar(select(PortalOtp.id).order_by(PortalOtp.id.desc())) is not None
        assert len(s.scalars(select(PortalOtp.id)).all()) == portal_auth.OTP_PER_WINDOW


def test_a_code_dies_after_five_wrong_tries(world: dict[str, Any], factory: Any,
                                           app: Any) -> None:
    secret = str(app.secret_key).encode() + b"|portal-otp"
    t0 = utcnow()
    with factory() as s, s.begin():
        portal_auth.send_code(s, secret, "01722222222", "BD", t0, address="1.2.3.4")
        code = str(s.scalars(select(Outbox.payload).where(Outbox.kind == "otp")).one()["code"])
    wrong = "000000" if code != "000000" else "111111"

    def attempt(text: str, address: str) -> bool:
        with factory() as s:
            try:
                portal_auth.verify_code(s, secret, "01722222222", text, "BD", t0,
                                        address=address)
            except portal_auth.LoginFailed:
                return False
            finally:
                s.commit()  # as the page does: the failure counts
            return True

    # from five addresses: no address is held back, the code's own count is what stops it
    assert [attempt(wrong, f"1.2.3.{10 + i}") for i in range(portal_auth.OTP_TRIES)] == [
        False] * portal_auth.OTP_TRIES
    assert attempt(code, "1.2.3.99") is False
    with factory() as s:
        assert s.scalars(select(PortalOtp.used_at)).one() is None  # never used: it died


# -- the account ----------------------------------------------------------------------------


def test_self_service_is_audited_as_the_subscriber(world: dict[str, Any], client_at: Any,
                                                   factory: Any) -> None:
    client = client_at()
    portal_login(client, "bob")
    token = csrf_of(client.get("/portal/").get_data(as_text=True))
    until = (isp_today(factory) + dt.timedelta(days=5)).isoformat()
    client.post("/portal/promise", data={"until": until, "csrf_token": token})
    home = client.get("/portal/").get_data(as_text=True)
    assert 'id="status">' in home
    with factory() as s:
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        assert str(bob.status) == "active"  # the promise lifted the suspension
    too_far = (isp_today(factory) + dt.timedelta(days=45)).isoformat()
    client.post("/portal/promise", data={"until": too_far, "csrf_token": token})
    client.post("/portal/plan", data={"plan": "Home-50", "effective": "next_cycle",
                                      "csrf_token": token})
    client.post("/portal/plan", data={"plan": "Home-INR", "effective": "now",
                                      "csrf_token": token})  # another currency: refused
    client.post("/portal/sms", data={"reminders": "off", "csrf_token": token})
    client.post("/portal/language", data={"language": "en", "csrf_token": token})
    assert _audit(factory, "subscriber.promise") == ["subscriber:bob"]
    assert _audit(factory, "portal.plan_change_requested") == ["subscriber:bob"]
    assert _audit(factory, "portal.sms_reminders") == ["subscriber:bob"]
    assert _audit(factory, "portal.language") == ["subscriber:bob"]
    with factory() as s:
        pref = s.scalars(select(Preference)).one()
        assert pref.sms_opt_out is True and pref.locale == "en"
        req = s.scalars(select(PlanChangeRequest)).one()
        assert req.status == "pending"
    from portal import account

    day = isp_today(factory)
    with factory() as s, s.begin():
        account.decide(s, req.id, approve=True, by="admin", today=day)
    with factory() as s:
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        assert s.get(Plan, bob.next_plan_id).name == "Home-50"  # type: ignore[union-attr]


def test_language_defaults_to_the_isps_and_the_subscriber_chooses(
        world: dict[str, Any], client_at: Any) -> None:
    client = client_at()
    assert "লগইন" in client.get("/portal/login").get_data(as_text=True)  # Bangladesh
    portal_login(client, "bob")
    token = csrf_of(client.get("/portal/").get_data(as_text=True))
    client.post("/portal/language", data={"language": "en", "csrf_token": token})
    assert "Usage this period" in client.get("/portal/").get_data(as_text=True)
    garden = client_at("100.64.0.5").get("/portal/garden").get_data(as_text=True)
    assert "Amount due" in garden  # the garden follows the account's choice


def test_usage_this_period_comes_from_accounting(world: dict[str, Any], client_at: Any,
                                                 factory: Any) -> None:
    from portal.usage import usage_this_period

    day = isp_today(factory)
    with factory() as s:
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        days = usage_this_period(s, bob, day)
    assert sum(d.download for d in days) == 7_000_000
    assert sum(d.upload for d in days) == 1_000_000
    client = client_at()
    portal_login(client, "bob")
    assert "7.0 MB" in client.get("/portal/").get_data(as_text=True)


def test_an_operator_approves_or_rejects_plan_requests_from_the_cli(
        world: dict[str, Any], factory: Any, cli: Any) -> None:
    import json

    from portal import account

    with factory() as s, s.begin():
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        first = account.request_plan_change(s, bob, "Home-50", "next_cycle").id
    listed = json.loads(cli("portal", "requests", "--json").output)
    assert [(r["id"], r["username"], r["to"]) for r in listed] == [(first, "bob", "Home-50")]
    rejected = json.loads(cli("portal", "reject", str(first), "--by", "ops",
                              "--json").output)
    assert rejected["status"] == "rejected"
    assert "already rejected" in cli("portal", "approve", str(first), ok=False).output
    with factory() as s, s.begin():
        bob = s.scalars(select(Subscriber).where(Subscriber.username == "bob")).one()
        second = account.request_plan_change(s, bob, "Home-50", "next_cycle").id
    assert "approved" in cli("portal", "approve", str(second), "--by", "ops").output
    assert _audit(factory, "portal.plan_change_rejected") == ["ops"]
    assert _audit(factory, "portal.plan_change_approved") == ["ops"]
    assert cli("portal", "approve", "999999", ok=False).exit_code != 0
