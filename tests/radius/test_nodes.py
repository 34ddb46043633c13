"""Several RADIUS nodes on one database: each node's ingester keeps its own cursors."""

from sqlalchemy import select

from radbill.config import ConfigError, Settings
from radbill.crypto import SecretBox, key_matches
from radbill.db import session_factory
from radius import rejects
from radius.ingest import Ingester, prune_spool
from radius.models import DetailCursor, RadiusSession
from radius.nas import create_nas
from tests.radius.test_ingest import record, write

FILE = "detail-20261124-20"


def test_two_nodes_with_files_of_the_same_name_each_apply_their_own(db, tmp_path, caplog
                                                                    ) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    # node a's file is longer than node b's: with one shared cursor, b found its file
    # "shorter than the cursor" and read it from the start at every pass
    write(a, FILE, record("Start", "a1", 0) + record("Start", "a2", 0) + record("Start", "a3", 0))
    write(b, FILE, record("Start", "b1", 0))
    node_a = Ingester(session_factory(db), a, node="node-a")
    node_b = Ingester(session_factory(db), b, node="node-b")
    for _ in range(3):
        node_a.run_once()
        node_b.run_once()
    assert (node_a.applied, node_b.applied) == (3, 1)
    assert "shorter than the cursor" not in caplog.text
    write(b, FILE, record("Stop", "b1", 60, 1000))
    assert node_b.run_once() == 1 and node_a.run_once() == 0
    with session_factory(db)() as s:
        rows = {r.acct_session_id: r for r in s.scalars(select(RadiusSession))}
        cursors = {(c.node, c.stream): (c.file_name, c.offset, c.records) for c in
                   s.scalars(select(DetailCursor).order_by(DetailCursor.node,
                                                           DetailCursor.stream))}
    assert sorted(rows) == ["a1", "a2", "a3", "b1"]
    assert rows["b1"].input_octets == 1000 and rows["b1"].stopped_at is not None
    assert cursors[("node-a", "acct")] == (FILE, (a / "acct" / FILE).stat().st_size, 3)
    assert cursors[("node-b", "acct")] == (FILE, (b / "acct" / FILE).stat().st_size, 2)


def test_records_set_aside_on_two_nodes_at_the_same_place_are_both_kept(db, tmp_path
                                                                        ) -> None:  # type: ignore[no-untyped-def]
    bad = record("Start", "x", 0).replace("Acct-Input-Octets = 0", "Acct-Input-Octets = lots")
    for node in ("node-a", "node-b"):
        write(tmp_path / node, FILE, bad)
        Ingester(session_factory(db), tmp_path / node, node=node).run_once()
    with session_factory(db)() as s:
        kept = sorted(r.file_name for r in rejects.list_rejected(s, status=None, limit=10))
    assert kept == [f"node-a/{FILE}", f"node-b/{FILE}"]


def test_the_upgraded_node_takes_over_the_single_node_cursor(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "s1", 0) + record("Start", "s2", 0))
    Ingester(session_factory(db), tmp_path).run_once()  # a version before node names
    write(tmp_path, FILE, record("Start", "s3", 0))
    # a new node with an empty spool does not take it
    assert Ingester(session_factory(db), tmp_path / "new", node="fresh").run_once() == 0
    upgraded = Ingester(session_factory(db), tmp_path, node="node-a")
    assert upgraded.run_once() == 1  # only s3: s1 and s2 are not applied again
    with session_factory(db)() as s:
        nodes = sorted(s.scalars(select(DetailCursor.node).where(DetailCursor.stream == "acct")))
    assert nodes == ["fresh", "node-a"]


def test_prune_spool_follows_its_own_nodes_cursor(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    old = write(tmp_path / "a", "detail-20261101-00", record("Start", "s1", 0))
    write(tmp_path / "a", "detail-20261124-20", record("Start", "s2", 0))
    os.utime(old, (1, 1))
    # another node far ahead must not make node a delete a file it has not read
    write(tmp_path / "b", "detail-20261130-00", record("Start", "b1", 0))
    Ingester(session_factory(db), tmp_path / "b", node="node-b").run_once()
    assert prune_spool(tmp_path / "a", session_factory(db), 7, "node-a") == 0
    Ingester(session_factory(db), tmp_path / "a", node="node-a").run_once()
    assert prune_spool(tmp_path / "a", session_factory(db), 7, "node-a") == 1


def test_node_name_defaults_to_the_host_name_and_is_bounded() -> None:
    import socket

    import pytest

    assert Settings.from_env({"RADBILL_NODE_NAME": "radius-2"}).node_name == "radius-2"
    assert Settings.from_env({}).node_name == socket.gethostname().split(".")[0][:64]
    for bad in ("a b", "x" * 65, "../etc"):
        with pytest.raises(ConfigError, match="RADBILL_NODE_NAME"):
            Settings.from_env({"RADBILL_NODE_NAME": bad})


def test_key_matches_tells_another_key(session, box) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    assert key_matches(session, SecretBox(Fernet.generate_key()))  # nothing stored yet
    create_nas(session, box, name="n1", ip="10.0.0.1", secret="secret-123")
    session.flush()
    assert key_matches(session, box)
    assert not key_matches(session, SecretBox(Fernet.generate_key()))
