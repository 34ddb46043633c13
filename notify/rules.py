"""Notification rules: pure functions over plain values, no I/O, the clock passed in.

SMS encoding and segments (3GPP TS 23.038), phone numbers, quiet hours, retry back-off, the
per-gateway token bucket, which events are stale, and amounts written for a locale.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

# -- encoding and segments ----------------------------------------------------------------

# The GSM 03.38 default alphabet and its extension table (each extension character is sent
# as ESC + char, so it takes two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


class Encoding(enum.StrEnum):
    """How an SMS is sent."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class SmsSize:
    """An SMS text's encoding, its length in the encoding's units and its parts."""

    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_size(text: str) -> SmsSize:
    """GSM-7 when every character is in the GSM alphabet (extension characters count
    double), else UCS-2. One part holds 160 septets or 70 UTF-16 units; a concatenated
    message's parts hold 153 or 67 (the user data header takes the rest)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, Encoding.GSM7
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, Encoding.UCS2
    segments = 1 if units <= single else -(-units // part)
    return SmsSize(encoding, units, segments)


def sms_cost(size: SmsSize, per_segment: Decimal) -> Decimal:
    """What an SMS costs: every part is billed."""
    return (per_segment * size.segments).quantize(Decimal("0.01"), ROUND_HALF_UP)


# -- phone numbers ------------------------------------------------------------------------

COUNTRY_CODES = {"BD": "880", "IN": "91"}
_BD = re.compile(r"8801[3-9]\d{8}")
_IN = re.compile(r"91[6-9]\d{9}")


class InvalidNumber(ValueError):
    """A number no SMS can reach (a permanent failure)."""


def normalise_msisdn(raw: str, country: str) -> str:
    """*raw* as an international number without ``+``: BD ``8801XXXXXXXXX``, IN
    ``91XXXXXXXXXX``; a local number (``01711000001``, ``9876543210``) is completed with
    *country*. Raises :class:`InvalidNumber` with the reason."""
    if len(raw) > 32:
        raise InvalidNumber("number longer than 32 characters")
    digits = re.sub(r"[\s\-().]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not digits.isascii():
        raise InvalidNumber(f"{raw!r} is not a phone number")
    country = country.upper()
    if country == "BD":
        if digits.startswith("01") and len(digits) == 11:
            digits = "88" + digits
        elif digits.startswith("1") and len(digits) == 10:
            digits = "880" + digits
    elif country == "IN":
        if len(digits) == 10:
            digits = "91" + digits
        elif digits.startswith("0") and len(digits) == 11:
            digits = "91" + digits[1:]
    if _BD.fullmatch(digits) or _IN.fullmatch(digits):
        return digits
    raise InvalidNumber(f"{raw!r} is not a valid mobile number of BD (8801XXXXXXXXX) or "
                        f"IN (91XXXXXXXXXX)")


# -- when to send -------------------------------------------------------------------------

# Sent at once, even at night: the subscriber is waiting for them.
URGENT_KINDS = frozenset({"payment_received", "reconnected", "test", "otp"})
# Sent whatever the subscriber opted out of: they asked for it (a portal login code).
REQUESTED_KINDS = frozenset({"otp"})
# The payload fields of an event kind that are secrets (a portal login code): in a message's
# text only until it is sent or given up, never shown to staff, never re-sent by hand.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"otp": ("code",)}
REDACTED = "******"


def redact(text: str, secrets: Iterable[str]) -> str:
    """*text* with every occurrence of each secret replaced by :data:`REDACTED`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class QuietHours:
    """No dunning SMS between *start* and *end* (ISP local time; may span midnight)."""

    start: dt.time = dt.time(21, 0)
    end: dt.time = dt.time(8, 0)
    timezone: str = "Asia/Dhaka"

    def is_quiet(self, now: dt.datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, now: dt.datetime) -> dt.datetime:
        """When the quiet period that *now* lies in ends (UTC)."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        end = dt.datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end += dt.timedelta(days=1)
        return end.astimezone(dt.UTC)


def hold_until(kind: str, channel: str, now: dt.datetime, quiet: QuietHours
               ) -> dt.datetime | None:
    """When an SMS of *kind* may go if not now (None: now). E-mail is never held."""
    if channel != "sms" or kind in URGENT_KINDS or not quiet.is_quiet(now):
        return None
    return quiet.ends_after(now)


def backoff(attempt: int, key: str, *, base: float = 30.0, cap: float = 3600.0
            ) -> dt.timedelta:
    """The wait before retry *attempt* (1, 2, ...): exponential, capped, with "full jitter"
    between half and all of it. The jitter is drawn from *key* (the delivery's idempotency
    key), so two workers agree and tests are exact, while deliveries spread out."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    fraction = int.from_bytes(hashlib.sha256(f"{key}:{attempt}".encode()).digest()[:4]) / 2**32
    return dt.timedelta(seconds=ceiling * (0.5 + fraction / 2))


class TokenBucket:
    """A per-gateway rate limit: *rate* messages per second, bursts up to *burst*. Time is
    given by the caller (monotonic seconds)."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)

    def take(self, n: int, now: float) -> int:
        """Take up to *n* tokens; how many were granted."""
        self._refill(now)
        granted = min(n, int(self.tokens))
        self.tokens -= granted
        return granted

    def take_exactly(self, n: int, now: float) -> bool:
        """Take *n* tokens if they are all there (else none)."""
        self._refill(now)
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def wait(self, now: float) -> float:
        """Seconds until one token is there."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


# -- staleness ----------------------------------------------------------------------------

INVOICE_DUNNING = frozenset({"reminder", "due_notice", "final_reminder", "late_fee"})
SUSPENSION_NOTICES = frozenset({"suspended", "still_suspended"})


@dataclass(frozen=True)
class Now:
    """What is true at send time about an event's subject."""

    invoice_open: bool | None  # None: the event names no invoice (or it is unknown)
    subscriber_status: str
    amount_due: Decimal | None = None


def stale_reason(kind: str, state: Now) -> str | None:
    """Why an event no longer holds at send time (None: it does): a reminder for an invoice
    paid meanwhile, a suspension notice for a subscriber reconnected meanwhile."""
    if kind in INVOICE_DUNNING and state.invoice_open is False:
        return "invoice paid or settled since"
    if kind in INVOICE_DUNNING and state.amount_due is not None and state.amount_due <= 0:
        return "nothing owed any more"
    if kind in SUSPENSION_NOTICES and state.subscriber_status != "suspended":
        return f"subscriber is {state.subscriber_status} now"
    return None


# -- amounts ------------------------------------------------------------------------------

SYMBOLS = {"BDT": "৳", "INR": "₹", "USD": "$"}


def group_digits(integer: str, lakh: bool) -> str:
    """``1234567`` as ``12,34,567`` (lakh: the last three, then twos) or ``1,234,567``."""
    if len(integer) <= 3:
        return integer
    head, tail = integer[:-3], integer[-3:]
    size = 2 if lakh else 3
    groups: list[str] = []
    while head:
        groups.insert(0, head[-size:])
        head = head[:-size]
    return ",".join([*groups, tail])


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount as a subscriber reads it: lakh grouping for BDT and INR (``৳1,20,000.50``),
    Latin digits, two decimals."""
    value = amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    integer, _, fraction = f"{abs(value):.2f}".partition(".")
    grouped = group_digits(integer, currency.upper() in ("BDT", "INR"))
    symbol = SYMBOLS.get(currency.upper())
    text = f"{grouped}.{fraction}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"
