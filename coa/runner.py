"""Wiring for `radbill enforcement ...`: build the worker from settings, run it, report."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coa import queue
from coa.radius import CoaController
from coa.reconciler import accounting_drift, reconcile
from coa.routeros import RouterOsController
from coa.transport import RadiusTransport
from coa.worker import EnforcementWorker, WorkerConfig
from olt.channel import OltChannel
from olt.channel import status_counts as olt_status_counts
from radbill.config import Settings
from radbill.crypto import secret_box
from radbill.db import engine_from_settings, session_factory
from radbill.ops import JobRun

log = logging.getLogger("radbill.enforcement")


async def _serve(settings: Settings, once: bool) -> int:
    engine = engine_from_settings(settings)
    factory = session_factory(engine)
    transport = await RadiusTransport(sockets=8).start()
    api = RouterOsController(walled_garden_list=settings.walled_garden_list)
    probe = session_factory(engine_from_settings(settings, sqlite_begin="DEFERRED"))
    olt = OltChannel(factory, secret_box(settings), probe=probe)
    worker = EnforcementWorker(
        factory, secret_box(settings), settings,
        CoaController(transport, timeout=settings.coa_timeout_ms / 1000,
                      retries=settings.coa_retries),
        api, WorkerConfig(suspend_by=settings.enforce_suspend_by,
                          reconcile_seconds=settings.reconcile_seconds), probe=probe, olt=olt)
    try:
        if once:
            counts = await worker.tick()
            counts.update({f"reconcile_{k}": v for k, v in (await reconcile(
                factory, worker.box, settings, api, olts=True)).items()})
            print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("enforcement worker running (suspend by %s, CoA timeout %d ms x %d retries)",
                 settings.enforce_suspend_by, settings.coa_timeout_ms, settings.coa_retries)
        await worker.run(stop)
        return 0
    finally:
        transport.close()
        await api.close()
        engine.dispose()


def run(settings: Settings, once: bool = False) -> int:
    """Run the worker until SIGINT/SIGTERM (or one round with *once*)."""
    return asyncio.run(_serve(settings, once))


async def reconcile_once(settings: Settings) -> dict[str, int]:
    """One reconciliation pass."""
    engine = engine_from_settings(settings)
    api = RouterOsController(walled_garden_list=settings.walled_garden_list)
    try:
        return await reconcile(session_factory(engine), secret_box(settings), settings, api,
                               session_factory(engine_from_settings(settings,
                                                                    sqlite_begin="DEFERRED")),
                               olts=True)
    finally:
        await api.close()
        engine.dispose()


def status(session: Session, settings: Settings) -> dict[str, Any]:
    """Queue counts, failures, live accounting drift and the last reconciliation."""
    counts = queue.status_counts(session)
    last = session.scalars(select(JobRun).where(JobRun.job == "reconcile")
                           .order_by(JobRun.id.desc())).first()
    return {
        "pending": sum(counts.get(s, 0) for s in ("pending", "retry", "working")),
        "confirming": counts.get("confirming", 0),
        "failed": counts.get("failed", 0),
        "by_status": counts,
        "drift": len(accounting_drift(session, settings)),
        "olt": olt_status_counts(session),
        "last_reconcile": None if last is None else {
            "at": last.started_at.isoformat(), "status": last.status,
            "counts": last.counts or {}},
        "recent_failures": queue.latest_failures(session, 10),
    }


def render_status(data: dict[str, Any]) -> str:
    lines = [f"pending {data['pending']}, confirming {data['confirming']}, "
             f"failed {data['failed']}, drift {data['drift']}"]
    o = data["olt"]
    lines.append(f"OLT: pending {o['pending']}, failed {o['failed']}, drift {o['drift']} "
                 f"(bound ONUs {o['bound']}, at the NAS only {o['nas_only']})")
    last = data["last_reconcile"]
    lines.append("last reconcile: never" if last is None else
                 f"last reconcile: {last['at']} {last['status']} {last['counts']}")
    for f in data["recent_failures"]:
        lines.append(f"  failed #{f['id']} {f['username']} {f['action']} after "
                     f"{f['attempts']} attempts: {f['error']}")
    return "\n".join(lines)

