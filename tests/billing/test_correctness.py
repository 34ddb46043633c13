"""Billing where the happy path never goes: one scenario per finding of the billing audit
(issue 17), each with exact amounts and dates computed by hand in the comments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.models import EnforcementRequest
from notify.models import Outbox
from tests.billing.sim import Sim, change_plan

D = dt.date


def enforcement(sim: Sim, username: str) -> list[str]:
    sub_id = sim.sub(username).id
    with sim.factory() as s:
        return [r.action for r in s.scalars(select(EnforcementRequest).where(
            EnforcementRequest.subscriber_id == sub_id).order_by(EnforcementRequest.id))]


def payloads(sim: Sim, username: str, kind: str) -> list[dict[str, object]]:
    sub_id = sim.sub(username).id
    with sim.factory() as s:
        return [o.payload for o in s.scalars(select(Outbox).where(
            Outbox.subscriber_id == sub_id, Outbox.kind == kind).order_by(Outbox.id))]


# -- money --------------------------------------------------------------------------------------


def test_1_a_change_inside_a_short_first_period_prorates_on_the_whole_month(sim: Sim) -> None:
    # Fixed billing day 1, 1000 a month; created 15 Nov: the first period 15-30 Nov is 16 of
    # 30 days. Changed to the 500 plan on 23 Nov: 8 days on each plan, each priced as 8 of the
    # month's 30 days (not of the short period's 16): 1000*8/30 = 266.67, 500*8/30 = 133.33.
    sim.plan("Fix1000", price="1000", cycle_anchor="fixed_day", billing_day=1)
    sim.plan("Fix500", price="500", cycle_anchor="fixed_day", billing_day=1)
    sim.plan("Pre1000", price="1000", cycle_anchor="fixed_day", billing_day=1,
             billing_mode="prepaid")
    sim.plan("Pre500", price="500", cycle_anchor="fixed_day", billing_day=1,
             billing_mode="prepaid")
    sim.today = D(2026, 11, 15)
    sim.subscriber("post", "Fix1000")
    sim.subscriber("pre", "Pre1000")
    sim.run()
    (first,) = sim.invoices("pre")
    assert first["lines"] == [("Pre1000 15 Nov 2026 - 30 Nov 2026 (16 of 30 days)",
                               Decimal("533.33"))]
    sim.today = D(2026, 11, 23)
    change_plan(sim, "post", "Fix500")
    result = change_plan(sim, "pre", "Pre500")
    # prepaid: the unused 8 days of the old plan credited (what was charged less the 8 days
    # used, priced by the same rule: 533.33 - 266.67), the new plan's 8 days charged; the
    # change costs -133.33 and the period 400.00, as much as the postpaid subscriber's below
    _, note, change = sim.invoices("pre")
    assert note["lines"] == [("Credit for invoice INV-000001: Unused Pre1000, 8 of 30 days, "
                              "23 Nov - 30 Nov 2026", Decimal("-266.66"))]
    assert change["lines"] == [("Pre500, 8 of 30 days, 23 Nov - 30 Nov 2026",
                                Decimal("133.33"))]
    assert (result.invoice_number, result.amount) == ("INV-000002", "133.33")
    assert note["total"] + change["total"] == Decimal("-133.33")
    assert sum(i["total"] for i in sim.invoices("pre")) == Decimal("400.00")
    # postpaid: the period invoice bills each plan for its days
    sim.today = D(2026, 12, 1)
    sim.run()
    (period,) = [i for i in sim.invoices("post") if i["period"][0] == D(2026, 11, 15)]
    assert period["lines"] == [
        ("Fix1000 15 Nov 2026 - 22 Nov 2026 (8 of 30 days)", Decimal("266.67")),
        ("Fix500 23 Nov 2026 - 30 Nov 2026 (8 of 30 days)", Decimal("133.33"))]
    assert period["total"] == Decimal("400.00")


@pytest.mark.parametrize("effective", ["now", "next_cycle"])
def test_2_a_change_reprices_the_period_already_invoiced_ahead(sim: Sim,
                                                               effective: str) -> None:
    sim.plan("Basic", price="600", billing_mode="prepaid")
    sim.plan("Plus", price="1200", billing_mode="prepaid")
    sim.subscriber("ahead", "Basic")
    sim.days_until(D(2026, 11, 28))  # December invoiced ahead on 28 Nov at Basic
    assert sim.invoices("ahead")[-1]["lines"][0] == ("Basic 01 Dec 2026 - 31 Dec 2026",
                                                      Decimal("600.00"))
    result = change_plan(sim, "ahead", "Plus", effective)
    docs = sim.invoices("ahead")
    december = [d for d in docs if d["period"][0] == D(2026, 12, 1)]
    # December's old invoice is credited in full and December invoiced again at Plus
    assert [(d["kind"], d["total"], d["status"]) for d in december] == [
        ("period", Decimal("600.00"), "credited"),
        ("credit_note", Decimal("-600.00"), "applied"),
        ("period", Decimal("1200.00"), "open")]
    assert december[2]["issued"] == D(2026, 11, 29)
    assert december[2]["due"] == D(2026, 12, 1)
    assert december[1]["number"] in result.credit_notes
    sim.days_until(D(2027, 1, 2))
    assert sim.sub("ahead").plan.name == "Plus"
    # nothing billed twice: one live invoice per period
    live = [d["period"] for d in sim.invoices("ahead")
            if d["kind"] == "period" and d["status"] != "credited"]
    assert len(live) == len(set(live))


def test_3_a_manual_charge_is_its_own_invoice_and_paying_an_invoice_closes_it(
        sim: Sim) -> None:
    sim.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=3)
    sim.subscriber("c", "Home")
    sim.days_until(D(2026, 12, 2))  # INV-000001 1050, issued 1 Dec, due 8 Dec
    charge = sim.adjust("c", "charge", "200")
    assert charge.document == "INV-000002"
    doc = sim.invoices("c")[-1]
    # a one-line invoice, taxed like the plan, due after the payment terms
    assert (doc["kind"], doc["lines"], doc["tax"], doc["total"]) == (
        "charge", [("charge test", Decimal("200.00"))], Decimal("10.00"), Decimal("210.00"))
    assert (doc["issued"], doc["due"]) == (D(2026, 12, 3), D(2026, 12, 10))
    # paying the invoice's exact amount closes that invoice (the charge no longer takes it)
    sim.pay("c", "1050")
    assert sim.outstanding("c") == {"INV-000002": Decimal("210.00")}
    sim.days_until(D(2026, 12, 12))
    assert sim.status("c") == "active"  # 12 Dec was INV-000001's suspension day
    # a payment for a named invoice pays it first, whatever is older
    sim.adjust("c", "charge", "100")  # INV-000003, due 20 Dec
    with sim.factory() as s, s.begin():
        from billing.payments import record_payment

        record_payment(s, "c", "105", method="cash", reference="R-c3", today=sim.today,
                       actor="cashier", invoice="INV-000003")
    assert sim.outstanding("c") == {"INV-000002": Decimal("210.00")}


def test_4_a_percent_late_fee_is_on_what_is_still_outstanding(sim: Sim) -> None:
    sim.plan("Pct", price="1000", tax_percent=Decimal("5"), grace_days=3, late_fee="10",
             late_fee_percent=True)
    for name in ("nearly", "half", "none"):
        sim.subscriber(name, "Pct")
    sim.days_until(D(2026, 12, 7))  # 1050 each, due 8 Dec
    sim.pay("nearly", "1049.99")  # 0.01 left: below the ISP's minimum (1.00)
    sim.pay("half", "500")  # 550 left: 10% of it
    sim.days_until(D(2026, 12, 9))
    fees = {name: [d["total"] for d in sim.invoices(name) if d["kind"] == "late_fee"]
            for name in ("nearly", "half", "none")}
    assert fees == {"nearly": [], "half": [Decimal("55.00")], "none": [Decimal("105.00")]}


def test_5_split_credit_notes_never_credit_more_tax_than_the_invoice_carried(
        sim: Sim) -> None:
    # 1000 + 5% VAT = 1050. Three notes of 350: 350 * 50/1050 = 16.666.. each; rounded, three
    # would credit 50.01 of tax. The last note takes the remainder: 16.67 + 16.67 + 16.66.
    sim.plan("Home", price="1000", tax_percent=Decimal("5"))
    sim.subscriber("split", "Home")
    sim.today = D(2026, 12, 1)
    sim.run()
    for _ in range(3):
        sim.credit_note("INV-000001", "350")
    notes = [d for d in sim.invoices("split") if d["kind"] == "credit_note"]
    assert [(n["tax"], n["total"]) for n in notes] == [
        (Decimal("-16.67"), Decimal("-350.00")), (Decimal("-16.67"), Decimal("-350.00")),
        (Decimal("-16.66"), Decimal("-350.00"))]
    assert sim.invoices("split")[0]["status"] == "credited"


def test_6_a_suspended_account_keeps_being_invoiced_by_default(sim: Sim) -> None:
    sim.plan("Home", price="1000", grace_days=3)
    sim.subscriber("s", "Home")
    sim.days_until(D(2027, 1, 1))  # suspended 12 Dec; still invoiced for December
    assert sim.status("s") == "suspended"
    assert [d["period"][0] for d in sim.invoices("s") if d["kind"] == "period"] == [
        D(2026, 11, 1), D(2026, 12, 1)]


def test_6_where_the_isp_says_so_billing_pauses_at_suspension(sim: Sim) -> None:
    sim.isp(bill_while_suspended=False)
    sim.plan("Home", price="1000", grace_days=3)
    sim.subscriber("p", "Home")
    sim.days_until(D(2027, 2, 5))
    # suspended 12 Dec: the 11 days of December used are invoiced (1000 * 11/31 = 354.84),
    # nothing after
    periods = [(d["period"], d["total"]) for d in sim.invoices("p") if d["kind"] == "period"]
    assert periods == [((D(2026, 11, 1), D(2026, 12, 1)), Decimal("1000.00")),
                       ((D(2026, 12, 1), D(2026, 12, 12)), Decimal("354.84"))]
    # paying reconnects and starts a new period that day: no catch-up invoices
    assert sim.pay("p", str(sim.balance("p"))).reconnected
    sub = sim.sub("p")
    assert (sub.period_start, sub.period_end, sub.billing_started_on) == (
        D(2027, 2, 6), D(2027, 3, 6), D(2027, 2, 6))
    sim.days_until(D(2027, 3, 6))
    assert [d["period"] for d in sim.invoices("p") if d["kind"] == "period"][-1] == (
        D(2027, 2, 6), D(2027, 3, 6))


def test_6_a_disabled_account_is_never_invoiced_and_restarts_on_reconnection(
        sim: Sim) -> None:
    # Before: four back-dated invoices and an immediate suspension on reconnection.
    sim.plan("Home", price="1000", grace_days=3)
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=1)
    sim.subscriber("d", "Home")
    sim.subscriber("f", "Fixed")
    sim.days_until(D(2026, 11, 20))
    sim.set_status("d", "disabled")  # postpaid: 20 days used (1 - 20 Nov) invoiced now
    sim.set_status("f", "disabled")
    docs = sim.invoices("d")
    assert [(d["period"], d["total"], d["issued"]) for d in docs] == [
        ((D(2026, 11, 1), D(2026, 11, 21)), Decimal("666.67"), D(2026, 11, 21))]
    sim.days_until(D(2027, 3, 14))
    assert len(sim.invoices("d")) == 1  # nothing while disabled
    sim.set_status("d", "active")
    sim.set_status("f", "active")
    sim.run()
    assert sim.status("d") == "active" and sim.status("f") == "active"
    d, f = sim.sub("d"), sim.sub("f")
    # a new period from the day of reconnection: a new anniversary, or prorated to the
    # fixed billing day (15-31 Mar: 17 of 31 days)
    assert (d.period_start, d.period_end) == (D(2027, 3, 15), D(2027, 4, 15))
    assert (f.period_start, f.period_end) == (D(2027, 3, 15), D(2027, 4, 1))
    sim.days_until(D(2027, 4, 1))
    last = sim.invoices("f")[-1]
    assert last["lines"] == [("Fixed 15 Mar 2027 - 31 Mar 2027 (17 of 31 days)",
                              Decimal("493.55"))]


def test_6_termination_invoices_the_days_used_or_credits_the_days_unused(sim: Sim) -> None:
    sim.isp(credit_unused_on_termination=True)
    sim.plan("Post", price="900")
    sim.plan("Pre", price="900", billing_mode="prepaid")
    sim.subscriber("post", "Post")
    sim.subscriber("pre", "Pre")
    sim.run()
    sim.pay("pre", "900")
    sim.today = D(2026, 11, 11)  # 10 days used
    sim.set_status("post", "terminated")
    sim.set_status("pre", "terminated")
    assert [(d["period"], d["total"]) for d in sim.invoices("post")] == [
        ((D(2026, 11, 1), D(2026, 11, 11)), Decimal("300.00"))]
    note = sim.invoices("pre")[-1]
    assert (note["kind"], note["total"]) == ("credit_note", Decimal("-600.00"))  # 20 of 30
    assert sim.balance("pre") == Decimal("-600.00")  # refundable credit
    sim.days_until(D(2027, 1, 5))
    assert len(sim.invoices("post")) == 1 and len(sim.invoices("pre")) == 2


def test_7_a_payment_to_a_terminated_account_is_credit_and_reconnects_nothing(
        sim: Sim) -> None:
    sim.plan("Home", price="1000", grace_days=3, throttle_after_days=1)
    sim.subscriber("t", "Home")
    sim.days_until(D(2026, 12, 10))  # throttled 9 Dec
    sim.set_status("t", "terminated")
    before = enforcement(sim, "t")
    result = sim.pay("t", "5000")
    assert not result.reconnected
    assert enforcement(sim, "t") == before  # no unthrottle, no reconnect
    assert sim.status("t") == "terminated"
    # November (1000) and the 10 days of December used (1000 * 10/31 = 322.58) are paid; the
    # rest is refundable credit
    assert sim.balance("t") == Decimal("-3677.42")
    assert sim.adjust("t", "refund", "3677.42").balance == Decimal("0.00")


# -- dates --------------------------------------------------------------------------------------


def test_8_documents_are_dated_the_day_they_are_issued(sim: Sim) -> None:
    # Activated 29 Nov on a prepaid fixed-day-1 plan. December would be invoiced ahead on
    # 28 Nov (before the subscriber existed); the run on 30 Nov dates both invoices 30 Nov.
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=1,
             billing_mode="prepaid")
    sim.today = D(2026, 11, 29)
    sim.subscriber("late", "Fixed")
    sim.today = D(2026, 11, 30)
    sim.run()
    assert [(d["period"], d["issued"], d["due"]) for d in sim.invoices("late")] == [
        ((D(2026, 11, 29), D(2026, 12, 1)), D(2026, 11, 30), D(2026, 12, 7)),
        ((D(2026, 12, 1), D(2027, 1, 1)), D(2026, 11, 30), D(2026, 12, 1))]


def test_8_a_catch_up_run_never_skips_the_ladder(sim: Sim) -> None:
    sim.plan("Home", price="1000", grace_days=3, late_fee="50")
    sim.subscriber("gap", "Home")
    sim.today = D(2026, 12, 20)  # no run since activation
    events = sim.days_until(D(2027, 1, 5))
    happened = {d: e for d, e in events.items() if e}
    # issued on the run's day, due after the terms; then the whole ladder with its spacing
    assert happened == {
        D(2026, 12, 20): [("gap", "invoice")],
        D(2026, 12, 24): [("gap", "reminder")],
        D(2026, 12, 27): [("gap", "due_notice")],
        D(2026, 12, 28): [("gap", "late_fee")],
        D(2026, 12, 30): [("gap", "final_reminder")],
        D(2026, 12, 31): [("gap", "suspend")],
        D(2027, 1, 1): [("gap", "invoice")],
    }
    assert sim.invoices("gap")[0]["issued"] == D(2026, 12, 20)


def test_9_a_plan_change_invoice_follows_the_terms(sim: Sim) -> None:
    sim.plan("Basic", price="600", billing_mode="prepaid")
    sim.plan("Plus", price="1200", billing_mode="prepaid")
    sim.subscriber("pc", "Basic")
    sim.run()
    sim.pay("pc", "600")
    sim.today = D(2026, 11, 11)
    change_plan(sim, "pc", "Plus")
    change = sim.invoices("pc")[-1]
    assert (change["kind"], change["issued"], change["due"]) == (
        "plan_change", D(2026, 11, 11), D(2026, 11, 18))


def test_10_paid_until_is_the_ladders_suspension_day_with_off_days(sim: Sim) -> None:
    from billing.models import Holiday

    sim.isp(weekly_off_days="wed")
    with sim.factory() as s, s.begin():
        s.add(Holiday(day=D(2026, 12, 3), name="Test holiday"))
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=1)
    sim.subscriber("pu", "Pre")
    sim.run()
    sim.pay("pu", "500")
    # December is due 1 Dec; 1 grace day; 3 Dec (Thu) is a holiday, 2 Dec a Wednesday:
    # the ladder suspends on Friday 4 Dec, and service ends at its start
    until = sim.sub("pu").paid_until
    assert until == dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)  # 4 Dec 00:00 Dhaka
    events = sim.days_until(D(2026, 12, 4))
    assert events[D(2026, 12, 3)] == [("pu", "final_reminder")]
    assert events[D(2026, 12, 4)] == [("pu", "suspend")]


def test_10_a_promise_extends_prepaid_service_to_its_date(sim: Sim) -> None:
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=0)
    sim.subscriber("pp", "Pre")
    sim.run()
    sim.pay("pp", "500")
    sim.days_until(D(2026, 12, 2))
    assert sim.status("pp") == "suspended"
    sim.promise("pp", D(2026, 12, 10))
    assert sim.status("pp") == "active"
    # RADIUS serves until the promise runs out (the day after it, at midnight)
    assert sim.sub("pp").paid_until == dt.datetime(2026, 12, 10, 18, 0, tzinfo=dt.UTC)


def test_10_a_fully_credited_invoice_counts_as_settled_for_service(sim: Sim) -> None:
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=0)
    sim.subscriber("free", "Pre")
    sim.days_until(D(2026, 11, 28))  # November paid? no: credited as a free month
    sim.credit_note("INV-000001", None, reason="free first month")
    assert sim.invoices("free")[0]["status"] == "credited"
    assert sim.status("free") == "active"
    assert sim.sub("free").paid_until is not None
    assert sim.sub("free").paid_until > dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def test_11_a_first_invoice_is_due_after_the_terms_or_service_waits_for_it(
        sim: Sim) -> None:
    # a fixed-day-1 plan of 500 + 5% VAT joined on 29 Nov: 2 of 30 days, 33.33 + 1.67 = 35.00
    sim.plan("Fixed", price="500", tax_percent=Decimal("5"), cycle_anchor="fixed_day",
             billing_day=1, billing_mode="prepaid", late_fee="50")
    sim.today = D(2026, 11, 29)
    sim.subscriber("new", "Fixed")
    events = sim.days_until(D(2026, 12, 1))
    first = sim.invoices("new")[0]
    assert (first["total"], first["due"]) == (Decimal("35.00"), D(2026, 12, 6))
    assert all(k != "late_fee" for e in events.values() for _, k in e)
    # strict prepay: due at once, and no service until it is paid
    sim.isp(strict_prepay=True)
    sim.subscriber("strict", "Fixed")
    sim.run()
    strict = sim.invoices("strict")[0]
    assert strict["due"] == strict["issued"] == D(2026, 12, 2)
    assert sim.sub("strict").paid_until == dt.datetime(2026, 12, 1, 18, 0, tzinfo=dt.UTC)
    sim.pay("strict", str(sim.balance("strict")))
    assert sim.sub("strict").paid_until > dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_12_a_suspended_subscriber_gets_no_notices_for_the_suspension_they_are_in(
        sim: Sim) -> None:
    sim.isp(suspended_notice_days=7)
    sim.plan("Home", price="1000", grace_days=3)
    sim.subscriber("quiet", "Home")
    sim.days_until(D(2027, 1, 31))  # suspended 12 Dec; January's invoice due 8 Jan
    kinds = sim.outbox("quiet")
    after = kinds[kinds.index("suspended") + 1:]
    assert "final_reminder" not in after and "reminder" not in after
    assert "due_notice" not in after
    assert after.count("still_suspended") == 7  # 19, 26 Dec; 2, 9, 16, 23, 30 Jan


def test_13_effective_dates_are_never_in_the_future(sim: Sim) -> None:
    from billing import payments
    from radbill.errors import InvalidInput

    sim.plan("Home", price="1000")
    sim.subscriber("when", "Home")
    with sim.factory() as s, s.begin(), pytest.raises(InvalidInput, match="in the future"):
        payments.record_payment(s, "when", "10", method="cash", reference="F1",
                                today=sim.today, on=sim.today + dt.timedelta(days=1),
                                actor="x")
    with sim.factory() as s, s.begin(), pytest.raises(InvalidInput, match="before"):
        payments.record_payment(s, "when", "10", method="cash", reference="F2",
                                today=sim.today, on=sim.today - dt.timedelta(days=1),
                                actor="x")


# -- documents ----------------------------------------------------------------------------------


def test_15_every_document_and_notice_says_what_to_pay_now(sim: Sim) -> None:
    # The audit's INV-3: 1050 issued while 500 was still owed and 1000 credit... here: the
    # previous invoice half paid, a late fee, then the next invoice says all of it.
    sim.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=40, late_fee="50")
    sim.subscriber("due", "Home")
    sim.days_until(D(2026, 12, 2))
    sim.pay("due", "500")  # 550 left on INV-000001
    sim.days_until(D(2027, 1, 5))  # January's reminder
    late_fee, january = sim.invoices("due")[1:]
    assert (late_fee["previous_balance"], late_fee["amount_due"]) == (
        Decimal("550.00"), Decimal("600.00"))
    assert (january["total"], january["previous_balance"], january["amount_due"]) == (
        Decimal("1050.00"), Decimal("600.00"), Decimal("1650.00"))
    reminder = payloads(sim, "due", "reminder")[-1]
    assert (reminder["invoice"], reminder["total"], reminder["amount_due"]) == (
        "INV-000003", "1050.00", "1650.00")
    # a credit in hand is applied on the next invoice
    sim.pay("due", "3000")
    sim.days_until(D(2027, 2, 1))
    feb = sim.invoices("due")[-1]
    assert (feb["previous_balance"], feb["amount_due"]) == (Decimal("-1350.00"),
                                                            Decimal("0"))
