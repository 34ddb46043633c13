"""Bulk import and export of subscribers (billing/imports.py, `radbill subscriber import` and
`export`): documented columns, all or nothing with every bad row listed by line and reason,
opening balances on the books, a dry run that writes nothing, export with passwords only on
request, and an export that imports again."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from billing import ledger
from billing.models import Invoice, InvoiceKind, Subscriber
from radbill.audit import AuditLog
from radbill.db import session_factory

TODAY = dt.datetime.now(ZoneInfo("Asia/Dhaka")).date()
HEADER = ("username,password,plan,service,name,phone,email,mac,ip,pool,status,"
          "opening_balance,next_renewal")


def _setup(cli) -> None:  # type: ignore[no-untyped-def]
    cli("isp", "set", "--name", "Dhaka Fiber", "--timezone", "Asia/Dhaka")
    cli("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/10M")
    cli("plan", "create", "Biz", "--price", "3000", "--currency", "BDT", "--rate", "50M/50M")


def test_a_good_file_is_imported_whole_and_exports_back(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli)
    renew = TODAY + dt.timedelta(days=10)
    src = tmp_path / "in.csv"
    src.write_text("\n".join([
        HEADER,
        f"alice,pw-alice,Home,pppoe,Alice A,+8801711111111,a@example.com,"
        f"aa:bb:cc:dd:ee:01,10.9.0.1,,active,1500.50,{renew}",
        "bob,pw-bob,Biz,hotspot,Bob B,,,,,pool-b,disabled,-200,",
        "carol,pw-carol,Home,,,,,,,,suspended,0,",
        "",  # a blank line is skipped
    ]) + "\n", encoding="utf-8")
    dry = json.loads(cli("subscriber", "import", str(src), "--dry-run", "--json").output)
    assert dry["errors"] == [] and dry["created"] == 0
    assert [r["username"] for r in dry["preview"]] == ["alice", "bob", "carol"]
    factory = session_factory(db)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 0
    done = json.loads(cli("subscriber", "import", str(src), "--json").output)
    assert done["created"] == 3
    with factory() as s:
        subs = {x.username: x for x in s.scalars(select(Subscriber)).unique()}
        a, b, c = subs["alice"], subs["bob"], subs["carol"]
        assert (a.plan.name, a.static_ip, a.mac_address, a.phone, a.email) == (
            "Home", "10.9.0.1", "AA:BB:CC:DD:EE:01", "+8801711111111", "a@example.com")
        assert (a.period_start, a.billing_started_on) == (renew, renew)
        assert (str(b.service), b.ip_pool, str(b.status), b.period_start) == (
            "hotspot", "pool-b", "disabled", TODAY)
        assert str(c.status) == "suspended" and not c.suspended_for_nonpayment
        # opening balances: owed on a charge invoice, credit in hand on the ledger
        (doc,) = s.scalars(select(Invoice).where(Invoice.subscriber_id == a.id)).all()
        assert (doc.kind, doc.total, doc.issued_on) == (InvoiceKind.CHARGE,
                                                        Decimal("1500.50"), TODAY)
        assert ledger.balance(s, a.id) == Decimal("1500.50")
        assert ledger.balance(s, b.id) == Decimal("-200.00")
        created = s.scalars(select(AuditLog.entity_id).where(
            AuditLog.action == "subscriber.create").order_by(AuditLog.id)).all()
        assert created == [str(a.id), str(b.id), str(c.id)]
        assert s.scalar(select(func.count()).where(AuditLog.action == "subscriber.import")) == 1
        assert len({a.auth_version, b.auth_version, c.auth_version}) == 3
    out = tmp_path / "out.csv"
    cli("subscriber", "export", str(out))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER
    assert lines[1] == (f"alice,,Home,pppoe,Alice A,+8801711111111,a@example.com,"
                        f"AA:BB:CC:DD:EE:01,10.9.0.1,,active,1500.50,{renew}")
    with_pw = tmp_path / "pw.csv"
    cli("subscriber", "export", str(with_pw), "--with-passwords")
    rows = with_pw.read_text(encoding="utf-8").splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["pw-alice", "pw-bob", "pw-carol"]
    # the export imports again (as new names): same columns, same values
    again = tmp_path / "again.csv"
    again.write_text("\n".join([rows[0], *(f"x{r}" for r in rows[1:])]) + "\n",
                     encoding="utf-8")
    bad_ip = json.loads(cli("subscriber", "import", str(again), "--json", ok=False).output)
    assert bad_ip["errors"] == [{"line": 2, "reason": "IP address 10.9.0.1 is already "
                                 "assigned to another subscriber"}]


def test_a_file_with_bad_rows_lists_every_one_and_writes_nothing(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli)
    cli("subscriber", "create", "taken", "--password", "pw", "--plan", "Home")
    src = tmp_path / "bad.csv"
    src.write_text("\n".join([
        "username,password,plan,status,opening_balance,next_renewal,ip,email",
        "ok1,pw,Home,,,,,",
        "taken,pw,Home,,,,,",
        "ok2,pw,Gold,,,,,",
        "ok3,pw,Home,gone,,,,",
        "ok4,pw,Home,,ten,,,",
        "ok5,pw,Home,,1.005,,,",
        f"ok6,pw,Home,,,{TODAY - dt.timedelta(days=1)},,",
        "ok7,pw,Home,,,,300.1.1.1,",
        "ok8,pw,Home,,,,,not-an-email",
        "OK1,pw,Home,,,,,",
        "ok9,pw,Home",
    ]) + "\n", encoding="utf-8")
    result = cli("subscriber", "import", str(src), ok=False)
    assert result.exit_code == 1
    out = result.output
    assert out.startswith("10 problem(s); nothing imported:")
    for line, words in ((3, "already exists"), (4, "unknown plan 'Gold'"),
                        (5, "status 'gone'"), (6, "not an amount"), (7, "more decimals"),
                        (8, "in the past"), (9, "300.1.1.1"), (10, "e-mail"),
                        (11, "also on line 2"), (12, "3 values for 8 columns")):
        assert any(x.startswith(f"line {line}: ") and words in x for x in out.splitlines()), \
            (line, out)
    with session_factory(db)() as s:
        assert s.scalars(select(Subscriber.username)).all() == ["taken"]
    header = tmp_path / "header.csv"
    header.write_text("user,password,plan\nx,y,Home\n", encoding="utf-8")
    result = cli("subscriber", "import", str(header), ok=False)
    assert "line 1: unknown column 'user'" in result.output
    assert "line 1: column 'username' is missing" in result.output
