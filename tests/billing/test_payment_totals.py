"""The payment totals kept per ISP-local day, currency and method (what the dashboard, the
API and the daily summary read) are always the payments themselves summed: after random
histories of payments (late entries, several methods and currencies, rejected duplicates,
an ISP time zone each), the kept rows equal an independent recomputation from every payment
row, and each reader says what summing the payments between the day's UTC bounds says (the
readers the pages used before). ``radbill billing totals-check`` finds a drifted, missing
or stray row and ``--repair`` restates it; the upgrade fills the totals in from the payments.
Fixed seeds (the "ci" profile derandomizes)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, text, update

from billing import payments, reports, totals
from billing.isp import settings as isp_settings
from billing.isp import start_of_day_utc
from billing.models import Payment, PaymentDayTotal
from radbill import migrate
from radbill.errors import Conflict
from tests.billing.sim import Sim
from tests.conftest import BACKEND, wipe
from tests.radbill.test_migration_0007 import fresh  # noqa: F401 - the fixture
from tests.radbill.test_migration_0018 import downgrade

START = dt.date(2026, 11, 1)
USERS = ("bdt1", "bdt2", "usd1")
ZONES = ("Asia/Dhaka", "UTC", "America/New_York", "Pacific/Kiritimati", "Asia/Kathmandu")

PAY = st.tuples(st.sampled_from(USERS), st.integers(1, 250_000),  # cents
                st.sampled_from(("cash", "bkash", "bank")),
                st.integers(0, 12),  # days entered late (0: received today)
                st.integers(0, 3),  # days the clock moves on first
                st.booleans())  # re-use the previous reference (a duplicate, refused)
HISTORY = st.tuples(st.sampled_from(ZONES), st.lists(PAY, min_size=1, max_size=25))


def setup(sim: Sim, zone: str) -> None:
    sim.isp(timezone=zone)
    sim.plan("Home", price="1000")
    sim.plan("Intl", price="20", currency="USD")
    sim.subscriber("bdt1", "Home")
    sim.subscriber("bdt2", "Home")
    sim.subscriber("usd1", "Intl")


def pay(sim: Sim, user: str, cents: int, method: str, late: int, ref: str) -> bool:
    """Record a payment through the service (False: refused, nothing written)."""
    on = max(sim.today - dt.timedelta(days=late), START)
    try:
        with sim.factory() as s, s.begin():
            payments.record_payment(s, user, Decimal(cents) / 100, method=method,
                                    reference=ref, today=sim.today, on=on, actor="cashier")
    except Conflict:
        return False
    return True


def recomputed(sim: Sim, zone: str) -> dict[totals.Key, totals.Figure]:
    """Every payment row summed per local day of its receipt, in Python (independent of
    both the kept rows and :func:`billing.totals.from_payments`)."""
    out: dict[totals.Key, totals.Figure] = {}
    with sim.factory() as s:
        for received, cur, method, amount in s.execute(
                select(Payment.received_at, Payment.currency, Payment.method, Payment.amount)):
            key = (received.astimezone(ZoneInfo(zone)).date(), cur, method)
            total, n = out.get(key, (Decimal(0), 0))
            out[key] = (total + amount, n + 1)
    return out


def check(sim: Sim, zone: str) -> None:
    want = recomputed(sim, zone)
    with sim.factory() as s:
        have = totals.kept(s.connection())
        assert have == want
        assert totals.from_payments(s.connection(), zone) == want
        assert totals.check_payment_totals(s, zone) == []
        isp = isp_settings(s)
        days = sorted({d for d, _, _ in want} | {sim.today})
        first, last = days[0] - dt.timedelta(days=1), days[-1] + dt.timedelta(days=1)
        span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        bounds = [(d, start_of_day_utc(isp, d), start_of_day_utc(isp, d + dt.timedelta(1)))
                  for d in span]
        # the readers the pages used before: the payments summed between UTC bounds
        assert totals.revenue_by_day(s, span) == reports.revenue_by_day(s, bounds)
        for a, b in ((first, last), (sim.today.replace(day=1), sim.today),
                     (sim.today, sim.today)):
            end = start_of_day_utc(isp, b + dt.timedelta(days=1))
            assert totals.revenue(s, a, b) == reports.revenue(s, start_of_day_utc(isp, a), end)
            assert totals.collected(s, a, b) == reports.collected(
                s, start_of_day_utc(isp, a), end)


@settings(max_examples=15 if BACKEND == "sqlite" else 8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(HISTORY)
def test_the_kept_payment_totals_are_the_payments_summed(engine, box, history) -> None:  # type: ignore[no-untyped-def]
    zone, sequence = history
    wipe(engine)
    sim = Sim(engine, box, START)
    setup(sim, zone)
    check(sim, zone)
    ref = ""
    for i, (user, cents, method, late, wait, again) in enumerate(sequence):
        sim.today += dt.timedelta(days=wait)
        ref = ref if again and ref else f"R{i}"
        recorded = pay(sim, user, cents, method, late, ref)
        assert recorded or again
        check(sim, zone)
    wipe(engine)


def test_totals_check_finds_drift_and_repair_restates_it(sim: Sim, cli) -> None:  # type: ignore[no-untyped-def]
    setup(sim, "Asia/Dhaka")
    sim.today = dt.date(2026, 11, 20)
    assert pay(sim, "bdt1", 50_000, "cash", 3, "A")
    assert pay(sim, "bdt2", 25_050, "cash", 3, "B")
    assert pay(sim, "usd1", 1_000, "bank", 0, "C")
    assert json.loads(cli("billing", "totals-check", "--json").output)["days"] == 0
    with sim.factory() as s, s.begin():
        s.execute(update(PaymentDayTotal).where(PaymentDayTotal.method == "cash")
                  .values(amount=Decimal("1.00")))
        s.execute(delete(PaymentDayTotal).where(PaymentDayTotal.method == "bank"))
        s.add(PaymentDayTotal(day=dt.date(2026, 1, 1), currency="BDT", method="other",
                              amount=Decimal("9.00"), payments=1))
    found = cli("billing", "totals-check", "--json", ok=False)
    assert found.exit_code == 1
    drift = json.loads(found.output)["drift"]
    usd_day = drift[2]["day"]  # today, in Dhaka (received now)
    assert drift[:2] == [
        {"day": "2026-01-01", "currency": "BDT", "method": "other", "kept": "9.00",
         "kept_payments": 1, "actual": "0.00", "actual_payments": 0},
        {"day": "2026-11-17", "currency": "BDT", "method": "cash", "kept": "1.00",
         "kept_payments": 2, "actual": "750.50", "actual_payments": 2}]
    assert drift[2:] == [{"day": usd_day, "currency": "USD", "method": "bank", "kept": "0.00",
                          "kept_payments": 0, "actual": "10.00", "actual_payments": 1}]
    with sim.factory() as s:  # what the dashboard reads is off by as much
        assert totals.revenue(s, dt.date(2026, 11, 17), dt.date(2026, 11, 17)) == {
            "BDT": Decimal("1.00")}
    repaired = json.loads(cli("billing", "totals-check", "--repair", "--json").output)
    assert (repaired["days"], repaired["repaired"]) == (3, True)
    assert json.loads(cli("billing", "totals-check", "--json").output)["days"] == 0
    with sim.factory() as s:
        assert totals.revenue(s, dt.date(2026, 11, 17), dt.date(2026, 11, 17)) == {
            "BDT": Decimal("750.50")}
        assert totals.collected(s, dt.date(2026, 1, 1), dt.date(2026, 1, 1)) == []


def test_a_payment_entered_late_counts_on_its_day_in_the_isp_zone(sim: Sim) -> None:
    setup(sim, "Asia/Kathmandu")  # +05:45: a local day starts at 18:15 UTC the day before
    sim.today = dt.date(2026, 11, 20)
    assert pay(sim, "bdt1", 10_000, "cash", 5, "K1")
    with sim.factory() as s:
        assert s.execute(select(PaymentDayTotal.day, PaymentDayTotal.amount,
                                PaymentDayTotal.payments)).all() == [
            (dt.date(2026, 11, 15), Decimal("100.00"), 1)]
        assert s.scalar(select(Payment.received_at)) == dt.datetime(
            2026, 11, 14, 18, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize("zone", ["Asia/Dhaka", "America/New_York"])
def test_the_upgrade_fills_the_totals_from_the_payments(fresh: Engine, box, zone) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    migrate.upgrade(fresh)
    sim = Sim(fresh, box, START)
    setup(sim, zone)
    sim.today = dt.date(2026, 11, 20)
    for i, (user, cents, method, late) in enumerate([
            ("bdt1", 100_000, "cash", 0), ("bdt2", 2_550, "cash", 2),
            ("bdt2", 7_000, "bkash", 2), ("usd1", 1_999, "bank", 9)]):
        assert pay(sim, user, cents, method, late, f"M{i}")
    want = recomputed(sim, zone)
    downgrade(fresh, "0023")
    with fresh.connect() as conn:
        assert "payment_day_totals" not in {r[0] for r in conn.execute(text(
            "SELECT table_name FROM information_schema.tables" if BACKEND != "sqlite"
            else "SELECT name FROM sqlite_master WHERE type = 'table'"))}
    migrate.upgrade(fresh)
    with fresh.connect() as conn:
        assert totals.kept(conn) == want
