"""Speeds as sold and as MikroTik wants them. Pure functions, no I/O.

Operators sell "20 Mbps down / 5 Mbps up", so radbill's own notation is DOWNLOAD/UPLOAD. A
MikroTik ``Mikrotik-Rate-Limit`` is written from the router's side, ``rx/tx``, where rx is what
the router receives from the client (the client's upload). :func:`mikrotik_rate_limit` does the
swap in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from radbill.errors import InvalidInput

_RATE_RE = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,6})?)\s*([kKmMgG]?)\s*")
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
MAX_BPS = 100_000_000_000  # 100G: anything above is a typo


def parse_rate(text: str) -> int:
    """``"10M"`` → 10_000_000 bits per second. Suffixes k, M, G are powers of 1000 (RouterOS)."""
    m = _RATE_RE.fullmatch(text or "")
    if not m:
        raise InvalidInput(
            f"malformed rate {text!r}: use a number with k, M or G, e.g. 512k or 10M"
        )
    number, unit = m.groups()
    bps = round(Decimal(number) * _UNITS[unit.lower()])
    if bps <= 0:
        raise InvalidInput(f"rate {text!r} must be above zero")
    if bps > MAX_BPS:
        raise InvalidInput(f"rate {text!r} is above 100G")
    return bps


def format_rate(bps: int) -> str:
    """10_000_000 → ``"10M"``; 512_000 → ``"512k"``; other values in plain bits per second."""
    if bps % 1_000_000 == 0:
        return f"{bps // 1_000_000}M"
    if bps % 1_000 == 0:
        return f"{bps // 1_000}k"
    return str(bps)


@dataclass(frozen=True)
class RatePair:
    """A download and an upload rate in bits per second (the subscriber's point of view)."""

    down: int
    up: int

    @classmethod
    def parse(cls, text: str) -> RatePair:
        """``"20M/5M"`` (download/upload); a single value means the same both ways."""
        parts = (text or "").split("/")
        if len(parts) == 1:
            bps = parse_rate(parts[0])
            return cls(bps, bps)
        if len(parts) != 2:
            raise InvalidInput(f"malformed rate {text!r}: use DOWNLOAD/UPLOAD, e.g. 20M/5M")
        return cls(parse_rate(parts[0]), parse_rate(parts[1]))

    def __str__(self) -> str:
        return f"{format_rate(self.down)}/{format_rate(self.up)}"

    def router_side(self) -> str:
        """MikroTik's ``rx/tx`` order: upload first."""
        return f"{format_rate(self.up)}/{format_rate(self.down)}"


@dataclass(frozen=True)
class Burst:
    """MikroTik burst: up to *rate* while the average stays under *threshold*, for *seconds*."""

    rate: RatePair
    threshold: RatePair
    seconds: int


def make_burst(base: RatePair, rate: str, threshold: str | None, seconds: int | None) -> Burst:
    """Validate a burst against the base rate. Threshold defaults to 3/4 of the base rate and
    the burst time to 16 s (MikroTik's usual guidance)."""
    burst_rate = RatePair.parse(rate)
    if burst_rate.down <= base.down or burst_rate.up <= base.up:
        raise InvalidInput(f"burst {burst_rate} must be faster than the rate {base} both ways")
    thr = (
        RatePair.parse(threshold)
        if threshold
        else RatePair(base.down * 3 // 4, base.up * 3 // 4)
    )
    if thr.down > base.down or thr.up > base.up:
        raise InvalidInput(f"burst threshold {thr} must not exceed the rate {base}")
    secs = 16 if seconds is None else seconds
    if not 1 <= secs <= 3600:
        raise InvalidInput(f"burst time {secs}s must be between 1 and 3600 seconds")
    return Burst(burst_rate, thr, secs)


def mikrotik_rate_limit(rate: RatePair, burst: Burst | None = None) -> str:
    """The ``Mikrotik-Rate-Limit`` value: ``rx/tx [burst-rx/tx threshold-rx/tx time/time]``."""
    text = rate.router_side()
    if burst is not None:
        text += (
            f" {burst.rate.router_side()} {burst.threshold.router_side()}"
            f" {burst.seconds}/{burst.seconds}"
        )
    return text


class PlanSpeeds(Protocol):
    """The speed columns of a plan: a :class:`~billing.models.Plan`, or a row of them read
    without the ORM (:mod:`billing.authfeed`)."""

    @property
    def download_bps(self) -> int: ...
    @property
    def upload_bps(self) -> int: ...
    @property
    def burst_download_bps(self) -> int | None: ...
    @property
    def burst_upload_bps(self) -> int | None: ...
    @property
    def burst_threshold_download_bps(self) -> int | None: ...
    @property
    def burst_threshold_upload_bps(self) -> int | None: ...
    @property
    def burst_time_s(self) -> int | None: ...
    @property
    def fup_download_bps(self) -> int | None: ...
    @property
    def fup_upload_bps(self) -> int | None: ...


def plan_rate(plan: PlanSpeeds) -> RatePair:
    """The plan's normal speed."""
    return RatePair(plan.download_bps, plan.upload_bps)


def plan_burst(plan: PlanSpeeds) -> Burst | None:
    """The plan's burst settings, if it has any."""
    if plan.burst_download_bps is None or plan.burst_upload_bps is None:
        return None
    return Burst(
        RatePair(plan.burst_download_bps, plan.burst_upload_bps),
        RatePair(plan.burst_threshold_download_bps or 0, plan.burst_threshold_upload_bps or 0),
        plan.burst_time_s or 16,
    )


def plan_fup_rate(plan: PlanSpeeds) -> RatePair | None:
    """The fair-usage speed once the cap is reached, if the plan has one."""
    if plan.fup_download_bps is None or plan.fup_upload_bps is None:
        return None
    return RatePair(plan.fup_download_bps, plan.fup_upload_bps)
