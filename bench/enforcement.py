"""Bulk suspension on a simulated NAS: how fast the network follows billing.

One run sets up radbill on the local PostgreSQL server in a fresh database (one NAS, one plan,
N subscribers), starts ``radbill radius run`` (the real FreeRADIUS, its ingester) and the NAS
simulator (``simulators.nas``), logs every subscriber in through FreeRADIUS and starts the
enforcement worker as deployed (``radbill enforcement run``, a subprocess). Then, for each
round and loss rate:

* every subscriber is suspended in ONE transaction, through ``billing.accounts.suspend`` (what
  the billing run calls: status change, audit, change-feed bump, enforcement request, outbox
  event); the clock starts when that transaction has committed;
* the benchmark watches the simulator and the database until every enforcement request is
  ``done`` (the NAS acknowledged the Disconnect-Request and its Accounting-Stop was stored:
  the acceptance's "converged"), and also notes when the NAS had dropped every session, when
  every Accounting-Stop was in the database, and when every subscriber had dialled in again
  into the walled garden (``--redial``);
* then everybody is reactivated (again one transaction through ``billing.accounts``) and the
  benchmark waits until all N are back online at full speed, so each round starts alike.

The baseline, in the same run, is how ISPs script this today: one Disconnect-Request at a time
with a synchronous client (pyrad ``Client``, radclient's defaults: 5 s timeout, 3 sends),
against the same simulator and sessions, at the same loss rates. With loss the sequential
baseline spends 5 s on every lost packet, so it runs on a subset (``--baseline-subset``),
labelled as such; its rate is comparable.

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/enforcement.py                       # 10,000 sessions, 3 rounds
    .venv/bin/python bench/enforcement.py --sessions 500 --rounds 1

This is a benchmark, not a test: it prints a table. It exits 1 if a round did not converge
within ``--timeout`` seconds (it prints what was left), or if the setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from _common import cpu_model, create_database, drop_database, log, radbill_db_upgrade

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

HOST = "127.0.0.1"
SECRET = "benchsecret123"
PLAN_NAME = "bench"
PLAN_RATE = "10M/10M"
READY_LINE = "Ready to process requests"
WORKER_READY = "enforcement worker running"
OPEN_STATUSES = ("pending", "retry", "working", "confirming")


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


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def fmt(value: float | None, spec: str = "7.2f") -> str:
    """A number, or a dash right-aligned to the same width."""
    if value is None:
        m = re.match(r"\d+", spec)
        return "-".rjust(int(m.group()) if m else 1)
    return format(value, spec)


@dataclass
class Proc:
    """A child process in its own process group, output to a log file."""

    name: str
    cmd: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    _fh: IO[bytes] | None = None

    def start(self) -> Proc:
        self._fh = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._fh, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=PROJECT_ROOT, start_new_session=True)
        return self

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_line(self, line: str, timeout: float) -> float:
        assert self.proc is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if line in self.text():
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log "
                                   f"{self.log_path}:\n{tail(self.log_path)}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {line!r} after {timeout:.0f}s; log "
                           f"{self.log_path}:\n{tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in 20s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self._fh is not None:
            self._fh.close()
        self.proc = None


# -- setup ------------------------------------------------------------------------------------


def radbill_env(db_url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    """The environment for radbill's CLI: this run's database and data directory only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env.update({
        "RADBILL_DATABASE_URL": db_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "RADBILL_DATA_DIR": str(data_dir),
        "RADBILL_RADIUS_REJECT_DELAY": "0",
    })
    if args.coa_timeout_ms is not None:
        env["RADBILL_COA_TIMEOUT_MS"] = str(args.coa_timeout_ms)
    if args.coa_retries is not None:
        env["RADBILL_COA_RETRIES"] = str(args.coa_retries)
    return env


