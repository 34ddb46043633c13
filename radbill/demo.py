"""`make run`: a demo ISP on the embedded database, a real FreeRADIUS, and a simulated NAS.

On first start it seeds plans, a NAS at 127.0.0.1 and a few dozen subscribers in every state.
Then it runs `radbill radius run`, the scheduler, the enforcement worker (`radbill
enforcement run`), the notification worker (`radbill notify run`, sending SMS to the SSL
Wireless simulator and alerts to the Telegram simulator), the admin UI (`radbill serve`,
login admin / demo-admin-pass) and a simulated MikroTik (simulators/nas.py) that logs
subscribers in over PAP, CHAP and MS-CHAPv2, sends accounting, answers CoA/Disconnect and
serves the RouterOS API, so a suspension in the UI reaches the "router" within a second. A
simulated Huawei OLT (simulators/olt.py, SNMP on 127.0.0.1:16161) carries the FTTH
subscribers demo01-demo08 and late01-late04: a suspension blocks their ONU, a payment opens
it. Ctrl-C stops everything.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import signal
import subprocess
import sys
import time
from typing import Any

from sqlalchemy import select

from billing import plans, subscribers
from billing.isp import local_today, update_settings
from billing.isp import settings as isp_settings
from billing.models import Plan, SubscriberStatus
from billing.run import run_days
from payments.intents import holds
from radbill.config import Settings
from radbill.crypto import secret_box
from radbill.db import engine_from_settings, session_factory, unit_of_work, utcnow
from radius.nas import create_nas
from simulators.nas import NasSimulator

DEMO_SECRET = "demo-nas-secret"
LATE = 4
DEMO_COA_PORT, DEMO_API_PORT, DEMO_API_PASSWORD = 3799, 8728, "demo-api-pass"
USERS = 30
DEMO_ADMIN, DEMO_ADMIN_PASSWORD = "admin", "demo-admin-pass"
ADMIN_PORT = 8080
DEMO_OLT_PORT, DEMO_OLT_VENDOR, DEMO_OLT_ONUS = 16161, "huawei-gpon", 16
FTTH = [f"demo{i:02d}" for i in range(1, 9)] + [f"late{i:02d}" for i in range(1, LATE + 1)]


def seed_olt(settings: Settings) -> None:
    """The demo OLT and the FTTH subscribers' ONU bindings, unless the OLT exists."""
    from olt import inventory
    from olt.models import Olt
    from simulators.olt import demo_onus

    engine = engine_from_settings(settings)
    try:
        with unit_of_work(session_factory(engine)) as s:
            if s.scalar(select(Olt.id).where(Olt.name == "demo-olt")) is not None:
                return
            inventory.create_olt(s, secret_box(settings), name="demo-olt",
                                 vendor=DEMO_OLT_VENDOR, ip="127.0.0.1", port=DEMO_OLT_PORT,
                                 community="public", write_community="private")
            for name, onu in zip(FTTH, demo_onus(DEMO_OLT_VENDOR, DEMO_OLT_ONUS), strict=False):
                inventory.bind(s, name, "demo-olt", serial=onu.ident)
    finally:
        engine.dispose()


def start_olt() -> Any:
    """The simulated OLT (it forgets blocks at every start, like an OLT without a saved
    configuration: the enforcement worker's reconciler puts them back within a minute)."""
    from simulators.olt import SimOlt, demo_onus

    onus = demo_onus(DEMO_OLT_VENDOR, DEMO_OLT_ONUS)
    onus[2].rx_dbm = -28.6  # demo03's drop cable is bent: a weak signal on the pages
    onus[11].online = False  # an ONU nobody is bound to, switched off
    return SimOlt(DEMO_OLT_VENDOR, onus, port=DEMO_OLT_PORT).start()


def seed_admin(settings: Settings) -> None:
    """The demo's admin UI user, unless it exists."""
    from admin import users
    from radbill.errors import Conflict

    engine = engine_from_settings(settings)
    try:
        with unit_of_work(session_factory(engine)) as s:
            users.create_user(s, DEMO_ADMIN, DEMO_ADMIN_PASSWORD, "admin", actor="demo")
    except Conflict:
        pass
    finally:
        engine.dispose()


