"""The subscriber page's last logins keep working once retention has folded the post-auth
log into day summaries: the recent decisions first, then one line per older day with its
counts."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from radbill.db import utcnow
from radius.models import PostAuth
from retention import service
from retention.policy import Policy
from tests.factories import make_plan, make_subscriber


def test_subscriber_page_shows_summarised_days(client_for: Any, factory: Any) -> None:
    from zoneinfo import ZoneInfo

    from cryptography.fernet import Fernet

    from radbill.crypto import SecretBox

    now = utcnow()
    dhaka = ZoneInfo("Asia/Dhaka")  # the ISP's default time zone
    old_day = now.astimezone(dhaka).date() - dt.timedelta(days=45)
    noon = dt.datetime.combine(old_day, dt.time(12), tzinfo=dhaka).astimezone(dt.UTC)
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, SecretBox(Fernet.generate_key()), "bob")
        s.add_all([
            PostAuth(at=noon, username="bob", decision="accept",
                     reason="active", nas_ip="10.0.0.7"),
            PostAuth(at=noon + dt.timedelta(minutes=5), username="bob",
                     decision="reject", reason="bad-password", nas_ip="10.0.0.8",
                     reply_message="Wrong password"),
            PostAuth(at=now - dt.timedelta(hours=1), username="bob", decision="accept",
                     reason="active", nas_ip="10.0.0.9"),
        ])
    service.run(factory, Policy(), now)
    page = html.unescape(client_for("billing").get("/subscribers/bob").get_data(as_text=True))
    assert "10.0.0.9" in page  # the recent login, as it was logged
    assert "bad-password: Wrong password" in page  # the old day's last decision
    assert "that day 1 accepted, 1 rejected" in page
