"""Tax invoices and credit notes by country profile, as issued and as printed: Bangladesh
(Mushak-6.3 / 6.7: VAT and SD Rules 2016, rule 40) and India (GST: CGST Rules 2017, rules 46
and 53(1A)). The PDF is read back as text and every particular the rules require is on it."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing.archive import document
from billing.models import Invoice
from billing.pdf import render_invoice_pdf
from billing.tax import TaxRule
from tests.billing.sim import Sim

D = dt.date


def pdf_text(sim: Sim, number: str) -> str:
    with sim.factory() as s:
        inv = s.scalars(select(Invoice).where(Invoice.number == number)).one()
        pdf = render_invoice_pdf(document(s, inv))
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_india_intra_state_splits_cgst_and_sgst_and_inter_state_is_igst() -> None:
    intra = TaxRule("in-gst", Decimal("18"), intra_state=True).line(Decimal("999.99"), "INR")
    assert [(h.name, h.rate, h.amount) for h in intra.heads] == [
        ("CGST", Decimal("9"), Decimal("90.00")), ("SGST", Decimal("9"), Decimal("90.00"))]
    inter = TaxRule("in-gst", Decimal("18"), intra_state=False).line(Decimal("999.99"), "INR")
    assert [(h.name, h.amount) for h in inter.heads] == [("IGST", Decimal("180.00"))]


def test_bangladesh_supplementary_duty_comes_before_vat() -> None:
    line = TaxRule("bd-mushak", Decimal("5"), duty_percent=Decimal("10")).line(
        Decimal("1000.00"), "BDT")
    # SD 10% of 1000 = 100; VAT 5% of 1100 = 55
    assert (line.duty, line.tax) == (Decimal("100.00"), Decimal("55.00"))


@pytest.fixture
def india(db, box) -> Sim:  # type: ignore[no-untyped-def]
    s = Sim(db, box, D(2026, 11, 1))
    s.isp(name="Bengaluru Fibre Pvt Ltd", address="12 MG Road, Bengaluru 560001",
          tax_profile="in-gst", tax_id="29ABCDE1234F1Z5", state_name="Karnataka",
          state_code="29", sac_code="998422", signatory_name="R. Rao",
          signatory_designation="Director", invoice_prefix="BF/26/",
          credit_note_prefix="BFC/26/", late_fee_taxable=True)
    s.plan("Fibre", price="999.00", currency="INR", tax_percent=Decimal("18"),
           late_fee="100", grace_days=5)
    return s


def test_an_indian_tax_invoice_carries_what_rule_46_requires(india: Sim) -> None:
    india.subscriber("local", "Fibre", full_name="Asha Kumar",
                     address="4 Church St, Bengaluru 560001", tax_id="29AAACB1234C1Z2",
                     state_code="29")
    india.subscriber("away", "Fibre", full_name="Vikram Shah",
                     address="8 Marine Dr, Mumbai 400002", state_code="27")
    india.today = D(2026, 12, 1)
    india.run()
    local, away = india.invoices("local")[0], india.invoices("away")[0]
    assert local["number"] == "BF/26/000001" and len(local["number"]) <= 16  # rule 46(b)
    # 999 * 9% = 89.91 each; inter-State IGST 18% = 179.82
    assert (local["tax"], local["total"]) == (Decimal("179.82"), Decimal("1178.82"))
    text = pdf_text(india, "BF/26/000001")
    for particular in (
        "Tax invoice",  # the document's nature
        "Bengaluru Fibre Pvt Ltd", "12 MG Road", "GSTIN: 29ABCDE1234F1Z5",  # 46(a)
        "State: Karnataka (29)",
        "BF/26/000001", "Issued 1 Dec 2026",  # 46(b), (c)
        "Asha Kumar", "4 Church St", "GSTIN: 29AAACB1234C1Z2",  # 46(d)
        "Place of supply: Karnataka (29)",  # 46(n)
        "998422",  # 46(g) SAC
        "CGST", "SGST", "9%", "INR 89.91",  # 46(l), (m)
        "Tax payable on reverse charge: No",  # 46(p)
        "Authorised signatory", "R. Rao", "Director",  # 46(q)
        "Amount due now INR 1,178.82",
    ):
        assert particular in text, particular
    away_text = pdf_text(india, away["number"])
    assert "IGST" in away_text and "CGST" not in away_text
    assert "Place of supply: Maharashtra (27)" in away_text
    assert "INR 179.82" in away_text


def test_an_indian_credit_note_carries_what_rule_53_requires(india: Sim) -> None:
    india.subscriber("cn", "Fibre", full_name="Asha Kumar", state_code="29")
    india.today = D(2026, 12, 1)
    india.run()
    india.today = D(2026, 12, 3)
    number = india.credit_note("BF/26/000001", "589.41", reason="outage 1-15 Nov")
    assert number == "BFC/26/000001"  # its own series
    note = india.invoices("cn")[-1]
    # half the invoice: each head's half rounded on its own (44.955 -> 44.96)
    assert (note["total"], note["tax"], note["due"]) == (
        Decimal("-589.41"), Decimal("-89.92"), None)
    india.credit_note("BF/26/000001", None, reason="the rest")
    rest = india.invoices("cn")[-1]
    assert rest["tax"] == Decimal("-89.90")  # the last note takes what is left of the tax
    text = pdf_text(india, number)
    for particular in ("Credit note", "BFC/26/000001",  # 53(1A)(b), (c)
                       "Credits BF/26/000001 of 1 Dec 2026",  # 53(1A)(g)
                       "CGST", "SGST", "Reason: outage 1-15 Nov", "Authorised signatory"):
        assert particular in text, particular
    assert "Due " not in text and "Pay online" not in text


def test_a_late_fee_in_india_is_taxed_like_the_service(india: Sim) -> None:
    india.subscriber("late", "Fibre", state_code="29")
    india.days_until(D(2026, 12, 9))  # due 8 Dec
    fee = next(i for i in india.invoices("late") if i["kind"] == "late_fee")
    # CGST Act s.15(2)(d): 100 + 18%
    assert (fee["tax"], fee["total"]) == (Decimal("18.00"), Decimal("118.00"))


def test_a_bangladeshi_tax_invoice_is_a_mushak_6_3(db, box) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(db, box, D(2026, 11, 1))
    sim.isp(name="Padma Net Ltd", address="House 12, Road 5, Dhanmondi, Dhaka",
            tax_profile="bd-mushak", tax_id="000123456-0101", signatory_name="K. Ahmed",
            signatory_designation="Manager, Accounts", supplementary_duty_percent="10")
    sim.plan("Home", price="1000", tax_percent=Decimal("5"))
    sim.subscriber("rahim", "Home", full_name="Rahim Uddin", address="Mirpur 10, Dhaka",
                   tax_id="004567891-0201")
    sim.today = D(2026, 12, 1)
    sim.run()
    inv = sim.invoices("rahim")[0]
    # SD 10% = 100, VAT 5% of 1100 = 55
    assert inv["total"] == Decimal("1155.00")
    text = pdf_text(sim, inv["number"])
    for particular in (
        "Tax invoice (Mushak-6.3)", "rule 40(1)(c)",
        "Padma Net Ltd", "BIN: 000123456-0101",  # seller and BIN
        "Rahim Uddin", "Mirpur 10, Dhaka", "BIN: 004567891-0201",  # buyer, address, BIN
        "Issued 1 Dec 2026,",  # date and time of issue
        "SD", "10%", "BDT 100.00", "VAT", "5%", "BDT 55.00",  # SD and VAT per line
        "Total BDT 1,155.00",
        "Authorised signatory", "K. Ahmed", "Manager, Accounts",
    ):
        assert particular in text, particular
    sim.today = D(2026, 12, 2)
    note = sim.credit_note(inv["number"], None, reason="wrong plan")
    note_text = pdf_text(sim, note)
    assert "Credit note (Mushak-6.7)" in note_text and "rule 40(1)(g)" in note_text
    assert f"Credits {inv['number']} of 1 Dec 2026" in note_text
