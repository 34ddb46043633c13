"""Rendering radbill's FreeRADIUS configuration and running it.

`radbill radius run` renders ``raddb/`` into ``<data>/radius/raddb`` (placeholders filled,
clients from the NAS table), checks it with ``freeradius -C``, starts ``freeradius -f`` in the
foreground and, in this process, the detail-file :class:`~radius.ingest.Ingester` that moves
accounting and post-auth records into the database. Signals are passed on to FreeRADIUS; when
it exits, the ingester drains what it can and stops.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from radbill.config import PROJECT_ROOT, Settings
from radbill.crypto import SecretBox, key_matches, key_path, secret_box
from radbill.db import engine_from_settings, session_factory
from radbill.secure import make_private, warn_if_exposed
from radius.accounting import Limits
from radius.clients import ClientSync
from radius.ingest import Ingester, Stream, default_streams
from radius.models import Nas
from radius.sessioncheck import SessionCheck

log = logging.getLogger("radbill.radius")

TEMPLATE_DIR = PROJECT_ROOT / "raddb"
CLIENTS_DIR = "nas-clients"  # one client definition per NAS, named by its address
MIN_VERSION = (3, 2, 5)


class RadiusError(RuntimeError):
    """FreeRADIUS is missing, too old, or refused the configuration."""


@dataclass(frozen=True)
class Layout:
    """Where a running server keeps its rendered config and its spools."""

    raddb: Path
    spool: Path

    @classmethod
    def under(cls, base: Path) -> Layout:
        return cls(raddb=base / "raddb", spool=base / "spool")


def freeradius_binary() -> str:
    """The FreeRADIUS executable, checked to be >= 3.2.5 (BlastRADIUS fixes)."""
    path = shutil.which("freeradius") or shutil.which("radiusd")
    if path is None:
        raise RadiusError("FreeRADIUS is not installed: run 'make setup' (scripts/setup-debian.sh)")
    out = subprocess.run([path, "-v"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"Version (\d+)\.(\d+)\.(\d+)", out)
    if m is None:
        raise RadiusError(f"cannot tell the version of {path}")
    version = tuple(int(x) for x in m.groups())
    if version < MIN_VERSION:
        raise RadiusError(f"{path} is FreeRADIUS {'.'.join(map(str, version))}; radbill needs "
                          ">= 3.2.5 (on Debian 12 install it from bookworm-backports)")
    return path


def python_path() -> str:
    """Where rlm_python3 must find radbill and its dependencies: the project root and this
    interpreter's site-packages (venv ``.pth`` files are not processed by rlm_python3)."""
    paths = [str(PROJECT_ROOT)]
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in paths:
            paths.append(p)
    return ":".join(paths)


def _quote(value: str) -> str:
    if any(c in value for c in '"\\\n\r'):
        raise RadiusError(f"value {value!r} cannot be written into the FreeRADIUS config")
    return value


def client_file(nas: Nas, box: SecretBox) -> str:
    """The client definition of one NAS, as FreeRADIUS reads it from ``nas-clients/<ip>``."""
    mauth = "yes" if nas.require_message_authenticator else "no"
    return (f"client nas_{nas.id} {{\n"
            f"\tipaddr = {nas.ip_address}\n"
            f'\tsecret = "{_quote(box.decrypt(nas.secret_enc))}"\n'
            f"\tshortname = {nas.name}\n"
            f"\tnas_type = other\n"
            f"\trequire_message_authenticator = {mauth}\n"
            f"\tlimit_proxy_state = yes\n"
            f"}}\n")


def client_path(address: str) -> str:
    """Where in ``nas-clients/`` the definition of the NAS at *address* is: under its
    family, named by the address (what FreeRADIUS looks up)."""
    family = "ipv6" if ipaddress.ip_address(address).version == 6 else "ipv4"
    return f"{family}/{address}"


def client_files(nas_rows: list[Nas], box: SecretBox) -> dict[str, str]:
    """Every NAS's client definition, by :func:`client_path`."""
    return {client_path(nas.ip_address): client_file(nas, box) for nas in nas_rows}


