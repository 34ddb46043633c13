"""The batch path (billing/batch.py) against the per-account path (billing.run.process): the
same days, payments and promises give exactly the same rows and the same report."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from billing.models import (
    EnforcementRequest,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    Plan,
    Promise,
    Subscriber,
)
from notify.models import Outbox
from radbill.audit import AuditLog
from radbill.crypto import SecretBox
from radbill.db import ChangeCounter
from tests.billing.sim import Sim, change_plan
from tests.conftest import wipe

D = dt.date


def scenario(engine: Engine, box: SecretBox, per_account: bool, batch_size: int = 2000
             ) -> tuple[list[str], dict[str, Any]]:
    """Two months of a small ISP: every plan kind, proration, a setup fee, reminders, late
    fees, throttling, suspensions, a promise, payments, a credit in hand and a scheduled plan
    change. Returns every run's events and a snapshot of the tables, ids replaced by names."""
    wipe(engine)
    sim = Sim(engine, box, D(2026, 11, 1))
    sim.isp(postpaid_due_days=5, payment_link_base="https://pay.example/",
            suspension_guard_percent=100, suspended_notice_days=3)
    sim.plan("Home", price="1000", tax_percent=Decimal("5"), grace_days=3, late_fee="50")
    sim.plan("Fixed", price="900", cycle_anchor="fixed_day", billing_day=10, setup_fee="500",
             late_fee="10", late_fee_percent=True, late_fee_cap="60")
    sim.plan("Slow", price="700", grace_days=2, throttle_after_days=1, terminate_after_days=20)
    sim.plan("Pre", price="500", billing_mode="prepaid", grace_days=2, late_fee="25")
    sim.plan("Daily", price="20", billing_cycle="daily", billing_mode="prepaid")
    for name, plan in (("h1", "Home"), ("h2", "Home"), ("h3", "Home"), ("f1", "Fixed"),
                       ("s1", "Slow"), ("p1", "Pre"), ("p2", "Pre")):
        sim.subscriber(name, plan, full_name=f"Customer {name}", phone="+8801700000000")
    sim.subscriber("d1", "Daily", service="hotspot")
    events: list[str] = []

    def run_until(last: dt.date) -> None:
        while sim.today <= last:
            report = sim.run(per_account=per_account, batch_size=batch_size)
            events.extend(f"{sim.today} {e}" for e in report.events)
            events.extend(f"{sim.today} ERROR {e}" for e in report.errors)
            sim.today += dt.timedelta(days=1)

    run_until(D(2026, 11, 5))
    sim.pay("p1", "500")
    sim.pay("d1", "60")
    sim.pay("h3", "3000")  # a credit in hand for the coming invoices
    run_until(D(2026, 11, 20))
    change_plan(sim, "h2", "Fixed", effective="next_cycle")
    run_until(D(2026, 12, 7))
    sim.promise("h1", sim.today + dt.timedelta(days=3))
    sim.pay("p1", "500")
    run_until(D(2026, 12, 20))
    sim.pay("h1", "500")
    run_until(D(2027, 1, 10))
    return events, snapshot(sim)


