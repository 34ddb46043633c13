"""Applying gateway confirmations to the ledger: once, matched, held when not (the service,
without a gateway: the adapters' own tests and tests/payments/test_flow.py cover the wire)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from billing.models import EnforcementRequest, Invoice, LedgerEntry, Payment, Subscriber
from billing.payments import record_payment
from billing.run import billing_run, run_days
from payments import intents
from payments.gateways.base import Confirmation, Status
from payments.models import GatewayEvent, PaymentIntent
from radbill.audit import AuditLog
from radbill.crypto import SecretBox
from radbill.db import session_factory, utcnow
from radbill.ops import Alert
from tests.conftest import wipe
from tests.factories import make_plan, make_subscriber

URL = "http://127.0.0.1:9"


def billed(db: Engine, box: SecretBox, name: str = "alice") -> str:
    """A postpaid subscriber invoiced on 1 Nov 2026 (1000 BDT, due 8 Nov), suspended on 9 Nov;
    returns the key of the invoice's payment link."""
    factory = session_factory(db)
    with factory() as s, s.begin():
        if s.scalar(select(func.count()).select_from(Subscriber)) == 0:
            make_plan(s)
        make_subscriber(s, box, username=name, activated_on=dt.date(2026, 10, 1))
    run_days(factory, dt.date(2026, 11, 1), dt.date(2026, 11, 9))
    with factory() as s:
        sub = s.scalars(select(Subscriber).where(Subscriber.username == name)).one()
        assert str(sub.status) == "suspended"
        return s.scalars(select(Invoice.pay_token).where(Invoice.subscriber_id == sub.id)).one()


def start(db: Engine, number: str, gateway: str = "razorpay") -> PaymentIntent:
    with session_factory(db)() as s, s.begin():
        intent, order = intents.create(s, number, gateway, URL)
        assert order.amount == Decimal("1000.00") and order.currency == "BDT"
        assert order.return_url == f"{URL}/pay/return/{gateway}/{intent.reference}"
        s.expunge(intent)
    return intent


def paid(intent: PaymentIntent, txn: str = "pay_1", amount: str = "1000.00",
         currency: str = "BDT", event: str | None = "evt_1") -> Confirmation:
    return Confirmation(reference=intent.reference, status=Status.PAID, amount=Decimal(amount),
                        currency=currency, transaction_id=txn, event_id=event)


def apply(db: Engine, conf: Confirmation, gateway: str = "razorpay", source: str = "webhook"
          ) -> str:
    with session_factory(db)() as s, s.begin():
        return intents.apply(s, gateway, conf, source=source)


def payments(db: Engine) -> list[tuple[str, str, Decimal]]:
    with session_factory(db)() as s:
        return [(p.method, p.reference, p.amount) for p in s.scalars(select(Payment))]


def status_of(db: Engine, name: str = "alice") -> str:
    with session_factory(db)() as s:
        return str(s.scalars(select(Subscriber.status).where(Subscriber.username == name)).one())


def test_a_confirmed_payment_is_posted_once_and_reconnects(db, box) -> None:  # type: ignore[no-untyped-def]
    intent = start(db, billed(db, box))
    assert apply(db, paid(intent)) == "posted"
    assert payments(db) == [("razorpay", "pay_1", Decimal("1000.00"))]
    assert status_of(db) == "active"
    with session_factory(db)() as s:
        assert s.scalars(select(EnforcementRequest.action).order_by(
            EnforcementRequest.id.desc())).first() == "reconnect"
        row = s.scalars(select(PaymentIntent)).one()
        assert (row.status, row.transaction_id, row.payment_id is not None) == (
            "paid", "pay_1", True)
    # the same event again, the same payment under another event id, and by polling
    assert apply(db, paid(intent)) == "duplicate"
    assert apply(db, paid(intent, event="evt_2")) == "duplicate"
    assert apply(db, paid(intent, event=None), source="poll") == "duplicate"
    assert len(payments(db)) == 1


@pytest.mark.parametrize(("amount", "currency", "why"), [
    ("999.00", "BDT", "amount 999.00 instead of 1000.00 BDT"),
    ("1000.00", "INR", "currency INR instead of BDT"),
])
def test_a_mismatch_is_held_for_review_and_alerted(db, box, amount, currency, why) -> None:  # type: ignore[no-untyped-def]
    intent = start(db, billed(db, box))
    assert apply(db, paid(intent, amount=amount, currency=currency)) == "held"
    assert payments(db) == [] and status_of(db) == "suspended"
    with session_factory(db)() as s:
        row = s.scalars(select(PaymentIntent)).one()
        assert (row.status, row.hold_reason) == ("held", why)
        assert [a.kind for a in s.scalars(select(Alert))] == ["payment-held"]
        assert s.scalars(select(AuditLog.action).where(
            AuditLog.action == "payment.held")).one()
        assert [i.reference for i in intents.held(s)] == [intent.reference]
    # a correct-looking later delivery does not release it: an operator decides
    assert apply(db, paid(intent, event="evt_9")) == "held"
    assert payments(db) == []


