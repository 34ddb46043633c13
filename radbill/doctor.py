"""`radbill doctor`: what is wrong with this installation, in plain words.

Each check reads one thing through the part that owns it and says ``ok``, ``warn`` (works,
but look at it) or ``problem`` (something will fail or is unsafe). Nothing is changed; a check
that cannot run says why instead of stopping the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from radbill.config import ConfigError, Settings

OK, WARN, PROBLEM = "ok", "warn", "problem"
MIN_FREE_BYTES = 1 << 30  # below 1 GiB free the accounting spool is at risk
MAX_SKEW_SECONDS = 5.0
API_TIMEOUT = 2.0
COA_TIMEOUT = 1.0  # first wait; one retry doubles it: a silent NAS costs 3 s


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


def retention(settings: Settings, engine: Engine) -> Iterator[Finding]:
    """When old records were last pruned, and what is kept how long (RADBILL_KEEP_*)."""
    from sqlalchemy import func, select

    from radbill.db import session_factory, utcnow
    from radbill.ops import JobRun

    with session_factory(engine)() as session:
        last = session.scalar(select(func.max(JobRun.finished_at)).where(
            JobRun.job == "retention", JobRun.status == "ok"))
    kept = (f"post-auth {settings.keep_postauth_days} d, sessions "
            f"{settings.keep_sessions_months} months, spools {settings.keep_spool_days} d, "
            f"outbox {settings.keep_outbox_days} d, audit {settings.keep_audit_days} d "
            "('radbill retention status')")
    if last is None:
        yield Finding(WARN, "retention", "old records were never pruned (the scheduler's "
                      f"nightly job, or 'radbill retention run'); kept: {kept}")
    elif utcnow() - last > dt.timedelta(days=2):
        yield Finding(WARN, "retention", f"old records last pruned {last:%Y-%m-%d %H:%M} UTC: "
                      f"the tables grow; check the scheduler; kept: {kept}")
    else:
        yield Finding(OK, "retention", f"old records pruned {last:%Y-%m-%d %H:%M} UTC; "
                      f"kept: {kept}")


def nas_devices(settings: Settings, engine: Engine) -> Iterator[Finding]:
    """Per NAS: Message-Authenticator required; CoA answered (a Disconnect-Request for a
    session that cannot exist: a NAS with the right secret NAKs it, one with another secret
    or none at that address stays silent); the RouterOS API logged into and read
    (``/system/identity``). Nothing on a router is changed."""
    from coa.queue import nas_refs
    from radbill.crypto import secret_box
    from radbill.db import session_factory
    from radius.nas import list_nas

    box = secret_box(settings, create=False)
    with session_factory(engine)() as session:
        rows = [(n.name, n.ip_address, n.require_message_authenticator)
                for n in list_nas(session)]
        refs = nas_refs(session, box)
    if not rows:
        yield Finding(WARN, "nas", "no NAS yet: 'radbill nas create'")
        return
    for name, ip, require_ma in rows:
        if not require_ma:
            yield Finding(PROBLEM, "nas", f"{name} ({ip}) is accepted without "
                          "Message-Authenticator (BlastRADIUS): set it on the router and here")
    yield from asyncio.run(_probe_all([(name, refs[ip][0]) for name, ip, _ in rows]))


COA_PROBE_USER = "radbill-doctor-probe"  # no subscriber has it: nothing is disconnected


async def _probe_all(targets: list[tuple[str, Any]]) -> list[Finding]:
    from coa.radius import CoaController
    from coa.routeros import RouterOsController
    from coa.transport import RadiusTransport

    transport = await RadiusTransport(sockets=1).start()
    coa = CoaController(transport, timeout=COA_TIMEOUT, retries=1)
    api = RouterOsController(timeout=API_TIMEOUT)
    try:
        results = await asyncio.gather(*(_probe(name, ref, coa, api) for name, ref in targets))
    finally:
        await api.close()
        transport.close()
    return [f for found in results for f in found]


async def _probe(name: str, ref: Any, coa: Any, api: Any) -> list[Finding]:
    from coa.controller import Outcome, SessionRef

    out = []
    probe = SessionRef(username=COA_PROBE_USER, acct_session_id=f"radbill-doctor-{os.getpid()}",
                       framed_ip=None)
    where = f"{ref.ip}:{ref.coa_port}"
    result = await coa.disconnect(ref, probe)
    if result.outcome in (Outcome.GONE, Outcome.NAK):
        out.append(Finding(OK, "nas", f"{name}: CoA at {where} answers, the secret matches"))
    elif result.outcome is Outcome.ACK:
        out.append(Finding(WARN, "nas", f"{name}: CoA at {where} acknowledged disconnecting a "
                           "session that does not exist: check the router's CoA settings"))
    else:
        out.append(Finding(PROBLEM, "nas", f"{name}: CoA at {where} does not answer "
                           "(unreachable, CoA off, or another secret): suspensions cannot "
                           "reach logged-in subscribers"))
    if ref.api_port:
        try:
            ident = await api.identity(ref)
            out.append(Finding(OK, "nas", f"{name}: RouterOS API at {ref.ip}:{ref.api_port} "
                               f"logged in (router {ident!r})"))
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            out.append(Finding(PROBLEM, "nas", f"{name}: RouterOS API at {ref.ip}:"
                               f"{ref.api_port} unreachable or refused ({first}): enforcement "
                               "falls back to RADIUS CoA only"))
    return out


def gateways(settings: Settings, engine: Engine) -> Iterator[Finding]:
    """Each configured gateway's credentials, by a call that creates and moves nothing."""
    from payments.config import adapters
    from payments.gateways.base import GatewayError

    try:
        found = adapters(settings)
    except ConfigError as exc:
        yield Finding(PROBLEM, "gateways", str(exc).splitlines()[0])
        return
    if not found:
        yield Finding(WARN, "gateways", "no payment gateway configured (cash and bank "
                      "payments only)")
    for name in sorted(found):
        try:
            proved = found[name].check_credentials()
        except GatewayError as exc:
            first = (str(exc).strip().splitlines() or ["refused"])[0][:200]
            yield Finding(PROBLEM, "gateways", f"{name}: {first}: payments through it fail")
            continue
        finally:
            close = getattr(found[name], "close", None)
            if close is not None:
                close()
        if proved is None:
            yield Finding(WARN, "gateways", f"{name}: configured; its credentials are proved "
                          "only by a checkout (it has no read-only call)")
        else:
            yield Finding(OK, "gateways", f"{name}: {proved}")


