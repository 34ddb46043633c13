"""The policy snapshot at scale: FreeRADIUS memory, time to the first answer after a start, and
Access-Request throughput, at each size, for this tree and a baseline tree side by side.

For each ``--sizes`` entry (default 100,000 and 1,000,000 subscribers) one run:

1. creates a PostgreSQL database, runs ``radbill db upgrade`` and loads a plan, a NAS and the
   subscribers: passwords Fernet-encrypted here (timed: it is the slow part of the set-up),
   rows sent with ``COPY``; every subscriber has a ``paid_until`` (distinct, to the second:
   nothing to share), 5% a static IP;
2. copies that database (``CREATE DATABASE ... TEMPLATE``) for the baseline, so each server
   has its own ingester and post-auth tables;
3. starts ``radbill radius run`` (real FreeRADIUS, rlm_python3 policy, ingester) from the
   baseline tree (``git archive`` of ``--baseline-ref``, by default the last commit before the
   compact snapshot), then from this tree, one after the other; from each start it sends an
   Access-Request every 50 ms until one is accepted (**first answer**), then reads the
   FreeRADIUS process's RSS and peak RSS (``VmHWM``) from ``/proc``;
4. with both servers up, drives ``--rounds`` rounds of ``--requests`` PAP requests for random
   subscribers at each (ABBA order), as ``bench/auth_throughput.py`` does, waiting after each
   round for the server's ingester to store its post-auth records, and reads the RSS again.
   Besides requests per second it gives the FreeRADIUS process's CPU per request (the
   layouts' own cost: on a shared machine req/s mostly measures the neighbours), and the
   CPU of the ingester beside it and of PostgreSQL; both servers do the same work (the
   baseline's database copy gets what its older ingester needs to store its records).

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/snapshot.py                        # 100k and 1M (about 10 minutes)
    .venv/bin/python bench/snapshot.py --sizes 2000,4000 --requests 2000 --rounds 1

A benchmark, not a test: it prints a table and exits 0 unless the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _common import cpu_seconds, create_database, drop_database, log, radbill_db_upgrade

from bench.auth_throughput import (
    ACCESS_ACCEPT,
    HOST,
    MA_OFFSET,
    PLAN_NAME,
    PLAN_RATE,
    SECRET,
    Load,
    RoundStats,
    Server,
    Side,
    Users,
    access_request,
    build_requests,
    free_udp_ports,
    machine_info,
    make_users,
    process_name,
    radbill_env,
    summarize,
    tail,
)
from radius.runtime import SNAPSHOT_FILE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The last commit whose snapshot loaded every subscriber as an ORM object and decrypted every
# password at start.
DEFAULT_BASELINE = "3dd7fca"
# What issue 14 measured for the old layout on this machine, printed when no baseline runs.
ISSUE_FIGURES = {100_000: (462.0, 5.8), 1_000_000: (3900.0, 60.0)}
STATIC_IP_EVERY = 20  # 5% of subscribers have a static IP


def hmac_md5(key: bytes, data: bytes) -> bytes:
    import hmac

    return hmac.digest(key, data, "md5")


def md5(data: bytes) -> bytes:
    import hashlib

    return hashlib.md5(data).digest()  # noqa: S324 - RADIUS (RFC 2865) is defined on MD5


# -- data ---------------------------------------------------------------------------------------


def setup(env: dict[str, str], users: Users, rng: random.Random) -> dict[str, float]:
    """Migrate and load the plan, the NAS and every subscriber; returns seconds per step."""
    from billing.plans import create_plan
    from radbill.config import Settings
    from radbill.crypto import secret_box
    from radbill.db import (
        AUTH_FEED,
        bump,
        engine_from_settings,
        session_factory,
        unit_of_work,
        utcnow,
    )
    from radius.nas import create_nas

    timings = {"migrate": radbill_db_upgrade(env, PROJECT_ROOT)}
    settings = Settings.from_env(env)
    box = secret_box(settings, create=False)
    t0 = time.perf_counter()
    tokens = [box.encrypt(pw) for pw in users.passwords]
    timings["encrypt"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = engine_from_settings(settings)
    base_ip = int(ipaddress.IPv4Address("10.64.0.1"))
    try:
        with unit_of_work(session_factory(engine)) as session:
            plan = create_plan(session, name=PLAN_NAME, price="500", currency="BDT",
                               rate=PLAN_RATE, actor="bench")
            create_nas(session, box, name="bench", ip=HOST, secret=SECRET, actor="bench")
            version = bump(session, AUTH_FEED)
            now = utcnow().replace(microsecond=0)
            raw = session.connection().connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            columns = ("username, password_enc, service, status, plan_id, simultaneous_use, "
                       "fup_throttled, paid_until, static_ip, auth_version, created_at, "
                       "updated_at")
            with raw.cursor() as cur, cur.copy(f"COPY subscribers ({columns}) FROM STDIN") as cp:
                for i, (name, token) in enumerate(zip(users.names, tokens, strict=True)):
                    paid = now + dt.timedelta(seconds=rng.randrange(86_400, 30 * 86_400))
                    ip = (str(ipaddress.IPv4Address(base_ip + i // STATIC_IP_EVERY))
                          if i % STATIC_IP_EVERY == 0 else None)
                    cp.write_row((name, token, "pppoe", "active", plan.id, 100, False, paid,
                                  ip, version, now, now))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE subscribers")
    finally:
        engine.dispose()
    timings["insert (COPY)"] = time.perf_counter() - t0
    return timings


def fit_for_baseline(url: str) -> None:
    """Let the baseline tree's ingester store its post-auth records in this tree's schema, so
    that both servers do the same work per request: the old ingester predates RADIUS node
    names (migration 0018) and inserts its detail cursors without one; the column gets the
    default (the single, unnamed node) that the old ORM model would have left to Python."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE radius_detail_cursors ALTER COLUMN node SET DEFAULT ''")


