from decimal import Decimal

import pytest

from billing.money import format_money, percent_of, prorate, round_money
from radbill.errors import InvalidInput


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [("10.005", "BDT", "10.01"), ("10.004", "INR", "10.00"), ("2.675", "USD", "2.68"),
     ("-2.675", "USD", "-2.68"), ("99.5", "JPY", "100"), ("1.0005", "KWD", "1.001")],
)
def test_round_half_up_per_currency(amount: str, currency: str, expected: str) -> None:
    assert round_money(Decimal(amount), currency) == Decimal(expected)
    assert str(round_money(Decimal(amount), currency)) == expected


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        round_money(10.5, "BDT")  # type: ignore[arg-type]


def test_unknown_currency_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="unsupported currency 'XXX'"):
        round_money(Decimal(1), "XXX")


def test_percent_and_prorate() -> None:
    assert percent_of(Decimal("1000.00"), Decimal("5"), "BDT") == Decimal("50.00")
    assert percent_of(Decimal("999.99"), Decimal("7.5"), "INR") == Decimal("75.00")
    assert prorate(Decimal("1000.00"), 10, 30, "BDT") == Decimal("333.33")
    assert prorate(Decimal("500.00"), 20, 30, "BDT") == Decimal("333.33")
    with pytest.raises(ValueError):  # noqa: PT011
        prorate(Decimal(1), 31, 30, "BDT")


def test_format() -> None:
    assert format_money(Decimal("1050"), "BDT") == "BDT 1,050.00"
