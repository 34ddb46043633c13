"""Plan service: create, change and look up packages."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.cycles import ANNIVERSARY, FIXED_DAY, Cycle
from billing.models import BillingCycle, BillingMode, Plan
from billing.money import exponent
from billing.rates import (  # the plan speed helpers live with the rates
    RatePair,
    make_burst,
    parse_rate,
    plan_burst,
    plan_fup_rate,
    plan_rate,
)
from radbill import audit
from radbill.db import AUTH_FEED, bump
from radbill.errors import Conflict, InvalidInput, NotFound

_NAME_RE = re.compile(r"^[\w .+\-]{1,64}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_POOL_RE = re.compile(r"^[\w.\-]{1,64}$")
_SIZE_RE = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,6})?)\s*([kKmMgGtT]?)[bB]?\s*")


# What the database keeps (Numeric(14, 2)); anything larger is a typo.
MAX_MONEY = Decimal("999999999999.99")


def parse_money(text: str | Decimal) -> Decimal:
    """A non-negative amount with at most two decimals, at most :data:`MAX_MONEY`, as
    ``Decimal``."""
    raw = str(text).strip()
    if len(raw) > 40:
        raise InvalidInput(f"amount {raw[:20]!r}... is too long")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput(f"malformed amount {text!r}: use digits, e.g. 500 or 499.50") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"amount {text!r} must be zero or more")
    if value > MAX_MONEY:
        raise InvalidInput(f"amount {text!r} is above {MAX_MONEY:,}")
    if value != value.quantize(Decimal("0.01")):
        raise InvalidInput(f"amount {text!r} has more than two decimals")
    return value.quantize(Decimal("0.01"))


# What a data cap counts (usage part): download, upload or both.
CAP_COUNTS = ("download", "upload", "both")
MAX_TIME_QUOTA = 2**31 - 1  # seconds; RouterOS keeps Session-Timeout in 32 bits

MAX_SIZE = 10**15  # 1 PB a cycle: anything above is a typo


def parse_size(text: str) -> int:
    """``"100G"`` → bytes (powers of 1000, as ISPs sell caps), at most 1P."""
    m = _SIZE_RE.fullmatch(text or "")
    if not m or len(text) > 30:
        raise InvalidInput(f"malformed size {text!r}: use e.g. 500M or 100G")
    number, unit = m.groups()
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}[unit.lower()]
    size = int(Decimal(number) * factor)
    if size <= 0:
        raise InvalidInput(f"size {text!r} must be above zero")
    if size > MAX_SIZE:
        raise InvalidInput(f"size {text!r} is above 1000T")
    return size


def cycle_of(plan: Plan) -> Cycle:
    """The plan's renewal rule."""
    return Cycle(str(plan.billing_cycle), plan.cycle_anchor, plan.billing_day,
                 plan.validity_days)


def get_plan(session: Session, name: str) -> Plan:
    """The plan called *name*."""
    plan = session.scalars(select(Plan).where(Plan.name == name)).one_or_none()
    if plan is None:
        raise NotFound(f"unknown plan {name!r}")
    return plan


def list_plans(session: Session) -> list[Plan]:
    """Every plan, by name."""
    return list(session.scalars(select(Plan).order_by(Plan.name)))


