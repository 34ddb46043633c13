"""The NAS client directory a running FreeRADIUS reads, kept in step with the NAS table."""

from pathlib import Path

from radbill.db import session_factory
from radius.clients import ClientSync
from radius.nas import create_nas, delete_nas, update_nas
from radius.server import client_files, clients_conf


class FakeRadmin:
    """Records the radmin commands (a script that appends its arguments to a file)."""

    def __init__(self, tmp: Path, fail: bool = False) -> None:
        self.log = tmp / "radmin.log"
        self.path = tmp / "radmin"
        self.path.write_text(f"#!/bin/sh\necho \"$@\" >> {self.log}\n"
                             + ("echo 'ERROR: socket' ; exit 1\n" if fail else ""))
        self.path.chmod(0o700)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_files_follow_the_table_and_changed_or_removed_nas_are_dropped(db, box, tmp_path
                                                                       ) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db)
    radmin = FakeRadmin(tmp_path)
    raddb = tmp_path / "raddb"
    (raddb / "nas-clients" / "ipv4").mkdir(parents=True)
    (raddb / "nas-clients" / "ipv6").mkdir()
    sync = ClientSync(factory, box, raddb, radmin=str(radmin.path))
    with factory() as s, s.begin():
        create_nas(s, box, name="a", ip="10.0.0.1", secret="secret-aaa-1")
        create_nas(s, box, name="v6", ip="2001:db8::1", secret="secret-six-6")
    changes = sync.sync_once()
    assert (changes.added, changes.changed, changes.removed) == (["10.0.0.1", "2001:db8::1"],
                                                                  [], [])
    assert sorted(sync.on_disk()) == ["ipv4/10.0.0.1", "ipv6/2001:db8::1"]
    assert 'secret = "secret-aaa-1"' in sync.on_disk()["ipv4/10.0.0.1"]
    assert radmin.calls() == []  # a new NAS is read at its first packet
    assert not sync.sync_once()  # nothing changed: nothing written, nobody told

    with factory() as s, s.begin():
        update_nas(s, box, "a", secret="secret-aaa-2")
        delete_nas(s, "v6")
    changes = sync.sync_once()
    assert (changes.added, changes.changed, changes.removed) == ([], ["10.0.0.1"],
                                                                  ["2001:db8::1"])
    assert 'secret = "secret-aaa-2"' in sync.on_disk()["ipv4/10.0.0.1"]
    assert sorted(sync.on_disk()) == ["ipv4/10.0.0.1"]
    sock = raddb / "control.sock"
    assert sorted(radmin.calls()) == [f"-f {sock} -e del client ipaddr 10.0.0.1",
                                      f"-f {sock} -e del client ipaddr 2001:db8::1"]
    assert [p.name for p in (raddb / "nas-clients").iterdir() if p.is_file()] == []
    for p in (raddb / "nas-clients").glob("ipv*/*"):
        assert p.stat().st_mode & 0o077 == 0  # secrets: owner only


def test_a_radmin_failure_is_retried_at_the_next_pass(db, box, tmp_path) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db)
    raddb = tmp_path / "raddb"
    (raddb / "nas-clients" / "ipv4").mkdir(parents=True)
    (raddb / "nas-clients" / "ipv6").mkdir()
    with factory() as s, s.begin():
        create_nas(s, box, name="a", ip="10.0.0.1", secret="secret-aaa-1")
    ClientSync(factory, box, raddb, radmin=str(FakeRadmin(tmp_path).path)).sync_once()
    with factory() as s, s.begin():
        update_nas(s, box, "a", secret="secret-aaa-2")
    (tmp_path / "broken").mkdir()
    (tmp_path / "fixed").mkdir()
    broken = FakeRadmin(tmp_path / "broken", fail=True)
    sync = ClientSync(factory, box, raddb, radmin=str(broken.path))
    sync.sync_once()
    assert len(broken.calls()) == 1
    fixed = FakeRadmin(tmp_path / "fixed")
    sync.radmin = str(fixed.path)
    assert not sync.sync_once()  # the files were current already: only the drop is retried
    assert fixed.calls() == [f"-f {raddb / 'control.sock'} -e del client ipaddr 10.0.0.1"]


def test_an_address_freeradius_never_loaded_counts_as_dropped(db, box, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raddb = tmp_path / "raddb"
    (raddb / "nas-clients" / "ipv4").mkdir(parents=True)
    (raddb / "nas-clients" / "ipv6").mkdir()
    radmin = tmp_path / "radmin"
    # what radmin 3.2.7 says and returns for an address without a loaded client
    radmin.write_text("#!/bin/sh\necho 'ERROR: Client 10.9.9.9 was not dynamically "
                      "defined.'\nexit 1\n")
    radmin.chmod(0o700)
    sync = ClientSync(session_factory(db), box, raddb, radmin=str(radmin))
    assert sync._drop("10.9.9.9") is True


def test_clients_conf_names_no_nas_and_files_are_by_family(db, box) -> None:  # type: ignore[no-untyped-def]
    conf = clients_conf()
    assert "0.0.0.0/0" in conf and "::/0" in conf and "lifetime = 0" in conf
    assert "secret" not in conf
    with session_factory(db)() as s, s.begin():
        a = create_nas(s, box, name="a", ip="10.0.0.1", secret="secret-aaa-1",
                       require_message_authenticator=False)
        files = client_files([a], box)
    assert list(files) == ["ipv4/10.0.0.1"]
    assert "require_message_authenticator = no" in files["ipv4/10.0.0.1"]
