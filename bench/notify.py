"""SMS throughput: reminders from the outbox to the SSL Wireless simulator.

Side by side in one run, against the same simulator (its own process, on loopback, with no
rate limit: "when the simulator allows it"):

* baseline: what ISP tools do, one blocking HTTP request per message, in turn
  (``/api/v3/send-sms``, a keep-alive ``httpx.Client``), texts already rendered: no database
  work at all is counted against it;
* radbill: ``radbill notify run``'s worker (in this process) planning deliveries from the
  outbox events (templates, Bengali, short links, segments and cost), claiming them, sending
  them in batches of 100 (``/api/v3/send-sms/dynamic``) with several requests in flight, and
  recording every answer, until every message is sent.

CPU per message is this process's user+system time (the database server's and the
simulator's are reported apart).

    .venv/bin/python bench/notify.py [--messages 10000] [--subscribers 1000] [--baseline N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench._common import (  # noqa: E402
    backend_pids,
    cpu_model,
    cpu_seconds,
    create_database,
    drop_database,
    log,
)

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def start_simulator(latency_ms: float) -> tuple[subprocess.Popen[str], str, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "simulators.sms.sslwireless",
                             str(latency_ms)], cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url, token, sid = proc.stdout.readline().split()
    return proc, url, token, sid


def seed(url: str, subscribers: int, messages: int, sim: tuple[str, str, str]) -> Any:
    from cryptography.fernet import Fernet

    from billing import plans
    from billing import subscribers as subs
    from notify.config import save
    from notify.outbox import enqueue
    from radbill import migrate
    from radbill.crypto import SecretBox
    from radbill.db import make_engine, session_factory

    engine = make_engine(url)
    migrate.upgrade(engine)
    box = SecretBox(Fernet.generate_key())
    factory = session_factory(engine)
    with factory() as s, s.begin():
        from billing.isp import settings

        isp = settings(s, lock=True)
        isp.name, isp.phone = "Dhaka Net", "09610000000"
        plans.create_plan(s, name="Home", price="1000", currency="BDT", rate="20M/5M")
        people = [subs.create_subscriber(s, box, username=f"b{i:05d}", password="pw",
                                         plan="Home", phone=f"017{i:08d}")
                  for i in range(subscribers)]
        for n in range(messages):
            enqueue(s, people[n % subscribers], "reminder", f"bench:{n}",
                    amount_due="1050.00", currency="BDT", due_on="2026-12-08",
                    payment_link=f"https://isp.example/pay/{secrets.token_hex(16)}")
        save(s, box, "sms", "sslwireless", {
            "base_url": sim[0], "sid": sim[2], "price_per_segment": "0.35",
            "quiet_start": "00:00", "quiet_end": "00:00", "rate": 100000, "burst": 10000},
            {"api_token": sim[1]})
    engine.dispose()
    return box


def baseline(sim: tuple[str, str, str], n: int) -> tuple[float, float]:
    url, token, sid = sim
    texts = [f"Dhaka Net: b{i:05d} এর ৳1,050.00 08-12-2026 এর মধ্যে পরিশোধ করুন: "
             f"https://isp.example/p/{secrets.token_urlsafe(6)}" for i in range(n)]
    cpu0, t0 = cpu_self(), time.perf_counter()
    with httpx.Client(timeout=10) as client:
        for i, text in enumerate(texts):
            reply = client.post(f"{url}/api/v3/send-sms", json={
                "api_token": token, "sid": sid, "msisdn": f"88017{i:08d}", "sms": text,
                "csms_id": f"base{i}"}).json()
            assert reply["status"] == "SUCCESS", reply
    return time.perf_counter() - t0, cpu_self() - cpu0


def radbill_run(url: str, box: Any, messages: int, pg: tuple[str, str] | None
                ) -> tuple[float, float, dict[str, int], float]:
    from sqlalchemy import func, select

    from notify.models import Delivery
    from notify.worker import NotifyWorker, WorkerConfig
    from radbill.db import make_engine, session_factory

    engine = make_engine(url)
    factory = session_factory(engine)
    worker = NotifyWorker(factory, box, WorkerConfig(batch=2000, in_flight=8,
                                                                   alerts_every=3600))
    totals: dict[str, int] = {}

    async def go() -> None:
        while True:
            counts = await worker.tick()
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            if totals.get("sms_sent", 0) >= messages:
                break
            if not any(counts.values()):
                raise RuntimeError(f"stalled: {totals}")
        await worker.close()

    cpu0, t0 = cpu_self(), time.perf_counter()
    asyncio.run(go())
    wall, cpu = time.perf_counter() - t0, cpu_self() - cpu0
    with factory() as s:
        sent = s.scalar(select(func.count()).select_from(Delivery)
                        .where(Delivery.status == "sent"))
    assert sent == messages, (sent, messages)
    # the backends of this engine lived for this run only: their whole CPU is the run's
    pg_cpu = sum(cpu_seconds(backend_pids(*pg)).values()) if pg else 0.0
    engine.dispose()
    return wall, cpu, totals, pg_cpu


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--baseline", type=int, default=None,
                   help="messages the baseline sends (default: --messages)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="a database URL that may create and drop databases")
    p.add_argument("--sqlite", action="store_true", help="SQLite in a temporary file instead")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="the simulator's answer time per request (the provider's network "
                        "round trip and processing; default 0: loopback only)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    n_base = args.baseline or args.messages
    proc, *sim = start_simulator(args.latency_ms)
    sim_t = (sim[0], sim[1], sim[2])
    name = f"radbill_bench_notify_{os.getpid()}"
    tmp = None
    if args.sqlite:
        import tempfile

        tmp = tempfile.mkdtemp()
        url = f"sqlite:///{tmp}/bench.db"
    else:
        url = create_database(args.pg_url, name).replace("postgresql://",
                                                          "postgresql+psycopg://", 1)
    try:
        log(f"seeding {args.subscribers} subscribers, {args.messages} reminders")
        box = seed(url, args.subscribers, args.messages, sim_t)
        sim_cpu0 = cpu_seconds([proc.pid]).get(proc.pid, 0.0)
        log(f"baseline: {n_base} blocking requests, one at a time")
        b_wall, b_cpu = baseline(sim_t, n_base)
        sim_cpu1 = cpu_seconds([proc.pid]).get(proc.pid, 0.0)
        log("radbill: the notify worker")
        r_wall, r_cpu, totals, pg_cpu = radbill_run(
            url, box, args.messages, None if args.sqlite else (args.pg_url, name))
        sim_cpu2 = cpu_seconds([proc.pid]).get(proc.pid, 0.0)
        b_rate, r_rate = n_base / b_wall, args.messages / r_wall
        today = dt.datetime.now(dt.UTC).date()
        print(f"notify benchmark, {today}, {cpu_model()}, {os.cpu_count()} CPUs, "
              f"{'SQLite' if args.sqlite else 'PostgreSQL'}, simulator answer time "
              f"{args.latency_ms:g} ms")
        print(f"{'':34}{'messages':>9}{'seconds':>9}{'msg/s':>9}{'CPU ms/msg':>11}")
        print(f"{'baseline (1 blocking req/msg)':34}{n_base:>9}{b_wall:>9.2f}{b_rate:>9.0f}"
              f"{1000 * b_cpu / n_base:>11.3f}")
        print(f"{'radbill notify worker':34}{args.messages:>9}{r_wall:>9.2f}{r_rate:>9.0f}"
              f"{1000 * r_cpu / args.messages:>11.3f}")
        print(f"speed-up: {r_rate / b_rate:.1f}x; simulator CPU ms/msg: baseline "
              f"{1000 * (sim_cpu1 - sim_cpu0) / n_base:.3f}, radbill "
              f"{1000 * (sim_cpu2 - sim_cpu1) / args.messages:.3f}"
              + ("" if args.sqlite else f"; PostgreSQL backends (radbill) "
                 f"{1000 * pg_cpu / args.messages:.3f} CPU ms/msg"))
        print(f"worker rounds: {totals}")
    finally:
        proc.kill()
        proc.wait()
        if not args.sqlite:
            drop_database(args.pg_url, name)


if __name__ == "__main__":
    main()
