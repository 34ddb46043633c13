"""Detail spools: compressed (gzip) as soon as they are applied, deleted after the spool
retention; the file the cursor stands in is never touched, the ingester never reads a
compressed file again, and set-aside records still replay (they are kept whole in the
database)."""

from __future__ import annotations

import gzip
import os

from radbill.db import session_factory
from radius.accounting import Limits
from radius.ingest import Ingester, replay, tidy_spool
from tests.radius.test_ingest import record, sessions, set_aside, write

G = 2**32
SLOW = Limits(max_bits_per_second=8 * 10**6)  # a 4 GB Interim in 60 s is set aside


def test_applied_files_are_compressed_then_deleted_after_keep_days(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = write(tmp_path, "detail-20261101-00", record("Start", "s1", 0))
    applied = write(tmp_path, "detail-20261123-10", record("Start", "s2", 0)
                    + record("Interim-Update", "s2", 60, G))
    current = write(tmp_path, "detail-20261124-20", record("Start", "s3", 0))
    text = applied.read_bytes()
    assert Ingester(session_factory(db), tmp_path, limits=SLOW).run_once() == 3
    [aside] = set_aside(db)  # the jump in detail-20261123-10
    eight_days = old.stat().st_mtime - 8 * 86400
    os.utime(old, (eight_days, eight_days))
    done = tidy_spool(tmp_path, session_factory(db), keep_days=7)
    assert (done.compressed, done.removed) == (1, 1)
    assert done.bytes_in == len(text) and done.bytes_out > 0
    names = sorted(p.name for p in (tmp_path / "acct").iterdir())
    assert names == ["detail-20261123-10.gz", "detail-20261124-20"]
    assert not old.exists() and current.exists()  # the cursor's file may still grow
    with gzip.open(tmp_path / "acct" / "detail-20261123-10.gz") as fh:
        assert fh.read() == text
    # the ingester goes on from its cursor and never reads the compressed file
    write(tmp_path, "detail-20261124-20", record("Stop", "s3", 120))
    assert Ingester(session_factory(db), tmp_path).run_once() == 1
    assert sessions(db)["s3"].stopped_at is not None
    # a record set aside from a compressed file is replayed from the database
    report = replay(session_factory(db), ids=[aside["id"]], actor="noc", limits=Limits())
    assert report.replayed == [aside["id"]]
    assert sessions(db)["s2"].input_octets == G
    # idempotent; and the compressed file goes once it is older than the retention
    assert tidy_spool(tmp_path, session_factory(db), keep_days=7).compressed == 0
    gz = tmp_path / "acct" / "detail-20261123-10.gz"
    os.utime(gz, (eight_days, eight_days))
    assert tidy_spool(tmp_path, session_factory(db), keep_days=7).removed == 1
    assert not gz.exists()


def test_the_compressed_file_keeps_the_original_time(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    applied = write(tmp_path, "detail-20261123-10", record("Start", "s2", 0))
    write(tmp_path, "detail-20261124-20", record("Start", "s3", 0))
    Ingester(session_factory(db), tmp_path).run_once()
    os.utime(applied, (1_790_000_000, 1_790_000_000))
    tidy_spool(tmp_path, session_factory(db), keep_days=36_500)
    assert (tmp_path / "acct" / "detail-20261123-10.gz").stat().st_mtime == 1_790_000_000
