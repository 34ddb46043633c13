"""The subscriber page with usage: the per-day chart is metered per ISP day (a session over
midnight counts on both days), and a subscriber over the cap is told why they are slow."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from admin.filters import human_bytes
from radius.ingest import apply_accounting
from tests.admin.helpers import today
from tests.factories import make_plan, make_subscriber
from tests.usage.helpers import acct

GB = 10**9


def test_the_page_shows_metered_days_and_the_cap(client_for: Any, factory: Any,
                                                  box: Any) -> None:
    day = today(factory)
    tz = ZoneInfo("Asia/Dhaka")
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    with factory() as s, s.begin():
        make_plan(s, "Capped", data_cap="10G", fup_rate="1M/512k")
        make_subscriber(s, box, username="cap", plan="Capped",
                        activated_on=day - dt.timedelta(days=3), today=day)
        assert apply_accounting(s, [
            acct("Interim-Update", "s1", "cap", midnight - dt.timedelta(minutes=5), 600, 0,
                 4 * GB),
            acct("Interim-Update", "s1", "cap", midnight + dt.timedelta(minutes=5), 1200, 0,
                 11 * GB)]) == {}
    page = client_for("billing").get("/subscribers/cap").get_data(as_text=True)
    assert "Over this period&#39;s data cap" in page or "Over this period's data cap" in page
    yesterday = day - dt.timedelta(days=1)
    assert f"{yesterday:%d %b}: {human_bytes(4 * GB)}" in page
    assert f"{day:%d %b}: {human_bytes(7 * GB)}" in page