def clients_conf() -> str:
    """``clients.conf``: no NAS of its own, but every address may be a NAS whose definition
    is in ``nas-clients/`` (loaded at start; a new file is read at the NAS's first packet;
    a changed or removed one after ``radmin del client``, see :mod:`radius.clients`). A
    lifetime of 0: a loaded NAS stays until it is changed, so no request of one NAS ever
    waits for another's look-up."""
    parts = ["# Rendered by radbill. The NAS are in nas-clients/, one file per address, "
             "kept in step\n# with the NAS table by 'radbill radius run'. Do not edit.\n"]
    for family, key, network in (("ipv4", "ipaddr", "0.0.0.0/0"), ("ipv6", "ipv6addr", "::/0")):
        parts.append(f"client radbill_nas_{family} {{\n"
                     f"\t{key} = {network}\n"
                     f"\tdynamic_clients = radbill_clients\n"
                     f"\tdirectory = ${{confdir}}/{CLIENTS_DIR}/{family}/\n"
                     f"\tlifetime = 0\n"
                     f"\trequire_message_authenticator = yes\n"
                     f"\tlimit_proxy_state = yes\n"
                     f"}}\n")
    return "\n".join(parts)


def render(
    settings: Settings,
    layout: Layout,
    nas_rows: list[Nas] | None,
    box: SecretBox,
    *,
    auth_port: int,
    acct_port: int,
    listen: str,
) -> Path:
    """Write the runtime configuration tree; returns its directory."""
    values = {
        "RUN_DIR": str(layout.raddb),
        "SPOOL_DIR": str(layout.spool),
        "REJECT_DELAY": str(settings.radius_reject_delay),
        "PYTHON_PATH": python_path(),
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "SECRET_KEY_FILE": str(settings.secret_key_file),
        "SUSPENDED_MODE": settings.suspended_mode,
        "WALLED_GARDEN_LIST": settings.walled_garden_list,
        "WALLED_GARDEN_RATE": settings.walled_garden_rate,
        "INTERIM_INTERVAL": str(settings.interim_interval),
        "SNAPSHOT_POLL_MS": str(settings.snapshot_poll_ms),
        "DETAILED_REJECT_MESSAGES": "yes" if settings.detailed_reject_messages else "no",
        "CASE_INSENSITIVE_USERNAMES": "yes" if settings.case_insensitive_usernames else "no",
        "PROVISIONAL_SESSION_SECONDS": str(settings.provisional_session_seconds),
        "LOGIN_FAILURES_BEFORE_THROTTLE": str(settings.login_failures_before_throttle),
        "WALLED_GARDEN_URL": settings.walled_garden_url,
        "WALLED_GARDEN_POOL": settings.walled_garden_pool,
        "IDLE_TIMEOUT": str(settings.idle_timeout),
        "LISTEN": listen,
        "AUTH_PORT": str(auth_port),
        "ACCT_PORT": str(acct_port),
    }
    clients_dir = layout.raddb / CLIENTS_DIR
    previous_clients = ({str(p.relative_to(clients_dir)): p.read_text()
                         for p in clients_dir.glob("ipv*/*")} if clients_dir.is_dir() else None)
    if nas_rows is None and previous_clients is None:
        raise RadiusError("the database is unreachable and there is no previous client list "
                          f"in {layout.raddb}: cannot know which NAS to answer")
    if layout.raddb.exists():
        shutil.rmtree(layout.raddb)
    for src in TEMPLATE_DIR.rglob("*"):
        dst = layout.raddb / src.relative_to(TEMPLATE_DIR)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", _quote(value))
        if re.search(r"@[A-Z_]+@", text):
            raise RadiusError(f"unfilled placeholder in {src}")
        dst.write_text(text)
    (layout.raddb / "clients.conf").write_text(clients_conf())
    for family in ("ipv4", "ipv6"):
        (clients_dir / family).mkdir(parents=True)
    files = client_files(nas_rows, box) if nas_rows is not None else previous_clients or {}
    for path, text in files.items():
        (clients_dir / path).write_text(text)
    (layout.raddb / "log").mkdir(exist_ok=True)
    for sub in ("acct", "postauth"):
        (layout.spool / sub).mkdir(parents=True, exist_ok=True)
    # the module configuration holds the database URL, nas-clients/ the NAS secrets
    make_private(layout.raddb)
    make_private(layout.spool)
    return layout.raddb


