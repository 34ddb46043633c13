"""`radbill doctor`: what is wrong with this installation, in plain words.

Each check reads one thing through the part that owns it and says ``ok``, ``warn`` (works,
but look at it) or ``problem`` (something will fail or is unsafe). Nothing is changed; a check
that cannot run says why instead of stopping the others.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, text

from radbill.config import ConfigError, Settings

OK, WARN, PROBLEM = "ok", "warn", "problem"
MIN_FREE_BYTES = 1 << 30  # below 1 GiB free the accounting spool is at risk
MAX_SKEW_SECONDS = 5.0
API_TIMEOUT = 2.0


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str


Check = Callable[[Settings, Engine], Iterator[Finding]]


def freeradius(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from radius.server import RadiusError, freeradius_binary

    try:
        yield Finding(OK, "freeradius", f"{freeradius_binary()} is >= 3.2.5")
    except RadiusError as exc:
        yield Finding(PROBLEM, "freeradius", str(exc).splitlines()[0])


def secrets(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from radbill.crypto import SecretError, key_path, load_keys
    from radbill.secure import exposed, sensitive_paths

    try:
        keys = load_keys(settings, create=False)
        where = "RADBILL_SECRET_KEY" if settings.secret_key else str(key_path(settings))
        yield Finding(OK, "secret key", f"{len(keys)} key(s) from {where}")
    except SecretError as exc:
        yield Finding(PROBLEM, "secret key", str(exc))
    lines = exposed(sensitive_paths(settings))
    for line in lines:
        yield Finding(PROBLEM, "file modes", line)
    if not lines:
        yield Finding(OK, "file modes", "secrets and personal data are private to their owner")


def database(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from radbill import migrate

    current, head = migrate.current_revision(engine), migrate.head_revision(engine)
    if current != head:
        yield Finding(PROBLEM, "database", f"schema at revision {current}, this release needs "
                      f"{head}: run 'radbill db upgrade'")
    else:
        yield Finding(OK, "database", f"reachable, schema at revision {head} (head)")
    with engine.connect() as conn:
        now = conn.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    if isinstance(now, str):  # SQLite: UTC as text
        now = dt.datetime.fromisoformat(now)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    skew = abs((dt.datetime.now(dt.UTC) - now).total_seconds())
    # SQLite's clock is this machine's: only a server's can differ
    level = PROBLEM if skew > MAX_SKEW_SECONDS else OK
    yield Finding(level, "clock", f"{skew:.1f} s from the database's clock" + (
        ": sessions and payments get wrong times; check NTP" if level == PROBLEM else ""))


def disk(settings: Settings, engine: Engine) -> Iterator[Finding]:
    path = settings.data_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    free = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if usage.free < MIN_FREE_BYTES:
        yield Finding(PROBLEM, "disk", f"{settings.data_dir}: {free}: the accounting spool "
                      "needs room while the database is unreachable")
    else:
        yield Finding(OK, "disk", f"{settings.data_dir}: {free}")


def billing_schedule(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from billing.isp import local_today
    from billing.isp import settings as isp_settings
    from radbill.db import session_factory, utcnow

    with session_factory(engine)() as session:
        isp = isp_settings(session)
        today = local_today(isp, utcnow())
        last = isp.billed_through
    if last is None:
        yield Finding(WARN, "billing", "the billing run has never run: nobody is invoiced, and "
                      "prepaid cut-offs are enforced only from paid_until")
    elif last < today - dt.timedelta(days=1):
        yield Finding(PROBLEM, "billing", f"the billing run last ran for {last}: nobody is "
                      "invoiced, reminded or suspended, and prepaid cut-offs after that day "
                      "are held (subscribers stay online) until it runs; check the scheduler, "
                      "then 'radbill billing run'")
    else:
        yield Finding(OK, "billing", f"the billing run last ran for {last}")


def nas_devices(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from radbill.db import session_factory
    from radius.nas import list_nas

    with session_factory(engine)() as session:
        rows = [(n.name, n.ip_address, n.require_message_authenticator, n.api_port)
                for n in list_nas(session)]
    if not rows:
        yield Finding(WARN, "nas", "no NAS yet: 'radbill nas create'")
    for name, ip, require_ma, api_port in rows:
        if not require_ma:
            yield Finding(PROBLEM, "nas", f"{name} ({ip}) is accepted without "
                          "Message-Authenticator (BlastRADIUS): set it on the router and here")
        if api_port:
            try:
                with socket.create_connection((ip, api_port), timeout=API_TIMEOUT):
                    pass
                yield Finding(OK, "nas", f"{name}: RouterOS API at {ip}:{api_port} answers")
            except OSError as exc:
                yield Finding(PROBLEM, "nas", f"{name}: RouterOS API at {ip}:{api_port} "
                              f"unreachable ({exc.strerror or exc}): enforcement falls back "
                              "to RADIUS CoA only")
        else:
            yield Finding(OK, "nas", f"{name} ({ip}): CoA only (not probed: a probe would "
                          "be a request to the router)")


def gateways(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from payments.config import configured

    try:
        found = configured(settings)
    except ConfigError as exc:
        yield Finding(PROBLEM, "gateways", str(exc).splitlines()[0])
        return
    yield Finding(OK if found else WARN, "gateways",
                  ", ".join(sorted(found)) + " configured" if found
                  else "no payment gateway configured (cash and bank payments only)")


def channels(settings: Settings, engine: Engine) -> Iterator[Finding]:
    from notify.config import listing
    from radbill.db import session_factory

    with session_factory(engine)() as session:
        rows = listing(session)
    if not rows:
        yield Finding(WARN, "channels", "no notification channel: subscribers hear nothing "
                      "('radbill notify channel ...')")
    for row in rows:
        name = f"{row['channel']} ({row['provider']})"
        if row["paused"]:
            yield Finding(PROBLEM, "channels", f"{name} paused since {row['paused']}: "
                          f"{row['pause_reason']}")
        elif not row["enabled"]:
            yield Finding(WARN, "channels", f"{name} disabled")
        else:
            yield Finding(OK, "channels", f"{name} sending")


CHECKS: tuple[Check, ...] = (freeradius, secrets, database, disk, billing_schedule,
                             nas_devices, gateways, channels)


def examine(settings: Settings, engine: Engine) -> list[Finding]:
    """Every check's findings; a check that fails to run is a finding too."""
    out: list[Finding] = []
    for check in CHECKS:
        try:
            out.extend(check(settings, engine))
        except Exception as exc:  # noqa: BLE001 - one broken check never hides the others
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            out.append(Finding(PROBLEM, check.__name__, f"could not check: {first}"))
    return out