def create_plan(  # noqa: PLR0912, PLR0915 - one check per input, each error next to its rule
    session: Session,
    *,
    name: str,
    price: str | Decimal,
    currency: str,
    rate: str,
    burst: str | None = None,
    burst_threshold: str | None = None,
    burst_time: int | None = None,
    data_cap: str | None = None,
    fup_rate: str | None = None,
    cap_counts: str = "both",
    time_quota_s: int | None = None,
    ip_pool: str | None = None,
    billing_cycle: str = "monthly",
    validity_days: int | None = None,
    billing_mode: str = "postpaid",
    grace_days: int = 0,
    late_fee: str | Decimal = "0",
    late_fee_percent: bool = False,
    late_fee_cap: str | Decimal | None = None,
    tax_percent: str | Decimal = "0",
    setup_fee: str | Decimal = "0",
    cycle_anchor: str = ANNIVERSARY,
    billing_day: int | None = None,
    reminder_days: int = 3,
    throttle_after_days: int | None = None,
    terminate_after_days: int | None = None,
    actor: str = "system",
) -> Plan:
    """Create a plan. Every value is validated before anything is written."""
    name = (name or "").strip(" ")
    if not _NAME_RE.fullmatch(name) or any(c in name for c in "\t\n\r\x0b\x0c"):
        raise InvalidInput(f"invalid plan name {name!r}: 1-64 letters, digits, space, . + -")
    currency = (currency or "").strip().upper()
    if not _CURRENCY_RE.fullmatch(currency):
        raise InvalidInput(f"invalid currency {currency!r}: use an ISO 4217 code such as BDT")
    exponent(currency)  # a currency radbill knows how to round
    base = RatePair.parse(rate)
    burst_spec = make_burst(base, burst, burst_threshold, burst_time) if burst else None
    if not burst and (burst_threshold or burst_time is not None):
        raise InvalidInput("--burst-threshold and --burst-time need --burst")
    cap = parse_size(data_cap) if data_cap else None
    fup = RatePair.parse(fup_rate) if fup_rate else None
    if fup is not None and (fup.down >= base.down or fup.up > base.up):
        raise InvalidInput(f"fair-usage rate {fup} must be slower than the rate {base}")
    if ip_pool is not None and not _POOL_RE.fullmatch(ip_pool):
        raise InvalidInput(f"invalid pool name {ip_pool!r}")
    if cap_counts not in CAP_COUNTS:
        raise InvalidInput(f"cap counts {str(cap_counts)[:20]!r}: use {', '.join(CAP_COUNTS)}")
    if time_quota_s is not None and not 1 <= time_quota_s <= MAX_TIME_QUOTA:
        raise InvalidInput(f"time quota {time_quota_s} s must be 1-{MAX_TIME_QUOTA} seconds")
    try:
        cycle = BillingCycle(billing_cycle)
        mode = BillingMode(billing_mode)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if cycle is BillingCycle.DAYS and not validity_days:
        raise InvalidInput("a plan billed in days needs --validity-days")
    if validity_days is not None and not 1 <= validity_days <= 3660:
        raise InvalidInput(f"validity {validity_days} days must be between 1 and 3660")
    if not 0 <= grace_days <= 365:
        raise InvalidInput(f"grace period {grace_days} days must be between 0 and 365")
    if cycle_anchor not in (ANNIVERSARY, FIXED_DAY):
        raise InvalidInput(f"cycle anchor {cycle_anchor!r}: use anniversary or fixed_day")
    if cycle_anchor == FIXED_DAY and (billing_cycle != "monthly" or billing_day is None
                                      or not 1 <= billing_day <= 28):
        raise InvalidInput("a fixed billing day (1-28) needs a monthly plan and --billing-day")
    if cycle_anchor == ANNIVERSARY and billing_day is not None:
        raise InvalidInput("--billing-day needs --anchor fixed_day")
    tax = parse_money(tax_percent)
    if tax > 100:
        raise InvalidInput(f"tax {tax}% is above 100%")
    fee = parse_money(late_fee)
    if late_fee_percent and fee > 100:
        raise InvalidInput(f"late fee {fee}% is above 100%")
    for label, days in (("reminder", reminder_days), ("throttle", throttle_after_days),
                        ("termination", terminate_after_days)):
        if days is not None and not 0 <= days <= 365:
            raise InvalidInput(f"{label} days {days} must be between 0 and 365")
    if session.scalars(select(Plan.id).where(Plan.name == name)).first() is not None:
        raise Conflict(f"plan {name!r} already exists")

    plan = Plan(
        name=name,
        price=parse_money(price),
        currency=currency,
        download_bps=base.down,
        upload_bps=base.up,
        burst_download_bps=burst_spec.rate.down if burst_spec else None,
        burst_upload_bps=burst_spec.rate.up if burst_spec else None,
        burst_threshold_download_bps=burst_spec.threshold.down if burst_spec else None,
        burst_threshold_upload_bps=burst_spec.threshold.up if burst_spec else None,
        burst_time_s=burst_spec.seconds if burst_spec else None,
        data_cap_bytes=cap,
        fup_download_bps=fup.down if fup else None,
        fup_upload_bps=fup.up if fup else None,
        cap_counts=cap_counts,
        time_quota_s=time_quota_s,
        ip_pool=ip_pool,
        billing_cycle=cycle,
        validity_days=validity_days,
        billing_mode=mode,
        grace_days=grace_days,
        late_fee=fee,
        late_fee_percent=late_fee_percent,
        late_fee_cap=parse_money(late_fee_cap) if late_fee_cap is not None else None,
        tax_percent=tax,
        setup_fee=parse_money(setup_fee),
        cycle_anchor=cycle_anchor,
        billing_day=billing_day,
        reminder_days=reminder_days,
        throttle_after_days=throttle_after_days,
        terminate_after_days=terminate_after_days,
        auth_version=bump(session, AUTH_FEED),
    )
    session.add(plan)
    session.flush()
    audit.record(session, actor=actor, action="plan.create", entity="plan", entity_id=plan.id,
                 after=plan_summary(plan))
    return plan


