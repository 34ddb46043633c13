"""Reconnection time: from the click on "pay" in the walled-garden landing page (or from a
gateway's payment notification arriving) to the subscriber back online at full speed.

Everything as deployed, on PostgreSQL: ``radbill radius run`` (the real FreeRADIUS), ``radbill
enforcement run``, ``radbill serve`` (the web app with the webhook endpoint) and the Razorpay
simulator, with the NAS simulator holding every subscriber's session in the walled garden.
For each payment the Razorpay simulator records the capture and produces its signed
``payment_link.paid`` webhook; the clock starts when the script sends it to radbill (t0) and
stops when the NAS simulator ACKs the Disconnect-Request for that subscriber (the worker's
reconnection). Measured in the same run, as the baseline: the webhook's own round trip
(signature check, the confirmation call to the gateway's API, the ledger posting and
reactivation committed, 200 returned), which is what any billing system must do before the
network can follow.

From the walled-garden landing page (the default, ``--from landing``): the NAS simulator runs
in garden mode and each payer's requests go through their *line* (leaving from their
session's address). The payer opens any web site, is redirected to ``/portal/garden``, which
recognises them by address; the clock starts at the click on "pay" (the form POST) and
stops when the NAS simulator accepts the payer's new login at the plan's full speed
(Disconnect-ACK, redial, Access-Accept with the full rate). In between: the checkout at the
Razorpay simulator, its ``payment_link.paid`` webhook (sent by the script, timed on its
own as the baseline), the posting and reconnection, the enforcement worker's Disconnect,
and the redial (the NAS simulator redials ``--redial`` seconds after a Disconnect, as a
PPPoE client does). ``--from webhook`` measures from the webhook alone, as before.

    .venv/bin/python bench/payment_reconnect.py [--subscribers 500] [--payments 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench._common import create_database, drop_database, log, radbill_db_upgrade  # noqa: E402

SECRET = "bench-nas-secret"


def free_port(kind: str = "tcp") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp"
                       else socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Proc:
    """A radbill subprocess with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.path = logdir / f"{name}.log"
        self.fh = self.path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "radbill.cli", *args], cwd=PROJECT,
                                     env=env, stdout=self.fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.path.name}: {text!r} not seen:\n"
                                   + self.path.read_text()[-3000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.fh.close()


def seed(env: dict[str, str], n: int, coa_port: int) -> list[tuple[str, str]]:
    """NAS, an INR plan, *n* subscribers billed on 1 Nov and suspended on 9 Nov 2026."""
    os.environ.update(env)
    from billing import plans, subscribers
    from billing.run import billing_run, run_days
    from radbill.config import Settings
    from radbill.crypto import secret_box
    from radbill.db import engine_from_settings, session_factory
    from radius.nas import create_nas

    settings = Settings.from_env(env)
    engine = engine_from_settings(settings)
    factory = session_factory(engine)
    box = secret_box(settings)
    users = [(f"p{i:05d}", f"pw{i:05d}") for i in range(n)]
    with factory() as s, s.begin():
        create_nas(s, box, name="bench-nas", ip="127.0.0.1", secret=SECRET, coa_port=coa_port)
        plans.create_plan(s, name="Fiber-50", price="1000", currency="INR", rate="50M/50M")
        for name, password in users:
            subscribers.create_subscriber(s, box, username=name, password=password,
                                          plan="Fiber-50", phone="+919800000000",
                                          full_name=f"Bench {name}",
                                          activated_on=dt.date(2026, 10, 1))
    # every day's run to 8 Nov (invoice, reminder, final reminder), then the suspension
    run_days(factory, dt.date(2026, 11, 1), dt.date(2026, 11, 8))
    report = billing_run(factory, dt.date(2026, 11, 9), confirm_suspensions=True)
    assert report.counts.get("suspend") == n, report.counts
    engine.dispose()
    return users


def open_sessions(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL"
                           ).fetchone()
        return int(row[0]) if row else 0


def queue_idle(url: str) -> bool:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM enforcement_requests WHERE status IN "
                           "('pending','retry','working','confirming')").fetchone()
        return bool(row and int(row[0]) == 0)


