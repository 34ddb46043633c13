"""The pure rules: encodings and parts, numbers, quiet hours, back-off, token bucket,
staleness, amounts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.rules import (
    Encoding,
    InvalidNumber,
    Now,
    QuietHours,
    TokenBucket,
    backoff,
    format_amount,
    hold_until,
    normalise_msisdn,
    sms_cost,
    sms_size,
    stale_reason,
)


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", Encoding.GSM7, 0, 1),
    ("a" * 160, Encoding.GSM7, 160, 1),
    ("a" * 161, Encoding.GSM7, 161, 2),
    ("a" * 306, Encoding.GSM7, 306, 2),
    ("a" * 307, Encoding.GSM7, 307, 3),
    ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters count double
    ("€" * 81, Encoding.GSM7, 162, 2),
    ("a" * 159 + "{", Encoding.GSM7, 161, 2),
    ("আ" * 70, Encoding.UCS2, 70, 1),
    ("আ" * 71, Encoding.UCS2, 71, 2),
    ("a" * 133 + "আ", Encoding.UCS2, 134, 2),  # one Bengali character forces UCS-2
    ("a" * 134 + "আ", Encoding.UCS2, 135, 3),
    ("😀" * 35, Encoding.UCS2, 70, 1),  # outside the BMP: two UTF-16 units
])
def test_sms_size(text: str, encoding: Encoding, units: int, segments: int) -> None:
    size = sms_size(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


def test_cost_is_per_part() -> None:
    assert sms_cost(sms_size("আ" * 71), Decimal("0.35")) == Decimal("0.70")


@given(st.text(max_size=400))
def test_parts_hold_the_text(text: str) -> None:
    size = sms_size(text)
    per = (160, 153) if size.encoding is Encoding.GSM7 else (70, 67)
    assert size.units <= per[0] if size.segments == 1 else size.units <= per[1] * size.segments
    assert size.segments == 1 or size.units > per[0]


@pytest.mark.parametrize(("raw", "country", "want"), [
    ("01711000001", "BD", "8801711000001"),
    ("+880 1711-000001", "BD", "8801711000001"),
    ("8801711000001", "IN", "8801711000001"),
    ("1711000001", "BD", "8801711000001"),
    ("9876543210", "IN", "919876543210"),
    ("+91 98765 43210", "IN", "919876543210"),
    ("09876543210", "IN", "919876543210"),
    ("00919876543210", "BD", "919876543210"),
])
def test_numbers_are_normalised(raw: str, country: str, want: str) -> None:
    assert normalise_msisdn(raw, country) == want

BENGALI_DIGITS = "".join(chr(0x09E6 + int(d)) for d in "01711000001")  # isdigit(), not ASCII


@pytest.mark.parametrize("raw", ["", "0171100000", "01211000001", "abc", "+1 555 0100",
                                 BENGALI_DIGITS, "8801711000001" * 3])
def test_invalid_numbers_say_why(raw: str) -> None:
    with pytest.raises(InvalidNumber, match=r"not|longer"):
        normalise_msisdn(raw, "BD")


DHAKA = QuietHours()


def at(h: int, m: int = 0) -> dt.datetime:
    """A Dhaka wall-clock time on 2026-11-30, as UTC (Dhaka is UTC+6)."""
    return dt.datetime(2026, 11, 30, h, m, tzinfo=dt.UTC) - dt.timedelta(hours=6)


def test_quiet_hours_hold_dunning_sms_until_the_morning() -> None:
    assert hold_until("reminder", "sms", at(20, 59), DHAKA) is None
    assert hold_until("reminder", "sms", at(21, 0), DHAKA) == at(8, 0) + dt.timedelta(days=1)
    assert hold_until("reminder", "sms", at(3, 0), DHAKA) == at(8, 0)
    assert hold_until("reminder", "sms", at(8, 0), DHAKA) is None
    # the subscriber is waiting for these; e-mail is never held
    assert hold_until("payment_received", "sms", at(23), DHAKA) is None
    assert hold_until("reconnected", "sms", at(23), DHAKA) is None
    assert hold_until("reminder", "email", at(23), DHAKA) is None


def test_backoff_grows_is_capped_and_jittered_deterministically() -> None:
    waits = [backoff(n, "k").total_seconds() for n in range(1, 10)]
    assert 15 <= waits[0] <= 30
    assert waits[3] > waits[0]
    assert max(waits) <= 3600
    assert backoff(3, "k") == backoff(3, "k")
    assert backoff(3, "k") != backoff(3, "other")


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.take(8, 0.0) == 5
    assert bucket.take(1, 0.0) == 0
    assert bucket.wait(0.0) == pytest.approx(0.1)
    assert bucket.take(10, 0.3) == 3
    assert bucket.take(10, 100.0) == 5  # never more than the burst


@pytest.mark.parametrize(("kind", "state", "stale"), [
    ("reminder", Now(invoice_open=False, subscriber_status="active"), True),
    ("reminder", Now(invoice_open=True, subscriber_status="active"), False),
    ("due_notice", Now(invoice_open=True, subscriber_status="active",
                       amount_due=Decimal("0.00")), True),
    ("suspended", Now(invoice_open=None, subscriber_status="active"), True),
    ("suspended", Now(invoice_open=None, subscriber_status="suspended"), False),
    ("payment_received", Now(invoice_open=False, subscriber_status="active"), False),
])
def test_stale(kind: str, state: Now, stale: bool) -> None:
    assert (stale_reason(kind, state) is not None) is stale


@pytest.mark.parametrize(("amount", "currency", "text"), [
    ("120000.5", "BDT", "৳1,20,000.50"),
    ("1234567.891", "INR", "₹12,34,567.89"),
    ("999", "BDT", "৳999.00"),
    ("1234567", "USD", "$1,234,567.00"),
    ("-1500", "BDT", "-৳1,500.00"),
    ("12.5", "EUR", "12.50 EUR"),
])
def test_amounts_for_the_locale(amount: str, currency: str, text: str) -> None:
    assert format_amount(Decimal(amount), currency) == text
