"""Files that hold secrets stay private to radbill's own user.

The data directory holds the SQLite database and the at-rest key; the rendered FreeRADIUS
configuration holds the database URL; the gateways file holds merchant credentials; the
invoice archive and the set-aside accounting records hold subscribers' personal data. radbill
creates all of them private (owner only: directories 0700, files 0600) and says so at start
when one of them is readable by other local users.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from radbill.config import Settings

log = logging.getLogger("radbill.secure")

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Make everything this process (and what it starts: FreeRADIUS) creates owner-only."""
    os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """Owner-only access to *path* and, for a directory, to everything below it."""
    if not path.exists():
        return
    if path.is_dir():
        path.chmod(0o700)
        for child in path.rglob("*"):
            if not child.is_symlink():
                child.chmod(0o700 if child.is_dir() else 0o600)
    else:
        path.chmod(0o600)


def sensitive_paths(settings: Settings) -> list[Path]:
    """Where radbill keeps secrets and personal data."""
    data = settings.data_dir
    paths = [data, data / "radius", data / "radius" / "raddb", data / "invoices",
             data / "radius" / "spool" / "rejected", data / "gateways.json",
             data / "radbill.db"]
    if settings.secret_key_file is not None:
        paths.append(settings.secret_key_file)
    if settings.gateways_file is not None:
        paths.append(settings.gateways_file)
    return list(dict.fromkeys(paths))


def exposed(paths: Iterable[Path]) -> list[str]:
    """One line per existing path other local users can read (or enter), with its mode."""
    out = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & 0o077:
            kind = "directory" if stat.S_ISDIR(mode) else "file"
            fix = "700" if stat.S_ISDIR(mode) else "600"
            out.append(f"{kind} {path} is open to other local users (mode "
                       f"{stat.S_IMODE(mode):o}): chmod {fix} {path}")
    return out


def warn_if_exposed(settings: Settings) -> list[str]:
    """Log a warning for each sensitive path others can read; returns the warnings."""
    found = exposed(sensitive_paths(settings))
    for line in found:
        log.warning("SECRETS EXPOSED: %s", line)
    return found
