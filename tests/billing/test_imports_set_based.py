"""The set-based import writes what the services write row by row (billing/imports.py): the
same subscribers, audit rows, enforcement requests, charge invoices with their lines, ledger
entries, outbox events and change-feed stamps, in the same order, on the same file."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from billing import imports
from billing.batch import AUDIT, ENFORCEMENT, INVOICES, LEDGER, LINES, OUTBOX, SUBSCRIBERS
from radbill.crypto import SecretBox
from radbill.db import Base, ChangeCounter, session_factory

TODAY = dt.date(2026, 3, 10)
LATER = TODAY + dt.timedelta(days=12)
FILE = "\n".join([
    "username,password,plan,service,name,phone,email,mac,ip,pool,status,opening_balance,"
    "next_renewal",
    "a1,pw-a1,Home,pppoe,Ann,+8801711111111,a1@example.com,aa:bb:cc:dd:ee:01,10.9.0.1,,"
    "active,1500.50,",
    "a2,pw-a2,Biz,hotspot,,,,,,pool-b,suspended,-200,",
    "a3,pw-a3,Home,,,,,,,,disabled,300,",
    f"a4,pw-a4,Home,,Dee,,,,10.9.0.4,,suspended,0,{LATER}",  # a status before billing starts
    "a5,pw-a5,Biz,,,,,,,,,,",
    f"a6,pw-a6,Home,,,,,,,pool-a,disabled,-0.50,{LATER}",
    "a7,pw-a7,Biz,,Eve,,e@example.com,,,,suspended,99.99,",
]) + "\n"
# columns whose values differ from run to run whichever path wrote them
VOLATILE = {"id", "at", "created_at", "updated_at", "posted_at", "next_attempt_at",
            "password_enc", "pay_token", "payment_link"}


def _dump(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every row the import wrote, in id order, ids replaced by what they name."""
    session.flush()
    names = dict(session.execute(select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.username)).all())
    numbers = dict(session.execute(select(INVOICES.c.id, INVOICES.c.number)).all())
    out: dict[str, list[dict[str, Any]]] = {}
    table: Table
    for table in (SUBSCRIBERS, AUDIT, ENFORCEMENT, INVOICES, LINES, LEDGER, OUTBOX):
        rows = []
        for row in session.execute(select(table).order_by(table.c.id)).mappings():
            r = {k: v for k, v in row.items() if k not in VOLATILE}
            if "subscriber_id" in r:
                r["subscriber_id"] = names[r["subscriber_id"]]
            if r.get("invoice_id") is not None:
                r["invoice_id"] = numbers[r["invoice_id"]]
            if table is AUDIT and r["entity"] == "subscriber" and r["entity_id"].isdigit():
                r["entity_id"] = names[int(r["entity_id"])]
            if table is OUTBOX:
                invoice_id = int(r["dedupe_key"].split(":")[1])
                r["dedupe_key"] = f"invoice:{numbers[invoice_id]}"
                link = r["payload"]["payment_link"]  # a random key each time
                r["payload"] = {**r["payload"],
                                "payment_link": link.startswith("https://pay.example.com/pay/")}
            rows.append(r)
        out[table.name] = rows
    # every other table: nothing written by either path beyond what the set-up wrote
    compared = {*out, "change_counters"}
    for other in Base.metadata.sorted_tables:
        if other.name not in compared:
            out[f"{other.name} (rows)"] = [{"count": session.scalar(
                select(func.count()).select_from(other))}]
    out["change_counters"] = [dict(r) for r in session.execute(
        select(ChangeCounter.name, ChangeCounter.value).order_by(ChangeCounter.name))
        .mappings()]
    return out


def _import(db: Any, box: SecretBox, *, one_by_one: bool) -> dict[str, list[dict[str, Any]]]:
    with session_factory(db)() as s:
        report = imports.import_csv(s, box, io.StringIO(FILE), actor="tester", today=TODAY,
                                    one_by_one=one_by_one)
        assert report.errors == [] and report.created == 7
        dump = _dump(s)
        s.rollback()  # the other path starts from the same database
    return dump


@pytest.mark.parametrize("bill_while_suspended", [True, False])
def test_the_set_based_import_writes_the_rows_the_services_write(
        cli, db, box: SecretBox, bill_while_suspended: bool) -> None:  # type: ignore[no-untyped-def]
    cli("isp", "set", "--name", "Dhaka Fiber", "--timezone", "Asia/Dhaka",
        "--payment-link-base", "https://pay.example.com",
        "--bill-while-suspended" if bill_while_suspended else "--no-bill-while-suspended")
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/10M")
    cli("plan", "create", "Biz", "--price", "3000", "--currency", "BDT", "--rate", "50M/50M",
        "--tax-percent", "5")
    reference = _import(db, box, one_by_one=True)
    set_based = _import(db, box, one_by_one=False)
    for name, rows in reference.items():
        assert set_based[name] == rows, name
    # what the comparison covers: every kind of row an import writes
    subs = {r["username"]: r for r in reference["subscribers"]}
    assert [str(subs[n]["status"]) for n in ("a1", "a2", "a3", "a4", "a5", "a6", "a7")] == [
        "active", "suspended", "disabled", "suspended", "active", "disabled", "suspended"]
    assert (subs["a4"]["suspended_on"], subs["a6"]["billing_paused_on"]) == (LATER, LATER)
    assert subs["a2"]["billing_paused_on"] == (None if bill_while_suspended else TODAY)
    assert [(r["subscriber_id"], str(r["action"])) for r in reference["enforcement_requests"]] \
        == [("a2", "suspend"), ("a3", "disable"), ("a4", "suspend"), ("a6", "disable"),
            ("a7", "suspend")]
    assert [(r["subscriber_id"], str(r["total"]), r["number"] is not None)
            for r in reference["invoices"]] == [("a1", "1500.50", True), ("a3", "300.00", True),
                                                ("a7", "99.99", True)]
    assert [(r["subscriber_id"], str(r["amount"])) for r in reference["ledger_entries"]] == [
        ("a1", "1500.50"), ("a2", "-200.00"), ("a3", "300.00"), ("a6", "-0.50"),
        ("a7", "99.99")]
    assert [r["subscriber_id"] for r in reference["outbox"]] == ["a1", "a3", "a7"]
    imported = [r["action"] for r in reference["audit_log"] if r["actor"] == "tester"]
    assert len(imported) == 7 + 5 + (2 if bill_while_suspended else 5) + 1
    assert imported[-1] == "subscriber.import"