def set_plan_rate(session: Session, name: str, rate: str, *, actor: str = "system") -> Plan:
    """Change a plan's speed; every subscriber on it gets the new speed at the next login."""
    plan = session.scalars(select(Plan).where(Plan.name == name).with_for_update()).one_or_none()
    if plan is None:
        raise NotFound(f"unknown plan {name!r}")
    new = RatePair.parse(rate)
    before = plan_summary(plan)
    plan.download_bps, plan.upload_bps = new.down, new.up
    plan.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="plan.rate", entity="plan", entity_id=plan.id,
                 before=before, after=plan_summary(plan))
    return plan


MAX_IDLE_TIMEOUT = 2**31 - 1


def set_plan_addressing(session: Session, name: str, *, ipv6_pool: str | None,
                        delegated_ipv6_pool: str | None, idle_timeout: int | None,
                        actor: str = "system") -> Plan:
    """Dual-stack and timers of a plan: the NAS pools for the WAN IPv6 prefix
    (Framed-IPv6-Pool) and for the prefix delegated to the LAN (Delegated-IPv6-Prefix-Pool),
    and Idle-Timeout seconds (None: the ISP default). None clears a pool."""
    for label, pool in (("IPv6 pool", ipv6_pool), ("delegated IPv6 pool", delegated_ipv6_pool)):
        if pool is not None and not _POOL_RE.fullmatch(pool):
            raise InvalidInput(f"invalid {label} name {pool[:70]!r}: 1-64 letters, digits "
                               "and . _ -")
    if idle_timeout is not None and not 1 <= idle_timeout <= MAX_IDLE_TIMEOUT:
        raise InvalidInput(f"idle timeout {idle_timeout} must be 1-{MAX_IDLE_TIMEOUT} seconds")
    plan = session.scalars(select(Plan).where(Plan.name == name).with_for_update()).one_or_none()
    if plan is None:
        raise NotFound(f"unknown plan {name!r}")
    before = {"ipv6_pool": plan.ipv6_pool, "delegated_ipv6_pool": plan.delegated_ipv6_pool,
              "idle_timeout": plan.idle_timeout}
    plan.ipv6_pool, plan.delegated_ipv6_pool = ipv6_pool, delegated_ipv6_pool
    plan.idle_timeout = idle_timeout
    plan.auth_version = bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="plan.addressing", entity="plan",
                 entity_id=plan.id, before=before,
                 after={"ipv6_pool": ipv6_pool, "delegated_ipv6_pool": delegated_ipv6_pool,
                        "idle_timeout": idle_timeout})
    return plan


def plan_summary(plan: Plan) -> dict[str, object]:
    """A plain dictionary of a plan for JSON output and audit rows."""
    burst = plan_burst(plan)
    fup = plan_fup_rate(plan)
    return {
        "name": plan.name,
        "price": str(plan.price),
        "currency": plan.currency,
        "rate": str(plan_rate(plan)),
        "burst": str(burst.rate) if burst else None,
        "burst_threshold": str(burst.threshold) if burst else None,
        "burst_time": burst.seconds if burst else None,
        "data_cap_bytes": plan.data_cap_bytes,
        "fup_rate": str(fup) if fup else None,
        "cap_counts": plan.cap_counts,
        "time_quota_s": plan.time_quota_s,
        "ip_pool": plan.ip_pool,
        "billing_cycle": str(plan.billing_cycle),
        "validity_days": plan.validity_days,
        "billing_mode": str(plan.billing_mode),
        "grace_days": plan.grace_days,
        "late_fee": str(plan.late_fee) + ("%" if plan.late_fee_percent else ""),
        "late_fee_cap": str(plan.late_fee_cap) if plan.late_fee_cap is not None else None,
        "tax_percent": str(plan.tax_percent),
        "setup_fee": str(plan.setup_fee),
        "cycle_anchor": plan.cycle_anchor,
        "billing_day": plan.billing_day,
        "reminder_days": plan.reminder_days,
        "throttle_after_days": plan.throttle_after_days,
        "terminate_after_days": plan.terminate_after_days,
    }


__all__ = [
    "create_plan",
    "get_plan",
    "list_plans",
    "parse_money",
    "parse_rate",
    "parse_size",
    "plan_burst",
    "plan_fup_rate",
    "plan_rate",
    "plan_summary",
    "set_plan_rate",
]
