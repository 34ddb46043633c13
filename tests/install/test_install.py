"""scripts/install.sh in a clean root (an overlay of this machine, see sysroot.py): what it
makes, that a second run changes nothing, that systemd accepts its units, that each service
starts from its unit's ExecStart line, and that an uninstall keeps the data unless told.

It runs once per suite, in the PostgreSQL run (the installer sets radbill up on PostgreSQL,
here the test server, reached as a "local" server through PGHOST), and needs root (chroot,
mounts, users). The virtualenv is built from requirements.lock with pip, from the registry or
pip's cache: about a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from admin.users import _verify as users_verify
from tests.conftest import BACKEND
from tests.install.sysroot import SysRoot, env_file, exec_start, read_unit
from tests.pgserver import free_tcp_port

REPO = Path(__file__).resolve().parents[2]
UNITS = ["radbill-radius", "radbill-web", "radbill-scheduler", "radbill-enforcement",
         "radbill-notify"]
RELEASE = "/usr/src/radbill"  # the release, as an operator unpacks it on the server
INSTALLED = ["etc/radbill", "opt/radbill", "var/lib/radbill", "usr/local/bin/radbill",
             *[f"etc/systemd/system/{u}.service" for u in UNITS],
             "etc/systemd/system/radbill.target"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="installing needs root (chroot, mounts)"),
    pytest.mark.skipif(BACKEND != "postgresql",
                       reason="the installer sets radbill up on PostgreSQL: the PostgreSQL run "
                              "tests it"),
]


@dataclass
class Installed:
    root: SysRoot
    pg: dict[str, str]
    db_name: str
    first: str
    second: str
    before: dict[str, tuple[object, ...]] = field(default_factory=dict)
    after: dict[str, tuple[object, ...]] = field(default_factory=dict)
    role_before: str = ""
    role_after: str = ""

    def install(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.root.run("bash", f"{RELEASE}/scripts/install.sh", "--db-name", self.db_name,
                             "--db-user", self.db_name, *args, env=self.pg, check=check)

    def url(self) -> str:
        raw = env_file(self.root / "etc/radbill/radbill.env")["RADBILL_DATABASE_URL"]
        return raw.replace("postgresql+psycopg://", "postgresql://", 1)


def snapshot(root: SysRoot) -> dict[str, tuple[object, ...]]:
    """Every installed file's mode, owner, size, mtime and content hash (bytecode caches,
    which Python writes when it likes, left out)."""
    out: dict[str, tuple[object, ...]] = {}
    for top in INSTALLED:
        start = root / top
        paths = [start] if not start.is_dir() else [start, *start.rglob("*")]
        for p in paths:
            if "__pycache__" in p.parts or not p.exists():
                continue
            st = p.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root.path))] = (stat.filemode(st.st_mode), st.st_uid,
                                                 st.st_gid, st.st_size, st.st_mtime_ns, digest)
    for name in ("etc/passwd", "etc/group", "etc/shadow"):
        lines = [x for x in (root / name).read_text().splitlines() if x.startswith("radbill:")]
        out[name] = tuple(lines)
    return out


def role_password(admin_url: str, role: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                           (role,)).fetchone()
    return str(row[0]) if row else ""


@pytest.fixture(scope="module")
def installed(pg_admin_url: str) -> Iterator[Installed]:
    parts = urlsplit(pg_admin_url)
    pg = {"PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432)}
    name = f"radbill_inst_{uuid.uuid4().hex[:8]}"
    root = SysRoot().mount()
    state = Installed(root, pg, name, "", "")
    try:
        shutil.copytree(REPO, root / RELEASE, ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "test-artifacts", "__pycache__", "*.egg-info"))
        state.first = state.install().stdout
        state.before, state.role_before = snapshot(root), role_password(pg_admin_url, name)
        state.second = state.install().stdout
        state.after, state.role_after = snapshot(root), role_password(pg_admin_url, name)
        yield state
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        root.destroy()


def test_install_makes_user_settings_data_schema_and_first_admin(installed: Installed) -> None:
    root = installed.root
    (passwd,) = [x for x in (root / "etc/passwd").read_text().splitlines()
                 if x.startswith("radbill:")]
    _, _, uid, gid, _, home, shell = passwd.split(":")
    assert int(uid) < 1000 and home == "/var/lib/radbill" and shell == "/usr/sbin/nologin"

    env = root / "etc/radbill/radbill.env"
    st = env.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and st.st_gid == int(gid)
    settings = env_file(env)
    assert settings["RADBILL_DATA_DIR"] == "/var/lib/radbill"
    assert settings["RADBILL_DATABASE_URL"].startswith(
        f"postgresql+psycopg://{installed.db_name}:")

    data = (root / "var/lib/radbill").stat()
    assert stat.S_IMODE(data.st_mode) == 0o750 and data.st_uid == int(uid)
    key = (root / "var/lib/radbill/secret.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600 and key.st_uid == int(uid)

    # the schema is at the head migration, in the database made for radbill's own role
    with psycopg.connect(installed.url()) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
        staff = conn.execute("SELECT username, role FROM staff_users ORDER BY id").fetchall()
    head = sorted(p.name.split("_")[0] for p in (REPO / "migrations/versions").glob("0*.py"))[-1]
    assert revision == head
    assert staff == [("admin", "admin")]

    # the first admin's password is printed once, and it is the admin's password
    (password,) = re.findall(r"admin user: admin +password: (\S+)", installed.first)
    with psycopg.connect(installed.url()) as conn:
        row = conn.execute("SELECT password_hash FROM staff_users").fetchone()
    assert row is not None and users_verify(row[0], password)
    assert "password" not in installed.second


def test_a_second_run_changes_nothing(installed: Installed) -> None:
    assert installed.before == installed.after
    assert installed.role_before == installed.role_after  # the role's password was kept
    assert "creating" not in installed.second and "installing" not in installed.second


def test_units_pass_systemd_analyze_verify(installed: Installed) -> None:
    paths = [f"/etc/systemd/system/{u}.service" for u in UNITS]
    done = installed.root.run("systemd-analyze", "verify", *paths,
                              "/etc/systemd/system/radbill.target", check=False)
    assert done.returncode == 0, done.stderr
    # verify's complaints go to stderr even when it exits 0: none about our units
    assert "radbill" not in done.stderr, done.stderr


def test_units_restart_on_failure_with_hardening(installed: Installed) -> None:
    for unit in UNITS:
        u = read_unit(installed.root / f"etc/systemd/system/{unit}.service")
        assert u["Restart"] == ["on-failure"], unit
        assert u["User"] == ["radbill"] and u["EnvironmentFile"] == ["/etc/radbill/radbill.env"]
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                           ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                           ("ReadWritePaths", "/var/lib/radbill"), ("CapabilityBoundingSet", "")):
            assert u[key] == [value], (unit, key)
        assert u["WantedBy"] == ["radbill.target"]
    web = read_unit(installed.root / "etc/systemd/system/radbill-web.service")
    assert web["Type"] == ["notify"] and "gunicorn" in web["ExecStart"][0]


def _wait_port(port: int, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited {proc.returncode}: {said}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return (proc.stdout.read() if proc.stdout else "") + (proc.stderr.read() if proc.stderr else "")


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def test_services_start_from_their_exec_start_lines(installed: Installed) -> None:
    from simulators.nas import NasSimulator

    root = installed.root
    radbill_uid = int(next(x for x in (root / "etc/passwd").read_text().splitlines()
                           if x.startswith("radbill:")).split(":")[2])
    auth, acct, web_port, coa = (free_tcp_port() for _ in range(4))
    ports = {"RADBILL_RADIUS_AUTH_PORT": str(auth), "RADBILL_RADIUS_ACCT_PORT": str(acct),
             "RADBILL_RADIUS_LISTEN": "127.0.0.1", "RADBILL_WEB_BIND": f"127.0.0.1:{web_port}"}
    # what an operator does first, with the installed `radbill` command
    for args in (["plan", "create", "Home", "--price", "500", "--currency", "BDT", "--rate",
                  "10M/10M"],
                 ["subscriber", "create", "alice", "--password", "alice-pw", "--plan", "Home"],
                 ["nas", "create", "core-1", "--ip", "127.0.0.1", "--secret", "install-test-1",
                  "--coa-port", str(coa)]):
        root.run("radbill", *args)

    notify_name = f"radbill-test-{uuid.uuid4().hex[:12]}"
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ready.bind("\0" + notify_name)
    ready.settimeout(60)
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for unit in UNITS:
            argv, env = exec_start(root, root / f"etc/systemd/system/{unit}.service", ports)
            if unit == "radbill-web":
                env["NOTIFY_SOCKET"] = "@" + notify_name
            procs[unit] = subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)
        # radbill-web: gunicorn tells "systemd" it is ready (Type=notify), then serves
        message = ready.recv(4096).decode()
        assert "READY=1" in message
        _wait_port(web_port, procs["radbill-web"])
        # (gunicorn is ready once it listens; its worker may still be importing the app)
        page = None
        deadline = time.monotonic() + 120
        while page is None and time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{web_port}/login", timeout=30)
            except httpx.TimeoutException:
                assert procs["radbill-web"].poll() is None, _stop(procs["radbill-web"])
        assert page is not None and page.status_code == 200
        assert "radbill" in page.text.lower()

        # radbill-radius: FreeRADIUS answers a NAS, and the ingester stores the accounting
        deadline = time.monotonic() + 60
        nas = NasSimulator(nas_ip="127.0.0.1", auth_port=auth, acct_port=acct,
                           secret="install-test-1", coa_port=coa).start()
        try:
            result = None
            while time.monotonic() < deadline:
                assert procs["radbill-radius"].poll() is None, _stop(procs["radbill-radius"])
                result = nas.login("alice", "alice-pw", "pap")
                if result.accepted:
                    break
                time.sleep(0.5)
            assert result is not None and result.accepted
        finally:
            nas.stop()
        with psycopg.connect(installed.url()) as conn:
            stored = 0
            while time.monotonic() < deadline and not stored:
                stored = conn.execute("SELECT count(*) FROM radius_sessions WHERE "
                                      "username = 'alice'").fetchone()[0]  # type: ignore[index]
                time.sleep(0.5)
        assert stored == 1

        time.sleep(2)
        for unit, proc in procs.items():
            assert proc.poll() is None, f"{unit} exited: {_stop(proc)}"
            assert _uid_of(proc.pid) == radbill_uid, unit
    finally:
        outputs = {unit: _stop(proc) for unit, proc in procs.items()}
        ready.close()
    assert "scheduler running" in outputs["radbill-scheduler"]
    for unit, out in outputs.items():
        assert "Traceback" not in out, f"{unit}:\n{out}"


def test_uninstall_keeps_the_data_unless_purged(installed: Installed) -> None:
    """Runs last: it removes what the other tests use."""
    root = installed.root
    out = installed.install("--uninstall").stdout
    assert "kept" in out
    for gone in ("opt/radbill", "usr/local/bin/radbill",
                 *[f"etc/systemd/system/{u}.service" for u in UNITS]):
        assert not (root / gone).exists(), gone
    assert (root / "var/lib/radbill/secret.key").exists()
    assert (root / "etc/radbill/radbill.env").exists()
    with psycopg.connect(installed.url()) as conn:
        assert conn.execute("SELECT count(*) FROM staff_users").fetchone() == (1,)

    url = installed.url()
    installed.install("--uninstall", "--purge")
    assert not (root / "var/lib/radbill").exists() and not (root / "etc/radbill").exists()
    assert "radbill:" not in (root / "etc/passwd").read_text()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