def seed(settings: Settings) -> bool:
    """Create the demo ISP unless plans already exist. True if it seeded."""
    engine = engine_from_settings(settings)
    box = secret_box(settings)
    factory = session_factory(engine)
    with unit_of_work(factory) as s:
        if s.scalars(select(Plan.id)).first() is not None:
            return False
        create_nas(s, box, name="demo-mikrotik", ip="127.0.0.1", secret=DEMO_SECRET,
                   coa_port=DEMO_COA_PORT, api_port=DEMO_API_PORT, api_username="radbill",
                   api_password=DEMO_API_PASSWORD, actor="demo")
        update_settings(s, {"name": "Demo Fiber Net", "address": "House 1, Road 2, Dhaka",
                            "phone": "+8809600000000", "email": "billing@demo-isp.example",
                            "weekly_off_days": "fri",
                            "payment_link_base": f"http://127.0.0.1:{ADMIN_PORT}"},
                      actor="demo")
        plans.create_plan(s, name="Home-10", price="500", currency="BDT", rate="10M/5M",
                          burst="20M/10M", ip_pool="pppoe-pool", grace_days=3, late_fee="50",
                          tax_percent="5", setup_fee="1000", actor="demo")
        plans.create_plan(s, name="Home-25", price="1000", currency="BDT", rate="25M/10M",
                          data_cap="300G", fup_rate="5M/2M", ip_pool="pppoe-pool", actor="demo")
        plans.create_plan(s, name="Hotspot-Day", price="20", currency="BDT", rate="5M/2M",
                          billing_cycle="days", validity_days=1, billing_mode="prepaid",
                          actor="demo")
        for i in range(1, USERS + 1):
            hotspot = i % 5 == 0
            subscribers.create_subscriber(
                s, box, username=f"demo{i:02d}", password=f"pass{i:02d}",
                plan="Hotspot-Day" if hotspot else ("Home-25" if i % 2 else "Home-10"),
                service="hotspot" if hotspot else "pppoe", full_name=f"Demo Customer {i}",
                phone=f"+8801700000{i:03d}", actor="demo",
            )
        today = local_today(isp_settings(s), utcnow())
        for i in range(1, LATE + 1):  # billed last month, never paid: suspended below
            subscribers.create_subscriber(
                s, box, username=f"late{i:02d}", password=f"pass{i:02d}", plan="Home-10",
                full_name=f"Late Payer {i}", phone=f"+8801800000{i:03d}",
                activated_on=today - dt.timedelta(days=45), actor="demo")
        for name, status in (("demo07", SubscriberStatus.SUSPENDED),
                             ("demo13", SubscriberStatus.SUSPENDED),
                             ("demo21", SubscriberStatus.DISABLED)):
            subscribers.change_status(s, name, status, actor="demo", reason="demo data")
    # every day's billing run since the late payers joined: invoiced, reminded and suspended
    run_days(factory, today - dt.timedelta(days=45), today, actor="demo", holds=holds)
    engine.dispose()
    return True


def gateways(settings: Settings) -> dict[str, Any]:
    """The four gateway simulators, and ``<data>/gateways.json`` pointing the web app at them
    (rewritten at every start: their ports are new each time)."""
    from simulators.gateways.bkash import BkashSimulator
    from simulators.gateways.nagad import NagadSimulator
    from simulators.gateways.razorpay import RazorpaySimulator
    from simulators.gateways.sslcommerz import SslcommerzSimulator

    sims: dict[str, Any] = {"bkash": BkashSimulator(), "nagad": NagadSimulator(),
                            "sslcommerz": SslcommerzSimulator(),
                            "razorpay": RazorpaySimulator()}
    for sim in sims.values():
        sim.start()
    sims["razorpay"].webhook_url = f"http://127.0.0.1:{ADMIN_PORT}/webhooks/razorpay"
    path = settings.gateways_file or settings.data_dir / "gateways.json"
    path.write_text(json.dumps({name: {"base_url": sim.url, "sandbox": True,
                                       "credentials": dict(sim.credentials)}
                                for name, sim in sims.items()}, indent=2))
    return sims


def messaging(settings: Settings) -> list[Any]:
    """The SSL Wireless and Telegram simulators, and the SMS and Telegram channels pointed at
    them (saved at every start: their ports are new each time)."""
    from notify.config import save
    from simulators.sms.sslwireless import SslWirelessSimulator
    from simulators.sms.telegram import TelegramSimulator

    sms, chat = SslWirelessSimulator(), TelegramSimulator(per_chat_interval=0.0)
    sms.start()
    chat.start()
    factory = session_factory(engine_from_settings(settings))
    with unit_of_work(factory) as s:
        save(s, secret_box(settings), "sms", "sslwireless",
             {"base_url": sms.url, "sid": sms.sid, "price_per_segment": "0.35"},
             {"api_token": sms.api_token})
        save(s, secret_box(settings), "telegram", "telegram",
             {"base_url": chat.url, "noc_chat": "-1001", "finance_chat": "-1002"},
             {"token": chat.token})
    return [sms, chat]


def complete_checkouts(settings: Settings, sims: dict[str, Any]) -> None:
    """The demo's payers: a checkout started on the payment page (and so sitting on the
    simulated gateway's page) is paid 10 s later; the gateway then notifies radbill."""
    from payments.models import PaymentIntent

    engine = engine_from_settings(settings)
    try:
        with session_factory(engine)() as s:
            due = s.execute(select(PaymentIntent.gateway, PaymentIntent.gateway_reference,
                                   PaymentIntent.reference).where(
                PaymentIntent.status == "pending",
                PaymentIntent.created_at < utcnow() - dt.timedelta(seconds=10))).all()
        for gateway, gateway_reference, reference in due:
            try:
                sims[gateway].pay(gateway_reference)
                print(f"demo payer: paid {reference} on {gateway}")
            except Exception as exc:  # noqa: BLE001 - a demo nicety must not stop the demo
                print(f"demo payer: {reference} on {gateway}: {exc}")
    finally:
        engine.dispose()


