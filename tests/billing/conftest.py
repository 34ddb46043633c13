"""The scenario simulator the billing correctness tests start from: 1 Nov 2026, postpaid
invoices due after 7 days (a test module with its own ``sim`` fixture uses that instead)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.billing.sim import Sim


@pytest.fixture
def sim(db, box) -> Sim:  # type: ignore[no-untyped-def]
    s = Sim(db, box, dt.date(2026, 11, 1))
    s.isp(postpaid_due_days=7)
    return s
