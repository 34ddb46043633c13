"""The policy's CPU per Access-Request, in one Python process: the compact snapshot against the
old layout (every subscriber a record, password decrypted at start), without FreeRADIUS, the
network or the database, so that the machine's load moves it far less than req/s.

Builds the snapshot from ``--subscribers`` rows (passwords Fernet-encrypted, a distinct
``paid_until`` each) and drives :meth:`radius.hook.PolicyHook.authorize` and ``post_auth``
with the same PAP-like attribute pairs for random subscribers (a new Calling-Station-Id
each, as ``bench/snapshot.py`` sends), for three layouts, round by round (ABC, CBA, ...):

* ``records``: every subscriber a :class:`~radius.policy.SubscriberRecord` (the old layout);
* ``compact``: the compact snapshot, a token decrypted at each login not in the cache;
* ``fernet``: the same, with each token decrypted by Fernet itself (the path before
  :meth:`radbill.crypto.SecretBox.decrypt_fast`).

Run from the project root with the project's virtualenv::

    .venv/bin/python bench/snapshot_lookup.py                 # 100,000 subscribers
    .venv/bin/python bench/snapshot_lookup.py --subscribers 1000000 --rounds 3

A benchmark, not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from typing import Any

from _common import log
from cryptography.fernet import Fernet

from billing.rates import RatePair
from radbill.crypto import SecretBox
from radius.hook import PolicyHook
from radius.policy import PlanRecord, PolicyConfig
from radius.snapshot import AuthSnapshot, entries_from_rows

NAS = "127.0.0.1"


def snapshot(rows: list[tuple[Any, ...]], box: SecretBox) -> AuthSnapshot:
    snap = AuthSnapshot()
    snap.box = box
    entries, _ = entries_from_rows(rows)
    snap.subscribers.update(entries)
    snap.plans[1] = PlanRecord(id=1, name="bench", rate=RatePair.parse("10M/10M"))
    snap.nas_types = {NAS: "mikrotik"}
    snap.loaded = True
    return snap


def request(name: str, rng: random.Random) -> tuple[tuple[str, str], ...]:
    mac = ":".join(f"{b:02X}" for b in rng.randbytes(6))
    return (("User-Name", name), ("Service-Type", "Framed-User"), ("Framed-Protocol", "PPP"),
            ("NAS-Port", "15728640"), ("NAS-Port-Type", "Ethernet"), ("Calling-Station-Id", mac),
            ("Called-Station-Id", "pppoe-bench"), ("NAS-Port-Id", "ether2"),
            ("NAS-Identifier", "bench-nas"), ("NAS-IP-Address", NAS),
            ("Packet-Src-IP-Address", NAS), ("User-Password", "x"))


def one_round(hook: PolicyHook, requests: list[tuple[tuple[str, str], ...]]) -> float:
    """CPU microseconds per request: authorize, then post_auth as FreeRADIUS calls it."""
    start = time.process_time()
    for pairs in requests:
        _, _, control = hook.authorize(pairs)
        decision = next(v for a, _, v in control if a == "Radbill-Decision")
        hook.post_auth((*pairs, ("Radbill-Decision", decision),
                        ("Radbill-Policy-Decision", decision), ("Radbill-Password-Ok", "1")))
    return (time.process_time() - start) / len(requests) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=20_000, help="per round and layout")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args(argv)
    if not 1 <= args.subscribers <= 2_000_000 or not 1 <= args.requests <= 1_000_000 or not (
            1 <= args.rounds <= 100):
        p.error("--subscribers up to 2,000,000, --requests up to 1,000,000, --rounds up to 100")
    rng = random.Random(args.seed)
    box = SecretBox(Fernet.generate_key())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log(f"encrypting {args.subscribers:,} passwords")
    rows = [(f"bench{i:07d}", box.encrypt(f"pw{rng.getrandbits(48):012x}"), "pppoe", "active",
             1, None, None, None, 100, now + dt.timedelta(seconds=rng.randrange(86_400, 2_592_000)),
             False, None, None, None, False, None, None, 1) for i in range(args.subscribers)]
    records = snapshot(rows, box)
    for key in list(records.subscribers):
        records.subscribers[key] = records.record(key)  # type: ignore[assignment]
    records._revealed.clear()
    fernet_box = SecretBox(box.keys)
    fernet_box.decrypt_fast = fernet_box.decrypt  # type: ignore[method-assign]
    layouts = {"records": records, "compact": snapshot(rows, box),
               "fernet": snapshot(rows, fernet_box)}
    del rows
    config = PolicyConfig(suspended_mode="reject")
    results: dict[str, list[float]] = {name: [] for name in layouts}
    order = list(layouts)
    for i in range(args.rounds):
        requests = [request(f"bench{rng.randrange(args.subscribers):07d}", rng)
                    for _ in range(args.requests)]
        for name in order if i % 2 == 0 else order[::-1]:
            # a fresh hook each round: the per-login tables start empty for every layout
            results[name].append(one_round(PolicyHook(layouts[name], config), requests))
        log(f"round {i + 1}: " + ", ".join(f"{n} {v[-1]:.1f} us" for n, v in results.items()))
    base = statistics.median(results["records"])
    print(f"\nPolicy CPU per Access-Request (authorize + post_auth), {args.subscribers:,} "
          f"subscribers, {args.rounds} rounds x {args.requests:,} requests for random "
          "subscribers, one process")
    print(f"{'layout':<8} {'median us':>10} {'min us':>8} {'max us':>8} {'x records':>10}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:<8} {med:>10.1f} {min(values):>8.1f} {max(values):>8.1f} "
              f"{med / base:>10.2f}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
