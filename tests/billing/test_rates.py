import pytest

from billing.rates import Burst, RatePair, format_rate, make_burst, mikrotik_rate_limit, parse_rate
from radbill.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "bps"),
    [("10M", 10_000_000), ("512k", 512_000), ("512K", 512_000), ("1G", 1_000_000_000),
     ("1.5M", 1_500_000), ("64000", 64_000), (" 2M ", 2_000_000)],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize("text", ["", "M", "10Q", "-1M", "0", "0M", "1.2.3M", "200G", "10 M/"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_rate(text)


@pytest.mark.parametrize(
    ("bps", "text"), [(10_000_000, "10M"), (512_000, "512k"), (3_750_000, "3750k"), (1234, "1234")]
)
def test_format_rate(bps: int, text: str) -> None:
    assert format_rate(bps) == text


def test_rate_pair_is_download_upload_and_router_side_swaps() -> None:
    pair = RatePair.parse("20M/5M")
    assert (pair.down, pair.up) == (20_000_000, 5_000_000)
    assert str(pair) == "20M/5M"
    # MikroTik rx/tx: rx is what the router receives, the client's upload.
    assert pair.router_side() == "5M/20M"


def test_single_rate_means_both_ways() -> None:
    assert RatePair.parse("8M") == RatePair(8_000_000, 8_000_000)


def test_mikrotik_rate_limit_with_burst() -> None:
    base = RatePair.parse("20M/5M")
    burst = make_burst(base, "40M/10M", None, None)
    assert burst == Burst(RatePair(40_000_000, 10_000_000), RatePair(15_000_000, 3_750_000), 16)
    assert mikrotik_rate_limit(base, burst) == "5M/20M 10M/40M 3750k/15M 16/16"
    assert mikrotik_rate_limit(base) == "5M/20M"


@pytest.mark.parametrize(
    ("burst", "threshold", "seconds", "message"),
    [("10M/10M", None, None, "faster"), ("40M/10M", "30M/4M", None, "exceed"),
     ("40M/10M", None, 0, "between")],
)
def test_bad_burst(burst: str, threshold: str | None, seconds: int | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make_burst(RatePair.parse("20M/5M"), burst, threshold, seconds)
