"""A simulated clock driving the billing run day by day, for scenario tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from billing import ledger, payments, promises, subscribers
from billing.models import Invoice, InvoiceLine, IspSettings, Subscriber
from billing.run import RunReport, billing_run
from notify.models import Outbox
from radbill.crypto import SecretBox
from radbill.db import session_factory
from radius.policy import AuthRequest, Decision, PolicyConfig, decide
from radius.snapshot import AuthSnapshot
from tests.factories import make_plan


class Sim:
    """One ISP, a clock, and helpers that go through the services."""

    def __init__(self, engine: Engine, box: SecretBox, today: dt.date) -> None:
        self.factory = session_factory(engine)
        self.box = box
        self.today = today
        self.reports: list[RunReport] = []

    def isp(self, **values: Any) -> None:
        with self.factory() as s, s.begin():
            row = s.get(IspSettings, 1)
            assert row is not None
            for k, v in values.items():
                setattr(row, k, v)

    def plan(self, name: str, **kw: Any) -> None:
        with self.factory() as s, s.begin():
            make_plan(s, name=name, **kw)

    def subscriber(self, username: str, plan: str, **kw: Any) -> None:
        with self.factory() as s, s.begin():
            subscribers.create_subscriber(s, self.box, username=username, password="pw",
                                          plan=plan, activated_on=self.today, today=self.today,
                                          **kw)

    def login(self, username: str, at: dt.datetime) -> Decision:
        """What RADIUS answers a PPPoE login of *username* at *at*, from a policy snapshot
        loaded from the database as FreeRADIUS loads it."""
        snap = AuthSnapshot()
        with self.factory() as s:
            snap.refresh(s, self.box)
        sub, plan, online = snap.lookup(username)
        req = AuthRequest(username=username, service_type="Framed-User",
                          framed_protocol="PPP")
        return decide(req, sub, plan, online, PolicyConfig(), at, None, snap.billed_until)

    def run(self, **kw: Any) -> RunReport:
        report = billing_run(self.factory, self.today, **kw)
        self.reports.append(report)
        return report

    def day(self) -> list[tuple[str, str]]:
        """Run billing today, then move to tomorrow. Returns (username, kind) events."""
        report = self.run()
        self.today += dt.timedelta(days=1)
        return [(e.username, e.kind) for e in report.events]

    def days_until(self, last: dt.date) -> dict[dt.date, list[tuple[str, str]]]:
        out = {}
        while self.today <= last:
            day = self.today
            out[day] = self.day()
        return out

    def pay(self, username: str, amount: str, ref: str | None = None
            ) -> payments.PaymentResult:
        with self.factory() as s, s.begin():
            return payments.record_payment(s, username, amount, method="cash",
                                           reference=ref or f"R-{username}-{self.today}-{amount}",
                                           today=self.today, actor="cashier")

    def set_status(self, username: str, status: str, reason: str = "") -> bool:
        from billing import accounts
        from billing.models import SubscriberStatus

        with self.factory() as s, s.begin():
            return accounts.set_status_by_operator(s, username, SubscriberStatus(status),
                                                   reason=reason, actor="operator",
                                                   on=self.today)

    def credit_note(self, number: str, amount: str | None, reason: str = "correction"
                    ) -> str:
        from billing import invoices
        from billing.isp import settings

        with self.factory() as s, s.begin():
            note = invoices.credit_note(s, isp=settings(s, lock=True), number=number,
                                        amount=Decimal(amount) if amount else None,
                                        reason=reason, today=self.today, actor="operator")
            return note.number

    def adjust(self, username: str, kind: str, amount: str, **kw: Any) -> payments.Adjustment:
        with self.factory() as s, s.begin():
            return payments.adjust(s, username, kind, amount, reason=f"{kind} test",
                                   today=self.today, actor="operator", **kw)

    def outstanding(self, username: str) -> dict[str, Decimal]:
        """What is still owed per open document."""
        sub_id = self.sub(username).id
        with self.factory() as s, s.begin():
            return {inv.number: owed for inv, owed in ledger.settle(s, sub_id, self.today)
                    .open_invoices}

    def promise(self, username: str, until: dt.date) -> None:
        with self.factory() as s, s.begin():
            promises.promise_to_pay(s, username, until, today=self.today, actor="operator")

    def sub(self, username: str) -> Subscriber:
        with self.factory() as s:
            return subscribers.get_subscriber(s, username)

    def status(self, username: str) -> str:
        return str(self.sub(username).status)

    def balance(self, username: str) -> Decimal:
        sub_id = self.sub(username).id  # one session at a time: SQLite writers lock
        with self.factory() as s:
            return ledger.balance(s, sub_id)

    def invoices(self, username: str) -> list[dict[str, Any]]:
        sub_id = self.sub(username).id
        with self.factory() as s:
            rows = s.scalars(select(Invoice).where(Invoice.subscriber_id == sub_id)
                             .order_by(Invoice.id)).all()
            out = []
            for inv in rows:
                lines = s.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id)
                                  .order_by(InvoiceLine.position)).all()
                out.append({"number": inv.number, "kind": str(inv.kind),
                            "period": (inv.period_start, inv.period_end),
                            "issued": inv.issued_on, "due": inv.due_on, "total": inv.total,
                            "tax": inv.tax, "status": str(inv.status),
                            "plan": inv.plan_name, "subtotal": inv.subtotal,
                            "previous_balance": inv.previous_balance,
                            "amount_due": inv.amount_due,
                            "lines": [(ln.description, ln.amount) for ln in lines]})
            return out

    def outbox(self, username: str) -> list[str]:
        sub_id = self.sub(username).id
        with self.factory() as s:
            return [o.kind for o in s.scalars(select(Outbox).where(Outbox.subscriber_id == sub_id)
                                              .order_by(Outbox.id))]


def change_plan(sim: Sim, username: str, plan: str, effective: str = "now") -> Any:
    from billing.plan_changes import change_plan as change

    with sim.factory() as s, s.begin():
        return change(s, username, plan, effective=effective, today=sim.today, actor="operator")