def simulate(settings: Settings, stop: list[bool], sims: dict[str, Any]) -> None:
    """A simulated MikroTik (CoA on 127.0.0.1:3799, RouterOS API on 127.0.0.1:8728): log
    everybody in, then send interim updates. Suspend or reconnect someone (admin UI or
    `radbill subscriber ...`) and watch the enforcement worker disconnect them and their
    router dial back in under the new policy."""
    nas = NasSimulator(nas_ip="127.0.0.1", auth_port=settings.radius_auth_port,
                       acct_port=settings.radius_acct_port, secret=DEMO_SECRET,
                       coa_port=DEMO_COA_PORT, api_port=DEMO_API_PORT,
                       api_password=DEMO_API_PASSWORD).start()
    nas.redial_after = 2.0
    methods = itertools.cycle(["pap", "chap", "mschapv2"])
    try:
        logins = [(f"demo{i:02d}", f"pass{i:02d}", "hotspot" if i % 5 == 0 else "pppoe", i)
                  for i in range(1, USERS + 1)]
        logins += [(f"late{i:02d}", f"pass{i:02d}", "pppoe", 100 + i) for i in range(1, LATE + 1)]
        for name, password, service, i in logins:
            method = next(methods) if service == "pppoe" else "chap"
            result = nas.login(name, password, method, service=service,
                               mac=f"02:00:00:00:00:{i:02x}")
            verdict = "accept" if result.accepted else "reject"
            print(f"  {name} {method:8s} {verdict:6s} "
                  f"{result.reply.get('Mikrotik-Rate-Limit') or ''} "
                  f"{result.reply.get('Mikrotik-Address-List') or ''} "
                  f"{result.reply.get('Reply-Message') or ''}")
        print(f"simulated NAS: {len(nas.online())} sessions online; interim every 30 s "
              "(Ctrl-C stops)")
        while not stop[0]:
            for _ in range(30):
                if stop[0]:
                    return
                time.sleep(1)
                complete_checkouts(settings, sims)
            nas.interim(grow=random.randint(1, 50) * 1_000_000)
    finally:
        nas.stop()


def main() -> int:
    from radbill.secure import private_umask

    private_umask()  # what the demo writes (gateways.json, the database) is owner-only, as
    # the CLI's is
    settings = Settings.from_env()
    if seed(settings):
        print(f"seeded demo ISP in {settings.database_url}")
    seed_admin(settings)
    seed_olt(settings)
    olt = start_olt()
    print(f"simulated OLT: {DEMO_OLT_VENDOR} on 127.0.0.1:{DEMO_OLT_PORT} with "
          f"{DEMO_OLT_ONUS} ONUs (radbill olt onus demo-olt; FTTH: {', '.join(FTTH)})")
    subprocess.run([sys.executable, "-m", "radbill.cli", "olt", "discover", "demo-olt"],
                   check=False)
    sims = gateways(settings)  # before the web app starts: it reads gateways.json at start
    server = subprocess.Popen([sys.executable, "-m", "radbill.cli", "radius", "run"])
    scheduler = subprocess.Popen([sys.executable, "-m", "radbill.cli", "scheduler"])
    web = subprocess.Popen([sys.executable, "-m", "radbill.cli", "serve", "--port",
                            str(ADMIN_PORT)])
    enforcer = subprocess.Popen([sys.executable, "-m", "radbill.cli", "enforcement", "run"])
    messengers = messaging(settings)
    notifier = subprocess.Popen([sys.executable, "-m", "radbill.cli", "notify", "run"])
    print(f"admin UI: http://127.0.0.1:{ADMIN_PORT}/  login {DEMO_ADMIN} / "
          f"{DEMO_ADMIN_PASSWORD}")
    print(f"payment links: radbill billing invoices --subscriber late01 (late01-late{LATE:02d} "
          "owe one; open its link, pick a gateway and the demo payer completes it 10 s later)")
    stop = [False]

    def on_signal(_signum: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    time.sleep(4)
    if server.poll() is not None:
        print("FreeRADIUS did not start; see the messages above", file=sys.stderr)
        return 1
    try:
        simulate(settings, stop, sims)
    finally:
        for proc in (notifier, enforcer, web, scheduler, server):
            proc.terminate()
        for proc in (notifier, enforcer, web, scheduler, server):
            proc.wait(20)
        for sim in [*sims.values(), *messengers]:
            sim.stop()
        olt.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
