"""The public payment endpoints against a hostile or curious visitor: links that cannot be
derived from invoice numbers, pages that never show the username, gateways offered by the
invoice's currency, and nothing a visitor does can mark a gateway failing or fill the audit
log."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, update

from admin import create_app
from billing.isp import update_settings
from billing.models import Invoice, Subscriber
from billing.payments import record_payment
from billing.run import billing_run
from payments import intents
from payments.config import ADAPTERS
from payments.gateways.base import (
    Checkout,
    Confirmation,
    GatewayError,
    PaymentOrder,
    SignatureError,
)
from payments.models import GatewayHealth, PaymentIntent
from radbill.audit import AuditLog
from radbill.config import Settings
from radbill.crypto import SecretBox
from radbill.db import session_factory
from tests.factories import make_plan, make_subscriber

BASE = "https://pay.example-isp.com.bd"
# What each gateway collects (the table, checked against each adapter below).
CURRENCIES = {"bkash": {"BDT"}, "nagad": {"BDT"}, "sslcommerz": {"BDT"}, "razorpay": {"INR"}}


@dataclass
class StubGateway:
    """A gateway whose answers the test decides (the adapters' own behaviour is tested
    against the simulators elsewhere)."""

    name: str
    currencies: frozenset[str]
    start_error: str | None = None
    confirm_error: GatewayError | None = None
    started: list[PaymentOrder] = field(default_factory=list)

    def start(self, order: PaymentOrder) -> Checkout:
        if self.start_error:
            raise GatewayError(self.start_error)
        self.started.append(order)
        return Checkout(gateway_reference=f"GW-{order.reference}",
                        redirect_url="https://gateway.invalid/checkout")

    def confirm_notification(self, method: str, headers: Mapping[str, str],
                             query: Mapping[str, str], body: bytes) -> Confirmation:
        raise self.confirm_error or SignatureError("signature does not match")

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        raise GatewayError("query API down")


def adapter_currencies(name: str) -> frozenset[str]:
    import importlib

    module, _, cls = ADAPTERS[name].partition(":")
    return frozenset(getattr(importlib.import_module(module), cls).currencies)


@pytest.fixture
def stubs() -> dict[str, StubGateway]:
    return {name: StubGateway(name, adapter_currencies(name)) for name in ADAPTERS}


@pytest.fixture
def app(db: Engine, tmp_path: Path, stubs: dict[str, StubGateway]) -> Flask:
    settings = Settings(data_dir=tmp_path, database_url=db.url.render_as_string(False),
                        secret_key=Fernet.generate_key().decode(), public_url=BASE)
    return create_app(settings, engine=db, config={"RADBILL_GATEWAYS": stubs})


@dataclass(frozen=True)
class Billed:
    number: str
    key: str
    link: str


def bill(db: Engine, box: SecretBox, username: str, full_name: str | None,
         currency: str = "BDT") -> Billed:
    """*username* invoiced 1000 on 1 Nov 2026 (due 8 Nov): its invoice and link."""
    factory = session_factory(db)
    with factory() as s, s.begin():
        update_settings(s, {"payment_link_base": BASE + "/"}, actor="test")
        plan = f"Home-{currency}"
        if s.scalar(select(func.count()).select_from(Subscriber)) == 0 or currency != "BDT":
            make_plan(s, name=plan, currency=currency)
        make_subscriber(s, box, username=username, plan=plan, full_name=full_name,
                        activated_on=dt.date(2026, 10, 1))
    billing_run(factory, dt.date(2026, 11, 1))
    with factory() as s:
        inv = s.scalars(select(Invoice).join(Subscriber).where(
            Subscriber.username == username)).one()
        assert inv.pay_token is not None and inv.payment_link is not None
        return Billed(inv.number, inv.pay_token, inv.payment_link)


def start(client: FlaskClient, key: str, gateway: str) -> Any:
    page = client.get(f"/pay/{key}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    return client.post(f"/pay/{key}/start", data={"gateway": gateway,
                                                  "csrf_token": token.group(1)})


def test_a_payment_link_cannot_be_derived_from_the_invoice_number(
        app: Flask, db: Engine, box: SecretBox) -> None:
    a = bill(db, box, "rahim77", "Abdur Rahim")
    b = bill(db, box, "karim78", "Abdul Karim")
    for billed in (a, b):
        assert re.fullmatch(rf"{re.escape(BASE)}/pay/[A-Za-z0-9_-]{{22}}", billed.link)
        assert billed.link.endswith("/pay/" + billed.key)
        assert billed.number not in billed.link
    assert a.key != b.key
    client = app.test_client()
    assert client.get(f"/pay/{a.number}").status_code == 404  # the number opens nothing
    assert client.get(f"/pay/{a.key[:-1]}").status_code == 404
    page = client.get(f"/pay/{a.key}")
    assert page.status_code == 200 and "1000.00" in page.get_data(as_text=True)


def test_the_page_shows_the_first_name_never_the_username(
        app: Flask, db: Engine, box: SecretBox, stubs: dict[str, StubGateway]) -> None:
    named = bill(db, box, "rahim77", "Abdur Rahim")
    nameless = bill(db, box, "karim78", None)
    client = app.test_client()
    html = client.get(f"/pay/{named.key}").get_data(as_text=True)
    assert "Hello Abdur." in html and "rahim77" not in html and "Rahim" not in html
    html = client.get(f"/pay/{nameless.key}").get_data(as_text=True)
    assert "Hello." in html and "karim78" not in html
    # nor on the gateway's checkout page (what radbill sends it)
    assert start(client, nameless.key, "bkash").status_code == 303
    order = stubs["bkash"].started[-1]
    assert "karim78" not in f"{order.customer_name} {order.description}"


def test_links_sent_before_the_upgrade_work_while_their_invoice_is_open(
        app: Flask, db: Engine, box: SecretBox) -> None:
    old = bill(db, box, "rahim77", "Abdur Rahim")
    factory = session_factory(db)
    with factory() as s, s.begin():  # as an invoice issued before keys existed looks
        s.execute(update(Invoice).where(Invoice.number == old.number).values(
            pay_token=None, payment_link=f"{BASE}/pay/{old.number}"))
    client = app.test_client()
    assert client.get(f"/pay/{old.key}").status_code == 404
    page = client.get(f"/pay/{old.number}")
    assert page.status_code == 200 and "Abdur" in page.get_data(as_text=True)
    assert start(client, old.number, "bkash").status_code == 303
    with factory() as s, s.begin():
        record_payment(s, "rahim77", "1000", method="cash", reference="C-1",
                       today=dt.date(2026, 11, 2), actor="op")
    assert client.get(f"/pay/{old.number}").status_code == 404  # paid: the link is done
    # an invoice issued since the upgrade never answers to its number, open or not
    new = bill(db, box, "karim78", "Abdul Karim")
    assert client.get(f"/pay/{new.number}").status_code == 404


def test_adapters_say_which_currencies_they_collect() -> None:
    assert {name: set(adapter_currencies(name)) for name in ADAPTERS} == CURRENCIES


def test_only_gateways_for_the_invoice_currency_are_offered(
        app: Flask, db: Engine, box: SecretBox) -> None:
    taka = bill(db, box, "rahim77", "Abdur Rahim")
    rupee = bill(db, box, "priya79", "Priya Nair", currency="INR")
    client = app.test_client()

    def offered(key: str) -> set[str]:
        html = client.get(f"/pay/{key}").get_data(as_text=True)
        return set(re.findall(r'data-gateway="([a-z]+)"', html))

    assert offered(taka.key) == {"bkash", "nagad", "sslcommerz"}
    assert offered(rupee.key) == {"razorpay"}
    refused = start(client, taka.key, "razorpay")
    assert refused.status_code == 404
    with session_factory(db)() as s:
        assert s.scalar(select(func.count()).select_from(PaymentIntent)) == 0
    assert start(client, rupee.key, "razorpay").status_code == 303


def test_a_visitors_failed_start_does_not_mark_the_gateway_failing(
        app: Flask, db: Engine, box: SecretBox, stubs: dict[str, StubGateway]) -> None:
    billed = bill(db, box, "rahim77", "Abdur Rahim")
    stubs["bkash"].start_error = "connection refused"
    client = app.test_client()
    for _ in range(3):
        assert start(client, billed.key, "bkash").status_code == 502
    with session_factory(db)() as s:
        assert s.scalars(select(GatewayHealth)).all() == []
        sub_id = s.scalars(select(Subscriber.id)).one()
        assert intents.holds(s, [sub_id], dt.datetime.now(dt.UTC)) == {}


def test_forged_returns_write_no_audit_rows_and_leave_health_alone(
        app: Flask, db: Engine, box: SecretBox, stubs: dict[str, StubGateway]) -> None:
    bill(db, box, "rahim77", "Abdur Rahim")
    client = app.test_client()
    for _ in range(5):
        assert client.get("/pay/return/nagad?payment_ref_id=FORGED").status_code == 400
    stubs["nagad"].confirm_error = GatewayError("Nagad answered 500")
    assert client.get("/pay/return/nagad?payment_ref_id=X").status_code == 503
    with session_factory(db)() as s:
        assert s.scalars(select(AuditLog).where(
            AuditLog.action == "payment.rejected")).all() == []
        assert s.scalars(select(GatewayHealth)).all() == []


def test_webhooks_are_still_audited_and_counted(app: Flask, db: Engine,
                                                stubs: dict[str, StubGateway]) -> None:
    client = app.test_client()
    assert client.post("/webhooks/razorpay", data=b"{}").status_code == 400
    stubs["razorpay"].confirm_error = GatewayError("Razorpay API answered 502")
    assert client.post("/webhooks/razorpay", data=b"{}").status_code == 503
    with session_factory(db)() as s:
        assert len(s.scalars(select(AuditLog).where(
            AuditLog.action == "payment.rejected")).all()) == 1
        health = s.get(GatewayHealth, "razorpay")
        assert health is not None and health.failing