def test_an_unknown_payment_posts_nothing_and_is_alerted(db, box) -> None:  # type: ignore[no-untyped-def]
    billed(db, box)
    ghost = Confirmation(reference="RB999XYZ", status=Status.PAID, amount=Decimal("1000"),
                         currency="BDT", transaction_id="pay_x", event_id="evt_x")
    assert apply(db, ghost) == "unknown"
    assert apply(db, ghost) == "unknown"
    assert payments(db) == []
    with session_factory(db)() as s:
        assert [a.kind for a in s.scalars(select(Alert))] == ["payment-unknown"]  # once


def test_the_same_transaction_under_two_intents_is_posted_once(db, box) -> None:  # type: ignore[no-untyped-def]
    number = billed(db, box)
    first, second = start(db, number), start(db, number)
    assert apply(db, paid(first)) == "posted"
    assert apply(db, paid(second, event="evt_2")) == "duplicate"
    assert len(payments(db)) == 1


def test_a_late_notification_after_a_manual_payment_becomes_credit(db, box) -> None:  # type: ignore[no-untyped-def]
    number = billed(db, box)
    intent = start(db, number)
    with session_factory(db)() as s, s.begin():
        record_payment(s, "alice", "1000", method="cash", reference="R-1",
                       today=dt.date(2026, 11, 10), actor="op")
    assert status_of(db) == "active"
    assert apply(db, paid(intent)) == "posted"
    with session_factory(db)() as s:
        balance = s.scalar(select(func.sum(LedgerEntry.amount)))
    assert balance == Decimal("-1000.00")  # the second 1000 is credit for the next invoice
    assert status_of(db) == "active"


def test_failure_and_refund(db, box) -> None:  # type: ignore[no-untyped-def]
    number = billed(db, box)
    failed = start(db, number)
    gone = Confirmation(reference=failed.reference, status=Status.FAILED, amount=Decimal("1000"),
                        currency="BDT", event_id="evt_f")
    assert apply(db, gone) == "failed"
    intent = start(db, number)
    assert apply(db, paid(intent)) == "posted"
    refund = Confirmation(reference=intent.reference, status=Status.REFUNDED,
                          amount=Decimal("1000"), currency="BDT", transaction_id="pay_1",
                          event_id="evt_r1", refunded_amount=Decimal("400"))
    assert apply(db, refund) == "refunded"
    assert apply(db, refund) == "duplicate"
    more = Confirmation(**{**refund.__dict__, "event_id": "evt_r2",
                           "refunded_amount": Decimal("1000")})
    assert apply(db, more) == "refunded"
    with session_factory(db)() as s:
        refunds = sorted(e.amount for e in s.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "refund")))
        assert refunds == [Decimal("400.00"), Decimal("600.00")]


def test_holds_only_for_failing_gateways(db, box) -> None:  # type: ignore[no-untyped-def]
    number = billed(db, box)
    intent = start(db, number, "bkash")
    with session_factory(db)() as s, s.begin():
        intents.started(s, intent.reference, _checkout())
        sub_id = intent.subscriber_id
        assert intents.holds(s, [sub_id], utcnow()) == {}
        intents.health(s, "bkash", False, "HTTP 503 from the query API")
        held = intents.holds(s, [sub_id], utcnow())
        assert "pending on bkash" in held[sub_id]
        intents.health(s, "bkash", False, "still down")  # alerted once, not per failure
        assert [a.kind for a in s.scalars(select(Alert))] == ["gateway-failing"]
        intents.health(s, "bkash", True)
        assert intents.holds(s, [sub_id], utcnow()) == {}


def _checkout():  # type: ignore[no-untyped-def]
    from payments.gateways.base import Checkout

    return Checkout(gateway_reference="GW-1", redirect_url="http://127.0.0.1:9/checkout")


