"""Set-aside records are replayed after a fix through the ingester's own code: idempotent,
audited, and a record that fails again stays set aside with the new reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from radbill.audit import AuditLog
from radbill.db import session_factory
from radbill.errors import NotFound
from radbill.ops import Alert
from radius import rejects
from radius.accounting import Limits
from radius.ingest import Ingester, replay
from radius.models import PostAuth, RejectedRecord
from tests.radius.test_ingest import BASE, record, sessions, set_aside, write

G = 2**32
FILE = "detail-20261124-20"
SLOW = Limits(max_bits_per_second=8 * 10**6)  # 1 MB/s: a 1 GB Interim is a "jump"


def jumpy(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """s1 starts, then an Interim 60 s later with 1 GB: implausible at 1 MB/s."""
    write(tmp_path, FILE, record("Start", "s1", 0) + record("Interim-Update", "s1", 60, G)
          + record("Start", "s2", 0))
    assert Ingester(session_factory(db), tmp_path, limits=SLOW).run_once() == 2


def test_a_jump_set_aside_is_applied_by_a_replay_once_the_limit_is_fixed(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    jumpy(db, tmp_path)
    assert sessions(db)["s1"].input_octets == 0  # the session kept its previous counters
    [entry] = set_aside(db)
    assert entry["reason"].startswith("input counter jumps by 4294967296 bytes in 60 s")
    # replayed with the same limit: still implausible, still pending, attempt counted
    report = replay(session_factory(db), ids=[entry["id"]], actor="noc", limits=SLOW)
    assert (report.replayed, list(report.failed), report.alert_resolved) == ([], [entry["id"]],
                                                                             False)
    [again] = set_aside(db)
    assert (again["status"], again["attempts"], again["outcome"]) == ("pending", 1, "failed")
    # the operator raises the limit: the replay applies it, and resolves the alert
    report = replay(session_factory(db), ids=[entry["id"]], actor="noc", limits=Limits())
    assert (report.replayed, report.failed, report.alert_resolved) == ([entry["id"]], {}, True)
    assert sessions(db)["s1"].input_octets == G
    [done] = set_aside(db)
    assert (done["status"], done["attempts"], done["outcome"]) == ("replayed", 2, "applied")
    with session_factory(db)() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == rejects.ALERT_KIND)).one()
        assert alert.resolved_by == "noc"
        audit = [(a.actor, a.action, a.entity_id, (a.after or {})["status"])
                 for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert audit == [("noc", "accounting.replay", str(entry["id"]), "pending"),
                     ("noc", "accounting.replay", str(entry["id"]), "replayed")]
    # and again: nothing to do
    report = replay(session_factory(db), ids=[entry["id"]], actor="noc")
    assert (report.replayed, report.skipped) == ([], [entry["id"]])
    assert sessions(db)["s1"].input_octets == G


def test_replay_all_takes_every_pending_record_in_order(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, "".join(record("Interim-Update", f"x{i}", 60, G * (i + 1))
                                  for i in range(7)))
    Ingester(session_factory(db), tmp_path, limits=SLOW).run_once()
    assert len(set_aside(db)) == 7
    report = replay(session_factory(db), actor="cli", limits=Limits(), chunk=3)
    assert report.replayed == [e["id"] for e in set_aside(db)] and len(report.replayed) == 7
    assert {k: v.input_octets for k, v in sessions(db).items()} == {
        f"x{i}": G * (i + 1) for i in range(7)}


def test_a_record_that_fails_again_keeps_the_new_reason(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "b\\000ad", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    [entry] = set_aside(db)
    with session_factory(db)() as s, s.begin():
        s.get(RejectedRecord, entry["id"]).reason = "an older reason"  # type: ignore[union-attr]
    report = replay(session_factory(db), actor="cli")
    assert report.failed == {entry["id"]: "Acct-Session-Id='b\\x00ad' contains a NUL byte"}
    assert set_aside(db)[0]["reason"] == "Acct-Session-Id='b\\x00ad' contains a NUL byte"


def test_an_incomplete_record_cannot_be_replayed(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    p = write(tmp_path, FILE, record("Start", "s1", 0) + "Tue Nov\n\tUser-")
    write(tmp_path, "detail-20261124-21", record("Start", "s2", 0))
    os.utime(p, (p.stat().st_atime - 120, p.stat().st_mtime - 120))
    Ingester(session_factory(db), tmp_path).run_once()
    report = replay(session_factory(db), actor="cli")
    assert list(report.failed.values()) == ["not a complete record: cannot be replayed"]


def test_unknown_ids_are_refused_before_anything_is_replayed(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    jumpy(db, tmp_path)
    [entry] = set_aside(db)
    with pytest.raises(NotFound, match=r"no set-aside record with id 0, 999999, "
                       r"100000000000000000000; nothing replayed"):
        replay(session_factory(db), ids=[entry["id"], 999999, 0, 10**20], actor="cli",
               limits=Limits())
    assert set_aside(db)[0]["status"] == "pending"


def test_postauth_records_replay_into_the_log(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, "Tue Nov 24 20:15:55 2026\n\tRadbill-User-Name = \"late\"\n"
          "\tRadbill-Decision = \"accept\"\n\tTimestamp = 99999999999\n\n", stream="postauth")
    Ingester(session_factory(db), tmp_path).run_once()
    [entry] = set_aside(db)
    assert entry["reason"] == "Timestamp='99999999999' is not a time"
    # the fix: the operator corrects the stored record (here: by hand), then replays it
    with session_factory(db)() as s, s.begin():
        row = s.get(RejectedRecord, entry["id"])
        assert row is not None
        row.record = row.record.replace("99999999999", str(BASE))
    assert replay(session_factory(db), actor="cli").replayed == [entry["id"]]
    with session_factory(db)() as s:
        assert [(r.username, r.decision) for r in s.scalars(select(PostAuth))] == [
            ("late", "accept")]


def test_replayed_records_are_pruned_after_a_while_pending_ones_never(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    write(tmp_path, FILE, record("Interim-Update", "a", 60, G) + record("Interim-Update",
                                                                         "b", 60, G))
    Ingester(session_factory(db), tmp_path, limits=SLOW).run_once()
    first, second = (e["id"] for e in set_aside(db))
    replay(session_factory(db), ids=[first], actor="cli")
    with session_factory(db)() as s, s.begin():
        now = s.get(RejectedRecord, first).replayed_at  # type: ignore[union-attr]
        assert rejects.prune(s, now) == 0  # replayed at that moment, not before
        assert rejects.prune(s, now + dt.timedelta(seconds=1)) == 1
    assert [e["id"] for e in set_aside(db)] == [second]


def test_a_stored_record_is_bounded(db) -> None:  # type: ignore[no-untyped-def]
    huge = {"User-Name": "u" * 70_000, "Reply-Message": "\x00\udcff" * 10}
    text = rejects.encode_record(huge)
    assert len(text) <= rejects.MAX_RECORD_CHARS and text.isascii()
    assert list(rejects.decode_record(text)) == [rejects.NOT_A_RECORD]
    small = {"User-Name": "\x00\udcffé"}
    assert rejects.decode_record(rejects.encode_record(small)) == small
    torn = "\udcff" * 100_000
    assert len(rejects.encode_record(torn)) <= rejects.MAX_RECORD_CHARS
    assert len(rejects.clean_reason("r" * 5000 + "\nsecond line")) == rejects.MAX_REASON_CHARS
    assert rejects.clean_reason("a\x00b\nc") == "a\ufffdb"
