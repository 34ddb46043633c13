"""`radbill backup` and `radbill restore`: a round trip onto a fresh install verifies every
invoice PDF, decrypts every stored secret and logs subscribers in through the real
FreeRADIUS; a damaged backup, a database in use or another key are refused with one line."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from billing.models import Invoice
from radbill.cli import main
from radbill.db import make_engine, session_factory
from tests import pgserver
from tests.conftest import BACKEND
from tests.e2e.server import RadiusServer

SECRET = "backup-nas-secret"
USERS = {"alice": "alice-pw", "bob": "b0b-pw", "chand": "চাঁদ-pw"}


class Install:
    """One radbill installation: a data directory and a database, driven by the CLI."""

    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir, self.url = data_dir, url

    def __call__(self, *args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        env = {"RADBILL_DATA_DIR": str(self.data_dir), "RADBILL_DATABASE_URL": self.url,
               "RADBILL_SECRET_KEY": "", "RADBILL_GATEWAYS_FILE": ""}
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """Makes fresh installations: a new data directory and a new, empty database."""
    made: list[str] = []

    def make(name: str) -> Install:
        if BACKEND == "sqlite":
            url = f"sqlite:///{tmp_path / name / 'radbill.db'}"
        else:
            admin = request.getfixturevalue("pg_admin_url")
            db_name, pg_url = pgserver.create_database(admin)
            made.append(db_name)
            url = pgserver.sqlalchemy_url(pg_url)
        return Install(tmp_path / name, url)

    yield make
    if made:
        admin = request.getfixturevalue("pg_admin_url")
        for db_name in made:
            pgserver.drop_database(admin, db_name)


def populate(src: Install) -> None:
    src("db", "upgrade")
    src("isp", "set", "--name", "Dhaka Fiber", "--timezone", "Asia/Dhaka")
    src("nas", "create", "core", "--ip", "127.0.0.1", "--secret", SECRET)
    src("plan", "create", "Home", "--price", "1000", "--currency", "BDT", "--rate", "10M/10M",
        "--tax-percent", "5")
    today = dt.datetime.now(ZoneInfo("Asia/Dhaka")).date()
    for name, password in USERS.items():
        src("subscriber", "create", name, "--password", password, "--plan", "Home",
            "--activated-on", str(today - dt.timedelta(days=40)))
    src("billing", "run", "--json")
    src("billing", "render-pdfs")
    gateways = src.data_dir / "gateways.json"
    gateways.write_text(json.dumps({"razorpay": {"mode": "sandbox", "key_id": "rzp_test_1"}}))


def pdfs(install: Install) -> dict[str, tuple[str, str]]:
    engine = make_engine(install.url)
    try:
        with session_factory(engine)() as s:
            return {inv.number: (inv.pdf_path or "", inv.pdf_sha256 or "")
                    for inv in s.scalars(select(Invoice))}
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_a_backup_restores_onto_a_fresh_install_and_everything_verifies(
        fresh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = fresh("src")
    populate(src)
    before = pdfs(src)
    assert len(before) == 3 and all(path for path, _ in before.values())

    out = json.loads(src("backup", str(tmp_path / "backups"), "--json").output)
    backup = Path(out["backup"])
    assert backup.parent == tmp_path / "backups"
    # owner-only: it holds the key
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    files = [p for p in backup.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert {"secret.key", "gateways.json"} <= set(manifest["files"])
    assert sum(name.startswith("invoices/") for name in manifest["files"]) == 3

    dst = fresh("dst")
    dst("db", "upgrade")  # a fresh install has its (empty) schema and its own new key...
    (dst.data_dir / "secret.key").unlink()  # ...which the operator moves away
    restored = json.loads(dst("restore", str(backup), "--json").output)
    assert restored == {"revision": manifest["revision"], "invoices_verified": 3,
                        "invoices_bad": [], "secrets_checked": 4, "secrets_unreadable": 0}
    after = pdfs(dst)
    assert {n: sha for n, (_, sha) in after.items()} == {n: sha for n, (_, sha) in
                                                         before.items()}
    for path, sha in after.values():  # the archive moved with the data directory
        assert Path(path).is_relative_to(dst.data_dir / "invoices")
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    assert (dst.data_dir / "secret.key").read_bytes() == (src.data_dir / "secret.key").read_bytes()
    assert stat.S_IMODE((dst.data_dir / "secret.key").stat().st_mode) == 0o600
    assert (dst.data_dir / "gateways.json").read_text() == (
        src.data_dir / "gateways.json").read_text()
    shown = json.loads(dst("subscriber", "show", "alice", "--json").output)
    assert len(shown["account"]["open_invoices"]) == 1

    # subscribers log in through the real FreeRADIUS on the restored install
    server = RadiusServer(dst.url, dst.data_dir).start()
    try:
        client = server.client(secret=SECRET)
        for name, password in USERS.items():
            assert client.authenticate(name, password).accepted, server.log[-2000:]
        assert client.authenticate("alice", "wrong").rejected
    finally:
        server.stop()


def test_a_damaged_backup_or_an_install_in_use_is_refused_and_nothing_is_written(
        fresh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = fresh("src")
    populate(src)
    backup = Path(json.loads(src("backup", str(tmp_path / "b"), "--json").output)["backup"])

    # onto the installation it came from (it holds data)
    busy = src("restore", str(backup), ok=False)
    assert busy.exit_code == 1
    assert busy.output.startswith("error: the database is not empty")
    assert busy.output.count("\n") == 1

    dst = fresh("dst")
    dst("db", "upgrade")  # with its own key still in place
    other_key = dst("restore", str(backup), ok=False)
    assert other_key.exit_code == 1 and "a different secret key is at" in other_key.output
    assert pdfs(dst) == {}

    (dst.data_dir / "secret.key").unlink()
    pdf = next(p for p in (backup / "invoices").rglob("*.pdf"))
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pdf.write_bytes(bytes(data))
    damaged = dst("restore", str(backup), ok=False)
    assert damaged.exit_code == 1
    assert damaged.output == (f"error: invoices/{pdf.parent.name}/{pdf.name} does not match its "
                              "checksum: the backup is damaged\n")
    assert pdfs(dst) == {} and not (dst.data_dir / "secret.key").exists()

    not_a_backup = dst("restore", str(tmp_path), ok=False)
    assert not_a_backup.exit_code == 1 and "is not a radbill backup" in not_a_backup.output
