"""Bulk suspension of FTTH subscribers: how fast their ONUs are verified blocked.

One run: four simulated OLTs (``simulators.olt``, each a real SNMP agent on loopback UDP, in
a separate process so they do not share radbill's CPU time slice) with ``--onus`` ONUs spread
over them, a fresh radbill database (SQLite file by default, or ``--db-url``) with one
subscriber bound to every ONU by serial. Then:

* ``--suspend`` subscribers are suspended in ONE transaction through
  ``billing.accounts.suspend`` (what the billing run calls); the clock starts at the commit;
* the enforcement worker as deployed (``EnforcementWorker`` with its OLT channel: one round
  per OLT, index resolved right before the SETs, batched SET PDUs, every ONU read back) runs
  until every OLT task is done; the time is "until every ONU is verified blocked". The
  benchmark then walks every OLT itself and counts the blocked ONUs (it must be exactly the
  suspended ones);
* the baseline, in the same run, is how billing tools script it today: for one ONU at a
  time, walk the serial column to find its index, then one SET (no read-back). It runs on a
  subset (``--baseline-subset`` ONUs, unblocked first) and its rate is extrapolated to the
  same count, labelled as such.

    .venv/bin/python bench/olt.py                          # 2,000 ONUs, 1,000 suspended
    .venv/bin/python bench/olt.py --onus 200 --suspend 100 --baseline-subset 20

A benchmark, not a test: it prints a table; exit 1 if the run did not converge.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_model, log
from billing import accounts, plans, subscribers
from billing.models import Subscriber
from coa.radius import CoaController
from coa.routeros import RouterOsController
from coa.transport import RadiusTransport
from coa.worker import EnforcementWorker, WorkerConfig
from olt import inventory
from olt.channel import OltChannel
from olt.driver import SnmpOltDriver
from olt.models import OltTask
from olt.profiles import profile
from olt.snmp import Credentials
from radbill import migrate
from radbill.config import Settings
from radbill.crypto import secret_box
from radbill.db import make_engine, session_factory, unit_of_work

VENDORS = ["huawei-gpon", "zte-gpon", "cdata-gpon", "bdcom-gpon"]
TODAY = dt.date(2026, 12, 1)


def serve_sims(per_olt: int, base_port: int) -> None:
    """Child process: start one simulated OLT per vendor and wait for stdin to close."""
    from simulators.olt import SimOlt, demo_onus

    sims = [SimOlt(v, demo_onus(v, per_olt, seed=i + 1), port=base_port + i).start()
            for i, v in enumerate(VENDORS)]
    print(json.dumps([{"vendor": s.vendor, "port": s.port,
                       "idents": [o.ident for o in s.onus]} for s in sims]), flush=True)
    sys.stdin.read()
    for s in sims:
        s.stop()


def creds(port: int) -> Credentials:
    return Credentials("127.0.0.1", port, "public", "private", timeout=2.0, retries=1)


async def count_blocked(olts: list[dict[str, object]]) -> int:
    """Walk every OLT's admin column ourselves and count blocked ONUs."""
    total = 0
    for o in olts:
        vendor, port = str(o["vendor"]), int(o["port"])  # type: ignore[call-overload]
        async with SnmpOltDriver(profile(vendor), creds(port)) as d:
            states = await d.read_states(list(o["idents"]))  # type: ignore[call-overload]
        total += sum(1 for v in states.values() if v)
    return total


