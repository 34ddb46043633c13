"""The invoice PDF: what a subscriber can read off it, and that it is reproducible to the byte."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

import billing.pdf
from billing.documents import DocumentLine, InvoiceDocument, IspProfile
from billing.pdf import render_invoice_pdf

ROOT = Path(__file__).parents[2]
LOGO = Path(__file__).parent / "data" / "logo.png"
PAY_URL = "https://pay.padmanet.example/i/INV-2026-000123"
BENGALI_NAME = "রহিম"


def line(description: str, quantity: str, unit_price: str, amount: str) -> DocumentLine:
    return DocumentLine(description, Decimal(quantity), Decimal(unit_price), Decimal(amount))


def invoice(**changes: Any) -> InvoiceDocument:
    """A November 2026 invoice: 900 + 100 BDT, VAT 5%, total 1,050."""
    doc = InvoiceDocument(
        number="INV-2026-000123",
        issued_on=dt.date(2026, 11, 1),
        due_on=dt.date(2026, 11, 10),
        period_start=dt.date(2026, 11, 1),
        period_end=dt.date(2026, 12, 1),
        currency="BDT",
        isp=IspProfile(
            name="Padma Net Ltd",
            address="House 12, Road 5, Dhanmondi, Dhaka 1205",
            phone="+880 1711-000000",
            email="billing@padmanet.example",
            logo_path=LOGO,
        ),
        subscriber_username="rahim01",
        subscriber_name="Rahim Uddin",
        subscriber_phone="+880 1812-345678",
        plan_name="Home 20 Mbps",
        lines=(
            line("Home 20 Mbps, November", "1", "900.00", "900.00"),
            line("Static IP address", "1", "75.00", "75.00"),
            line("Router rent (days)", "5", "5.00", "25.00"),
        ),
        subtotal=Decimal("1000.00"),
        tax_percent=Decimal("5"),
        tax=Decimal("50.00"),
        total=Decimal("1050.00"),
        payment_link=PAY_URL,
    )
    return dataclasses.replace(doc, **changes)


def read(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in read(pdf).pages)


def test_invoice_shows_issuer_subscriber_dates_lines_and_totals() -> None:
    pdf = render_invoice_pdf(invoice())

    assert pdf.startswith(b"%PDF")
    assert len(read(pdf).pages) == 1
    text = text_of(pdf)
    for expected in (
        "Padma Net Ltd",
        "House 12, Road 5, Dhanmondi, Dhaka 1205",
        "Invoice",
        "INV-2026-000123",
        "Issued 1 Nov 2026",
        "Due 10 Nov 2026",
        # period_end is exclusive: 1 Dec is the first day no longer billed.
        "1 Nov 2026 \N{EN DASH} 30 Nov 2026",
        "Rahim Uddin",
        "Username: rahim01",
        "Phone: +880 1812-345678",
        "Home 20 Mbps",
        "Router rent (days) 5 BDT 5.00 BDT 25.00",
        "Subtotal BDT 1,000.00",
        "VAT 5% BDT 50.00",
        "Total BDT 1,050.00",
        f"Pay online: {PAY_URL}",
    ):
        assert expected in text, expected
    assert "1 Dec 2026" not in text


def test_money_has_thousands_separators_and_two_decimals() -> None:
    doc = invoice(
        lines=(line("Dedicated 1 Gbps", "1", "1234567.5", "1234567.50"),),
        subtotal=Decimal("1234567.50"),
        tax_percent=Decimal("7.50"),
        tax=Decimal("92592.56"),
        total=Decimal("1327160.06"),
    )

    text = text_of(render_invoice_pdf(doc))

    assert "Dedicated 1 Gbps 1 BDT 1,234,567.50 BDT 1,234,567.50" in text
    assert "VAT 7.5% BDT 92,592.56" in text
    assert "Total BDT 1,327,160.06" in text


def test_payment_link_is_clickable() -> None:
    page = read(render_invoice_pdf(invoice())).pages[0]

    uris = [
        annot.get_object()["/A"]["/URI"]
        for annot in page.get("/Annots", [])
        if annot.get_object()["/Subtype"] == "/Link"
    ]
    assert uris == [PAY_URL]


def test_no_payment_link_no_pay_online_line() -> None:
    pdf = render_invoice_pdf(invoice(payment_link=None))

    assert "Pay online" not in text_of(pdf)
    assert "/Annots" not in read(pdf).pages[0]


def test_same_document_gives_the_same_bytes() -> None:
    first = render_invoice_pdf(invoice())
    second = render_invoice_pdf(invoice())

    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    assert first == second
    assert render_invoice_pdf(invoice(number="INV-2026-000124")) != first


def test_same_bytes_in_another_process_with_another_hash_seed() -> None:
    # A set or dict iterated in hash order inside fpdf2 or fontTools would show up only here.
    script = (
        "import hashlib; from tests.billing.test_pdf import invoice, render_invoice_pdf; "
        "print(hashlib.sha256(render_invoice_pdf(invoice())).hexdigest())"
    )
    expected = hashlib.sha256(render_invoice_pdf(invoice())).hexdigest()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=True
        )
        assert out.stdout.decode().strip() == expected


def test_metadata_title_author_and_creation_date_from_the_issue_date() -> None:
    meta = read(render_invoice_pdf(invoice())).metadata

    assert meta is not None
    assert meta.title == "Invoice INV-2026-000123"
    assert meta.author == "Padma Net Ltd"
    assert meta["/CreationDate"] == "D:20261101000000Z"


def test_logo_is_drawn_when_present() -> None:
    with_logo = read(render_invoice_pdf(invoice())).pages[0]
    without = read(render_invoice_pdf(invoice(isp=IspProfile(name="Padma Net Ltd")))).pages[0]

    assert len(with_logo.images) == 1
    assert len(without.images) == 0


@pytest.mark.parametrize("logo", ["missing.png", "broken.png"])
def test_missing_or_broken_logo_is_left_out(tmp_path: Path, logo: str) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image")
    isp = dataclasses.replace(invoice().isp, logo_path=tmp_path / logo)

    pdf = render_invoice_pdf(invoice(isp=isp))

    assert len(read(pdf).pages[0].images) == 0
    assert "Total BDT 1,050.00" in text_of(pdf)


def test_bengali_name_without_a_bengali_font_prints_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(billing.pdf, "_BENGALI_FONTS", ())
    isp = dataclasses.replace(invoice().isp, logo_path=tmp_path / "missing.png")
    doc = invoice(isp=isp, subscriber_name=f"{BENGALI_NAME} Café")

    text = text_of(render_invoice_pdf(doc))

    # A visible "????" rather than a name that silently vanishes from the page.
    assert "???? Café" in text
    assert "Total BDT 1,050.00" in text


@pytest.mark.skipif(
    not any(path.is_file() for path in billing.pdf._BENGALI_FONTS),
    reason="no Bengali font installed (Debian fonts-lohit-beng-bengali or fonts-noto-core)",
)
def test_bengali_name_with_a_bengali_font_is_printed(tmp_path: Path) -> None:
    isp = dataclasses.replace(invoice().isp, logo_path=tmp_path / "missing.png")
    doc = invoice(isp=isp, subscriber_name=f"{BENGALI_NAME} Café")

    text = text_of(render_invoice_pdf(doc))

    # With text shaping (uharfbuzz installed) fpdf2 leaves the second glyph of a shaped cluster
    # such as "হি" out of the ToUnicode map, and pypdf returns its raw code, a control character.
    assert f"{BENGALI_NAME} Café" in "".join(ch for ch in text if ch >= " " or ch == "\n")


def test_without_dejavu_falls_back_to_helvetica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(billing.pdf, "_DEJAVU", Path("/nonexistent/DejaVuSans.ttf"))
    doc = invoice(subscriber_name=f"{BENGALI_NAME} Café Ōsaka")

    pdf = render_invoice_pdf(doc)

    text = text_of(pdf)
    assert "???? Café Osaka" in text
    assert "1 Nov 2026 \N{EN DASH} 30 Nov 2026" in text
    assert "Total BDT 1,050.00" in text
    assert pdf == render_invoice_pdf(doc)


def test_credit_note_title() -> None:
    doc = invoice(
        title="Credit note",
        number="CN-2026-000007",
        lines=(line("Outage credit, 12 days", "12", "-30.00", "-360.00"),),
        subtotal=Decimal("-360.00"),
        tax=Decimal("-18.00"),
        total=Decimal("-378.00"),
        payment_link=None,
    )

    pdf = render_invoice_pdf(doc)

    text = text_of(pdf)
    assert "Credit note" in text
    assert "Invoice" not in text
    assert "CN-2026-000007" in text
    assert "Total BDT -378.00" in text
    meta = read(pdf).metadata
    assert meta is not None
    assert meta.title == "Credit note CN-2026-000007"


def test_no_tax_row_when_tax_percent_is_zero() -> None:
    doc = invoice(tax_percent=Decimal("0"), tax=Decimal("0.00"), total=Decimal("1000.00"))

    text = text_of(render_invoice_pdf(doc))

    assert "VAT" not in text
    assert "Subtotal BDT 1,000.00" in text
    assert "Total BDT 1,000.00" in text


def test_period_across_the_year_end_and_leap_day() -> None:
    december = invoice(period_start=dt.date(2026, 12, 15), period_end=dt.date(2027, 1, 15))
    february = invoice(period_start=dt.date(2028, 2, 1), period_end=dt.date(2028, 3, 1))

    assert "15 Dec 2026 \N{EN DASH} 14 Jan 2027" in text_of(render_invoice_pdf(december))
    assert "1 Feb 2028 \N{EN DASH} 29 Feb 2028" in text_of(render_invoice_pdf(february))


def test_long_invoice_continues_with_totals_and_link_kept_together() -> None:
    doc = invoice(
        lines=tuple(line(f"Day pass {day}", "1", "25.00", "25.00") for day in range(1, 41))
    )

    pages = [page.extract_text() for page in read(render_invoice_pdf(doc)).pages]

    assert len(pages) == 2
    assert "Invoice INV-2026-000123 (continued)" in pages[1]
    assert "Day pass 40" in pages[1]
    assert "Total BDT 1,050.00" in pages[1]
    assert f"Pay online: {PAY_URL}" in pages[1]
    assert "Subtotal" not in pages[0]