def webhook_payments(args: argparse.Namespace, users: list[tuple[str, str]], base: str,
                     env: dict[str, str], gateway_sim: Any
                     ) -> tuple[dict[str, float], list[float], list[float]]:
    """Payments started out of band (not timed); the clock starts at each webhook."""
    from sqlalchemy import text

    from payments import intents
    from payments.config import adapter, configured
    from radbill.config import Settings
    from radbill.db import engine_from_settings, session_factory

    settings = Settings.from_env(env)
    gateway = adapter(configured(settings)["razorpay"])
    engine = engine_from_settings(settings)
    factory = session_factory(engine)
    payers = users[: args.payments]
    links: dict[str, str] = {}
    for username, _ in payers:
        with factory() as s, s.begin():
            number = s.execute(text(
                "SELECT i.pay_token FROM invoices i JOIN subscribers u ON "
                "u.id = i.subscriber_id WHERE u.username = :u"), {"u": username}
            ).scalar_one()
            intent, order = intents.create(s, number, "razorpay", base)
        checkout = gateway.start(order)
        with factory() as s, s.begin():
            intents.started(s, intent.reference, checkout)
        links[username] = checkout.gateway_reference
    engine.dispose()
    log(f"{len(payers)} payments, one every {args.interval * 1000:.0f} ms")
    sent: dict[str, float] = {}
    webhook: list[float] = []
    with httpx.Client(timeout=30) as client:
        for username, _ in payers:
            delivery = gateway_sim.pay(links[username], deliver=False)
            t0 = time.monotonic()
            _send_webhook(client, delivery, username)
            webhook.append(time.monotonic() - t0)
            sent[username] = t0
            time.sleep(args.interval)
    return sent, webhook, []


def _send_webhook(client: httpx.Client, delivery: Any, username: str) -> None:
    answer = client.post(delivery.url, content=delivery.body, headers={
        k: v for k, v in delivery.headers.items() if k.lower() not in ("host", "content-length")})
    if answer.status_code != 200 or answer.json().get("status") != "posted":
        raise RuntimeError(f"webhook for {username}: {answer.status_code} {answer.text}")


def landing_payments(args: argparse.Namespace, users: list[tuple[str, str]], base: str,
                     web_port: int, nas: Any, gateway_sim: Any
                     ) -> tuple[dict[str, float], list[float], list[float]]:
    """Each payer, through their line: any web site -> the landing page (not timed); then the
    click on "pay" (t0), the checkout page, the payment at the gateway and its webhook."""
    import re

    gateway_host = gateway_sim.url.split("/")[2]
    garden = nas.garden_mode(f"{base}/portal/garden", [f"127.0.0.1:{web_port}", gateway_host])
    payers = users[: args.payments]
    log(f"{len(payers)} payments from the landing page, one every "
        f"{args.interval * 1000:.0f} ms")
    sent: dict[str, float] = {}
    webhook: list[float] = []
    click: list[float] = []
    with httpx.Client(timeout=30) as hook:
        for username, _ in payers:
            with httpx.Client(proxy=garden.line(username), timeout=30) as line:
                page = line.get("http://news.example/", follow_redirects=True)
                if "/portal/garden" not in str(page.url) or "data-gateway" not in page.text:
                    raise RuntimeError(f"{username}: no landing page ({page.url}): "
                                       f"{page.text[:300]}")
                token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
                assert token is not None
                t0 = time.monotonic()
                answer = line.post(f"{base}/portal/garden/pay", data={
                    "gateway": "razorpay", "csrf_token": token.group(1)})
                click.append(time.monotonic() - t0)
                if answer.status_code != 303:
                    raise RuntimeError(f"{username}: pay answered {answer.status_code}: "
                                       f"{answer.text[:300]}")
                checkout = answer.headers["location"]
                line.get(checkout)  # the gateway's page
            link = next(k for k, v in list(gateway_sim.links.items())
                        if v["short_url"] == checkout)
            delivery = gateway_sim.pay(link, deliver=False)
            tw = time.monotonic()
            _send_webhook(hook, delivery, username)
            webhook.append(time.monotonic() - tw)
            sent[username] = t0
            time.sleep(args.interval)
    return sent, webhook, click


