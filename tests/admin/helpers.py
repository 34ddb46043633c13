"""Test data through the services: a subscriber suspended for an overdue invoice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from billing.isp import local_today
from billing.isp import settings as isp_settings
from billing.run import run_days
from radbill.db import utcnow
from tests.factories import make_plan, make_subscriber


def today(factory: Any) -> dt.date:
    with factory() as s:
        return local_today(isp_settings(s), utcnow())


def overdue_subscriber(factory: Any, box: Any, username: str = "bob") -> dt.date:
    """*username* on a 1000 BDT postpaid plan, activated 40 days ago, its first invoice
    overdue and the subscriber suspended by the billing runs of every day since. Returns
    today."""
    day = today(factory)
    with factory() as s, s.begin():
        make_plan(s, name="Home-20", grace_days=0)
        make_subscriber(s, box, username, activated_on=day - dt.timedelta(days=40),
                        full_name="Bob Rahman", phone="+8801722222222")
    run_days(factory, day - dt.timedelta(days=40), day)
    return day
