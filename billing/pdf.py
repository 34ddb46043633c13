"""Invoices and credit notes as PDF: one A4 page drawn with fpdf2 from an
:class:`~billing.documents.InvoiceDocument`. No database; the only files read are the ISP's
logo and the fonts.

The same document always gives the same bytes, because the invoice archive stores a SHA-256 of
the file: the creation date is the issue date at midnight UTC, producer and creator are fixed, and
fpdf2 derives the file ID from the content and that date.

Text is set in DejaVu Sans (Debian package ``fonts-dejavu-core``), so "Café" prints as written.
DejaVu has no Bengali letters; when Lohit Bengali (``fonts-lohit-beng-bengali``) or Noto Sans
Bengali (``fonts-noto-core``) is installed it fills them in. Without DejaVu the page falls back to
the PDF core font Helvetica, which only knows Windows-1252. Whatever no font can draw is printed
as "?", never silently dropped: a blank where a subscriber's name should be is worse.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF, FPDFException
from fpdf.fonts import FontFace, TTFFont
from PIL import Image, UnidentifiedImageError

from billing.documents import DocumentLine, InvoiceDocument, TaxAmount
from billing.money import format_money

log = logging.getLogger(__name__)

_FONT_DIR = Path("/usr/share/fonts/truetype")
_DEJAVU = _FONT_DIR / "dejavu" / "DejaVuSans.ttf"
_DEJAVU_BOLD = _FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf"
# Tried in order; the first one present supplies the Bengali letters DejaVu lacks.
_BENGALI_FONTS = (
    _FONT_DIR / "lohit-bengali" / "Lohit-Bengali.ttf",
    _FONT_DIR / "noto" / "NotoSansBengali-Regular.ttf",
)
# The core fonts' /WinAnsiEncoding is Windows-1252, which also has the en dash, "€" and curly
# quotes that latin-1 lacks.
_CORE_ENCODING = "windows-1252"

_EN_DASH = "\N{EN DASH}"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_MARGIN = 15.0  # mm on every side of the A4 page
_LOGO_BOX = (45.0, 18.0)  # widest and tallest the logo may be drawn, in mm
_INK = (33, 37, 41)
_MUTED = (108, 117, 125)
_RULE = (206, 212, 218)
_SHADE = (241, 243, 245)
_LINK = (13, 110, 253)


@dataclass(frozen=True)
class _Fonts:
    """Which font family the page is set in and which characters it can draw."""

    family: str
    codepoints: frozenset[int] | None  # None: the Windows-1252 core font

    def printable(self, text: str) -> str:
        """*text* with every character the fonts cannot draw replaced."""
        return "".join(ch if self._covers(ch) else _substitute(ch, self._covers) for ch in text)

    def _covers(self, ch: str) -> bool:
        if self.codepoints is not None:
            return ord(ch) in self.codepoints or ch in "\n\r\t"
        try:
            ch.encode(_CORE_ENCODING)
        except UnicodeEncodeError:
            return False
        return True


def _substitute(ch: str, covers: Callable[[str], bool]) -> str:
    """What to print for *ch*: "o" for "ő" when only the accent is missing, otherwise "?"."""
    if unicodedata.category(ch) == "Cf":
        return ""  # zero-width joiners and marks: invisible anyway
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and all(covers(c) for c in base):
        return base
    return "?"


class _InvoicePdf(FPDF):
    """FPDF with the invoice's footer on every page and its number atop every later one."""

    footer_lines: tuple[str, ...] = ()
    continued: str = ""

    def header(self) -> None:
        if self.page == 1:
            return
        self.set_font(size=8)
        self.set_text_color(*_MUTED)
        self.cell(0, 5, self.continued, align="R", new_x="LMARGIN", new_y="NEXT")
        self.ln(3)
        self.set_text_color(*_INK)

    def footer(self) -> None:
        self.set_y(-_MARGIN - 4.5 * len(self.footer_lines) - 2)
        self.set_draw_color(*_RULE)
        self.line(_MARGIN, self.get_y(), self.w - _MARGIN, self.get_y())
        self.ln(2)
        self.set_font(size=8)
        self.set_text_color(*_MUTED)
        for text in self.footer_lines:
            self.cell(0, 4.5, text, align="C", new_x="LMARGIN", new_y="NEXT")


