"""Money: ``Decimal`` amounts rounded per currency in one place. Pure, no I/O.

Every amount radbill stores or prints goes through :func:`round_money`. Rounding is half-up,
the way a cashier rounds, to the currency's minor unit (ISO 4217 exponent).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from radbill.errors import InvalidInput

# ISO 4217 minor-unit exponents of the currencies radbill accepts.
EXPONENTS: dict[str, int] = {
    "BDT": 2, "INR": 2, "USD": 2, "PKR": 2, "NPR": 2, "LKR": 2, "EUR": 2, "GBP": 2,
    "AED": 2, "SAR": 2, "MYR": 2, "IDR": 2, "JPY": 0, "KWD": 3,
}
ZERO = Decimal("0")
# each currency's minor unit as a quantum (round_money runs several times per invoice)
_QUANTA: dict[str, Decimal] = {c: Decimal(1).scaleb(-e) for c, e in EXPONENTS.items()}


def exponent(currency: str) -> int:
    """The number of decimals of *currency*."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise InvalidInput(
            f"unsupported currency {currency!r}: use one of {', '.join(sorted(EXPONENTS))}"
        ) from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    """*amount* rounded half-up to *currency*'s minor unit."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    quantum = _QUANTA.get(currency)
    if quantum is None:
        quantum = Decimal(1).scaleb(-exponent(currency))  # raises: not a currency radbill takes
    return amount.quantize(quantum, rounding=ROUND_HALF_UP)


def percent_of(amount: Decimal, percent: Decimal, currency: str) -> Decimal:
    """*percent* % of *amount*, rounded."""
    return round_money(amount * percent / Decimal(100), currency)


def prorate(amount: Decimal, part_days: int, whole_days: int, currency: str) -> Decimal:
    """The share of *amount* for *part_days* out of *whole_days*, rounded."""
    if whole_days <= 0 or not 0 <= part_days <= whole_days:
        raise ValueError(f"cannot prorate {part_days} of {whole_days} days")
    return round_money(amount * part_days / whole_days, currency)


def format_money(amount: Decimal, currency: str) -> str:
    """``BDT 1,050.00``."""
    places = exponent(currency)
    return f"{currency} {round_money(amount, currency):,.{places}f}"