def snapshot(sim: Sim) -> dict[str, Any]:
    """Every row the billing writes, with ids replaced by invoice numbers and usernames
    (ids differ between runs on PostgreSQL) and write timestamps left out."""
    with sim.factory() as s:
        subs = {sub.id: sub.username for sub in s.scalars(select(Subscriber)).unique()}
        plans = {plan.id: plan.name for plan in s.scalars(select(Plan))}
        invs = {inv.id: inv.number for inv in s.scalars(select(Invoice))}
        pays = {p.id: p.reference for p in s.scalars(select(Payment))}
        proms = {p.id: f"{subs[p.subscriber_id]}:{p.until}" for p in s.scalars(select(Promise))}
        ids = {"invoice": invs, "reminder": invs, "due": invs, "latefee": invs, "final": invs,
               "throttle": invs, "suspend": invs, "credit": invs, "payment": pays,
               "promise": proms, "suspended": subs, "reconnected": subs,
               "still-suspended": subs,
               "promise-broken": subs}

        def key(k: str) -> str:
            kind, _, rest = k.partition(":")
            head, _, tail = rest.partition(":")
            names = ids.get(kind)
            if names is not None and head.isdigit():
                return f"{kind}:{names[int(head)]}" + (f":{tail}" if tail else "")
            return k

        def row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
            out = {c.key: getattr(obj, c.key) for c in obj.__table__.columns
                   if c.key not in ("id", "created_at", "posted_at", "updated_at",
                                    "next_attempt_at", *skip)}
            for col in ("subscriber_id",):
                if col in out:
                    out[col] = subs[out[col]]
            for col in ("invoice_id", "credits_invoice_id"):
                if out.get(col) is not None:
                    out[col] = invs[out[col]]
            for col in ("plan_id", "next_plan_id"):
                if out.get(col) is not None:
                    out[col] = plans[out[col]]
            if out.get("payment_id") is not None:
                out["payment_id"] = pays[out["payment_id"]]
            # Payment-link keys are random: both paths must give one, in the link too.
            if "pay_token" in out:
                token = out.pop("pay_token")
                if str(out["kind"]) != "credit_note":
                    assert token and len(token) == 22, out
                    out["payment_link"] = (out["payment_link"] or "").replace(token, "<key>")
            if isinstance(out.get("payload"), dict) and out["payload"].get("payment_link"):
                out["payload"] = {**out["payload"], "payment_link": re.sub(
                    r"/pay/[A-Za-z0-9_-]{22}$", "/pay/<key>", out["payload"]["payment_link"])}
            return out

        def rows(model: Any, order: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
            return [row(o, skip) for o in s.scalars(select(model).order_by(*order)).unique()]

        outbox = [{**r, "dedupe_key": key(r["dedupe_key"])} for r in rows(
            Outbox, (Outbox.subscriber_id, Outbox.id))]
        return {
            "subscribers": rows(Subscriber, (Subscriber.username,), skip=("password_enc",)),
            "invoices": rows(Invoice, (Invoice.number,)),
            "lines": sorted((invs[ln.invoice_id], ln.position, ln.description, ln.amount)
                            for ln in s.scalars(select(InvoiceLine))),
            "ledger": rows(LedgerEntry, (LedgerEntry.subscriber_id, LedgerEntry.id)),
            "outbox": outbox,
            "enforcement": rows(EnforcementRequest, (EnforcementRequest.id,)),
            "audit": [(a.actor, a.action, a.entity,
                       {"subscriber": subs, "plan": plans}.get(a.entity, {}).get(
                           int(a.entity_id), a.entity_id),
                       a.before, a.after, a.reason)
                      for a in s.scalars(select(AuditLog).order_by(AuditLog.id))],
            "counters": sorted((c.name, c.value) for c in s.scalars(select(ChangeCounter))),
            "promises": rows(Promise, (Promise.subscriber_id, Promise.id)),
        }


def test_batch_path_writes_exactly_what_the_per_account_path_writes(engine, box) -> None:  # type: ignore[no-untyped-def]
    batch_events, batch_rows = scenario(engine, box, per_account=False)
    account_events, account_rows = scenario(engine, box, per_account=True)
    wipe(engine)
    kinds = {e.split()[2] for e in batch_events}
    # the scenario reaches every step of the ladder, on both paths
    assert {"invoice", "reminder", "due_notice", "late_fee", "final_reminder", "throttle",
            "suspend", "plan_change", "promise_broken", "still_suspended"} <= kinds, kinds
    assert not [e for e in batch_events if " ERROR " in e]
    assert batch_events == account_events
    for table, expected in account_rows.items():
        assert batch_rows[table] == expected, table


def test_batches_planned_while_the_one_before_is_written_write_the_same(engine, box
                                                                      ) -> None:  # type: ignore[no-untyped-def]
    # batches of two: on PostgreSQL each is planned while the one before it is written
    # (billing.run._overlapped_phase_one), some billed as usual after it (per-account
    # steps: activations, throttling, the plan change)
    batch_events, batch_rows = scenario(engine, box, per_account=False, batch_size=2)
    account_events, account_rows = scenario(engine, box, per_account=True)
    wipe(engine)
    assert not [e for e in batch_events if " ERROR " in e]
    assert batch_events == account_events
    for table, expected in account_rows.items():
        assert batch_rows[table] == expected, table