def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    """The invoice or credit note *doc* as an A4 PDF, byte-identical for equal input.

    One page unless there are more lines than fit (about 15); the footer repeats on each page.
    """
    pdf = _InvoicePdf(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=_MARGIN + 14)
    pdf.set_creation_date(dt.datetime.combine(doc.issued_on, dt.time(), tzinfo=dt.UTC))
    pdf.set_producer("radbill")
    pdf.set_creator("radbill")
    fonts = _load_fonts(pdf, doc)
    text = fonts.printable
    # Metadata strings are UTF-16 in the PDF, so they need no font and keep every character.
    pdf.set_title(f"{doc.title} {doc.number}")
    pdf.set_author(doc.isp.name)
    pdf.footer_lines = tuple(text(line) for line in _footer_lines(doc))
    pdf.continued = text(f"{doc.title} {doc.number} (continued)")
    pdf.add_page()
    pdf.set_text_color(*_INK)

    _draw_header(pdf, doc, fonts)
    _draw_bill_to(pdf, doc, fonts)
    _draw_lines(pdf, doc, fonts)
    _draw_totals(pdf, doc, fonts)
    _draw_payment_link(pdf, doc, fonts)
    _draw_declarations(pdf, doc, fonts)
    return bytes(pdf.output())


def _format_date(day: dt.date) -> str:
    """``2026-11-01`` → ``"1 Nov 2026"``, in English whatever the machine's locale."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _format_period(start: dt.date, end: dt.date) -> str:
    """The billing period from *start* to the exclusive *end*, printed with its last day."""
    return f"{_format_date(start)} {_EN_DASH} {_format_date(end - dt.timedelta(days=1))}"


def _format_number(value: Decimal) -> str:
    """``Decimal("2.500")`` → ``"2.5"``, ``Decimal("10")`` → ``"10"`` (never ``"1E+1"``)."""
    return f"{value.normalize():f}"


def _load_fonts(pdf: FPDF, doc: InvoiceDocument) -> _Fonts:
    if not (_DEJAVU.is_file() and _DEJAVU_BOLD.is_file()):
        log.warning("%s missing, invoices fall back to Helvetica (Windows-1252 only)", _DEJAVU)
        pdf.core_fonts_encoding = _CORE_ENCODING
        pdf.set_font("helvetica", size=10)
        return _Fonts("helvetica", None)
    pdf.add_font("dejavu", "", _DEJAVU)
    pdf.add_font("dejavu", "B", _DEJAVU_BOLD)
    pdf.set_font("dejavu", size=10)
    codepoints = _codepoints(pdf, "dejavu")
    # Only a document that needs Bengali letters loads the Bengali font and the shaper, so a
    # Latin-only invoice renders to the same bytes whether or not they are installed.
    bengali = next((path for path in _BENGALI_FONTS if path.is_file()), None)
    if bengali is not None and any(ord(ch) not in codepoints for ch in _all_text(doc)):
        pdf.add_font("bengali", "", bengali)
        # The bold face borrows the regular Bengali letters rather than dropping them.
        pdf.set_fallback_fonts(["bengali"], exact_match=False)
        codepoints |= _codepoints(pdf, "bengali")
        try:
            # Bengali vowel signs and conjuncts need OpenType shaping to come out in order.
            pdf.set_text_shaping(True)
        except FPDFException:
            log.warning("uharfbuzz is not installed: Bengali text prints without shaping")
    return _Fonts("dejavu", frozenset(codepoints))


def _codepoints(pdf: FPDF, fontkey: str) -> set[int]:
    font = pdf.fonts[fontkey]
    assert isinstance(font, TTFFont)  # added with add_font() just before
    return set(font.cmap)


def _all_text(doc: InvoiceDocument) -> str:
    """Every free text of *doc* that is printed on the page."""
    isp = doc.isp
    return "".join(
        (
            isp.name,
            isp.address,
            isp.phone,
            isp.email,
            doc.title,
            doc.number,
            doc.subscriber_name,
            doc.subscriber_username,
            doc.subscriber_phone,
            doc.plan_name,
            doc.payment_link or "",
            doc.subscriber_address,
            doc.subscriber_tax_id,
            doc.reason,
            isp.state_name,
            isp.signatory_name,
            isp.signatory_designation,
            *(line.description for line in doc.lines),
        )
    )


# What the seller's and buyer's tax registration is called, by profile.
_TAX_ID_LABEL = {"bd-mushak": "BIN", "in-gst": "GSTIN"}


def _tax_id_label(doc: InvoiceDocument) -> str:
    return _TAX_ID_LABEL.get(doc.isp.tax_profile, "Tax id")


def _footer_lines(doc: InvoiceDocument) -> list[str]:
    contact = " or ".join(part for part in (doc.isp.phone, doc.isp.email) if part)
    lines = [f"Thank you for choosing {doc.isp.name.rstrip('.')}."]
    if contact:
        what = "credit note" if doc.title.lower().startswith("credit") else "invoice"
        lines.append(f"Questions about this {what}? Contact us at {contact}.")
    return lines


def _draw_logo(pdf: FPDF, path: Path | None) -> float:
    """Draw the logo at the top left; the height it took, 0 when there is none."""
    if path is None or not path.is_file():
        return 0.0
    try:
        with Image.open(path) as img:
            width_px, height_px = img.size
        box_w, box_h = _LOGO_BOX
        scale = min(box_w / width_px, box_h / height_px)
        width, height = width_px * scale, height_px * scale
        pdf.image(path, x=_MARGIN, y=_MARGIN, w=width, h=height)
    except (OSError, UnidentifiedImageError, FPDFException, ValueError) as exc:
        # A broken logo must not stop invoicing; the operator sees this in the log.
        log.warning("ISP logo %s left out: %s", path, exc)
        return 0.0
    return height


def _draw_header(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    text = fonts.printable
    left_w = 95.0
    logo_h = _draw_logo(pdf, doc.isp.logo_path)
    pdf.set_xy(_MARGIN, _MARGIN + logo_h + (3 if logo_h else 0))
    pdf.set_font(fonts.family, "B", 14)
    pdf.multi_cell(left_w, 6.5, text(doc.isp.name), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(fonts.family, "", 9)
    pdf.set_text_color(*_MUTED)
    isp = doc.isp
    seller = [isp.address, isp.phone, isp.email,
              f"{_tax_id_label(doc)}: {isp.tax_id}" if isp.tax_id else "",
              f"State: {isp.state_name} ({isp.state_code})" if isp.tax_profile == "in-gst"
              and isp.state_code else ""]
    for line in seller:
        if line:
            pdf.multi_cell(left_w, 4.5, text(line), align="L", new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()

    right_x = pdf.w - _MARGIN - 80
    pdf.set_xy(right_x, _MARGIN)
    pdf.set_text_color(*_INK)
    pdf.set_font(fonts.family, "B", 20 if len(doc.title) <= 12 else 14)
    pdf.multi_cell(80, 8, text(doc.title), align="R", new_x="LEFT", new_y="NEXT")
    if doc.isp.tax_profile == "bd-mushak":
        # The form's own reference (VAT and SD Rules 2016, rule 40(1)).
        pdf.set_font(fonts.family, "", 7)
        pdf.set_text_color(*_MUTED)
        pdf.set_x(right_x)
        rule = "(g)" if doc.credits else "(c)"
        pdf.cell(80, 4, f"National Board of Revenue, see rule 40(1){rule}", align="R",
                 new_x="LEFT", new_y="NEXT")
        pdf.set_text_color(*_INK)
    pdf.ln(2)
    issued = _format_date(doc.issued_on) + (f", {doc.issued_at}" if doc.issued_at else "")
    rows = [("Number", doc.number), ("Issued", issued)]
    if doc.due_on is not None:
        rows.append(("Due", _format_date(doc.due_on)))
    if doc.credits is not None:
        rows.append(("Credits", f"{doc.credits[0]} of {_format_date(doc.credits[1])}"))
    rows.append(("Period", _format_period(doc.period_start, doc.period_end)))
    for label, value in rows:
        pdf.set_x(right_x)
        pdf.set_font(fonts.family, "", 9)
        pdf.set_text_color(*_MUTED)
        pdf.cell(22, 5.5, label, align="R")
        pdf.set_font(fonts.family, "B" if label == "Number" else "", 9)
        pdf.set_text_color(*_INK)
        pdf.cell(58, 5.5, text(value), align="R", new_x="LMARGIN", new_y="NEXT")

    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)
    _rule(pdf)


def _draw_bill_to(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    text = fonts.printable
    top = pdf.get_y() + 5
    pdf.set_xy(_MARGIN, top)
    _caption(pdf, fonts, "BILL TO", 95)
    pdf.set_font(fonts.family, "B", 11)
    pdf.multi_cell(95, 6, text(doc.subscriber_name), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(fonts.family, "", 9)
    if doc.subscriber_address:
        pdf.multi_cell(95, 4.5, text(doc.subscriber_address), align="L", new_x="LMARGIN",
                       new_y="NEXT")
    if doc.subscriber_tax_id:
        pdf.cell(95, 5, text(f"{_tax_id_label(doc)}: {doc.subscriber_tax_id}"),
                 new_x="LMARGIN", new_y="NEXT")
    if doc.place_of_supply:
        pdf.cell(95, 5, text(f"Place of supply: {doc.place_of_supply}"), new_x="LMARGIN",
                 new_y="NEXT")
    pdf.cell(95, 5, text(f"Username: {doc.subscriber_username}"), new_x="LMARGIN", new_y="NEXT")
    if doc.subscriber_phone:
        pdf.cell(95, 5, text(f"Phone: {doc.subscriber_phone}"), new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()

    right_x = pdf.w - _MARGIN - 80
    pdf.set_xy(right_x, top)
    _caption(pdf, fonts, "PLAN", 80, align="R")
    pdf.set_x(right_x)
    pdf.set_font(fonts.family, "B", 11)
    pdf.multi_cell(80, 6, text(doc.plan_name), align="R", new_x="LMARGIN", new_y="NEXT")

    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)


def _tax_cell(tax: TaxAmount | None, currency: str) -> str:
    if tax is None:
        return ""
    return f"{_format_number(tax.rate)}%\n{format_money(tax.amount, currency)}"


def _head_names(doc: InvoiceDocument) -> list[str]:
    """The tax heads a tax document has a column for, in order."""
    names: list[str] = []
    for line in doc.lines:
        for tax in line.taxes:
            if tax.name not in names:
                names.append(tax.name)
    return names


def _line_total(line: DocumentLine) -> Decimal:
    return line.amount + line.duty + sum((t.amount for t in line.taxes), Decimal(0))


def _draw_lines(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    text = fonts.printable
    pdf.set_font(fonts.family, "", 9)
    pdf.set_draw_color(*_RULE)
    heading = FontFace(emphasis="BOLD", color=_INK, fill_color=_SHADE)
    profile = doc.isp.tax_profile
    cur = doc.currency
    if profile not in ("bd-mushak", "in-gst"):
        widths: tuple[float, ...] = (88, 16, 38, 38)
        head: tuple[str, ...] = ("Description", "Qty", "Unit price", "Amount")

        def cells(line: DocumentLine) -> tuple[str, ...]:
            return (text(line.description), _format_number(line.quantity),
                    format_money(line.unit_price, cur), format_money(line.amount, cur))
    else:
        names = _head_names(doc)
        duty = profile == "bd-mushak" and any(line.duty for line in doc.lines)
        fixed = 12 + 24 + (22 if duty else 0) + 22 * len(names) + 26
        sac = 18 if profile == "in-gst" else 0
        widths = (pdf.epw - fixed - sac, *((sac,) if sac else ()), 12, 24,
                  *((22,) if duty else ()), *(22,) * len(names), 26)
        head = ("Description", *(("SAC",) if sac else ()), "Qty", "Value",
                *(("SD",) if duty else ()), *names, "Total")

        def cells(line: DocumentLine) -> tuple[str, ...]:
            by_name = {t.name: t for t in line.taxes}
            sd = (TaxAmount("SD", doc.duty_rate, line.duty),) if duty else ()
            return (text(line.description), *((text(doc.isp.sac_code),) if sac else ()),
                    _format_number(line.quantity), format_money(line.amount, cur),
                    *(_tax_cell(t, cur) for t in sd),
                    *(_tax_cell(by_name.get(n), cur) for n in names),
                    format_money(_line_total(line), cur))

    with pdf.table(
        col_widths=widths,
        text_align=("LEFT", *(("RIGHT",) * (len(widths) - 1))),
        borders_layout="HORIZONTAL_LINES",
        headings_style=heading,
        line_height=5.5 if len(widths) == 4 else 4.5,
        padding=(1.5, 2),
        width=pdf.epw,
    ) as table:
        table.row(head)
        for line in doc.lines:
            table.row(cells(line))
    pdf.ln(4)


def _draw_totals(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    rows = [("Subtotal", format_money(doc.subtotal, doc.currency))]
    if doc.duty:
        rows.append((f"SD {_format_number(doc.duty_rate)}%", format_money(doc.duty,
                                                                         doc.currency)))
    if doc.taxes:
        rows += [(f"{t.name} {_format_number(t.rate)}%", format_money(t.amount, doc.currency))
                 for t in doc.taxes]
    elif doc.tax_percent:
        rows.append(
            (f"VAT {_format_number(doc.tax_percent)}%", format_money(doc.tax, doc.currency))
        )
    total = format_money(doc.total, doc.currency)
    pdf.set_font(fonts.family, "B", 12)
    # The total is the widest figure; the column grows for it instead of running into "Total".
    label_w, value_w = 42.0, max(38.0, pdf.get_string_width(total) + 2 * pdf.c_margin + 1)
    x = pdf.w - _MARGIN - label_w - value_w
    due_rows = _amount_due_rows(doc)
    # Totals and the payment link stay together below the last line, on a new page if need be.
    height = 6 * len(rows) + 2.5 + 14 + 7 * len(due_rows) + (6 if doc.payment_link else 0)
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
    for label, value in rows:
        pdf.set_x(x)
        pdf.set_font(fonts.family, "", 9)
        pdf.set_text_color(*_MUTED)
        pdf.cell(label_w, 6, label, align="R")
        pdf.set_text_color(*_INK)
        pdf.cell(value_w, 6, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*_INK)
    pdf.line(x + 10, pdf.get_y() + 1, pdf.w - _MARGIN, pdf.get_y() + 1)
    pdf.ln(2.5)
    pdf.set_x(x)
    pdf.set_font(fonts.family, "B", 12)
    pdf.cell(label_w, 8, "Total", align="R")
    pdf.cell(value_w, 8, total, align="R")
    pdf.ln(10)
    for label, value, bold in due_rows:
        pdf.set_x(x - 20)
        pdf.set_font(fonts.family, "B" if bold else "", 11 if bold else 9)
        pdf.set_text_color(*(_INK if bold else _MUTED))
        pdf.cell(label_w + 20, 7, label, align="R")
        pdf.set_text_color(*_INK)
        pdf.cell(value_w, 7, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _amount_due_rows(doc: InvoiceDocument) -> list[tuple[str, str, bool]]:
    """What was owed before the document, and what is to pay now (label, value, bold)."""
    if doc.previous_balance is None or doc.amount_due is None:
        return []
    cur = doc.currency
    rows: list[tuple[str, str, bool]] = []
    if doc.previous_balance > 0:
        rows.append(("Previous balance due", format_money(doc.previous_balance, cur), False))
    elif doc.previous_balance < 0:
        applied = min(-doc.previous_balance, max(doc.total, Decimal(0)))
        if applied:
            rows.append(("Credit applied", format_money(-applied, cur), False))
    rows.append(("Amount due now", format_money(doc.amount_due, cur), True))
    return rows


def _draw_payment_link(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    if not doc.payment_link:
        return
    pdf.set_font(fonts.family, "", 10)
    pdf.set_text_color(*_LINK)
    label = fonts.printable(f"Pay online: {doc.payment_link}")
    pdf.multi_cell(0, 6, label, align="L", link=doc.payment_link, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*_INK)


def _draw_declarations(pdf: FPDF, doc: InvoiceDocument, fonts: _Fonts) -> None:
    """A credit note's reason, India's reverse-charge statement (CGST rule 46(p)), and the
    authorised signatory (Mushak-6.3; CGST rule 46(q))."""
    text = fonts.printable
    isp = doc.isp
    lines = []
    if doc.reason:
        lines.append(f"Reason: {doc.reason}")
    if isp.tax_profile == "in-gst":
        lines.append("Tax payable on reverse charge: No")
    if not lines and not isp.signatory_name:
        return
    pdf.ln(2)
    pdf.set_font(fonts.family, "", 9)
    for line in lines:
        pdf.multi_cell(0, 5, text(line), align="L", new_x="LMARGIN", new_y="NEXT")
    if isp.signatory_name:
        pdf.ln(8)
        pdf.set_x(pdf.w - _MARGIN - 80)
        pdf.set_font(fonts.family, "B", 9)
        pdf.multi_cell(80, 5, text(f"For {isp.name}"), align="R", new_x="LMARGIN",
                       new_y="NEXT")
        pdf.ln(8)
        pdf.set_font(fonts.family, "", 9)
        for line in ("Authorised signatory", isp.signatory_name, isp.signatory_designation):
            if line:
                pdf.set_x(pdf.w - _MARGIN - 80)
                pdf.multi_cell(80, 4.5, text(line), align="R", new_x="LMARGIN",
                               new_y="NEXT")


def _caption(pdf: FPDF, fonts: _Fonts, label: str, width: float, align: str = "L") -> None:
    pdf.set_font(fonts.family, "B", 8)
    pdf.set_text_color(*_MUTED)
    pdf.cell(width, 5, label, align=align, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*_INK)


def _rule(pdf: FPDF) -> None:
    pdf.set_draw_color(*_RULE)
    pdf.line(_MARGIN, pdf.get_y(), pdf.w - _MARGIN, pdf.get_y())
