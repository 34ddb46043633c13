"""Tax on documents, by the ISP's country profile. Pure, no I/O.

Tax is computed per line and rounded per line and per tax head (a tax invoice shows the rate
and amount of each head on each line); the document's tax is the sum of its lines'.

Profiles (``IspSettings.tax_profile``):

``""`` (none)
    A plain invoice with one "VAT" head at the plan's tax percent.

``"bd-mushak"`` (Bangladesh)
    Tax invoice Mushak-6.3 (VAT and SD Act 2012 s.51; VAT and SD Rules 2016 rule 40(1)(c));
    credit note Mushak-6.7 (Act s.52; rule 40(1)(g)). Supplementary duty, where one applies,
    is charged on the value first and VAT on the value plus the duty (Act s.55(5), s.57(b)).
    Broadband: VAT 5%, no SD as of 2025 (the SD imposed in January 2025 was withdrawn within
    weeks): the rates are ISP settings, not constants here.

``"in-gst"`` (India)
    Tax invoice per CGST Rules 2017 rule 46; credit notes per rule 53(1A). Intra-State
    supply (the supplier's State, the first two digits of its GSTIN, is the place of
    supply) is taxed CGST + SGST at half the rate each, inter-State supply IGST at the full
    rate (IGST Act s.7(3), s.8(2)); each head is rounded on its own. The place of supply of
    a fixed line or broadband connection is where it is installed (IGST Act s.12(11)(a)).
    Internet access is SAC 998422 at 18%. A late fee is part of the value of supply (CGST Act
    s.15(2)(d)): set ``late_fee_taxable``. Union Territories without a legislature levy UTGST
    instead of SGST; radbill prints "SGST" for them (not handled).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from billing.money import ZERO, percent_of

NONE, BANGLADESH, INDIA = "", "bd-mushak", "in-gst"
PROFILES = (NONE, BANGLADESH, INDIA)

# Document numbers an Indian tax invoice can carry: at most 16 characters of letters, digits,
# "-" and "/" (CGST rule 46(b), rule 53(1A)(c)); radbill numbers are the prefix and six digits.
NUMBER_PREFIX_RE = re.compile(r"[A-Za-z0-9/\-]{0,10}")


# GST State and Union Territory codes (the first two digits of a GSTIN), for "place of supply
# along with the name of the State" (CGST rule 46(n)).
INDIA_STATES = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh",
    "05": "Uttarakhand", "06": "Haryana", "07": "Delhi", "08": "Rajasthan",
    "09": "Uttar Pradesh", "10": "Bihar", "11": "Sikkim", "12": "Arunachal Pradesh",
    "13": "Nagaland", "14": "Manipur", "15": "Mizoram", "16": "Tripura", "17": "Meghalaya",
    "18": "Assam", "19": "West Bengal", "20": "Jharkhand", "21": "Odisha",
    "22": "Chhattisgarh", "23": "Madhya Pradesh", "24": "Gujarat",
    "26": "Dadra and Nagar Haveli and Daman and Diu", "27": "Maharashtra", "29": "Karnataka",
    "30": "Goa", "31": "Lakshadweep", "32": "Kerala", "33": "Tamil Nadu", "34": "Puducherry",
    "35": "Andaman and Nicobar Islands", "36": "Telangana", "37": "Andhra Pradesh",
    "38": "Ladakh", "97": "Other Territory",
}


def place_of_supply(profile: str, state_code: str | None) -> str:
    """How a place of supply is printed: "Karnataka (29)" in India, nothing elsewhere."""
    if profile != INDIA or not state_code:
        return ""
    name = INDIA_STATES.get(state_code)
    return f"{name} ({state_code})" if name else state_code


@dataclass(frozen=True)
class TaxHead:
    """One tax on a line or a document: its name, rate and amount."""

    name: str
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True)
class LineTax:
    """The duty and the tax heads of one line."""

    duty: Decimal
    heads: tuple[TaxHead, ...]

    @property
    def tax(self) -> Decimal:
        return sum((h.amount for h in self.heads), ZERO)


@dataclass(frozen=True)
class TaxRule:
    """How a document is taxed: the profile, the rates and, in India, whether the supply is
    within one State."""

    profile: str
    vat_percent: Decimal
    duty_percent: Decimal = ZERO
    intra_state: bool = True

    def line(self, amount: Decimal, currency: str) -> LineTax:
        """The duty and tax heads of a line of *amount* (negative on credit notes)."""
        duty = ZERO
        if self.profile == BANGLADESH and self.duty_percent:
            duty = percent_of(amount, self.duty_percent, currency)
        base = amount + duty
        if not self.vat_percent:
            return LineTax(duty, ())
        if self.profile == INDIA:
            if self.intra_state:
                half = self.vat_percent / 2
                return LineTax(duty, (TaxHead("CGST", half, percent_of(base, half, currency)),
                                      TaxHead("SGST", half, percent_of(base, half, currency))))
            return LineTax(duty, (TaxHead("IGST", self.vat_percent,
                                          percent_of(base, self.vat_percent, currency)),))
        return LineTax(duty, (TaxHead("VAT", self.vat_percent,
                                      percent_of(base, self.vat_percent, currency)),))


def breakdown(lines: Iterable[LineTax], duty_percent: Decimal) -> list[dict[str, str]]:
    """The document's tax heads (summed over its lines), SD first, as stored and printed."""
    out: dict[tuple[str, Decimal], Decimal] = {}  # a head per name and rate
    duty = ZERO
    for ln in lines:
        duty += ln.duty
        for head in ln.heads:
            out[head.name, head.rate] = out.get((head.name, head.rate), ZERO) + head.amount
    rows = [{"name": "SD", "rate": str(duty_percent), "amount": str(duty)}] if duty else []
    return rows + [{"name": name, "rate": str(rate), "amount": str(amount)}
                   for (name, rate), amount in out.items()]


def intra_state(seller_state: str, place_of_supply: str | None) -> bool:
    """India: whether the supply stays within the seller's State (CGST + SGST)."""
    return not place_of_supply or not seller_state or place_of_supply == seller_state


def document_title(profile: str, credit_note: bool) -> str:
    """What a document is called on its face."""
    if credit_note:
        return "Credit note (Mushak-6.7)" if profile == BANGLADESH else "Credit note"
    if profile == BANGLADESH:
        return "Tax invoice (Mushak-6.3)"
    return "Tax invoice" if profile == INDIA else "Invoice"
