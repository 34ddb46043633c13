"""Keeping a running FreeRADIUS's NAS clients in step with the NAS table, without a restart.

FreeRADIUS 3.2 does not re-read its clients on HUP (checked on 3.2.7: a HUP re-reads the
modules only), and ``radmin``'s ``del client`` refuses clients from ``clients.conf``. So the
rendered ``clients.conf`` (:func:`radius.server.clients_conf`) names no NAS: every address may
be a dynamic client whose definition is the file ``nas-clients/<ipv4|ipv6>/<address>``. The
files are loaded at start and kept (lifetime 0); a NAS whose file appears is loaded at its
first packet, which is answered (the look-up runs before it); a NAS changed or removed is
dropped from FreeRADIUS's memory with ``radmin -e "del client ipaddr <address>"`` after its
file is rewritten or removed, and looked up again at its next packet. The other NAS are never
touched: their requests go on being answered throughout.

:class:`ClientSync` does this from `radbill radius run`, every few seconds. It never raises:
a database or radmin failure is logged and retried at the next pass.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from radbill.crypto import SecretBox
from radius.nas import list_nas

log = logging.getLogger("radbill.radius")

CONTROL_SOCKET = "control.sock"


@dataclass
class Changes:
    """What one pass changed, by address."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class ClientSync:
    """Writes ``nas-clients/`` from the NAS table and tells FreeRADIUS what changed."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox, raddb: Path,
                 radmin: str | None = None, interval: float = 2.0) -> None:
        from radius.server import CLIENTS_DIR

        self.factory = factory
        self.box = box
        self.directory = raddb / CLIENTS_DIR
        self.socket = raddb / CONTROL_SOCKET
        self.radmin = radmin or shutil.which("radmin")
        self.interval = interval
        self._forget: set[str] = set()  # addresses FreeRADIUS has yet to drop
        self._failures: dict[str, int] = {}  # radmin failures by address (log rarely)
        self._stop = threading.Event()

    def on_disk(self) -> dict[str, str]:
        """The client files as they are now, by path under ``nas-clients/``."""
        return {str(p.relative_to(self.directory)): p.read_text()
                for p in sorted(self.directory.glob("ipv*/*"))}

    def sync_once(self) -> Changes:
        """One pass: render, compare, write, and have FreeRADIUS drop what changed."""
        from radius.server import client_files

        with self.factory() as session:
            wanted = client_files(list_nas(session), self.box)
        have = self.on_disk()
        changes = Changes()
        for path, text in wanted.items():
            if have.get(path) == text:
                continue
            self._write(path, text)
            (changes.changed if path in have else changes.added).append(path.split("/", 1)[1])
            if path in have:
                self._forget.add(path.split("/", 1)[1])
        for path in have.keys() - wanted.keys():
            (self.directory / path).unlink()
            changes.removed.append(path.split("/", 1)[1])
            self._forget.add(path.split("/", 1)[1])
        for address in sorted(self._forget):
            if self._drop(address):
                self._forget.discard(address)
        if changes:
            log.info("NAS clients: added %s, changed %s, removed %s",
                     ", ".join(changes.added) or "none", ", ".join(changes.changed) or "none",
                     ", ".join(changes.removed) or "none")
        return changes

    def _write(self, path: str, text: str) -> None:
        """Replace one client file atomically (the temporary file is outside the family
        directories, which FreeRADIUS reads whole at start)."""
        tmp = self.directory / f".{path.replace('/', '_')}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.directory / path)

    def _drop(self, address: str) -> bool:
        """``radmin del client ipaddr``: True once FreeRADIUS no longer holds the old
        definition (dropped now, or never loaded)."""
        if self.radmin is None:
            log.error("radmin is not installed: NAS %s changes at the next restart", address)
            return True
        try:
            proc = subprocess.run([self.radmin, "-f", str(self.socket), "-e",
                                   f"del client ipaddr {address}"],
                                  capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("radmin failed for NAS %s (retrying): %s", address, exc)
            return False
        out = (proc.stdout + proc.stderr).strip()
        # an address FreeRADIUS never loaded is found as the enclosing network, which is not
        # a dynamic client (3.2.7: "Client 10.9.9.9 was not dynamically defined.")
        if proc.returncode != 0 and "not dynamically defined" not in out:
            self._failures[address] = self._failures.get(address, 0) + 1
            if self._failures[address] in (1, 30) or self._failures[address] % 300 == 0:
                log.error("radmin could not drop NAS %s (retrying): %s", address,
                          out.splitlines()[0] if out else f"exit {proc.returncode}")
            return False
        self._failures.pop(address, None)
        return True

    def run_forever(self) -> None:
        """Sync every :attr:`interval` seconds until :meth:`stop`."""
        failures = 0
        while not self._stop.wait(self.interval):
            try:
                self.sync_once()
            except Exception as exc:  # noqa: BLE001 - retried at the next pass
                failures += 1
                if failures == 1 or failures % 30 == 0:  # not every pass of an outage
                    log.error("NAS client sync failed %d times (retrying; the NAS list "
                              "FreeRADIUS has stays): %s", failures,
                              f"{type(exc).__name__}: {exc}".splitlines()[0])
            else:
                failures = 0

    def stop(self) -> None:
        self._stop.set()
