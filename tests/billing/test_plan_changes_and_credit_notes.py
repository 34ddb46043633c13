"""Plan changes (prorated now, or at the next cycle), credit notes, and immutable invoices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import invoices
from billing.isp import settings
from billing.models import Invoice, InvoiceLine
from radbill.errors import Conflict, InvalidInput
from tests.billing.sim import Sim, change_plan

D = dt.date


@pytest.fixture
def sim(db, box) -> Sim:  # type: ignore[no-untyped-def]
    s = Sim(db, box, D(2026, 11, 1))
    s.plan("Basic", price="600", billing_mode="prepaid")
    s.plan("Plus", price="1200", billing_mode="prepaid")
    s.plan("PostBasic", price="600")
    s.plan("PostPlus", price="1200")
    return s


def test_prepaid_upgrade_mid_cycle_credits_unused_and_charges_new(sim: Sim) -> None:
    sim.subscriber("up", "Basic")
    sim.run()
    sim.pay("up", "600")
    sim.today = D(2026, 11, 21)  # 10 of 30 days left
    result = change_plan(sim, "up", "Plus")
    # the unused Basic days on a credit note against November's invoice, the Plus days on a
    # plan-change invoice due after the payment terms (7 days, at most the days it covers)
    assert (result.invoice_number, result.amount, result.credit_notes) == (
        "INV-000002", "400.00", ("CN-000001",))
    _november, note, change = sim.invoices("up")
    assert note["kind"] == "credit_note" and note["status"] == "applied"
    assert note["lines"] == [("Credit for invoice INV-000001: Unused Basic, 10 of 30 days, "
                              "21 Nov - 30 Nov 2026", Decimal("-200.00"))]
    assert (note["total"], note["due"]) == (Decimal("-200.00"), None)
    assert change["lines"] == [("Plus, 10 of 30 days, 21 Nov - 30 Nov 2026",
                                Decimal("400.00"))]
    assert (change["kind"], change["issued"], change["due"]) == (
        "plan_change", D(2026, 11, 21), D(2026, 11, 28))
    assert sim.sub("up").plan.name == "Plus" and sim.balance("up") == Decimal("200.00")
    # the next period is invoiced on the new plan
    sim.today = D(2026, 11, 28)
    sim.run()
    assert sim.invoices("up")[-1]["lines"][0][1] == Decimal("1200.00")


def test_prepaid_downgrade_is_a_credit_note_used_by_the_next_invoice(sim: Sim) -> None:
    sim.subscriber("down", "Plus")
    sim.run()
    sim.pay("down", "1200")
    sim.today = D(2026, 11, 16)  # 15 of 30 days left
    result = change_plan(sim, "down", "Basic")
    assert (result.invoice_number, result.amount, result.credit_notes) == (
        "INV-000002", "300.00", ("CN-000001",))
    assert [i["total"] for i in sim.invoices("down")] == [
        Decimal("1200.00"), Decimal("-600.00"), Decimal("300.00")]
    assert all(i["total"] > 0 for i in sim.invoices("down") if i["kind"] != "credit_note")
    assert sim.balance("down") == Decimal("-300.00")
    sim.today = D(2026, 11, 28)
    sim.run()  # December Basic 600, 300 of it from the credit
    assert sim.balance("down") == Decimal("300.00")
    assert [(i["number"], i["status"]) for i in sim.invoices("down")] == [
        ("INV-000001", "paid"), ("CN-000001", "applied"), ("INV-000002", "paid"),
        ("INV-000003", "open")]
    assert sim.outstanding("down") == {"INV-000003": Decimal("300.00")}


def test_postpaid_change_bills_each_plan_for_its_days_on_the_period_invoice(sim: Sim) -> None:
    sim.subscriber("post", "PostBasic")
    sim.today = D(2026, 11, 11)  # 10 days used on Basic
    result = change_plan(sim, "post", "PostPlus")
    assert (result.invoice_number, result.credit_notes) == (None, ())  # nothing issued now
    sim.today = D(2026, 12, 1)
    sim.run()
    (period_inv,) = sim.invoices("post")
    assert period_inv["lines"] == [
        ("PostBasic 01 Nov 2026 - 10 Nov 2026 (10 of 30 days)", Decimal("200.00")),
        ("PostPlus 11 Nov 2026 - 30 Nov 2026 (20 of 30 days)", Decimal("800.00"))]
    # due with the period's terms, not on the day of the change
    assert (period_inv["issued"], period_inv["due"]) == (D(2026, 12, 1), D(2026, 12, 8))
    assert sim.balance("post") == Decimal("1000.00")


def test_change_at_next_cycle(sim: Sim) -> None:
    sim.subscriber("later", "PostBasic")
    assert change_plan(sim, "later", "PostPlus", "next_cycle").invoice_number is None
    assert sim.sub("later").plan.name == "PostBasic"
    sim.today = D(2026, 12, 1)
    report = sim.run()
    assert [(e.kind, e.detail) for e in report.events][:2] == [
        ("invoice", "INV-000001 BDT 600.00 2026-11-01..2026-12-01 due 2026-12-08"),
        ("plan_change", "now on PostPlus")]
    assert sim.sub("later").plan.name == "PostPlus"
    sim.today = D(2027, 1, 1)
    sim.run()
    assert sim.invoices("later")[-1]["total"] == Decimal("1200.00")


def test_plan_change_errors(sim: Sim) -> None:
    sim.subscriber("e", "Basic")
    with pytest.raises(Conflict, match="already on Basic"):
        change_plan(sim, "e", "Basic")
    sim.plan("Dollar", price="10", currency="USD")
    with pytest.raises(Conflict, match="USD"):
        change_plan(sim, "e", "Dollar")
    with pytest.raises(InvalidInput, match="effective"):
        change_plan(sim, "e", "Plus", "tomorrow")
    sim.run()  # the period is invoiced: an immediate change now prorates
    change_plan(sim, "e", "Plus")
    with pytest.raises(Conflict, match="already changed plan on 2026-11-01"):
        change_plan(sim, "e", "Basic")


def test_credit_note_corrects_an_invoice_without_editing_it(sim: Sim) -> None:
    sim.subscriber("cn", "PostBasic")
    sim.today = D(2026, 12, 1)
    sim.run()
    with sim.factory() as s, s.begin():
        note = invoices.credit_note(s, isp=settings(s, lock=True), number="INV-000001",
                                    amount=Decimal("600"), reason="outage in November",
                                    today=sim.today, actor="operator")
        assert (note.number, note.total, note.due_on) == ("CN-000001", Decimal("-600.00"),
                                                          None)
    assert sim.balance("cn") == Decimal("0.00")
    original, credit = sim.invoices("cn")
    assert original["status"] == "credited" and original["total"] == Decimal("600.00")
    assert credit["status"] == "applied"
    assert credit["lines"] == [("Credit for invoice INV-000001: outage in November",
                                Decimal("-600.00"))]
    with sim.factory() as s, s.begin(), pytest.raises(InvalidInput, match="at most"):
        invoices.credit_note(s, isp=settings(s, lock=True), number="INV-000001",
                             amount=Decimal("1"), reason="again", today=sim.today, actor="x")
    # the invoice series has no gap for the credit note: the next invoice is INV-000002
    sim.today = D(2027, 1, 1)
    sim.run()
    assert sim.invoices("cn")[-1]["number"] == "INV-000002"


def test_issued_invoices_cannot_be_edited_or_deleted(sim: Sim) -> None:
    sim.subscriber("imm", "PostBasic")
    sim.today = D(2026, 12, 1)
    sim.run()
    with sim.factory() as s:
        inv = s.scalars(select(Invoice)).one()
        inv.total = Decimal("1.00")
        with pytest.raises(invoices.ImmutableInvoice, match="total"):
            s.flush()
        s.rollback()
        line = s.scalars(select(InvoiceLine)).one()
        s.delete(line)
        with pytest.raises(invoices.ImmutableInvoice, match="never deleted"):
            s.flush()
        s.rollback()
        inv = s.scalars(select(Invoice)).one()
        inv.pdf_path = "/archive/x.pdf"  # the archive may record its file
        s.flush()
