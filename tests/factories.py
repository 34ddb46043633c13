"""Small helpers that create rows through the services (never behind their backs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from billing import plans, subscribers
from billing.models import Plan, Subscriber
from radbill.crypto import SecretBox


def make_plan(session: Session, name: str = "Home-20", **kw: Any) -> Plan:
    args = {"price": "1000", "currency": "BDT", "rate": "20M/5M", **kw}
    return plans.create_plan(session, name=name, **args)


def make_subscriber(session: Session, box: SecretBox, username: str = "alice",
                    plan: str = "Home-20", **kw: Any) -> Subscriber:
    args = {"password": "s3cret", **kw}
    return subscribers.create_subscriber(session, box, username=username, plan=plan, **args)
