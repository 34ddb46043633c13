"""Backup and restore of an installation: ``radbill backup DIR``, ``radbill restore DIR``.

A backup is one directory, readable by its owner only (it holds the key that decrypts every
stored secret)::

    manifest.json       what and when: schema revision, backend, the original invoice archive,
                        and the SHA-256 and size of every other file
    database.pgdump     PostgreSQL: pg_dump's custom format (restored with pg_restore)
    database.sqlite3    SQLite: a consistent copy through SQLite's online backup API
    secret.key          the at-rest key (subscriber passwords, NAS secrets)
    gateways.json       the payment gateways' credentials, when configured
    invoices/...        the invoice archive as radbill lays it out (year/number.pdf)

Restore goes onto a fresh install of the same backend: every file is checked against the
manifest before anything is written; the database must be empty; a different key already in
place is refused (it would make every stored secret unreadable). After the copy the schema is
migrated to this release's head, the archive's paths are moved to the new data directory, and
every invoice PDF and every stored secret is checked: the summary says how many verified.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, inspect, literal_column, select

from radbill import migrate
from radbill.config import Settings
from radbill.crypto import SecretBox, key_path, load_keys, read_keys
from radbill.errors import Conflict, DomainError, InvalidInput

FORMAT = 1
MANIFEST = "manifest.json"
PG_DUMP = "database.pgdump"
SQLITE_COPY = "database.sqlite3"
KEY = "secret.key"
GATEWAYS = "gateways.json"
ARCHIVE = "invoices"
CHUNK = 1 << 20


class BackupError(DomainError):
    """A backup cannot be written or restored (one line, for the operator)."""


@dataclass(frozen=True)
class Restored:
    revision: str | None
    invoices_verified: int
    invoices_bad: list[str]
    secrets_checked: int
    secrets_bad: int


def archive_dir(settings: Settings) -> Path:
    """Where invoice PDFs are archived (``billing.archive.render_pending``'s target)."""
    return settings.data_dir / ARCHIVE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _private_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
        os.fchmod(out.fileno(), 0o600)
        shutil.copyfileobj(fh, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not candidates:
        raise BackupError(f"{name} is not installed (Debian: apt install postgresql-client)")
    return str(candidates[-1])


def _libpq(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment that carries it (a password
    on a command line is visible to every local user in ``ps``)."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{Path(cmd[0]).name} failed: {last[-1] if last else done.returncode}")


# -- backup -----------------------------------------------------------------------------------


def backup(settings: Settings, engine: Engine, into: Path, *,
           now: dt.datetime | None = None) -> Path:
    """Write a backup of this installation into a new directory below *into*; return it."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"radbill-backup-{stamp}"
    try:
        target.mkdir(mode=0o700)
    except FileExistsError:
        raise BackupError(f"{target} already exists") from None
    os.chmod(target, 0o700)
    backend = engine.dialect.name
    if backend == "postgresql":
        url, env = _libpq(engine)
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
              f"--file={target / PG_DUMP}", f"--dbname={url}"], env)
        os.chmod(target / PG_DUMP, 0o600)
    elif backend == "sqlite":
        dst = target / SQLITE_COPY
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with sqlite3.connect(_sqlite_path(engine)) as src, sqlite3.connect(dst) as out:
            src.backup(out)  # consistent while radbill writes
        out.close()
        src.close()
    else:
        raise BackupError(f"cannot back up a {backend} database")
    keys = load_keys(settings, create=False)  # the current key, and the previous one
    fd = os.open(target / KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"".join(k + b"\n" for k in keys))
    gateways = settings.gateways_file or settings.data_dir / GATEWAYS
    if gateways.is_file():
        _private_copy(gateways, target / GATEWAYS)
    archive = archive_dir(settings)
    if archive.is_dir():
        for pdf in sorted(archive.rglob("*")):
            if pdf.is_file():
                _private_copy(pdf, target / ARCHIVE / pdf.relative_to(archive))
    files = {str(p.relative_to(target)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
             for p in sorted(target.rglob("*")) if p.is_file()}
    manifest = {
        "format": FORMAT,
        "created_at": stamp,
        "backend": backend,
        "revision": migrate.current_revision(engine),
        "archive_dir": str(archive),
        "files": files,
    }
    fd = os.open(target / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return target


# -- restore ----------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the backup at *source*, every file checked against it."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{source} is not a radbill backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{source / MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{source / MANIFEST}: not a backup format this release reads")
    files = manifest.get("files")
    if not isinstance(files, dict) or KEY not in files:
        raise InvalidInput(f"{source / MANIFEST}: no file list (or no key in it)")
    root = source.resolve()
    for name, meta in files.items():
        path = (source / name).resolve()
        if root not in path.parents:
            raise InvalidInput(f"{source / MANIFEST}: {name!r} is outside the backup")
        if not path.is_file():
            raise InvalidInput(f"{name} is missing from the backup")
        if _sha256(path) != meta.get("sha256"):
            raise InvalidInput(f"{name} does not match its checksum: the backup is damaged")
    return manifest


# Rows a fresh install has after ``radbill db upgrade``: the migration seeds these.
SEEDED = {"alembic_version", "isp_settings", "change_counters"}


def holds_data(engine: Engine) -> str | None:
    """The first table with a row in it (beyond what a migration seeds), or None."""
    with engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            if name in SEEDED:
                continue
            table = Table(name, MetaData())  # a name the database itself listed
            if conn.execute(select(literal_column("1")).select_from(table).limit(1)).first():
                return name
    return None


def restore(settings: Settings, engine: Engine, source: Path) -> Restored:
    """Restore the backup at *source* onto this (fresh) installation."""
    manifest = read_manifest(source)
    backend = engine.dialect.name
    if manifest.get("backend") != backend:
        raise Conflict(f"the backup is of a {manifest.get('backend')} database, this "
                       f"installation uses {backend}")
    table = holds_data(engine)
    if table is not None:
        raise Conflict(f"the database is not empty ({table} has rows): restore onto a fresh "
                       "install")
    keys = read_keys(source / KEY)
    key_file = key_path(settings)
    if settings.secret_key and load_keys(settings) != keys:
        raise Conflict("RADBILL_SECRET_KEY is set to other keys: unset it or set it to the "
                       "backup's")
    if not settings.secret_key and key_file.exists() and read_keys(key_file) != keys:
        raise Conflict(f"a different secret key is at {key_file}: move it away first (every "
                       "stored secret of the backup needs the backup's key)")
    gateways = settings.gateways_file or settings.data_dir / GATEWAYS
    if (source / GATEWAYS).is_file() and gateways.exists() and (
            _sha256(gateways) != _sha256(source / GATEWAYS)):
        raise Conflict(f"{gateways} exists and differs from the backup's: move it away first")

    if backend == "postgresql":
        url, env = _libpq(engine)
        if inspect(engine).get_table_names():
            # the empty schema of a fresh install's `db upgrade` (no data: checked above),
            # perhaps of a newer release than the backup's: the dump brings its own
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
        _run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
              "--single-transaction", f"--dbname={url}", str(source / PG_DUMP)], env)
    else:
        dst = _sqlite_path(engine)
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine.dispose()
        with sqlite3.connect(source / SQLITE_COPY) as src, sqlite3.connect(dst) as out:
            src.backup(out)
        out.close()
        src.close()
        os.chmod(dst, 0o600)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not key_file.exists() and not settings.secret_key:
        _private_copy(source / KEY, key_file)
    if (source / GATEWAYS).is_file() and not gateways.exists():
        _private_copy(source / GATEWAYS, gateways)
    archive = archive_dir(settings)
    for name in manifest["files"]:
        if name.startswith(ARCHIVE + "/"):
            _private_copy(source / name, archive / name[len(ARCHIVE) + 1:])
    migrate.upgrade(engine)  # a backup of an earlier release comes up to this one's schema
    return _check(engine, SecretBox(keys), Path(manifest.get("archive_dir", "")), archive)


def _check(engine: Engine, box: SecretBox, old_archive: Path, archive: Path) -> Restored:
    from billing import archive as invoice_archive
    from radbill import crypto
    from radbill.db import session_factory

    factory = session_factory(engine)
    with factory() as session, session.begin():
        if str(old_archive) and old_archive != archive:
            invoice_archive.relocate(session, old_archive, archive)
    verified, bad = invoice_archive.verify_all(factory)
    checked, unreadable = crypto.check_stored(factory, box)
    return Restored(migrate.current_revision(engine), verified, bad, checked, unreadable)
