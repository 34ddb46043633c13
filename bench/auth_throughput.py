"""Access-Request throughput and latency: radbill against FreeRADIUS's stock rlm_sql.

One run sets up both sides on the local PostgreSQL server, each in a fresh database with the
same subscribers, starts two real FreeRADIUS 3.2 servers and drives them with the same PAP
Access-Requests over loopback UDP:

* **radbill**: ``radbill radius run`` (rlm_python3 policy answering from its in-memory
  snapshot, post-auth detail spool and the ingester beside it), exactly as deployed.
* **rlm_sql**: a minimal FreeRADIUS tree generated here, ``authorize { sql; pap }`` with the
  stock ``rlm_sql_postgresql`` driver, the stock PostgreSQL schema and queries and the stock
  connection-pool settings; every user has a ``radcheck`` Cleartext-Password row and
  ``radreply`` rows with the same Mikrotik-Rate-Limit and Acct-Interim-Interval radbill sends.

Both servers use radbill's thread-pool settings, listen on 127.0.0.1 only and require
Message-Authenticator. The load generator is a closed loop (a fixed number of requests in
flight) in asyncio callback pumps on a few UDP sockets: requests are encoded before the clock
starts, only the RADIUS identifier and Message-Authenticator are filled in at send time, and
every reply is checked (response authenticator, Access-Accept, Mikrotik-Rate-Limit present).
Rounds alternate between the servers (ABBA order) so both share the machine's noise; after
each radbill round the benchmark waits for the ingester to store the post-auth records, so that
work never spills into an rlm_sql round.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/auth_throughput.py                 # 100,000 subscribers
    .venv/bin/python bench/auth_throughput.py --subscribers 2000 --requests 2000 --rounds 1

This is a benchmark, not a test: it prints a table and exits 0 unless the run itself failed
(servers not starting, or no request answered). Rejects and timeouts are counted and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import hmac
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import psycopg
from _common import (
    backend_pids,
    cpu_model,
    cpu_seconds,
    create_database,
    drop_database,
    log,
    radbill_db_upgrade,
    stat_fields,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOCK_SQL_DIR = Path("/etc/freeradius/3.0/mods-config/sql/main/postgresql")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

HOST = "127.0.0.1"
SECRET = "benchsecret123"
PLAN_NAME = "bench"
PLAN_RATE = "10M/10M"
READY_LINE = "Ready to process requests"

# RADIUS wire format (RFC 2865, 2869).
ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
MA_OFFSET = 20 + 2  # Message-Authenticator is the first attribute: its value starts here
MIKROTIK_VENDOR = 14988
# Vendor-Specific carrying Mikrotik-Rate-Limit (vendor attribute 8): vendor id + type byte.
RATE_LIMIT_MARK = struct.pack("!IB", MIKROTIK_VENDOR, 8)


# -- small helpers ----------------------------------------------------------------------------


def free_udp_ports(count: int) -> list[int]:
    """*count* distinct UDP ports nobody is bound to on the loopback address right now."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (*q* in 0-100) of an ascending sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def tail(path: Path, lines: int = 25) -> str:
    """The last *lines* lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# -- process CPU and memory from /proc ---------------------------------------------------------


def process_name(pid: int) -> str:
    """The command name of *pid* ("" if it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """Every live process in process group *pgid*."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = stat_fields(int(entry))
            if f is not None and int(f[2]) == pgid:
                members.append(int(entry))
    return members


def rss_mb(pids: Sequence[int]) -> float:
    """Resident memory of *pids* together, in MB."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


# -- subscribers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Users:
    """The benchmark's subscribers: same names and passwords on both sides."""

    names: list[str]
    passwords: list[str]


def make_users(count: int, rng: random.Random) -> Users:
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    names = [f"bench{i:06d}" for i in range(count)]
    passwords = ["".join(rng.choices(alphabet, k=12)) for _ in range(count)]
    return Users(names, passwords)


# -- databases --------------------------------------------------------------------------------


def radbill_env(db_url: str, data_dir: Path) -> dict[str, str]:
    """The environment for radbill's CLI: this run's database and data directory only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env.update({
        "RADBILL_DATABASE_URL": db_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "RADBILL_DATA_DIR": str(data_dir),
        "RADBILL_RADIUS_REJECT_DELAY": "0",
    })
    return env


@dataclass
class RadbillSetup:
    rate_limit: str
    interim_interval: int
    timings: dict[str, float]


def setup_radbill(env: dict[str, str], users: Users) -> RadbillSetup:
    """Migrate radbill's database and load the plan, the NAS and every subscriber."""
    from billing.plans import create_plan, plan_rate
    from billing.rates import mikrotik_rate_limit
    from radbill.config import Settings
    from radbill.crypto import SecretBox, load_key
    from radbill.db import (
        AUTH_FEED,
        bump,
        engine_from_settings,
        session_factory,
        unit_of_work,
        utcnow,
    )
    from radius.nas import create_nas

    timings: dict[str, float] = {}
    timings["migrate"] = radbill_db_upgrade(env, PROJECT_ROOT)

    settings = Settings.from_env(env)
    box = SecretBox(load_key(settings, create=False))
    t0 = time.perf_counter()
    tokens = [box.encrypt(pw) for pw in users.passwords]
    timings["encrypt"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    engine = engine_from_settings(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            plan = create_plan(session, name=PLAN_NAME, price="500", currency="BDT",
                               rate=PLAN_RATE, actor="bench")
            create_nas(session, box, name="bench", ip=HOST, secret=SECRET, actor="bench")
            version = bump(session, AUTH_FEED)  # what a subscriber change stamps its row with
            rate_limit = mikrotik_rate_limit(plan_rate(plan))
            now = utcnow()
            raw = session.connection().connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            columns = ("username, password_enc, service, status, plan_id, simultaneous_use, "
                       "fup_throttled, auth_version, created_at, updated_at")
            with raw.cursor() as cur, cur.copy(f"COPY subscribers ({columns}) FROM STDIN") as cp:
                for name, token in zip(users.names, tokens, strict=True):
                    cp.write_row((name, token, "pppoe", "active", plan.id, 100, False, version,
                                  now, now))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE subscribers")
    finally:
        engine.dispose()
    timings["insert"] = time.perf_counter() - t0
    return RadbillSetup(rate_limit, settings.interim_interval, timings)


def measure_snapshot_load(env: dict[str, str]) -> tuple[float, int]:
    """Seconds one full snapshot load takes in this process (the same code the policy runs at
    start-up), and how many subscribers it loaded."""
    from radbill.config import Settings
    from radbill.crypto import SecretBox, load_key
    from radbill.db import make_engine
    from radius.snapshot import AuthSnapshot, SnapshotRefresher

    settings = Settings.from_env(env)
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=1)
    try:
        snapshot = AuthSnapshot()
        refresher = SnapshotRefresher(snapshot, engine, SecretBox(load_key(settings, False)))
        t0 = time.perf_counter()
        if not refresher.refresh_once():
            raise RuntimeError(f"snapshot load failed: {snapshot.last_error}")
        return time.perf_counter() - t0, len(snapshot.subscribers)
    finally:
        engine.dispose()


def setup_rlm_sql(url: str, users: Users, rate_limit: str, interim_interval: int) -> float:
    """Stock schema plus radcheck/radreply rows for every user; returns seconds taken."""
    t0 = time.perf_counter()
    schema = (STOCK_SQL_DIR / "schema.sql").read_text()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(schema.encode())  # several statements: no parameters, simple protocol
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY radcheck (username, attribute, op, value) FROM STDIN") as cp:
                for name, pw in zip(users.names, users.passwords, strict=True):
                    cp.write_row((name, "Cleartext-Password", ":=", pw))
            with cur.copy("COPY radreply (username, attribute, op, value) FROM STDIN") as cp:
                for name in users.names:
                    cp.write_row((name, "Mikrotik-Rate-Limit", ":=", rate_limit))
                    cp.write_row((name, "Acct-Interim-Interval", ":=", str(interim_interval)))
        conn.execute("ANALYZE")
    return time.perf_counter() - t0


# -- the stock rlm_sql FreeRADIUS -------------------------------------------------------------


STOCK_RADIUSD_CONF = Path("/etc/freeradius/3.0/radiusd.conf")


def stock_block(name: str) -> str:
    """A top-level ``name { ... }`` block copied from Debian's stock radiusd.conf, so the
    rlm_sql server runs with FreeRADIUS's stock settings (e.g. the thread pool, whose size
    also sizes rlm_sql's connection pool). Comments are dropped."""
    text = STOCK_RADIUSD_CONF.read_text()
    m = re.search(rf"^{re.escape(name)} \{{\n.*?^\}}\n", text, re.MULTILINE | re.DOTALL)
    if m is None:
        raise RuntimeError(f"no '{name}' block in {STOCK_RADIUSD_CONF}")
    return "\n".join(line for line in m.group(0).splitlines()
                     if not line.strip().startswith("#") and line.strip()) + "\n"


RLM_SQL_RADIUSD = """\
# Generated by bench/auth_throughput.py: stock rlm_sql on PostgreSQL, for comparison.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${{exec_prefix}}/sbin
raddbdir = {raddb}
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {raddb}
logdir = {raddb}/log
db_dir = ${{raddbdir}}
radacctdir = {raddb}/radacct
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
name = freeradius

correct_escapes = true
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no

log {{
	destination = stdout
	colourise = no
	stripped_names = no
	auth = no
	auth_badpass = no
	auth_goodpass = no
}}

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
	require_message_authenticator = yes
	limit_proxy_state = yes
}}

proxy_requests = no

# Copied from radbill's raddb/radiusd.conf.
{thread_pool}
client bench {{
	ipaddr = {host}
	secret = "{secret}"
	shortname = bench
	nas_type = other
	require_message_authenticator = yes
	limit_proxy_state = yes
}}

modules {{
	pap {{
		normalise = no
	}}

	# %{{tolower:...}} and friends, used by the stock queries.
	$INCLUDE /etc/freeradius/3.0/mods-available/expr

	# mods-available/sql with the stock values, pointed at this run's database.
	sql {{
		dialect = "postgresql"
		driver = "rlm_sql_${{dialect}}"
		postgresql {{
			send_application_name = yes
		}}
		server = "{host}"
		port = {pg_port}
		login = "{pg_user}"
		password = ""
		radius_db = "{dbname}"
		acct_table1 = "radacct"
		acct_table2 = "radacct"
		postauth_table = "radpostauth"
		authcheck_table = "radcheck"
		groupcheck_table = "radgroupcheck"
		authreply_table = "radreply"
		groupreply_table = "radgroupreply"
		usergroup_table = "radusergroup"
		delete_stale_sessions = yes
		# Stock pool: sized from the thread pool (start 8, min 4, max 32, spare 16).
		pool {{
			start = ${{thread[pool].start_servers}}
			min = ${{thread[pool].min_spare_servers}}
			max = ${{thread[pool].max_servers}}
			spare = ${{thread[pool].max_spare_servers}}
			uses = 0
			retry_delay = 30
			lifetime = 0
			idle_timeout = 60
			max_retries = 5
		}}
		client_table = "nas"
		group_attribute = "SQL-Group"
		$INCLUDE {queries}
	}}
}}

server rlm_sql {{
	listen {{
		type = auth
		ipaddr = {host}
		port = {auth_port}
	}}
	listen {{
		type = acct
		ipaddr = {host}
		port = {acct_port}
	}}
	authorize {{
		sql
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
	}}
	post-auth {{
{post_auth}	}}
}}
"""


def render_rlm_sql(base: Path, *, dbname: str, pg_host: str, pg_port: int, pg_user: str,
                   auth_port: int, acct_port: int, postauth_sql: bool) -> Path:
    """Write the rlm_sql server's configuration tree under *base*; returns raddb."""
    raddb = base / "raddb"
    (raddb / "log").mkdir(parents=True, exist_ok=True)
    text = RLM_SQL_RADIUSD.format(
        raddb=raddb, thread_pool=stock_block("thread pool"), host=HOST, secret=SECRET,
        pg_port=pg_port, pg_user=pg_user, dbname=dbname, queries=STOCK_SQL_DIR / "queries.conf",
        auth_port=auth_port, acct_port=acct_port,
        post_auth="\t\tsql\n" if postauth_sql else "",
    ).replace(f'server = "{HOST}"', f'server = "{pg_host}"')
    (raddb / "radiusd.conf").write_text(text)
    return raddb


# -- running servers --------------------------------------------------------------------------


@dataclass
class Server:
    """A FreeRADIUS (possibly under radbill's CLI) in its own process group."""

    name: str
    cmd: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    auth_port: int = 0
    dbname: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    lines_seen: dict[str, float] = field(default_factory=dict)
    _log_fh: IO[bytes] | None = None

    def start(self) -> None:
        self._log_fh = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=PROJECT_ROOT, start_new_session=True)

    def wait_ready(self, timeout: float, watch: Sequence[str] = ()) -> float:
        """Seconds from start until FreeRADIUS said it is ready. Also notes when each line
        containing one of *watch* first appeared (seconds from start)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            now = time.monotonic() - self.started_at
            for line in text.splitlines():
                if any(w in line for w in watch) and line not in self.lines_seen:
                    self.lines_seen[line] = now
            if READY_LINE in text:
                return now
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it "
                                   f"was ready; log {self.log_path}:\n{tail(self.log_path)}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
                           f"{tail(self.log_path)}")

    def pids(self) -> list[int]:
        return group_members(self.proc.pid) if self.proc is not None else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after a grace period."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in 20s: killing it")
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            if group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self._log_fh is not None:
            self._log_fh.close()
        self.proc = None


# -- requests and the load generator ----------------------------------------------------------


def _attr(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value) + 2)) + value


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324 - RADIUS (RFC 2865) is defined on MD5


def pap_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding (RFC 2865 section 5.2)."""
    padded = password.ljust(max(16, -(-len(password) // 16) * 16), b"\0")
    out, prev = b"", authenticator
    for i in range(0, len(padded), 16):
        key = _md5(secret + prev)
        block = bytes(a ^ b for a, b in zip(padded[i : i + 16], key, strict=True))
        out += block
        prev = block
    return out


def access_request(username: str, password: str, secret: bytes, rng: random.Random,
                   port: int) -> bytes:
    """A MikroTik-like PPPoE PAP Access-Request. Identifier 0 and a zero Message-Authenticator
    (first attribute): both are filled in when the packet is sent."""
    authenticator = rng.randbytes(16)
    mac = ":".join(f"{b:02X}" for b in rng.randbytes(6))
    attrs = b"".join((
        _attr(80, b"\0" * 16),  # Message-Authenticator
        _attr(6, struct.pack("!I", 2)),  # Service-Type = Framed-User
        _attr(7, struct.pack("!I", 1)),  # Framed-Protocol = PPP
        _attr(5, struct.pack("!I", port)),  # NAS-Port
        _attr(61, struct.pack("!I", 15)),  # NAS-Port-Type = Ethernet
        _attr(1, username.encode()),
        _attr(31, mac.encode()),  # Calling-Station-Id
        _attr(30, b"pppoe-bench"),  # Called-Station-Id
        _attr(87, b"ether2"),  # NAS-Port-Id
        _attr(2, pap_password(password.encode(), secret, authenticator)),
        _attr(32, b"bench-nas"),  # NAS-Identifier
        _attr(4, socket.inet_aton(HOST)),  # NAS-IP-Address
    ))
    return struct.pack("!BBH", ACCESS_REQUEST, 0, 20 + len(attrs)) + authenticator + attrs


def build_requests(users: Users, count: int, rng: random.Random) -> list[bytes]:
    secret = SECRET.encode()
    picks = rng.choices(range(len(users.names)), k=count)
    return [access_request(users.names[i], users.passwords[i], secret, rng, 15728640 + n)
            for n, i in enumerate(picks)]


@dataclass
class RoundStats:
    """What one server did with one batch of requests."""

    server: str
    sent: int
    elapsed: float
    latencies_ms: list[float]
    accepts: int = 0
    rejects: int = 0
    other: int = 0
    timeouts: int = 0
    no_rate_limit: int = 0
    stray: int = 0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    aux_cpu: float | None = None
    db_cpu: float | None = None
    drain: float | None = None

    @property
    def answered(self) -> int:
        return self.accepts + self.rejects + self.other

    @property
    def failures(self) -> int:
        return self.rejects + self.other + self.timeouts

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def drained_rate(self) -> float:
        """Throughput counting the wait until every decision was stored (radbill's ingester
        writes post-auth records after the replies; rlm_sql writes them, if at all, before)."""
        total = self.elapsed + (self.drain or 0.0)
        return self.answered / total if total > 0 else 0.0


class Pump(asyncio.DatagramProtocol):
    """Keeps *window* requests in flight on one UDP socket: every reply or timeout sends the
    next request from the callback itself (no task per request). Identifiers are reused in
    first-in first-out order, as late as possible."""

    def __init__(self, requests: Sequence[bytes], secret: bytes, window: int,
                 timeout: float) -> None:
        self.requests = requests
        self.secret = secret
        self.window = window
        self.timeout_ns = int(timeout * 1e9)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not requests:
            self.done.set_result(None)
        self.free_ids: collections.deque[int] = collections.deque(range(256))
        self.pending: dict[int, tuple[int, bytes]] = {}  # identifier -> (sent at, authenticator)
        self.next = 0
        self.finished = 0
        self.latencies_ns: list[int] = []
        self.codes: collections.Counter[int] = collections.Counter()
        self.timeouts = 0
        self.no_rate_limit = 0
        self.stray = 0
        self.first_sent = 0
        self.last_done = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.error: Exception | None = None

    def _fail(self, exc: BaseException) -> None:
        # An exception in a callback would only be logged by asyncio and the run would hang.
        if not self.done.done():
            self.done.set_exception(exc)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def start(self) -> None:
        """Send the first *window* requests; replies and timeouts send the rest."""
        self.first_sent = self.last_done = time.perf_counter_ns()
        try:
            for _ in range(min(self.window, len(self.requests))):
                self._send_next()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting coroutine
            self._fail(exc)
        asyncio.get_running_loop().call_later(0.1, self._sweep)

    def _send_next(self) -> None:
        if self.next >= len(self.requests):
            return
        assert self.transport is not None
        packet = bytearray(self.requests[self.next])
        self.next += 1
        ident = self.free_ids.popleft()
        packet[1] = ident
        packet[MA_OFFSET : MA_OFFSET + 16] = hmac.digest(self.secret, packet, "md5")
        self.pending[ident] = (time.perf_counter_ns(), bytes(packet[4:20]))
        self.transport.sendto(packet)

    def _finish_one(self, ident: int, now: int) -> None:
        del self.pending[ident]
        self.free_ids.append(ident)
        self.finished += 1
        self.last_done = now
        if self.finished == len(self.requests):
            if not self.done.done():
                self.done.set_result(None)
        else:
            self._send_next()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            self._received(data, time.perf_counter_ns())
        except Exception as exc:  # noqa: BLE001 - handed to the waiting coroutine
            self._fail(exc)

    def _received(self, data: bytes, now: int) -> None:
        entry = self.pending.get(data[1]) if len(data) >= 20 else None
        if entry is None:
            self.stray += 1
            return
        sent_at, authenticator = entry
        expected = _md5(data[:4] + authenticator + data[20:] + self.secret)
        if expected != data[4:20]:
            self.stray += 1  # a late answer to an identifier already reused
            return
        self.latencies_ns.append(now - sent_at)
        self.codes[data[0]] += 1
        if data[0] == ACCESS_ACCEPT and RATE_LIMIT_MARK not in data:
            self.no_rate_limit += 1
        self._finish_one(data[1], now)

    def _sweep(self) -> None:
        if self.done.done():
            return
        now = time.perf_counter_ns()
        try:
            for ident, (sent_at, _) in list(self.pending.items()):
                if now - sent_at > self.timeout_ns and ident in self.pending:
                    self.timeouts += 1
                    self._finish_one(ident, now)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting coroutine
            self._fail(exc)
            return
        asyncio.get_running_loop().call_later(0.1, self._sweep)

    def error_received(self, exc: Exception) -> None:
        self.error = exc  # e.g. ICMP port unreachable: the server is gone


def _returns(pump: Pump) -> Callable[[], Pump]:
    """A protocol factory handing over a pump built beforehand."""
    return lambda: pump


async def _drive(port: int, requests: Sequence[bytes], window: int, timeout: float,
                 sockets: int) -> list[Pump]:
    loop = asyncio.get_running_loop()
    pumps: list[Pump] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for i in range(sockets):
            share = window // sockets + (1 if i < window % sockets else 0)
            pump = Pump(requests[i::sockets], SECRET.encode(), share, timeout)
            transport, _ = await loop.create_datagram_endpoint(
                _returns(pump), remote_addr=(HOST, port))
            transports.append(transport)
            pumps.append(pump)
        for pump in pumps:
            pump.start()
        await asyncio.gather(*(p.done for p in pumps))
    finally:
        for t in transports:
            t.close()
    return pumps


def drive(server: str, port: int, requests: Sequence[bytes], window: int, timeout: float,
          sockets: int) -> RoundStats:
    """Send *requests* to *port* with *window* in flight over *sockets* UDP sockets; wait for
    every answer or timeout."""
    cpu0 = time.process_time()
    pumps = asyncio.run(_drive(port, requests, window, timeout, sockets))
    client_cpu = time.process_time() - cpu0
    codes: collections.Counter[int] = collections.Counter()
    for p in pumps:
        codes.update(p.codes)
    elapsed = (max(p.last_done for p in pumps) - min(p.first_sent for p in pumps)) / 1e9
    return RoundStats(
        server=server,
        sent=len(requests),
        elapsed=elapsed,
        latencies_ms=[ns / 1e6 for p in pumps for ns in p.latencies_ns],
        accepts=codes[ACCESS_ACCEPT],
        rejects=codes[ACCESS_REJECT],
        other=sum(n for c, n in codes.items() if c not in (ACCESS_ACCEPT, ACCESS_REJECT)),
        timeouts=sum(p.timeouts for p in pumps),
        no_rate_limit=sum(p.no_rate_limit for p in pumps),
        stray=sum(p.stray for p in pumps),
        client_cpu=client_cpu,
    )


# -- orchestration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How hard to push: requests in flight, over how many sockets, and the timeout."""

    concurrency: int
    sockets: int
    timeout: float


@dataclass
class Side:
    """One contender: its server, database and how to measure its CPU."""

    server: Server
    admin_url: str
    dbname: str
    postauth_count_url: str | None = None  # radbill: wait for the ingester after a round
    postauth_expected: int = 0

    def measure(self, requests: Sequence[bytes], load: Load) -> RoundStats:
        if not self.server.alive():
            raise RuntimeError(f"{self.server.name} is not running; log {self.server.log_path}:"
                               f"\n{tail(self.server.log_path)}")
        server_pids = self.server.pids()
        # Processes beside FreeRADIUS in its group: radbill's CLI with the ingester.
        aux = {p for p in server_pids if process_name(p) != "freeradius"}
        srv0 = cpu_seconds(server_pids)
        db0 = cpu_seconds(backend_pids(self.admin_url, self.dbname))
        stats = drive(self.server.name, self.server.auth_port, requests, load.concurrency,
                      load.timeout, load.sockets)
        if self.postauth_count_url is not None:
            self.postauth_expected += stats.answered
            # The ingester's work belongs to this round, even when it finishes after it.
            stats.drain = self.wait_for_ingester()
        srv1 = cpu_seconds(self.server.pids())
        db1 = cpu_seconds(backend_pids(self.admin_url, self.dbname))
        stats.server_cpu = sum(v - srv0.get(p, 0.0) for p, v in srv1.items())
        stats.aux_cpu = sum(v - srv0.get(p, 0.0) for p, v in srv1.items() if p in aux)
        stats.db_cpu = sum(v - db0.get(p, 0.0) for p, v in db1.items())
        return stats

    def wait_for_ingester(self, limit: float = 120.0) -> float:
        """Seconds until the ingester has stored a post-auth record for every answered request
        (or stopped making progress for 10 s)."""
        assert self.postauth_count_url is not None
        t0 = time.monotonic()
        last, last_change = -1, t0
        with psycopg.connect(self.postauth_count_url, autocommit=True) as conn:
            while time.monotonic() - t0 < limit:
                # The ingester's cursor counts the records it stored (cheaper than count(*)).
                row = conn.execute("SELECT coalesce(sum(records), 0) FROM radius_detail_cursors"
                                   " WHERE stream = 'postauth'").fetchone()
                n = int(row[0]) if row else 0
                if n >= self.postauth_expected:
                    return time.monotonic() - t0
                if n != last:
                    last, last_change = n, time.monotonic()
                elif time.monotonic() - last_change > 10:
                    break
                time.sleep(0.1)
        log(f"radbill ingester: {last} post-auth rows stored, {self.postauth_expected} expected")
        return time.monotonic() - t0


def freeradius_version() -> str:
    out = subprocess.run(["freeradius", "-v"], capture_output=True, text=True,
                         check=False).stdout
    m = re.search(r"FreeRADIUS Version (\S+)", out)
    return m.group(1).rstrip(",") if m else "unknown"


def machine_info(admin_url: str) -> list[str]:
    cpu = cpu_model()
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    pg = row[0] if row else "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}",
        f"software: FreeRADIUS {freeradius_version()}, PostgreSQL {pg}, "
        f"Python {platform.python_version()}, {platform.platform()}",
        f"load average at start: {load}",
    ]


@dataclass
class Summary:
    server: str
    rate: float
    drained_rate: float
    p50: float
    p99: float
    accepts: int
    failures: int
    rejects: int
    timeouts: int
    no_rate_limit: int
    server_us: float
    aux_us: float
    db_us: float
    client_us: float


def summarize(rounds: list[RoundStats]) -> Summary:
    latencies = sorted(v for r in rounds for v in r.latencies_ms)
    answered = sum(r.answered for r in rounds) or 1
    return Summary(
        server=rounds[0].server,
        rate=statistics.median(r.rate for r in rounds),
        drained_rate=statistics.median(r.drained_rate for r in rounds),
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        accepts=sum(r.accepts for r in rounds),
        failures=sum(r.failures for r in rounds),
        rejects=sum(r.rejects for r in rounds),
        timeouts=sum(r.timeouts for r in rounds),
        no_rate_limit=sum(r.no_rate_limit for r in rounds),
        server_us=sum(r.server_cpu or 0.0 for r in rounds) / answered * 1e6,
        aux_us=sum(r.aux_cpu or 0.0 for r in rounds) / answered * 1e6,
        db_us=sum(r.db_cpu or 0.0 for r in rounds) / answered * 1e6,
        client_us=sum(r.client_cpu for r in rounds) / answered * 1e6,
    )


def round_line(index: int | str, r: RoundStats) -> str:
    lat = sorted(r.latencies_ms)
    drain = f"{r.drain:6.2f}" if r.drain is not None else "     -"
    per = 1e6 / max(r.answered, 1)
    return (f"{index!s:>5}  {r.server:<8} {r.rate:9.0f} {r.drained_rate:9.0f} "
            f"{percentile(lat, 50):8.2f} "
            f"{percentile(lat, 99):8.2f} {r.accepts:8d} {r.rejects:7d} {r.timeouts:8d} "
            f"{(r.server_cpu or 0) * per:8.0f} {(r.aux_cpu or 0) * per:8.0f} "
            f"{(r.db_cpu or 0) * per:8.0f} "
            f"{r.client_cpu * per:8.0f} {drain}")


ROUND_HEADER = (f"{'round':>5}  {'server':<8} {'req/s':>9} {'drained':>9} {'p50 ms':>8} "
                f"{'p99 ms':>8} "
                f"{'accepts':>8} {'rejects':>7} {'timeouts':>8} {'srv us':>8} "
                f"{'(aux)':>8} {'db us':>8} "
                f"{'cli us':>8} {'drain':>6}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=20_000, help="requests per round per server")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds per server")
    p.add_argument("--warmup", type=int, default=2_000, help="unmeasured requests per server")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    p.add_argument("--sockets", type=int, default=4, help="client UDP sockets (source ports) "
                   "the requests in flight are spread over; each has 256 RADIUS identifiers")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts "
                   "as timed out (no retransmissions)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="admin URL of the PostgreSQL server (databases are created on it)")
    p.add_argument("--rlm-sql-postauth", action="store_true",
                   help="also log every decision with 'sql' in post-auth (radpostauth), as the "
                   "stock default site does; radbill always logs its decisions")
    p.add_argument("--seed", type=int, default=None, help="random seed for users and requests")
    p.add_argument("--keep", action="store_true",
                   help="keep the databases and the work directory")
    args = p.parse_args(argv)
    if not 1 <= args.sockets <= args.concurrency:
        p.error("--sockets must be between 1 and --concurrency")
    if args.concurrency > 128 * args.sockets:
        p.error("at most 128 requests in flight per socket: raise --sockets")
    for name in ("subscribers", "requests", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one linear script
    t_start = time.monotonic()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    suffix = secrets.token_hex(4)
    rb_db, sql_db = f"radbill_bench_{suffix}", f"rlm_sql_bench_{suffix}"
    work = Path(tempfile.mkdtemp(prefix="radbill-bench-"))
    admin = args.pg_url
    pg = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(admin).items()}
    info = machine_info(admin)
    phases: dict[str, float] = {}
    log(f"work directory {work}; databases {rb_db}, {sql_db}; seed {seed}")

    with contextlib.ExitStack() as cleanup:
        if args.keep:
            cleanup.callback(log, f"kept {work} and databases {rb_db}, {sql_db}")
        else:
            cleanup.callback(drop_database, admin, sql_db)
            cleanup.callback(drop_database, admin, rb_db)
            cleanup.callback(lambda: subprocess.run(["rm", "-rf", str(work)], check=False))

        t0 = time.monotonic()
        users = make_users(args.subscribers, rng)
        rounds_requests = [build_requests(users, args.requests, rng) for _ in range(args.rounds)]
        warmup = build_requests(users, args.warmup, rng) if args.warmup else []
        phases["generate users and requests"] = time.monotonic() - t0

        rb_url = create_database(admin, rb_db)
        sql_url = create_database(admin, sql_db)
        env = radbill_env(rb_url, work / "radbill-data")
        log(f"loading {args.subscribers} subscribers into radbill ({rb_db})")
        t0 = time.monotonic()
        rb = setup_radbill(env, users)
        phases["radbill load"] = time.monotonic() - t0
        for k, v in rb.timings.items():
            phases[f"  radbill {k}"] = v
        log(f"loading {args.subscribers} users into rlm_sql ({sql_db})")
        phases["rlm_sql load"] = setup_rlm_sql(sql_url, users, rb.rate_limit,
                                               rb.interim_interval)
        log("measuring one radbill snapshot load in-process")
        snap_s, snap_n = measure_snapshot_load(env)
        phases[f"radbill snapshot load in-process ({snap_n} subscribers)"] = snap_s

        rb_auth, rb_acct, sql_auth, sql_acct = free_udp_ports(4)
        radbill = Server(
            "radbill",
            [sys.executable, "-m", "radbill.cli", "radius", "run", "--listen", HOST,
             "--auth-port", str(rb_auth), "--acct-port", str(rb_acct),
             "--runtime-dir", str(work / "radbill-radius")],
            work / "radbill.log", env=env, auth_port=rb_auth)
        sql_raddb = render_rlm_sql(
            work / "rlm_sql", dbname=sql_db, pg_host=pg.get("host", HOST),
            pg_port=int(pg.get("port", "5432")), pg_user=pg.get("user", "postgres"),
            auth_port=sql_auth, acct_port=sql_acct, postauth_sql=args.rlm_sql_postauth)
        rlm_sql = Server(
            "rlm_sql",
            ["freeradius", "-f", "-l", "stdout", "-d", str(sql_raddb), "-n", "radiusd"],
            work / "rlm_sql.log", auth_port=sql_auth)
        for server in (radbill, rlm_sql):
            cleanup.callback(server.stop)
            log(f"starting {server.name} on {HOST} auth {server.auth_port}")
            server.start()
            ready = server.wait_ready(timeout=600, watch=("policy ready", "snapshot loaded",
                                                          "UNREACHABLE", "ERROR", "Error"))
            phases[f"{server.name} start until ready"] = ready
        rss = {s.name: rss_mb(s.pids()) for s in (radbill, rlm_sql)}

        sides = {
            "radbill": Side(radbill, admin, rb_db, postauth_count_url=rb_url),
            "rlm_sql": Side(rlm_sql, admin, sql_db),
        }
        load = Load(args.concurrency, args.sockets, args.timeout)
        warm: list[RoundStats] = []
        if warmup:
            t0 = time.monotonic()
            for side in sides.values():
                log(f"warm-up: {len(warmup)} requests to {side.server.name}")
                warm.append(side.measure(warmup, load))
                if warm[-1].accepts == 0:
                    raise RuntimeError(
                        f"{side.server.name} accepted none of the warm-up requests "
                        f"({warm[-1].rejects} rejects, {warm[-1].timeouts} timeouts); log "
                        f"{side.server.log_path}:\n{tail(side.server.log_path)}")
            phases["warm-up"] = time.monotonic() - t0

        results: dict[str, list[RoundStats]] = {"radbill": [], "rlm_sql": []}
        t0 = time.monotonic()
        for i, requests in enumerate(rounds_requests):
            order = ["radbill", "rlm_sql"] if i % 2 == 0 else ["rlm_sql", "radbill"]
            for name in order:
                time.sleep(1.0)  # let the other server's leftovers settle
                log(f"round {i + 1}/{args.rounds}: {len(requests)} requests to {name}")
                stats = sides[name].measure(requests, load)
                results[name].append(stats)
                log(f"  {stats.rate:.0f} req/s, {stats.accepts} accepts, {stats.failures} "
                    "failures")
        phases["measured rounds"] = time.monotonic() - t0
        for server in (radbill, rlm_sql):
            if not server.alive():
                log(f"warning: {server.name} died during the run")
        rb_log_lines = dict(radbill.lines_seen)
        t0 = time.monotonic()
        for server in (radbill, rlm_sql):
            server.stop()
        phases["stop servers"] = time.monotonic() - t0

    phases["total"] = time.monotonic() - t_start
    report(Outcome(args=args, seed=seed, info=info, warm=warm, results=results, rss=rss,
                   phases=phases, radbill_lines=rb_log_lines, radbill_log=radbill.log_path))
    answered = sum(r.answered for rs in results.values() for r in rs)
    return 0 if answered else 1


@dataclass
class Outcome:
    """Everything the final report shows."""

    args: argparse.Namespace
    seed: int
    info: list[str]
    warm: list[RoundStats]
    results: dict[str, list[RoundStats]]
    rss: dict[str, float]
    phases: dict[str, float]
    radbill_lines: dict[str, float]
    radbill_log: Path


def report(o: Outcome) -> None:
    """Print the per-round table, the summary table with the ratio, and the run's context."""
    args, results = o.args, o.results
    out: list[str] = []
    out.append("")
    out.append(f"Access-Request throughput: {args.subscribers} subscribers, PAP, "
               f"{args.rounds} rounds x {args.requests} requests per server, "
               f"{args.concurrency} in flight over {args.sockets} sockets, "
               f"warm-up {args.warmup}, timeout {args.timeout}s, "
               f"seed {o.seed}")
    out.append("rlm_sql: stock schema + queries, pool start 8 / min 4 / max 32 / spare 16, "
               f"post-auth sql logging {'on' if args.rlm_sql_postauth else 'off'}; "
               "radbill: post-auth detail spool + ingester (always on)")
    out.append("")
    out.append("per round (srv/db/cli us = CPU microseconds per answered request of the "
               "server's process group, its PostgreSQL backends, this load generator; (aux) = "
               "part of srv us outside FreeRADIUS: radbill's CLI process with the ingester; "
               "drain = s after the last reply until radbill's ingester had stored the round's "
               "post-auth records, polled every 0.1 s; drained = req/s counting that wait)")
    out.append(ROUND_HEADER)
    out.extend(round_line("warm", w) for w in o.warm)
    for i in range(args.rounds):
        for name in ("radbill", "rlm_sql"):
            out.append(round_line(i + 1, results[name][i]))
    sums = {name: summarize(rs) for name, rs in results.items()}
    out.append("")
    out.append(f"{'server':<10} {'req/s':>9} {'drained':>9} {'p50 ms':>8} {'p99 ms':>8} "
               f"{'accepts':>9} "
               f"{'failures':>9} {'srv us/req':>11} {'(aux)':>7} {'db us/req':>10} "
               f"{'RSS MB':>8}")
    for s in sums.values():
        out.append(f"{s.server:<10} {s.rate:9.0f} {s.drained_rate:9.0f} {s.p50:8.2f} "
                   f"{s.p99:8.2f} {s.accepts:9d} "
                   f"{s.failures:9d} {s.server_us:11.0f} {s.aux_us:7.0f} {s.db_us:10.0f} "
                   f"{o.rss.get(s.server, 0):8.0f}")
    rb, sq = sums["radbill"], sums["rlm_sql"]
    ratio = rb.rate / sq.rate if sq.rate else float("inf")
    out.append("(req/s, drained: median of the rounds; p50/p99: over every measured request; "
               "failures: rejects + timeouts + other codes)")
    out.append("")
    out.append(f"ratio radbill/rlm_sql: {ratio:.2f}x throughput "
               f"(issue goal >= 2x: {'met' if ratio >= 2 else 'NOT met'}); "
               f"p50 {rb.p50 / sq.p50 if sq.p50 else float('nan'):.2f}x, "
               f"p99 {rb.p99 / sq.p99 if sq.p99 else float('nan'):.2f}x")
    if sq.drained_rate:
        out.append(f"ratio counting radbill's post-auth ingestion (drained): "
                   f"{rb.drained_rate / sq.drained_rate:.2f}x")
    cpu_rb, cpu_sq = rb.server_us + rb.db_us, sq.server_us + sq.db_us
    if cpu_rb > 0:
        out.append(f"CPU per request (server + PostgreSQL): radbill {cpu_rb:.0f} us, rlm_sql "
                   f"{cpu_sq:.0f} us: rlm_sql/radbill {cpu_sq / cpu_rb:.2f}x")
    problems = []
    for s in sums.values():
        if s.failures or s.no_rate_limit:
            problems.append(f"{s.server}: {s.rejects} rejects, {s.timeouts} timeouts, "
                            f"{s.failures - s.rejects - s.timeouts} other replies, "
                            f"{s.no_rate_limit} accepts without Mikrotik-Rate-Limit")
    strays = sum(r.stray for rs in results.values() for r in rs)
    if strays:
        problems.append(f"{strays} stray or late replies ignored")
    out.append("WARNING: " + "; ".join(problems) if problems else
               "every measured request was answered with Access-Accept + Mikrotik-Rate-Limit")
    out.append("")
    out.extend(o.info)
    out.append("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    out.append("")
    out.append("phases (s):")
    out.extend(f"  {name:<58} {secs:8.1f}" for name, secs in o.phases.items())
    if o.radbill_lines:
        out.append(f"radbill log lines of note (seconds after start; log {o.radbill_log}"
                   f"{'' if args.keep else ', removed'}):")
        out.extend(f"  {secs:6.1f}  {line.strip()[:160]}"
                   for line, secs in o.radbill_lines.items())
    print("\n".join(out), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except RuntimeError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