def baseline_tree(ref: str, dest: Path) -> str:
    """The tree of *ref* exported to *dest*; returns its commit."""
    commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", ref],
                            capture_output=True, text=True, check=False)
    if commit.returncode != 0:
        raise RuntimeError(f"baseline {ref!r} is not a commit of this repository: "
                           f"{commit.stderr.strip()} (use --baseline-ref none)")
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(PROJECT_ROOT), "archive", ref],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {ref} failed")
    return commit.stdout.strip()


# -- one server -----------------------------------------------------------------------------


@dataclass
class TreeServer(Server):
    """``radbill radius run`` from a given source tree."""

    tree: Path = PROJECT_ROOT

    def start(self) -> None:
        self._log_fh = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.tree, start_new_session=True)

    def freeradius_pids(self) -> list[int]:
        return [p for p in self.pids() if process_name(p) == "freeradius"]


def memory_breakdown(pids: list[int]) -> dict[str, float]:
    """RSS of *pids* by kind of mapping, in MB (from ``/proc/PID/smaps``): the heap and other
    anonymous memory, the saved snapshot file, Python extension modules, other libraries."""
    kinds: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            name = ""
            for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
                head = line.split(maxsplit=5)
                if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                    name = head[5] if len(head) > 5 else ""
                elif line.startswith("Rss:"):
                    kinds[_mapping_kind(name)] = (kinds.get(_mapping_kind(name), 0.0)
                                                  + int(line.split()[1]) / 1024)
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def _mapping_kind(name: str) -> str:
    kinds = (("[heap]", "heap"), ("[", "other"), ("/", "file"))
    kind = next((k for prefix, k in kinds if name.startswith(prefix)), "anonymous")
    if kind != "file":
        return kind
    if SNAPSHOT_FILE in name:
        return "snapshot file"
    if ".cpython-" in name or "site-packages" in name or "dist-packages" in name:
        return "Python extensions"
    return "libpython" if "libpython" in name else "other files"


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, peak RSS) of *pids* together, in MB."""
    rss = peak = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
    return rss / 1024, peak / 1024


def first_answer(server: TreeServer, users: Users, rng: random.Random, limit: float) -> float:
    """Seconds from the server's start until an Access-Request is accepted (one every 50 ms,
    each waiting 50 ms for its answer)."""
    secret = SECRET.encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.05)
        ident = 0
        while time.monotonic() - server.started_at < limit:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited; log {server.log_path}:\n"
                                   f"{tail(server.log_path)}")
            packet = bytearray(access_request(users.names[0], users.passwords[0], secret, rng,
                                              1))
            ident = (ident + 1) % 256
            packet[1] = ident
            packet[MA_OFFSET:MA_OFFSET + 16] = hmac_md5(secret, bytes(packet))
            try:
                sock.sendto(bytes(packet), (HOST, server.auth_port))
                data = sock.recv(4096)
            except (TimeoutError, ConnectionRefusedError):
                continue  # not listening yet (or no answer yet: silent while loading)
            if (len(data) >= 20 and data[1] == ident and data[0] == ACCESS_ACCEPT
                    and md5(data[:4] + bytes(packet[4:20]) + data[20:] + secret) == data[4:20]):
                return time.monotonic() - server.started_at
            if data[0] != ACCESS_ACCEPT:
                raise RuntimeError(f"{server.name} answered code {data[0]}, not an accept")
    raise RuntimeError(f"{server.name}: no accept {limit:.0f}s after start; log "
                       f"{server.log_path}:\n{tail(server.log_path)}")


@dataclass
class Result:
    """One server at one size."""

    name: str
    first_answer: float = 0.0
    start_cpu: float = 0.0  # CPU seconds of the FreeRADIUS process at the first answer
    rss_loaded: float = 0.0
    peak_loaded: float = 0.0
    rss_after: float = 0.0
    peak_after: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    rounds: list[RoundStats] = field(default_factory=list)


def rate(result: Result) -> float:
    """Median requests per second over the result's rounds."""
    return summarize(result.rounds).rate