def run(args: argparse.Namespace) -> int:  # noqa: PLR0912, PLR0915 - one linear script
    name = f"radbill_paybench_{secrets.token_hex(4)}"
    url = create_database(args.pg_url, name).replace("postgresql://", "postgresql+psycopg://")
    work = Path(mkdtemp(prefix="radbill-paybench-"))
    auth_port, acct_port, coa_port, web_port = (free_port("udp"), free_port("udp"),
                                                free_port("udp"), free_port())
    base = f"http://127.0.0.1:{web_port}"
    env = {**os.environ, "RADBILL_DATABASE_URL": url, "RADBILL_DATA_DIR": str(work),
           "RADBILL_RADIUS_REJECT_DELAY": "0", "RADBILL_PUBLIC_URL": base}
    procs: list[Proc] = []
    nas = None
    gateway_sim = None
    try:
        radbill_db_upgrade(env, PROJECT)
        log(f"seeding {args.subscribers} suspended subscribers")
        users = seed(env, args.subscribers, coa_port)
        from simulators.gateways.razorpay import RazorpaySimulator
        from simulators.nas import NasSimulator

        gateway_sim = RazorpaySimulator().start()
        (work / "gateways.json").write_text(json.dumps({"razorpay": {
            "base_url": gateway_sim.url, "sandbox": True,
            "credentials": dict(gateway_sim.credentials)}}))
        gateway_sim.webhook_url = f"{base}/webhooks/razorpay"
        radius = Proc("radius", ["radius", "run", "--auth-port", str(auth_port), "--acct-port",
                                 str(acct_port), "--runtime-dir", str(work / "radius")],
                      env, work)
        procs.append(radius)
        radius.wait_for("Ready to process requests")
        # (addresses in 127/8: the garden's lines send each payer's requests from them)
        nas = NasSimulator(nas_ip="127.0.0.1", auth_port=auth_port, acct_port=acct_port,
                           secret=SECRET, coa_port=coa_port, pool="127.100.0.0").start()
        nas.redial_after = args.redial
        results = nas.login_many(users)
        assert all(r.accepted for r in results), "logins refused"
        deadline = time.monotonic() + 120
        while open_sessions(url) < len(users):
            if time.monotonic() > deadline:
                raise RuntimeError("accounting starts not stored in time")
            time.sleep(0.2)
        log(f"{len(users)} subscribers online in the walled garden")
        worker = Proc("enforcement", ["enforcement", "run"], env, work)
        procs.append(worker)
        worker.wait_for("enforcement worker running")
        web = Proc("serve", ["serve", "--port", str(web_port)], env, work)
        procs.append(web)
        web.wait_for("radbill admin on")
        while not queue_idle(url):
            time.sleep(0.2)

        if args.start == "landing":
            sent, webhook, click = landing_payments(args, users, base, web_port, nas,
                                                    gateway_sim)
        else:
            sent, webhook, click = webhook_payments(args, users, base, env, gateway_sim)
        deadline = time.monotonic() + 60
        while any(nas.acked_at.get(u, 0) < t for u, t in sent.items()):
            if time.monotonic() > deadline:
                left = [u for u, t in sent.items() if nas.acked_at.get(u, 0) < t]
                raise RuntimeError(f"{len(left)} never reconnected: {left[:10]}")
            time.sleep(0.01)
        reconnect = [nas.acked_at[u] - t for u, t in sent.items()]

        def full_speed(user: str, since: float) -> bool:
            at, rate = nas.logged_in_at.get(user, (0.0, None))
            return at > since and (rate or "").startswith("50M/50M")

        deadline = time.monotonic() + 60
        while not all(full_speed(u, t) for u, t in sent.items()):
            if time.monotonic() > deadline:
                left = [u for u, t in sent.items() if not full_speed(u, t)]
                raise RuntimeError(f"{len(left)} not re-dialled at full speed: {left[:10]}")
            time.sleep(0.05)
        relogin = [nas.logged_in_at[u][0] - t for u, t in sent.items()]

        load = os.getloadavg()
        origin = ("click on pay in the landing page" if args.start == "landing"
                  else "payment notification")
        print(f"\n{origin} -> NAS Disconnect-ACK, {len(sent)} payments "
              f"(Razorpay, PostgreSQL, real FreeRADIUS; {os.cpu_count()} CPUs, "
              f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; redial after "
              f"{args.redial * 1000:.0f} ms)")
        print(f"{'':52s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}")
        rows = [("baseline: webhook answered (posted, reactivated)", webhook)]
        if click:
            rows.append(("baseline: pay click answered (303 to gateway)", click))
        rows += [(f"radbill: {'click' if click else 'notification'} -> Disconnect-ACK",
                  reconnect),
                 (f"radbill: {'click' if click else 'notification'} -> full-speed login",
                  relogin)]
        for label, values in rows:
            print(f"{label:52s} " + " ".join(f"{pct(values, q) * 1000:7.0f}ms"
                                              for q in (50, 95, 99, 100)))
        p99 = pct(reconnect, 99)
        ratio = pct(reconnect, 50) / max(pct(webhook, 50), 1e-9)
        print(f"reconnection p99 {p99:.3f} s; goal < 2 s: {'met' if p99 < 2 else 'NOT met'}; "
              f"median {ratio:.1f}x the webhook round trip alone")
        print(f"{origin} -> new full-speed login: p50 {pct(relogin, 50):.3f} s, "
              f"p99 {pct(relogin, 99):.3f} s over {len(relogin)} payments")
        print("every payer then re-dialled and got the plan's full speed (50M/50M)")
        return 0 if p99 < 2 else 1
    finally:
        if nas is not None:
            nas.stop()
        if gateway_sim is not None:
            gateway_sim.stop()
        for proc in reversed(procs):
            proc.stop()
        if args.keep:
            log(f"kept database {name} and {work}")
        else:
            drop_database(args.pg_url, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between payments (default 0.05)")
    parser.add_argument("--from", dest="start", choices=("landing", "webhook"),
                        default="landing",
                        help="start the clock at the click on pay in the landing page "
                             "(default) or at the gateway's webhook")
    parser.add_argument("--redial", type=float, default=0.05,
                        help="seconds after a Disconnect before the router re-dials")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.payments > args.subscribers:
        parser.error("--payments cannot exceed --subscribers")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
