"""The set-aside records page: what the ingester refused, with the reason, and replaying it
(operate permission; the NOC only looks)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from radius import rejects
from radius.accounting import Limits
from radius.ingest import Ingester
from tests.admin.conftest import csrf
from tests.radius.test_ingest import record, write

FILE = "detail-20261124-20"


def set_aside_two(factory: Any, tmp_path: Path) -> list[int]:
    """A NUL Acct-Session-Id (stays bad) and a counter jump at 1 Gbit/s (fine at 100)."""
    write(tmp_path, FILE, record("Start", "s1", 0) + record("Start", "b\\000ad", 0)
          + record("Interim-Update", "s1", 60, 2**40))
    Ingester(factory, tmp_path, limits=Limits(max_bits_per_second=10**9)).run_once()
    with factory() as s:
        return [r.id for r in rejects.list_rejected(s)][::-1]


def test_the_noc_sees_the_records_and_their_reasons_but_no_replay(client_for: Any,
                                                                  factory: Any,
                                                                  tmp_path: Path) -> None:
    set_aside_two(factory, tmp_path)
    page = client_for("noc").get("/accounting/rejected").get_data(as_text=True)
    text = html.unescape(page)
    assert "2 pending" in text
    assert "Acct-Session-Id='b\\x00ad' contains a NUL byte" in text
    assert "input counter jumps by 1099511627776 bytes in 60 s" in text
    assert '"Acct-Session-Id": "b\\u0000ad"' in text  # the record, escaped
    assert "\x00" not in page
    assert "Replay" not in page


def test_billing_replays_the_ticked_record(client_for: Any, factory: Any, tmp_path: Path
                                           ) -> None:
    bad, jump = set_aside_two(factory, tmp_path)
    client = client_for("billing")
    page = client.get("/accounting/rejected").get_data(as_text=True)
    assert "Replay all 2 pending" in page
    resp = client.post("/accounting/rejected/replay", data={"id": str(jump),
                                                            "csrf_token": csrf(client)})
    assert resp.status_code == 302
    page = html.unescape(client.get(resp.headers["Location"]).get_data(as_text=True))
    assert "Replayed 1; still set aside 0." in page and "1 pending" in page
    resp = client.post("/accounting/rejected/replay", data={"all": "1",
                                                            "csrf_token": csrf(client)})
    page = html.unescape(client.get(resp.headers["Location"]).get_data(as_text=True))
    assert "Replayed 0; still set aside 1." in page
    with factory() as s:
        assert [(r.id, r.status, r.attempts) for r in rejects.list_rejected(s, status=None)] == [
            (jump, "replayed", 1), (bad, "pending", 1)]
    replayed = client.get("/accounting/rejected?status=replayed").get_data(as_text=True)
    assert f"<td>{jump}</td>" in replayed and f"<td>{bad}</td>" not in replayed


def test_bad_replay_input_is_a_message(client_for: Any, factory: Any, tmp_path: Path) -> None:
    set_aside_two(factory, tmp_path)
    client = client_for("admin")
    for data, message in [({}, "tick the records to replay"),
                          ({"id": "x"}, "record ids are numbers"),
                          ({"id": "999999"}, "no set-aside record with id 999999")]:
        resp = client.post("/accounting/rejected/replay",
                           data={**data, "csrf_token": csrf(client)})
        assert resp.status_code == 302
        page = html.unescape(client.get(resp.headers["Location"]).get_data(as_text=True))
        assert message in page and "2 pending" in page