async def baseline(olts: list[dict[str, object]], subset: int) -> tuple[float, int]:
    """One ONU at a time: walk for its index, then one SET. Returns (seconds, ONUs)."""
    done = 0
    started = time.monotonic()
    per = max(1, subset // len(olts))
    for o in olts:
        vendor, port = str(o["vendor"]), int(o["port"])  # type: ignore[call-overload]
        p = profile(vendor)
        idents: list[str] = list(o["idents"])[-per:]  # type: ignore[call-overload]
        for ident in idents:
            async with SnmpOltDriver(p, creds(port)) as d:
                index = (await d.resolve())[ident]
                await d.snmp.set([(f"{p.block_oid}.{index}{p.block_suffix}",
                                   p.blocked_value)])
            done += 1
    return time.monotonic() - started, done


def seed(url: str, olts: list[dict[str, object]], settings: Settings) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    box = secret_box(settings)
    with unit_of_work(session_factory(engine)) as s:
        plans.create_plan(s, name="FTTH-20", price="1000", currency="BDT", rate="20M/20M",
                          actor="bench")
        n = 0
        for i, o in enumerate(olts):
            inventory.create_olt(s, box, name=f"olt-{i}", vendor=str(o["vendor"]),
                                 ip="127.0.0.1", port=int(o["port"]),  # type: ignore[call-overload]
                                 community="public", write_community="private")
            for ident in o["idents"]:  # type: ignore[attr-defined]
                n += 1
                subscribers.create_subscriber(s, box, username=f"f{n:05d}", password="x",
                                              plan="FTTH-20", actor="bench")
                inventory.bind(s, f"f{n:05d}", f"olt-{i}", serial=ident)
    engine.dispose()


async def converge(url: str, settings: Settings, want: int, timeout: float) -> float | None:
    engine = make_engine(url)
    factory = session_factory(engine)
    box = secret_box(settings)
    transport = await RadiusTransport(sockets=1).start()
    api = RouterOsController(timeout=1)
    worker = EnforcementWorker(factory, box, settings,
                               CoaController(transport, timeout=0.5, retries=0), api,
                               WorkerConfig(), olt=OltChannel(factory, box))
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            await worker.tick()
            with factory() as s:
                done = s.scalar(select(func.count()).select_from(OltTask).where(
                    OltTask.status == "done", OltTask.outcome == "ack")) or 0
            if done >= want:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        return None
    finally:
        transport.close()
        await api.close()
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onus", type=int, default=2000)
    ap.add_argument("--suspend", type=int, default=1000)
    ap.add_argument("--baseline-subset", type=int, default=100)
    ap.add_argument("--db-url", help="default: a SQLite file in a temporary directory")
    ap.add_argument("--base-port", type=int, default=17161)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--serve-sims", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    per_olt = args.onus // len(VENDORS)
    if args.serve_sims:
        serve_sims(per_olt, args.base_port)
        return 0
    work = Path(tempfile.mkdtemp(prefix="radbill-olt-bench-"))
    url = args.db_url or f"sqlite:///{work / 'bench.db'}"
    settings = Settings(data_dir=work, database_url=url)
    child = subprocess.Popen([sys.executable, __file__, "--serve-sims", "--onus",
                              str(args.onus), "--base-port", str(args.base_port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        olts = json.loads(child.stdout.readline())
        log(f"{len(olts)} simulated OLTs, {per_olt} ONUs each; seeding {url}")
        seed(url, olts, settings)
        engine = make_engine(url)
        with unit_of_work(session_factory(engine)) as s:
            # spread over every OLT: every k-th subscriber
            every = list(s.scalars(select(Subscriber).order_by(Subscriber.id)))
            subs = every[::max(1, len(every) // args.suspend)][:args.suspend]
            for sub in subs:
                accounts.suspend(s, sub, TODAY, "unpaid", "bench")
        engine.dispose()
        log(f"{len(subs)} suspended in one transaction; running the worker")
        seconds = asyncio.run(converge(url, settings, len(subs), args.timeout))
        if seconds is None:
            log("did not converge")
            return 1
        blocked = asyncio.run(count_blocked(olts))
        log(f"verified blocked in {seconds:.2f} s; OLTs report {blocked} blocked ONUs")
        base_s, base_n = asyncio.run(baseline(olts, args.baseline_subset))
        extrapolated = base_s / base_n * len(subs)
        print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}, database {url.split(':')[0]}")
        print(f"{'method':<44}{'ONUs':>7}{'seconds':>10}{'ONUs/s':>10}")
        print(f"{'radbill (resolve, batched SET, read back)':<44}{len(subs):>7}"
              f"{seconds:>10.2f}{len(subs) / seconds:>10.1f}")
        print(f"{'baseline (walk + 1 SET each, no read-back)':<44}{base_n:>7}"
              f"{base_s:>10.2f}{base_n / base_s:>10.1f}")
        print(f"{'baseline extrapolated to the same count':<44}{len(subs):>7}"
              f"{extrapolated:>10.2f}")
        print(f"speed-up: {extrapolated / seconds:.1f}x; blocked ONUs read from the OLTs "
              f"afterwards: {blocked} (expected {len(subs)})")
        return 0 if blocked == len(subs) else 1
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(20)


if __name__ == "__main__":
    sys.exit(main())