def channels(settings: Settings, engine: Engine) -> Iterator[Finding]:
    """Each channel's state and, for the enabled ones, its credentials, by a call that
    sends nothing (Telegram ``getMe``, an SMTP login)."""
    from notify.config import build, listing
    from notify.models import Channel
    from radbill.crypto import secret_box
    from radbill.db import session_factory

    box = secret_box(settings, create=False)
    with session_factory(engine)() as session:
        rows = listing(session)
        adapters: dict[str, Any] = {}
        for row in rows:
            if row["enabled"] and not row["paused"]:
                try:
                    adapters[row["channel"]] = build(session.get_one(Channel, row["channel"]),
                                                     box)
                except Exception as exc:  # noqa: BLE001 - a channel that cannot be built is the finding
                    adapters[row["channel"]] = exc
    if not rows:
        yield Finding(WARN, "channels", "no notification channel: subscribers hear nothing "
                      "('radbill notify channel ...')")
    proved = asyncio.run(_check_channels(adapters)) if adapters else {}
    for row in rows:
        name = f"{row['channel']} ({row['provider']})"
        if row["paused"]:
            yield Finding(PROBLEM, "channels", f"{name} paused since {row['paused']}: "
                          f"{row['pause_reason']}")
        elif not row["enabled"]:
            yield Finding(WARN, "channels", f"{name} disabled")
        else:
            level, words = proved[row["channel"]]
            yield Finding(level, "channels", f"{name}: {words}")


async def _check_channels(adapters: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from notify.channels.base import CredentialsRefused

    out: dict[str, tuple[str, str]] = {}
    for channel, adapter in adapters.items():
        if isinstance(adapter, Exception):
            out[channel] = (PROBLEM, f"cannot be used: {str(adapter).splitlines()[0][:200]}")
            continue
        try:
            words = await adapter.check_credentials()
            out[channel] = (OK, f"sending; {words}") if words else (
                WARN, "sending; its credentials are proved only by its first message (the "
                "provider has no read-only call)")
        except CredentialsRefused as exc:
            out[channel] = (PROBLEM, f"{exc}: messages through it fail")
        finally:
            await adapter.close()
    return out


CHECKS: tuple[Check, ...] = (freeradius, secrets, database, disk, billing_schedule,
                             retention, nas_devices, gateways, channels)


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
