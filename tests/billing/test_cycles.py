import datetime as dt

import pytest

from billing.cycles import FIXED_DAY, Cycle, add_months, full_period_days, period_end

D = dt.date


@pytest.mark.parametrize(
    ("start", "anchor", "expected"),
    [(D(2026, 1, 31), 31, D(2026, 2, 28)), (D(2026, 2, 28), 31, D(2026, 3, 31)),
     (D(2024, 1, 31), 31, D(2024, 2, 29)), (D(2026, 11, 15), 15, D(2026, 12, 15)),
     (D(2026, 12, 15), 15, D(2027, 1, 15))],
)
def test_monthly_anniversary_clamps_and_returns_to_anchor(start, anchor, expected) -> None:  # type: ignore[no-untyped-def]
    assert period_end(Cycle("monthly"), start, anchor) == expected


def test_fixed_billing_day() -> None:
    cycle = Cycle("monthly", FIXED_DAY, billing_day=1)
    assert period_end(cycle, D(2026, 11, 20), 20) == D(2026, 12, 1)  # short first period
    assert period_end(cycle, D(2026, 12, 1), 20) == D(2027, 1, 1)
    assert full_period_days(cycle, D(2026, 12, 1), 20) == 30  # November
    cycle10 = Cycle("monthly", FIXED_DAY, billing_day=10)
    assert period_end(cycle10, D(2026, 11, 5), 5) == D(2026, 11, 10)


def test_weekly_daily_and_n_days() -> None:
    assert period_end(Cycle("weekly"), D(2026, 11, 24), 24) == D(2026, 12, 1)
    assert period_end(Cycle("daily"), D(2026, 11, 30), 30) == D(2026, 12, 1)
    assert period_end(Cycle("days", validity_days=30), D(2026, 11, 24), 24) == D(2026, 12, 24)


def test_invalid_cycles() -> None:
    with pytest.raises(ValueError, match="1-28"):
        Cycle("monthly", FIXED_DAY, billing_day=31)
    with pytest.raises(ValueError, match="validity"):
        Cycle("days")


def test_add_months_backwards() -> None:
    assert add_months(D(2026, 3, 31), -1, 31) == D(2026, 2, 28)
