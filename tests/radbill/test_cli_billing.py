"""The billing CLI end to end on the real database: run, dry run, payment, promise, reports."""

import datetime as dt
import json
from zoneinfo import ZoneInfo


def test_billing_cycle_through_the_cli(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli("isp", "set", "--name", "Dhaka Fiber", "--timezone", "Asia/Dhaka", "--weekly-off", "fri")
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/10M",
        "--tax-percent", "5", "--grace-days", "3", "--late-fee", "50")
    today = dt.datetime.now(ZoneInfo("Asia/Dhaka")).date()
    # back-office staff enter a subscriber connected last month: the first period has ended
    start = today - dt.timedelta(days=40)
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "Home",
        "--activated-on", str(start))
    created = json.loads(cli("subscriber", "show", "alice", "--json").output)
    assert created["status"] == "active" and created["billing_started_on"] == str(start)
    future = cli("subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
                 "--activated-on", str(today + dt.timedelta(days=1)), ok=False)
    assert future.exit_code == 1 and "in the future" in future.output
    renew = json.loads(cli("billing", "renewals", "--days", "31", "--as-of", str(start),
                           "--json").output)
    assert renew[0]["username"] == "alice" and renew[0]["amount"] == "1050.00"
    day = renew[0]["renews_on"]
    ahead = cli("billing", "run", "--as-of", str(today + dt.timedelta(days=1)), ok=False)
    assert ahead.exit_code == 1 and "in the future" in ahead.output
    # a real run is for today: a past day would date its documents back
    back = cli("billing", "run", "--as-of", day, ok=False)
    assert back.exit_code == 1 and f"--as-of {day} is in the past" in back.output
    dry = json.loads(cli("billing", "run", "--as-of", day, "--dry-run", "--json").output)
    assert dry["counts"] == {"invoice": 1}
    assert json.loads(cli("billing", "invoices", "--json").output) == []  # nothing changed
    dry = json.loads(cli("billing", "run", "--dry-run", "--json").output)
    real = json.loads(cli("billing", "run", "--json").output)
    assert real["events"] == dry["events"] and real["as_of"] == str(today)
    invoices = json.loads(cli("billing", "invoices", "--subscriber", "alice", "--json").output)
    assert {i["issued_on"] for i in invoices} == {str(today)}
    assert invoices[0]["total"] == "1050.00" and invoices[0]["pdf_sha256"]
    assert (tmp_path / "invoices").is_dir()
    again = json.loads(cli("billing", "run", "--json").output)
    assert again["counts"] == {}
    bad = cli("payment", "record", "alice", "ten", "--reference", "R1", ok=False)
    assert bad.exit_code == 1 and bad.output.startswith("error: malformed amount")
    paid = json.loads(cli("payment", "record", "alice", "1050", "--method", "cash",
                          "--reference", "R1", "--json").output)
    assert paid["balance"] == "0.00" and paid["invoices_paid"] == [invoices[0]["number"]]
    dup = cli("payment", "record", "alice", "1050", "--reference", "R1", ok=False)
    assert "already recorded" in dup.output
    overdue = json.loads(cli("billing", "overdue", "--json").output)
    assert overdue["subscribers"] == [] and overdue["totals"] == {}
    bad_promise = cli("subscriber", "promise", "alice", "--until", "2000-01-01", ok=False)
    assert "must be after today" in bad_promise.output
    note = cli("billing", "credit-note", invoices[0]["number"], "50", "--reason", "outage")
    assert note.output.startswith("credit note CN-000001")
    cli("plan", "create", "Gold", "--price", "2000", "--currency", "BDT", "--rate", "50M/50M")
    assert "next period" in cli("subscriber", "set-plan", "alice", "Gold", "--at",
                                "next_cycle").output
    shown = json.loads(cli("subscriber", "show", "alice", "--json").output)
    assert shown["plan"] == "Home"


def test_what_happened_earlier_is_entered_with_its_date(cli) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from billing.models import LedgerEntry, Payment, Subscriber
    from radbill.config import Settings
    from radbill.db import engine_from_settings, session_factory

    today = dt.datetime.now(ZoneInfo("Asia/Dhaka")).date()
    yesterday = str(today - dt.timedelta(days=1))
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/10M")
    cli("subscriber", "create", "bob", "--password", "pw", "--plan", "Home",
        "--activated-on", str(today - dt.timedelta(days=40)))
    cli("payment", "record", "bob", "500", "--reference", "cash-book-12", "--on", yesterday)
    # billing has not reached bob's current period yet: what a pause credits depends on it
    stale = cli("subscriber", "disable", "bob", "--on", yesterday, "--reason", "moved away",
                ok=False)
    assert stale.exit_code == 1 and "billing for bob is not current" in stale.output
    cli("billing", "run")
    cli("subscriber", "disable", "bob", "--on", yesterday, "--reason", "moved away")
    early = cli("payment", "record", "bob", "5", "--reference", "R-e", "--on",
                str(today - dt.timedelta(days=41)), ok=False)
    assert "before bob's billing started" in early.output
    later = cli("subscriber", "promise", "bob", "--until", str(today + dt.timedelta(days=3)),
                "--on", str(today + dt.timedelta(days=1)), ok=False)
    assert "in the future" in later.output
    engine = engine_from_settings(Settings.from_env())
    with session_factory(engine)() as s:
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment")).one()
        assert str(entry.effective_on) == yesterday
        payment = s.scalars(select(Payment)).one()
        assert payment.received_at.astimezone(ZoneInfo("Asia/Dhaka")).date() == entry.effective_on
        sub = s.scalars(select(Subscriber)).unique().one()
        assert str(sub.billing_paused_on) == yesterday and str(sub.status) == "disabled"
    engine.dispose()