def seed(env: dict[str, str], names: list[str], passwords: list[str], coa_port: int
         ) -> dict[str, float]:
    """Migrate, then one plan, one NAS (127.0.0.1, the simulator's CoA port) and every
    subscriber (bulk COPY, Fernet-encrypted passwords, simultaneous-use 1)."""
    from billing.plans import create_plan
    from radbill.config import Settings
    from radbill.crypto import SecretBox, load_key
    from radbill.db import AUTH_FEED, bump, engine_from_settings, session_factory, unit_of_work
    from radbill.db import utcnow as now_utc
    from radius.nas import create_nas

    timings = {"migrate": radbill_db_upgrade(env, PROJECT_ROOT)}
    settings = Settings.from_env(env)
    box = SecretBox(load_key(settings, create=False))
    t0 = time.perf_counter()
    tokens = [box.encrypt(pw) for pw in passwords]
    engine = engine_from_settings(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            plan = create_plan(session, name=PLAN_NAME, price="500", currency="BDT",
                               rate=PLAN_RATE, actor="bench")
            create_nas(session, box, name="bench-nas", ip=HOST, secret=SECRET,
                       coa_port=coa_port, actor="bench")
            version = bump(session, AUTH_FEED)
            now = now_utc()
            raw = session.connection().connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            columns = ("username, password_enc, service, status, plan_id, simultaneous_use, "
                       "fup_throttled, auth_version, created_at, updated_at")
            with raw.cursor() as cur, cur.copy(f"COPY subscribers ({columns}) FROM STDIN") as cp:
                for name, token in zip(names, tokens, strict=True):
                    cp.write_row((name, token, "pppoe", "active", plan.id, 1, False, version,
                                  now, now))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE subscribers")
    finally:
        engine.dispose()
    timings["seed"] = time.perf_counter() - t0
    return timings


# -- the world: database watcher, simulator, servers ------------------------------------------


class Db:
    """Cheap autocommit reads for polling, plus billing transactions through the ORM."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        from radbill.config import Settings
        from radbill.db import engine_from_settings, session_factory

        self.conn = psycopg.connect(url, autocommit=True)
        self.settings = Settings.from_env(env)
        self.engine = engine_from_settings(self.settings)
        self.factory = session_factory(self.engine)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None

    def open_sessions(self, max_pk: int | None = None) -> int:
        if max_pk is None:
            return int(self.one("SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL"))
        return int(self.one("SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL "
                            "AND id <= %s", (max_pk,)))

    def max_id(self, table: str) -> int:
        return int(self.one(f"SELECT coalesce(max(id), 0) FROM {table}"))  # noqa: S608 - ours

    def request_counts(self, base_id: int) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM enforcement_requests WHERE id > %s "
                                 "GROUP BY status", (base_id,)).fetchall()
        return {str(s): int(n) for s, n in rows}

    def open_requests(self) -> int:
        return int(self.one("SELECT count(*) FROM enforcement_requests WHERE status = ANY(%s)",
                            (list(OPEN_STATUSES),)))

    def billing_change(self, action: str) -> float:
        """Suspend (or reactivate) every subscriber in one transaction through
        ``billing.accounts``; returns seconds until the commit returned."""
        from sqlalchemy import select

        from billing import accounts
        from billing.models import Subscriber

        today = dt.date.today()  # noqa: DTZ011 - a billing date, as the run uses
        t0 = time.perf_counter()
        with self.factory() as session, session.begin():
            subs = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
            for sub in subs:
                if action == "suspend":
                    accounts.suspend(session, sub, today, "bench: bulk suspension", "bench")
                else:
                    accounts.reactivate(session, sub, today, "bench: restore", "bench")
        return time.perf_counter() - t0


def full_speed(sess: Any) -> bool:
    return not sess.address_list and (sess.rate_limit or "").startswith(PLAN_RATE)


@dataclass
class World:
    args: argparse.Namespace
    names: list[str]
    passwords: dict[str, str]
    db: Db
    sim: Any  # simulators.nas.NasSimulator
    worker: Proc
    garden: str
    fixups: int = 0

    @property
    def n(self) -> int:
        return len(self.names)

    def restore(self, timeout: float) -> float:
        """Reactivate everybody and wait until all N are online at full speed with exactly N
        open sessions stored and no open enforcement request. Returns seconds taken."""
        t0 = time.monotonic()
        self.sim.faults.drop = 0.0
        self.db.billing_change("reactivate")
        deadline = t0 + timeout
        logged_in = False
        nudged = False
        while True:
            online = self.sim.online()
            fast = {s.username for s in online if full_speed(s)}
            open_db = self.db.open_sessions()
            pending = self.db.open_requests()
            if len(fast) == self.n and len(online) == self.n and open_db == self.n \
                    and pending == 0:
                return time.monotonic() - t0
            if pending == 0 and not self.args.redial and not logged_in:
                missing = [u for u in self.names if u not in {s.username for s in online}]
                if missing:
                    # FreeRADIUS's policy sees the reactivation within its snapshot poll
                    # (250 ms); a login before that lands in the walled garden
                    time.sleep(1.0)
                    self.login(missing)
                logged_in = True
                continue
            if pending == 0 and not nudged and time.monotonic() - t0 > 20:
                # Somebody redialled while radbill still saw them suspended (or a login failed):
                # hang them up and log them in again, as a subscriber would.
                stuck = [s.username for s in online if not full_speed(s)]
                gone = sorted(set(self.names) - {s.username for s in online})
                if stuck or gone:
                    log(f"  restore: {len(stuck)} not at full speed, {len(gone)} offline after "
                        "20 s: logging them in again")
                    self.fixups += len(stuck) + len(gone)
                    for name in stuck:
                        self.sim.logout(name)
                    self.login(stuck + gone)
                nudged = True
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"restore did not finish in {timeout:.0f}s: {len(online)} online at the NAS "
                    f"({len(fast)} at full speed), {open_db} open sessions stored, {pending} "
                    f"open enforcement requests; worker log {self.worker.log_path}")
            time.sleep(0.1)

    def login(self, names: list[str]) -> None:
        results = self.sim.login_many((n, self.passwords[n]) for n in names)
        bad = sum(not r.accepted for r in results)
        if bad:
            log(f"  {bad} of {len(names)} logins were not accepted")


# -- one measured radbill round ---------------------------------------------------------------


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
ROUND_LINE = re.compile(r"enforcement round: (\d+) requests, (\d+) sessions, network ([\d.]+) s")
CONFIRM_LINE = re.compile(r"enforcement: .*confirmed (\d+)")


def log_epoch(line: str) -> float | None:
    m = LOG_TIME.match(line)
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000


@dataclass
class WorkerTick:
    """One worker round seen in its log: when it ended (s after commit), how many requests,
    its network phase, and the DB phases around it."""

    end: float
    requests: int
    network: float
    record_start: float | None = None  # s after commit, from enforcement_attempts.at
    claim: float | None = None  # s from the previous tick's end to the network phase
    record: float | None = None


@dataclass
class RoundResult:
    label: str
    loss: float
    n: int
    tx: float  # the suspending transaction, before the clock
    nas: float | None = None  # every session gone at the simulator
    stops: float | None = None  # every Accounting-Stop stored
    done: float | None = None  # every enforcement request done
    garden: float | None = None  # every subscriber online again, in the walled garden
    attempts: int = 0
    sends: int = 0
    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    ticks: list[WorkerTick] = field(default_factory=list)
    confirms: list[tuple[float, int]] = field(default_factory=list)
    restore: float | None = None
    load: float = 0.0
    left: str = ""

    @property
    def retrans(self) -> int:
        return self.sends - self.attempts

    @property
    def rate(self) -> float | None:
        """Disconnect-Request packets sent per second, commit until the NAS had dropped the
        last session."""
        return self.sends / self.nas if self.nas else None

    @property
    def net_rate(self) -> float | None:
        """Packets sent per second of the worker's network phases."""
        net = sum(t.network for t in self.ticks)
        return self.sends / net if net else None


def measure_round(w: World, label: str, loss: float, timeout: float  # noqa: PLR0915
                  ) -> RoundResult:
    db, sim = w.db, w.sim
    before = {s.session_id for s in sim.online()}
    if len(before) != w.n:
        raise RuntimeError(f"round {label} starts with {len(before)} sessions, not {w.n}")
    base_req, base_att = db.max_id("enforcement_requests"), db.max_id("enforcement_attempts")
    max_pk = db.max_id("radius_sessions")
    dropped0 = sim.counters.dropped
    sim.faults.drop = loss
    log_offset = len(w.worker.text())

    tx = db.billing_change("suspend")
    t0, wall0 = time.monotonic(), time.time()
    r = RoundResult(label, loss, w.n, tx)
    garden_needed = bool(w.args.redial)
    next_db = 0.0
    while True:
        now = time.monotonic() - t0
        online = sim.online()
        if r.nas is None and not any(s.session_id in before for s in online):
            r.nas = now
        if garden_needed and r.garden is None and len(online) == w.n and all(
                s.address_list == w.garden for s in online):
            r.garden = now
        if now >= next_db:
            next_db = now + 0.1
            if r.stops is None and db.open_sessions(max_pk) == 0:
                r.stops = time.monotonic() - t0
            if r.done is None and db.request_counts(base_req).get("done", 0) >= w.n:
                r.done = time.monotonic() - t0
        finished = r.nas is not None and r.stops is not None and r.done is not None
        if finished and (r.garden is not None or not garden_needed):
            break
        if finished and now > r.done + 60:  # type: ignore[operator]
            log(f"  round {label}: not everybody back in the walled garden 60 s after "
                "convergence")
            break
        if now > timeout:
            counts = db.request_counts(base_req)
            left_sim = sum(s.session_id in before for s in online)
            r.left = (f"after {timeout:.0f}s: requests by status {counts}; {left_sim} sessions "
                      f"still up at the NAS; {db.open_sessions(max_pk)} Accounting-Stops "
                      "missing")
            break
        time.sleep(0.02)
    sim.faults.drop = 0.0
    r.load = os.getloadavg()[0]
    r.dropped = sim.counters.dropped - dropped0
    rows = db.conn.execute(
        "SELECT channel, outcome, sends, latency_ms FROM enforcement_attempts WHERE id > %s",
        (base_att,)).fetchall()
    for channel, outcome, sends, latency in rows:
        r.outcomes[f"{channel}-{outcome}"] = r.outcomes.get(f"{channel}-{outcome}", 0) + 1
        if channel == "disconnect":
            r.attempts += 1
            r.sends += int(sends)
            r.latencies.append(float(latency))
    r.latencies.sort()
    record_starts = sorted(
        row[0].timestamp() - wall0 for row in db.conn.execute(
            "SELECT DISTINCT at FROM enforcement_attempts WHERE id > %s", (base_att,)))
    parse_worker_log(r, w.worker.text()[log_offset:], wall0, record_starts)
    return r


def parse_worker_log(r: RoundResult, text: str, wall0: float, record_starts: list[float]
                     ) -> None:
    """Worker rounds and confirmations from the worker's log (times relative to commit)."""
    for line in text.splitlines():
        at = log_epoch(line)
        if at is None:
            continue
        if m := ROUND_LINE.search(line):
            r.ticks.append(WorkerTick(at - wall0, int(m.group(1)), float(m.group(3))))
        elif m := CONFIRM_LINE.search(line):
            r.confirms.append((at - wall0, int(m.group(1))))
    prev_end = 0.0
    for tick in r.ticks:
        # The record phase began at its ``now`` (every attempt row of the tick carries it).
        starts = [s for s in record_starts if prev_end - 0.05 <= s <= tick.end + 0.05]
        if starts:
            tick.record_start = starts[0]
            tick.record = tick.end - starts[0]
            tick.claim = max(0.0, starts[0] - tick.network - prev_end)
        prev_end = tick.end


# -- the baseline: sequential, synchronous, radclient-like ------------------------------------


@dataclass
class BaselineResult:
    loss: float
    sessions: int
    acked: float  # last answer received
    stops: float | None
    answers: int
    timeouts: int
    naks: int
    sends: int
    latencies: list[float]
    dropped: int
    restore: float | None = None

    @property
    def rate(self) -> float:
        return self.sends / self.acked if self.acked else float("nan")


def run_baseline(w: World, loss: float, count: int) -> BaselineResult:
    """Disconnect *count* sessions one at a time with pyrad's synchronous Client."""
    from pyrad import packet
    from pyrad.client import Client, Timeout

    from coa.dictionary import dictionary

    db, sim = w.db, w.sim
    rows = db.conn.execute(
        "SELECT id, username, acct_session_id, framed_ip FROM radius_sessions "
        "WHERE stopped_at IS NULL ORDER BY id LIMIT %s", (count,)).fetchall()
    pks = [int(r[0]) for r in rows]
    client = Client(server=HOST, coaport=sim.coa_port, secret=SECRET.encode(),
                    dict=dictionary(), retries=w.args.baseline_sends,
                    timeout=w.args.baseline_timeout)
    dropped0 = sim.counters.dropped
    sim.faults.drop = loss
    answers = timeouts = naks = sends = 0
    latencies: list[float] = []
    t0 = time.monotonic()
    try:
        for _, username, sid, framed_ip in rows:
            pkt = client.CreateCoAPacket(code=packet.DisconnectRequest,
                                         message_authenticator=True)
            pkt["User-Name"] = username
            pkt["Acct-Session-Id"] = sid
            if framed_ip:
                pkt["Framed-IP-Address"] = str(framed_ip)
            pkt["NAS-IP-Address"] = HOST
            pkt["Event-Timestamp"] = int(time.time())
            start = time.monotonic()
            try:
                reply = client.SendPacket(pkt)
            except Timeout:
                timeouts += 1
                sends += w.args.baseline_sends
                continue
            elapsed = time.monotonic() - start
            latencies.append(elapsed * 1000)
            sends += 1 + int(elapsed // w.args.baseline_timeout)
            answers += 1
            if reply.code != packet.DisconnectACK:
                naks += 1
        acked = time.monotonic() - t0
    finally:
        sim.faults.drop = 0.0
    stops = None
    while time.monotonic() - t0 < acked + 60:
        if int(db.one("SELECT count(*) FROM radius_sessions WHERE id = ANY(%s) AND "
                      "stopped_at IS NULL", (pks,))) == 0:
            stops = time.monotonic() - t0
            break
        time.sleep(0.05)
    latencies.sort()
    return BaselineResult(loss, len(rows), acked, stops, answers, timeouts, naks, sends,
                          latencies, sim.counters.dropped - dropped0)


# -- report -----------------------------------------------------------------------------------


def machine_info(admin_url: str) -> list[str]:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    try:
        fr = subprocess.run(["freeradius", "-v"], capture_output=True, text=True, check=False)
        m = re.search(r"Version ([\d.]+)", fr.stdout + fr.stderr)
        frv = m.group(1) if m else "unknown"
    except OSError:
        frv = "unknown"
    return [
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}",
        f"software: FreeRADIUS {frv}, PostgreSQL {row[0] if row else '?'}, "
        f"Python {platform.python_version()}, {platform.platform()}",
    ]


def med(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def report(  # noqa: PLR0915 - one table after another
        args: argparse.Namespace, seed_value: int, info: list[str], loads: list[float],
           results: list[RoundResult], baselines: list[BaselineResult],
           phases: dict[str, float], worker_env: dict[str, str], fixups: int) -> list[str]:
    out = [""]
    timeout_ms = worker_env.get("RADBILL_COA_TIMEOUT_MS", "1000 (default)")
    retries = worker_env.get("RADBILL_COA_RETRIES", "3 (default)")
    out.append(f"Bulk suspension: {args.sessions} sessions on one simulated NAS, "
               f"{args.rounds} rounds per loss rate, loss {args.loss}, "
               f"redial {args.redial or 'off'}{' s' if args.redial else ''}, "
               f"worker CoA timeout {timeout_ms} ms x retries {retries}, seed {seed_value}")
    out.append("Clock starts when the transaction suspending everybody has committed (tx = its "
               "duration, not counted). nas = every session dropped at the NAS; stops = every "
               "Accounting-Stop stored; done = every enforcement request 'done' (converged); "
               "garden = everybody dialled in again, into the walled garden. Seconds.")
    out.append("sent = Disconnect-Request packets (retrans = retransmissions of them); disc/s = "
               "sent / nas; net/s = sent / worker network phases; p50/p99 = per-request "
               "latency (first send to answer) from enforcement_attempts.")
    out.append("")
    head = (f"{'round':>6} {'loss':>5} {'tx':>6} {'nas':>6} {'stops':>6} {'done':>6} "
            f"{'garden':>6} {'sent':>6} {'retr':>5} {'drop':>5} {'disc/s':>7} {'net/s':>7} "
            f"{'p50 ms':>7} {'p99 ms':>8} {'load1':>5}  outcomes")
    out.append(head)
    for r in results:
        out.append(f"{r.label:>6} {r.loss:5.2%} {r.tx:6.1f} {fmt(r.nas, '6.2f')} "
                   f"{fmt(r.stops, '6.2f')} {fmt(r.done, '6.2f')} {fmt(r.garden, '6.2f')} "
                   f"{r.sends:6d} {r.retrans:5d} {r.dropped:5d} {fmt(r.rate, '7.0f')} "
                   f"{fmt(r.net_rate, '7.0f')} {percentile(r.latencies, 50):7.2f} "
                   f"{percentile(r.latencies, 99):8.2f} {r.load:5.2f}  "
                   + ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items())))
    out.append("")
    out.append("where the time goes (s after commit), per round: worker ticks as "
               "[end: requests, claim | network | record], then confirmations "
               "(confirm time: count)")
    for r in results:
        ticks = " ".join(
            f"[{t.end:.2f}: {t.requests}, {fmt(t.claim, '.2f')} | {t.network:.2f} | "
            f"{fmt(t.record, '.2f')}]" for t in r.ticks)
        confirms = " ".join(f"{at:.2f}:{n}" for at, n in r.confirms)
        out.append(f"  {r.label:>6} {r.loss:5.2%}  {ticks}  confirmed {confirms}")
    out.append("")
    out.append("summary (medians over rounds; all rounds in brackets)")
    out.append(f"{'loss':>5}  {'radbill done s':<28} {'nas s':>6} {'disc/s':>7} {'p50 ms':>7} "
               f"{'p99 ms':>8} | {'baseline':<38} {'disc/s':>7} | {'rate x':>6} "
               f"{'time x':>7}")
    goal_met = True
    for loss in args.loss:
        rs = [r for r in results if r.loss == loss]
        done = med([r.done for r in rs])
        lat = sorted(v for r in rs for v in r.latencies)
        rate = med([r.rate for r in rs])
        bl = next((b for b in baselines if b.loss == loss), None)
        if bl is not None:
            subset = bl.sessions < args.sessions
            bl_text = (f"{bl.acked:7.1f} s for {bl.sessions} sessions"
                       + (" (SUBSET)" if subset else ""))
            bl_rate = f"{bl.rate:7.0f}"
            rate_x = f"{rate / bl.rate:6.1f}" if rate and bl.rate else "     -"
            # time for all N: measured if the baseline ran on all of them, else N / its rate
            bl_time_n = bl.acked * args.sessions / bl.sessions if bl.sessions else None
            time_x = (f"{bl_time_n / done:6.1f}" + ("*" if subset else " ")
                      if done and bl_time_n else "      -")
        else:
            bl_text, bl_rate, rate_x, time_x = "-", "      -", "     -", "      -"
        all_done = ", ".join(fmt(r.done, ".2f") for r in rs)
        out.append(f"{loss:5.2%}  {fmt(done, '6.2f')} [{all_done}]".ljust(36)
                   + f" {fmt(med([r.nas for r in rs]), '6.2f')} {fmt(rate, '7.0f')} "
                   f"{percentile(lat, 50):7.2f} {percentile(lat, 99):8.2f} | {bl_text:<38} "
                   f"{bl_rate} | {rate_x} {time_x}")
        if loss == 0.01 and (done is None or done >= 10):
            goal_met = False
    out.append("(rate x = radbill disc/s / baseline disc/s; time x = baseline time for all "
               "sessions / radbill median done; * = baseline ran on a subset: its time for all "
               "sessions is extrapolated from its measured rate. The baseline's time stops at "
               "its last answer; radbill's 'done' also waits for the Accounting-Stops.)")
    if 0.01 in args.loss:
        out.append(f"goal: {args.sessions} sessions converged in under 10 s at 1% loss: "
                   f"{'MET' if goal_met else 'NOT met'} (median)")
    if baselines:
        out.append("")
        out.append("baseline detail: pyrad Client, sequential, timeout "
                   f"{args.baseline_timeout} s, {args.baseline_sends} sends (radclient 3.2 "
                   "defaults)")
        for b in baselines:
            out.append(f"  loss {b.loss:5.2%}: {b.sessions} sessions, last answer "
                       f"{b.acked:.2f} s, every Stop stored {fmt(b.stops, '.2f')} s, "
                       f"{b.sends} sent, {b.answers} answered ({b.naks} NAK), {b.timeouts} "
                       f"timed out, {b.dropped} dropped by the NAS, p50 "
                       f"{percentile(b.latencies, 50):.2f} ms, p99 "
                       f"{percentile(b.latencies, 99):.2f} ms")
    out.append("")
    out.extend(info)
    if loads:
        out.append(f"load average (1 min) at the end of each measured round: median "
                   f"{statistics.median(loads):.2f}, max {max(loads):.2f}; "
                   "at exit: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if fixups:
        out.append(f"note: {fixups} subscribers needed a manual re-login during restores "
                   "(see the log)")
    out.append("")
    out.append("phases (s):")
    out.extend(f"  {name:<50} {secs:8.1f}" for name, secs in phases.items())
    failed = [r for r in results if r.left]
    for r in failed:
        out.append(f"NOT CONVERGED: round {r.label} loss {r.loss:.2%}: {r.left}")
    return out


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--loss", default="0,0.01",
                   help="comma-separated shares of CoA packets the NAS drops")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per loss rate")
    p.add_argument("--redial", type=float, default=0.0,
                   help="seconds after a disconnect before the subscriber's router dials in "
                   "again, and the time until all are back in the walled garden is measured "
                   "(default 0: they stay off, and between rounds everybody is logged in "
                   "again)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a round may take to converge before it counts as failed")
    p.add_argument("--coa-timeout-ms", type=int, default=None,
                   help="RADBILL_COA_TIMEOUT_MS for the worker (default: radbill's default)")
    p.add_argument("--coa-retries", type=int, default=None,
                   help="RADBILL_COA_RETRIES for the worker (default: radbill's default)")
    p.add_argument("--baseline-subset", type=int, default=1000,
                   help="sessions the sequential baseline disconnects when there is loss "
                   "(every lost packet costs it the full timeout); without loss it does all")
    p.add_argument("--baseline-timeout", type=float, default=5.0,
                   help="baseline client's timeout (radclient default 5 s)")
    p.add_argument("--baseline-sends", type=int, default=3,
                   help="baseline client's sends per request (radclient default 3)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="admin URL of the PostgreSQL server (a database is created on it)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true",
                   help="keep the database and the work directory (logs)")
    args = p.parse_args(argv)
    try:
        args.loss = [float(x) for x in args.loss.split(",") if x.strip()]
    except ValueError:
        p.error("--loss takes numbers like 0,0.01")
    if not args.loss or any(not 0 <= x < 1 for x in args.loss):
        p.error("--loss values must be in [0, 1)")
    if args.sessions < 1 or args.rounds < 1:
        p.error("--sessions and --rounds must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one linear script
    from simulators.nas import NasSimulator

    t_start = time.monotonic()
    seed_value = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed_value)
    name = f"enforcement_bench_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="radbill-bench-enf-"))
    admin = args.pg_url
    info = machine_info(admin)
    info.append("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    phases: dict[str, float] = {}
    results: list[RoundResult] = []
    baselines: list[BaselineResult] = []
    loads: list[float] = []
    log(f"work directory {work}; database {name}; seed {seed_value}")

    names = [f"enf{i:06d}" for i in range(args.sessions)]
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    passwords = ["".join(rng.choices(alphabet, k=12)) for _ in names]

    with contextlib.ExitStack() as cleanup:
        if args.keep:
            cleanup.callback(log, f"kept {work} and database {name}")
        else:
            cleanup.callback(lambda: subprocess.run(["rm", "-rf", str(work)], check=False))
            cleanup.callback(drop_database, admin, name)
        url = create_database(admin, name)
        env = radbill_env(url, work / "data", args)
        coa_port, auth_port, acct_port = free_udp_ports(3)

        log(f"seeding {args.sessions} subscribers")
        t0 = time.monotonic()
        for k, v in seed(env, names, passwords, coa_port).items():
            phases[f"setup: {k}"] = v
        phases["setup: total"] = time.monotonic() - t0

        radius = Proc("radbill radius run",
                      [sys.executable, "-m", "radbill.cli", "radius", "run", "--listen", HOST,
                       "--auth-port", str(auth_port), "--acct-port", str(acct_port),
                       "--runtime-dir", str(work / "radius")], work / "radius.log", env)
        cleanup.callback(radius.stop)
        radius.start()
        phases["radius start until ready"] = radius.wait_line(READY_LINE, 300)

        sim = NasSimulator(nas_ip=HOST, auth_port=auth_port, acct_port=acct_port,
                           secret=SECRET, coa_port=coa_port, seed=seed_value).start()
        cleanup.callback(sim.stop)
        db = Db(url, env)
        cleanup.callback(db.close)

        worker = Proc("radbill enforcement run",
                      [sys.executable, "-m", "radbill.cli", "enforcement", "run"],
                      work / "worker.log", env)
        w = World(args, names, dict(zip(names, passwords, strict=True)), db, sim, worker,
                  db.settings.walled_garden_list)

        log(f"logging {args.sessions} subscribers in through FreeRADIUS")
        t0 = time.monotonic()
        w.login(names)
        phases["login_many (Access + Accounting-Start)"] = time.monotonic() - t0
        deadline = time.monotonic() + 300
        while db.open_sessions() < args.sessions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {db.open_sessions()} of {args.sessions} sessions "
                                   f"stored after 300 s; log {radius.log_path}")
            time.sleep(0.1)
        phases["  ... until every session stored"] = time.monotonic() - t0

        cleanup.callback(worker.stop)
        worker.start()
        phases["worker start until running"] = worker.wait_line(WORKER_READY, 60)
        sim.redial_after = args.redial or None

        t0 = time.monotonic()
        for rnd in range(args.rounds):
            for loss in args.loss:
                label = f"{rnd + 1}"
                time.sleep(1.0)  # let leftovers settle
                log(f"round {label}: suspending {args.sessions} at loss {loss:.2%}")
                r = measure_round(w, label, loss, args.timeout)
                results.append(r)
                loads.append(r.load)
                log(f"  tx {r.tx:.1f} s; nas {fmt(r.nas, '.2f')} stops {fmt(r.stops, '.2f')} "
                    f"done {fmt(r.done, '.2f')} garden {fmt(r.garden, '.2f')}; load "
                    f"{r.load:.2f}")
                if r.left:
                    log(f"  NOT CONVERGED: {r.left}")
                    if not worker.alive():
                        log(f"worker died; log:\n{tail(worker.log_path)}")
                log("  restoring: reactivate everybody")
                r.restore = w.restore(args.timeout + 180)
                log(f"  restored in {r.restore:.1f} s")
        phases["measured rounds (with restores)"] = time.monotonic() - t0

        if not args.no_baseline:
            t0 = time.monotonic()
            for loss in args.loss:
                count = args.sessions if loss == 0 else min(args.sessions, args.baseline_subset)
                time.sleep(1.0)
                log(f"baseline: {count} sequential Disconnect-Requests at loss {loss:.2%}")
                b = run_baseline(w, loss, count)
                baselines.append(b)
                loads.append(os.getloadavg()[0])
                log(f"  {b.acked:.1f} s, {b.rate:.0f}/s, {b.timeouts} timeouts")
                b.restore = w.restore(300)
            phases["baseline (with restores)"] = time.monotonic() - t0
        phases["total"] = time.monotonic() - t_start
        worker_env = {k: v for k, v in env.items() if k.startswith("RADBILL_COA")}
        print("\n".join(report(args, seed_value, info, loads, results, baselines, phases,
                               worker_env, w.fixups)), flush=True)
        if not worker.alive():
            log(f"warning: the worker died; log:\n{tail(worker.log_path)}")
    return 1 if any(r.left for r in results) else 0


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