EVENTS = st.lists(st.tuples(st.sampled_from(["webhook", "webhook-again", "poll", "manual"]),
                            st.integers(0, 2)), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_any_interleaving_posts_every_confirmed_payment_exactly_once(db, box, events) -> None:  # type: ignore[no-untyped-def]
    wipe(db)
    number = billed(db, box)
    started = [start(db, number) for _ in range(3)]
    confirmed: set[int] = set()
    manual = 0
    for kind, n in events:
        intent = started[n]
        if kind == "manual":
            manual += 1
            with session_factory(db)() as s, s.begin():
                record_payment(s, "alice", "500", method="cash", reference=f"M-{manual}",
                               today=dt.date(2026, 11, 10), actor="op")
            continue
        event = None if kind == "poll" else f"evt_{n}_{kind == 'webhook-again'}"
        apply(db, paid(intent, txn=f"pay_{n}", event=event), source=kind)
        confirmed.add(n)
    got = payments(db)
    gateway_posts = sorted(ref for method, ref, _ in got if method == "razorpay")
    assert gateway_posts == sorted(f"pay_{n}" for n in confirmed)  # each once, none missing
    assert sum(1 for method, _, _ in got if method == "cash") == manual
    with session_factory(db)() as s:
        balance = s.scalar(select(func.sum(LedgerEntry.amount)))
        posted = s.scalar(select(func.sum(Payment.amount))) or Decimal("0")
        keys = s.scalars(select(GatewayEvent.event_key)).all()
        assert len(keys) == len(set(keys))
    # the ledger balances: one 1000 invoice, minus every payment posted
    assert balance == Decimal("1000.00") - posted
    assert (status_of(db) == "active") == (posted >= Decimal("1000"))


def test_billing_run_holds_the_suspension_of_someone_paying_through_a_failing_gateway(
        db, box) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s)
        for name in ("alice", "bob"):
            make_subscriber(s, box, username=name, activated_on=dt.date(2026, 10, 1))
    run_days(factory, dt.date(2026, 11, 1), dt.date(2026, 11, 8))
    with factory() as s:
        number = s.scalars(select(Invoice.pay_token).join(Subscriber).where(
            Subscriber.username == "alice")).one()
    intent = start(db, number, "bkash")
    with factory() as s, s.begin():
        intents.started(s, intent.reference, _checkout())
        intents.health(s, "bkash", False, "query API answers 503")
    report = billing_run(factory, dt.date(2026, 11, 9), holds=intents.holds)
    assert [(e.username, e.kind) for e in report.events if e.kind.startswith("suspen")] == [
        ("alice", "suspension_held"), ("bob", "suspend")]
    assert (status_of(db, "alice"), status_of(db, "bob")) == ("active", "suspended")
    with factory() as s:
        assert "suspension-held-payment" in [a.kind for a in s.scalars(select(Alert))]
    with factory() as s, s.begin():
        intents.health(s, "bkash", True)  # the gateway is back: the next run suspends
    billing_run(factory, dt.date(2026, 11, 10), holds=intents.holds)
    assert status_of(db, "alice") == "suspended"


def test_a_payment_radbill_did_not_start_is_ignored_quietly(db, box) -> None:  # type: ignore[no-untyped-def]
    billed(db, box)
    foreign = Confirmation(reference="", status=Status.PAID, amount=Decimal("50"),
                           currency="BDT", transaction_id="pay_shop", event_id="evt_shop")
    assert apply(db, foreign) == "ignored"
    assert payments(db) == []
    with session_factory(db)() as s:
        assert list(s.scalars(select(Alert))) == []


def test_a_refund_heard_of_before_the_payment_posts_both(db, box) -> None:  # type: ignore[no-untyped-def]
    intent = start(db, billed(db, box))
    refund = Confirmation(reference=intent.reference, status=Status.REFUNDED,
                          amount=Decimal("1000.00"), currency="BDT", transaction_id="pay_1",
                          event_id="evt_r", refunded_amount=Decimal("400"))
    assert apply(db, refund) == "refunded"
    assert payments(db) == [("razorpay", "pay_1", Decimal("1000.00"))]
    assert apply(db, paid(intent)) == "duplicate"  # the capture webhook, late
    with session_factory(db)() as s:
        assert [e.amount for e in s.scalars(select(LedgerEntry).where(
            LedgerEntry.kind == "refund"))] == [Decimal("400.00")]


class QueryOnly:
    """A gateway whose query API says the payment was captured (for polling tests)."""

    name = "razorpay"

    def __init__(self, conf: Confirmation) -> None:
        self.conf = conf

    def query(self, reference: str, gateway_reference: str | None) -> Confirmation:
        return self.conf


def test_a_declined_attempt_then_a_paid_retry_is_still_found_by_polling(db, box) -> None:  # type: ignore[no-untyped-def]
    from payments.polling import poll

    intent = start(db, billed(db, box))
    with session_factory(db)() as s, s.begin():
        intents.started(s, intent.reference, _checkout())
    declined = Confirmation(reference=intent.reference, status=Status.FAILED,
                            amount=Decimal("1000"), currency="BDT", event_id="evt_declined")
    assert apply(db, declined) == "failed"
    # the retry on the same link was captured, and its webhook was lost
    gateway = QueryOnly(paid(intent, event=None))
    counts = poll(session_factory(db), {"razorpay": gateway},  # type: ignore[dict-item]
                  min_age=dt.timedelta(0))
    assert counts == {"posted": 1} and status_of(db) == "active"