# -- the run --------------------------------------------------------------------------------


def measure_size(  # noqa: PLR0912, PLR0915 - one linear script
        args: argparse.Namespace, size: int, work: Path, baseline: Path | None,
        rng: random.Random, phases: dict[str, float]) -> dict[str, Result]:
    admin = args.pg_url
    suffix = secrets.token_hex(4)
    names = {"compact": f"radbill_snap_{size}_{suffix}"}
    if baseline is not None:
        names["baseline"] = f"radbill_snapbase_{size}_{suffix}"
    results: dict[str, Result] = {}
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            for dbname in names.values():
                cleanup.callback(drop_database, admin, dbname)
        t0 = time.monotonic()
        users = make_users(size, rng)
        requests = [build_requests(users, args.requests, rng) for _ in range(args.rounds)]
        phases[f"{size}: generate users and requests"] = time.monotonic() - t0
        url = create_database(admin, names["compact"])
        data_dir = work / f"data-{size}"
        log(f"{size}: loading subscribers into {names['compact']}")
        for step, secs in setup(radbill_env(url, data_dir), users, rng).items():
            phases[f"{size}: {step}"] = secs
        phases[f"{size}:   encrypt per password (us)"] = (
            phases[f"{size}: encrypt"] / size * 1e6)
        urls = {"compact": url}
        if baseline is not None:
            t0 = time.monotonic()
            urls["baseline"] = create_database(admin, names["baseline"], names["compact"])
            fit_for_baseline(urls["baseline"])
            phases[f"{size}: copy the database for the baseline"] = time.monotonic() - t0
        servers: dict[str, TreeServer] = {}

        def start(name: str, label: str) -> tuple[TreeServer, Result]:
            auth, acct = free_udp_ports(2)
            tree = baseline if name == "baseline" and baseline is not None else PROJECT_ROOT
            # each tree its own data directory (the same key): each saves and restarts from
            # its own snapshot file, whatever format its tree writes
            own = data_dir if name == "compact" else work / f"data-{size}-{name}"
            if not own.exists():
                shutil.copytree(data_dir, own)
            env = radbill_env(urls[name], own)
            env["PYTHONPATH"] = str(tree)
            server = TreeServer(
                label, [sys.executable, "-m", "radbill.cli", "radius", "run", "--listen", HOST,
                        "--auth-port", str(auth), "--acct-port", str(acct),
                        "--runtime-dir", str(work / f"run-{size}-{name}")],
                work / f"{label}-{size}.log", env=env, auth_port=auth, tree=tree)
            cleanup.callback(server.stop)
            log(f"{size}: starting {label} ({tree})")
            server.start()
            result = Result(label)
            result.first_answer = first_answer(server, users, rng, args.start_timeout)
            result.rss_loaded, result.peak_loaded = memory_mb(server.freeradius_pids())
            result.start_cpu = sum(cpu_seconds(server.freeradius_pids()).values())
            log(f"{size}: {label} answered {result.first_answer:.1f}s after start "
                f"({result.start_cpu:.1f} s FreeRADIUS CPU), FreeRADIUS RSS "
                f"{result.rss_loaded:.0f} MB (peak {result.peak_loaded:.0f} MB)")
            return server, result

        started = time.time()
        for name in (["baseline"] if baseline is not None else []) + ["compact"]:
            servers[name], results[name] = start(name, name)
        load = Load(args.concurrency, args.sockets, args.timeout)
        dbnames = {n: names[n] for n in servers}
        sides = {n: Side(s, admin, dbnames[n], postauth_count_url=urls[n])
                 for n, s in servers.items()}
        order = list(servers)
        for i, batch in enumerate(requests):
            for name in order if i % 2 == 0 else order[::-1]:
                time.sleep(1.0)
                log(f"{size}: round {i + 1}/{args.rounds}: {len(batch)} requests to {name}")
                stats = sides[name].measure(batch, load)
                results[name].rounds.append(stats)
                log(f"  {stats.rate:.0f} req/s, {stats.accepts} accepts, {stats.failures} "
                    "failures")
        for name, server in servers.items():
            results[name].rss_after, results[name].peak_after = memory_mb(
                server.freeradius_pids())
            results[name].breakdown = memory_breakdown(server.freeradius_pids())
        # a restart starts from the snapshot the running policy saved after its first load
        deadline = time.monotonic() + args.start_timeout
        saved = data_dir / SNAPSHOT_FILE
        while not (saved.exists() and saved.stat().st_mtime >= started - 1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{size}: the policy never saved its snapshot to {saved}")
            time.sleep(0.2)
        # the baseline saved its own after its first load, before this tree started, if its
        # tree saves one at all (the old layout does not: then it is not restarted)
        base_saved = work / f"data-{size}-baseline" / SNAPSHOT_FILE
        for server in servers.values():
            server.stop()
        for name, label in (("baseline", "b-restart"), ("compact", "restart")):
            if name not in servers or (name == "baseline" and not base_saved.exists()):
                continue
            server, restart = start(name, label)
            restart.rss_after, restart.peak_after = restart.rss_loaded, restart.peak_loaded
            results[label] = restart
            server.stop()
    return results


def report(args: argparse.Namespace, info: list[str], baseline_commit: str | None,
           results: dict[int, dict[str, Result]], phases: dict[str, float]) -> list[str]:
    out = ["", f"Policy snapshot at scale: sizes {', '.join(f'{s:,}' for s in results)}; "
           f"{args.rounds} rounds x {args.requests} PAP requests per server and size, "
           f"{args.concurrency} in flight; FreeRADIUS process only (not the CLI/ingester)",
           "baseline: " + (f"commit {baseline_commit} (old layout), same run"
                           if baseline_commit else
                           "not run: figures from issue 14, marked (issue)"),
           "",
           f"{'subscribers':>11}  {'layout':<9} {'first answer s':>14} {'CPU s':>6} "
           f"{'RSS MB':>8} "
           f"{'peak MB':>8} {'RSS after MB':>12} {'req/s':>8} {'p99 ms':>7} {'failures':>8} "
           f"{'FR us/req':>9} {'ingest us':>9} {'db us':>6}"]
    for size, by_name in results.items():
        if "baseline" not in by_name and size in ISSUE_FIGURES:
            rss, start = ISSUE_FIGURES[size]
            out.append(f"{size:>11,}  {'old':<9} {start:>14.1f} {'-':>6} {rss:>8.0f} {'-':>8} "
                       f"{'-':>12} {'-':>8} {'-':>7} {'-':>8} {'-':>9} {'-':>9} {'-':>6}"
                       "  (issue)")
        for r in by_name.values():
            s = summarize(r.rounds) if r.rounds else None
            rounds = (f"{'-':>12} {'-':>8} {'-':>7} {'-':>8} {'-':>9} {'-':>9} {'-':>6}"
                      if s is None else
                      f"{r.rss_after:>12.0f} {rate(r):>8.0f} {s.p99:>7.2f} {s.failures:>8d} "
                      f"{s.server_us - s.aux_us:>9.0f} {s.aux_us:>9.0f} {s.db_us:>6.0f}")
            out.append(f"{size:>11,}  {r.name:<9} {r.first_answer:>14.1f} {r.start_cpu:>6.1f} "
                       f"{r.rss_loaded:>8.0f} "
                       f"{r.peak_loaded:>8.0f} {rounds}")
    out.append("(first answer: seconds from starting 'radbill radius run' to the first "
               "Access-Accept; CPU s: the FreeRADIUS process's CPU seconds by then; RSS "
               "and peak (VmHWM) right after it; RSS after: after the measured rounds; "
               "req/s: median of the rounds; FR us/req: the FreeRADIUS process's CPU per "
               "answered request over the rounds (the layouts' own cost, fairer than req/s on "
               "a shared machine), ingest us and db us: the same for the CLI process beside it "
               "(the ingester storing the post-auth records) and for PostgreSQL's backends; "
               "restart, b-restart: this tree and "
               "the baseline (if it saves one) started again, each from the snapshot it saved, "
               "after the rounds)")
    out.append("")
    sizes = sorted(results)
    for size in sizes:
        c = results[size]["compact"]
        goal = 150 if size <= 100_000 else 1024 if size <= 1_000_000 else None
        line = (f"{size:,}: compact peak RSS {c.peak_after:.0f} MB over load and rounds "
                f"({c.rss_after:.0f} MB after them)")
        if goal:
            line += f" (goal <= {goal} MB: {'met' if c.peak_after <= goal else 'NOT met'})"
        r = results[size]["restart"]
        line += (f"; first answer {c.first_answer:.1f} s from the database, "
                 f"{r.first_answer:.1f} s on a restart (peak {r.peak_loaded:.0f} MB)")
        if size >= 1_000_000:
            line += f" (goal <= 10 s: {'met' if r.first_answer <= 10 else 'NOT met'})"
        if "baseline" in results[size]:
            b = results[size]["baseline"]
            line += (f"; baseline RSS {b.rss_after:.0f} MB, first answer "
                     f"{b.first_answer:.1f} s")
            if b.rounds and c.rounds:
                sb, sc = summarize(b.rounds), summarize(c.rounds)
                line += (f"; compact/baseline: req/s {rate(c) / max(rate(b), 1e-9):.2f}, "
                         "FreeRADIUS CPU per request "
                         f"{(sc.server_us - sc.aux_us) / max(sb.server_us - sb.aux_us, 1e-9):.2f}")
        out.append(line)
        if c.breakdown:
            out.append(f"{size:,}: compact RSS after the rounds by mapping: " + ", ".join(
                f"{kind} {mb:.0f} MB" for kind, mb in c.breakdown.items()))
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for name in results[big]:
            if name in results[small] and results[big][name].rounds:
                a, b = rate(results[small][name]), rate(results[big][name])
                ratio = b / a if a else float("nan")
                out.append(f"{name} throughput at {big:,} / at {small:,}: {ratio:.2f} "
                           f"({b:.0f} / {a:.0f} req/s; goal for compact: >= 0.90: "
                           f"{'met' if ratio >= 0.9 else 'NOT met'})")
    failures = sum(summarize(r.rounds).failures for by in results.values() for r in by.values()
                   if r.rounds)
    out.append("WARNING: some requests were not accepted" if failures else
               "every measured request was answered with Access-Accept")
    out.append("")
    out.extend(info)
    out.append("phases (s):")
    out.extend(f"  {name:<52} {secs:10.1f}" for name, secs in phases.items())
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sizes", default="100000,1000000",
                   help="subscriber counts, comma-separated (each at most 2,000,000)")
    p.add_argument("--requests", type=int, default=20_000, help="requests per round per server")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per server and size")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--sockets", type=int, default=4)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--start-timeout", type=float, default=600.0,
                   help="seconds a server may take to its first answer")
    p.add_argument("--baseline-ref", default=DEFAULT_BASELINE,
                   help="git commit of the old layout to run beside this tree ('none': skip, "
                   "and print issue 14's figures for it)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the databases and work directory")
    args = p.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes {args.sizes!r}: comma-separated whole numbers")
    if not args.size_list or any(not 2 <= s <= 2_000_000 for s in args.size_list):
        p.error("--sizes: each between 2 and 2,000,000")
    for name in ("requests", "rounds"):
        if not 1 <= getattr(args, name) <= 1_000_000:
            p.error(f"--{name} must be between 1 and 1,000,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="radbill-snapbench-"))
    phases: dict[str, float] = {}
    log(f"work directory {work}; seed {seed}")
    try:
        info = machine_info(args.pg_url)
        baseline = baseline_commit = None
        if args.baseline_ref.lower() != "none":
            baseline = work / "baseline"
            baseline_commit = baseline_tree(args.baseline_ref, baseline)
        results = {size: measure_size(args, size, work, baseline, rng, phases)
                   for size in args.size_list}
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (RuntimeError, psycopg.Error) as exc:
        log(f"error: {exc}")
        return 1
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    print("\n".join(report(args, [*info, f"seed {seed}"], baseline_commit, results, phases)),
          flush=True)
    rates = [rate(r) for by in results.values() for r in by.values() if r.rounds]
    return 0 if all(rates) and statistics.fmean(rates) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
