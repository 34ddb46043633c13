"""`radbill accounting rejected` lists what the ingester set aside; `radbill accounting
replay` applies it again after a fix."""

import json

from radbill.db import session_factory
from radius.ingest import Ingester
from tests.radius.test_ingest import record, sessions, write

FILE = "detail-20261124-20"


def spool_with_bad_records(db, tmp_path):  # type: ignore[no-untyped-def]
    spool = tmp_path / "radius" / "spool"
    write(spool, FILE, record("Start", "ok", 0) + record("Start", "nul\\000x", 0)
          + record("Interim-Update", "ok", 60, 2**63))
    Ingester(session_factory(db), spool).run_once()


def test_rejected_lists_newest_first_with_reasons(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spool_with_bad_records(db, tmp_path)
    data = json.loads(cli("accounting", "rejected", "--json").stdout)
    assert [(d["acct_session_id"], d["reason"], d["status"]) for d in data] == [
        ("ok", "Acct-Input-Gigawords=2147483648 makes a counter of 9223372036854775808 bytes "
               "(at most 2^63-1)", "pending"),
        ("nul\x00x", "Acct-Session-Id='nul\\x00x' contains a NUL byte", "pending")]
    assert data[1]["record"]["Acct-Session-Id"] == "nul\x00x"
    one = json.loads(cli("accounting", "rejected", "--json", "--limit", "1").stdout)
    assert [d["id"] for d in one] == [data[0]["id"]]
    text = cli("accounting", "rejected").stdout
    assert "nul\\x00x" in text and "\x00" not in text  # a terminal never gets the raw byte
    assert text.rstrip().endswith("2 pending in all")
    assert json.loads(cli("accounting", "rejected", "--status", "replayed", "--json").stdout
                      ) == []


def test_replay_needs_ids_or_all_and_refuses_unknown_ids(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spool_with_bad_records(db, tmp_path)
    for args in ((), ("1", "--all")):
        result = cli("accounting", "replay", *args, ok=False)
        assert result.exit_code == 1
        assert result.stderr == ("error: give the ids of set-aside records to replay, or "
                                 "--all (not both)\n")
    result = cli("accounting", "replay", "424242", ok=False)
    assert (result.exit_code, result.stderr) == (
        1, "error: no set-aside record with id 424242; nothing replayed\n")


def test_replay_all_reports_what_still_fails(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spool_with_bad_records(db, tmp_path)
    ids = sorted(d["id"] for d in json.loads(cli("accounting", "rejected", "--json").stdout))
    out = json.loads(cli("accounting", "replay", "--all", "--json").stdout)
    assert out["replayed"] == [] and sorted(int(k) for k in out["failed"]) == ids
    assert out["alert_resolved"] is False
    text = cli("accounting", "replay", str(ids[0])).stdout
    assert text.startswith("replayed 0, still set aside 1, already replayed 0\n")
    data = json.loads(cli("accounting", "rejected", "--json").stdout)
    assert {d["attempts"] for d in data} == {2, 1}


def test_replay_after_raising_the_limit_applies_the_jump(cli, db, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from radius.accounting import Limits

    spool = tmp_path / "radius" / "spool"
    write(spool, FILE, record("Start", "s1", 0) + record("Interim-Update", "s1", 60, 2**40))
    Ingester(session_factory(db), spool, limits=Limits(max_bits_per_second=10**9)).run_once()
    [entry] = json.loads(cli("accounting", "rejected", "--json").stdout)
    assert entry["reason"].startswith("input counter jumps by 1099511627776 bytes in 60 s")
    monkeypatch.setenv("RADBILL_ACCT_MAX_MBPS", "1000")  # still 1 Gbit/s: fails again
    assert cli("accounting", "replay", "--all").stdout.startswith("replayed 0, still set aside 1")
    monkeypatch.delenv("RADBILL_ACCT_MAX_MBPS")  # the default, 100 Gbit/s
    out = json.loads(cli("accounting", "replay", "--all", "--json").stdout)
    assert (out["replayed"], out["alert_resolved"]) == ([entry["id"]], True)
    assert sessions(db)["s1"].input_octets == 2**40
    assert json.loads(cli("accounting", "rejected", "--json").stdout) == []