def check_config(binary: str, raddb: Path) -> None:
    """``freeradius -C``: refuse to start on a configuration FreeRADIUS rejects."""
    proc = subprocess.run([binary, "-C", "-d", str(raddb), "-n", "radiusd"],
                          capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RadiusError(f"FreeRADIUS rejected the configuration in {raddb}:\n{tail}")


def wrong_key(settings: Settings) -> str:
    """The one line a node started with another at-rest key than the database's says."""
    where = "RADBILL_SECRET_KEY" if settings.secret_key else str(key_path(settings))
    return (f"the secret key in {where} is not the key this database's secrets were "
            "written with: every node needs the same key (copy it from a running node, "
            "mode 0600, owned by radbill)")


def prepare(settings: Settings, base: Path, *, auth_port: int, acct_port: int,
            listen: str) -> tuple[str, Layout]:
    """Render and check the configuration for a server under *base*."""
    binary = freeradius_binary()
    box = secret_box(settings)
    engine = engine_from_settings(settings)
    nas_rows: list[Nas] | None
    try:
        with session_factory(engine)() as session:
            from radius.nas import list_nas

            if not key_matches(session, box):
                raise RadiusError(wrong_key(settings))
            nas_rows = list_nas(session)
    except OperationalError as exc:
        # Starting during a database outage must work: answer the NAS list of the last start,
        # authorize from nothing until the snapshot loads (no answer, never "unknown"), and
        # spool accounting to disk as always.
        log.error("DATABASE UNREACHABLE at start (%s): using the previous NAS list",
                  str(exc.orig).strip().splitlines()[0])
        nas_rows = None
    finally:
        engine.dispose()
    if nas_rows is not None and not nas_rows:
        log.warning("no NAS registered: FreeRADIUS will answer nobody "
                    "(add one with 'radbill nas create')")
    layout = Layout.under(base)
    render(settings, layout, nas_rows, box, auth_port=auth_port, acct_port=acct_port,
           listen=listen)
    check_config(binary, layout.raddb)
    return binary, layout


def housekeeping(factory: sessionmaker[Session], spool: Path, interim_interval: int,
                 stop: threading.Event, node: str = "", keep_days: int = 7) -> None:
    """Once per interim interval: close sessions silent for three intervals, compress the
    detail files applied completely and delete those older than *keep_days*
    (``RADBILL_KEEP_SPOOL_DAYS``), and forget set-aside records replayed more than 30 days
    ago. Never raises."""
    import datetime as dt

    from radbill.db import utcnow
    from radius import rejects
    from radius.accounting import close_stale_sessions
    from radius.ingest import tidy_spool

    while not stop.wait(interim_interval):
        try:
            with factory() as session, session.begin():
                n = close_stale_sessions(session, utcnow(), interim_interval)
                rejects.prune(session, utcnow() - dt.timedelta(days=30))
            if n:
                log.warning("closed %d stale sessions (no accounting for %d s)", n,
                            3 * interim_interval)
            tidied = tidy_spool(spool, factory, keep_days, node)
            if tidied.compressed or tidied.removed:
                log.info("detail files: %d applied ones compressed (%d to %d bytes), %d older "
                         "than %d days removed", tidied.compressed, tidied.bytes_in,
                         tidied.bytes_out, tidied.removed, keep_days)
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            log.error("housekeeping failed (retrying next interval): %s",
                      str(exc).splitlines()[0])


class Stopper:
    """Passes stop and reload signals on to FreeRADIUS, and makes sure a stop stops it.

    FreeRADIUS 3.2.7 was seen hanging at exit (the main thread joining a worker that spins in
    ``fr_atomic_queue_pop``, after a flood of malformed packets): a server asked to stop that
    has not exited after *grace* seconds is killed, with one error line. Nothing is lost:
    every record it answered is in the detail files already, and the ingester reads them.
    """

    GRACE = 10.0

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.asked_at: float | None = None

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            if signum != signal.SIGHUP and self.asked_at is None:
                self.asked_at = time.monotonic()

    def wait(self, grace: float = GRACE) -> int:
        """FreeRADIUS's exit status (negative: the signal that ended it)."""
        while True:
            try:
                return self.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if self.asked_at is not None and time.monotonic() - self.asked_at > grace:
                log.error("FreeRADIUS did not exit %s s after it was asked to stop (a "
                          "shutdown hang in FreeRADIUS): killing it", f"{grace:g}")
                self.proc.kill()
                return self.proc.wait()


def run(settings: Settings, base: Path, *, auth_port: int, acct_port: int, listen: str,
        debug: bool = False) -> int:
    """Run FreeRADIUS in the foreground with the ingester beside it until it exits."""
    binary, layout = prepare(settings, base, auth_port=auth_port, acct_port=acct_port,
                             listen=listen)
    warn_if_exposed(settings)
    engine = engine_from_settings(settings)
    # Simultaneous-Use rejects coming in through the post-auth spool ask the NAS (RouterOS
    # API, where configured) which sessions it really has: a router that lost power without
    # Accounting-On must not lock its subscribers out until the stale-session job.
    checker = SessionCheck(session_factory(engine), secret_box(settings))
    streams = [Stream(s.name, s.directory, checker.watch(s.handler)) if s.name == "postauth"
               else s for s in default_streams(layout.spool, Limits.from_settings(settings))]
    ingester = Ingester(session_factory(engine), layout.spool, streams=streams,
                        limits=Limits.from_settings(settings), node=settings.node_name,
                        lag_alert_seconds=settings.ingest_lag_alert_s,
                        read_ahead=settings.ingest_read_ahead,
                        metrics_path=(settings.metrics_dir or settings.data_dir / "metrics")
                        / "radbill_ingest.prom")
    worker = threading.Thread(target=ingester.run_forever, name="radbill-ingest", daemon=True)
    worker.start()
    threading.Thread(target=checker.run_forever, name="radbill-sessioncheck",
                     daemon=True).start()
    clients = ClientSync(session_factory(engine), secret_box(settings), layout.raddb)
    threading.Thread(target=clients.run_forever, name="radbill-clients", daemon=True).start()
    stale_stop = threading.Event()
    threading.Thread(target=housekeeping, name="radbill-housekeeping", daemon=True,
                     args=(session_factory(engine), layout.spool, settings.interim_interval,
                           stale_stop, settings.node_name, settings.keep_spool_days)).start()
    cmd = [binary, "-f", "-l", "stdout", "-d", str(layout.raddb), "-n", "radiusd"]
    if debug:
        cmd.append("-xx")
    log.info("starting FreeRADIUS on %s auth %d acct %d (config %s)", listen, auth_port,
             acct_port, layout.raddb)
    proc = subprocess.Popen(cmd, stdout=sys.stdout, stderr=sys.stderr)
    stopper = Stopper(proc)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stopper.forward)
    code = stopper.wait()
    stale_stop.set()
    clients.stop()
    checker.stop()
    ingester.stop()
    worker.join(timeout=10)
    try:
        ingester.run_once()  # what FreeRADIUS wrote last, if the database is there
    except Exception as exc:  # noqa: BLE001 - the files stay on disk for the next start
        log.error("final ingestion failed (%s); records stay in %s", exc, layout.spool)
    engine.dispose()
    log.info("FreeRADIUS exited with %d", code)
    return code
