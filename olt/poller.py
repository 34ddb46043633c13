"""Discovery, polling and OLT reconciliation.

A poll of an OLT reads sysUpTime (backwards: the OLT rebooted, and admin states it did not
save are gone), walks every ONU (status, Rx power, admin state) into ``onus`` with a sample
per ONU for the signal history, then compares every bound ONU's admin state with billing and
queues a ``resync`` enforcement request for each one that drifted: the worker's OLT channel
repairs it. OLTs are polled concurrently; one that does not answer is reported, not waited for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from olt import inventory
from olt.channel import drift, plan
from olt.driver import OnuReading
from olt.models import Olt
from olt.snmp import OltError
from radbill.crypto import SecretBox
from radbill.db import session_factory, unit_of_work, utcnow
from radbill.errors import DomainError
from radbill.ops import raise_alert

log = logging.getLogger("radbill.olt")


class OltUnreachable(DomainError):
    """Discovery could not read the OLT (one line for the CLI)."""


async def _read(olt: Olt, box: SecretBox) -> tuple[int | None, list[OnuReading] | None, str]:
    driver = inventory.driver_for(olt, box)
    try:
        uptime = await driver.uptime()
        return uptime, await driver.discover(), ""
    except OltError as exc:
        return None, None, str(exc)[:500]
    finally:
        await driver.aclose()


def _store(factory: sessionmaker[Session], olt_id: int, uptime: int | None,
           readings: list[OnuReading] | None, error: str, sample: bool = True
           ) -> dict[str, int]:
    counts: dict[str, int] = {}
    with unit_of_work(factory) as session:
        olt = session.get(Olt, olt_id)
        assert olt is not None
        if readings is None:
            olt.last_error = error
            counts["errors"] = 1
            return counts
        if uptime is not None and olt.last_uptime is not None and uptime < olt.last_uptime:
            counts["reboots"] = 1
            raise_alert(session, "olt-rebooted",
                        f"OLT {olt.name} rebooted (sysUpTime {olt.last_uptime} -> {uptime}); "
                        "bound ONUs reconciled", {"olt": olt.name})
        olt.last_uptime = uptime
        counts.update(inventory.store_readings(session, olt, readings, utcnow(),
                                               sample=sample))
    return counts


def queue_repairs(factory: sessionmaker[Session]) -> int:
    """A ``resync`` enforcement request for every bound ONU that drifted from billing."""
    from coa import queue

    with unit_of_work(factory) as session:
        found = drift(session)
        planned = []
        for sid, ident, want in found[:5000]:
            req = queue.request(session, sid, "resync", f"reconciler: ONU {ident} should be "
                                f"{'blocked' if want else 'open'}")
            planned.append((req.id, sid))
        # the OLT task now, so the next poll does not count (or queue) the same drift again
        plan(session, planned, utcnow())
    return len(found)


async def poll(factory: sessionmaker[Session], box: SecretBox, names: list[str] | None = None,
               *, sample: bool = True) -> dict[str, int]:
    """Poll OLTs (all, or *names*) concurrently, store, and queue drift repairs. *sample*:
    keep a history sample per ONU (the scheduled poll does; the reconciler's every-minute
    pass and the reboot watch only update the current state)."""
    with factory() as session:
        stmt = select(Olt).order_by(Olt.id)
        if names is not None:
            stmt = stmt.where(Olt.name.in_(names[:100]))
        olts = list(session.scalars(stmt))
        session.expunge_all()
    # a model whose identity column is not known (VSOL V1600D without overrides) has
    # nothing to poll: it is skipped, not timed out against
    pollable = [o for o in olts if inventory.profile_of(o).ident_oid]
    totals: dict[str, int] = {"olts": len(pollable)}
    if len(pollable) < len(olts):
        totals["not_pollable"] = len(olts) - len(pollable)
    olts = pollable
    reads = await asyncio.gather(*(_read(o, box) for o in olts))
    for o, (uptime, readings, error) in zip(olts, reads, strict=True):
        if error:
            log.error("OLT %s: %s", o.name, error)
        counts = await asyncio.to_thread(_store, factory, o.id, uptime, readings, error,
                                         sample)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    totals["drift"] = await asyncio.to_thread(queue_repairs, factory)
    return totals


async def watch(factory: sessionmaker[Session], box: SecretBox) -> dict[str, int]:
    """A cheap reboot check between polls: sysUpTime of every OLT (one GET each, all at
    once); an OLT whose uptime went backwards is polled now, which repairs what the reboot
    undid. (A 32-bit TimeTicks wraps after 497 days: that looks like a reboot and costs one
    extra poll.)"""
    with factory() as session:
        olts = [o for o in session.scalars(select(Olt).where(Olt.last_uptime.is_not(None)))
                if inventory.profile_of(o).snmp_block]
        session.expunge_all()

    async def uptime(o: Olt) -> int | None:
        driver = inventory.driver_for(o, box)
        try:
            return await driver.uptime()
        except OltError:
            return None
        finally:
            await driver.aclose()

    now = await asyncio.gather(*(uptime(o) for o in olts))
    rebooted = [o.name for o, up in zip(olts, now, strict=True)
                if up is not None and o.last_uptime is not None and up < o.last_uptime]
    if not rebooted:
        return {}
    log.warning("OLT reboot seen (sysUpTime went backwards): %s", ", ".join(rebooted))
    return await poll(factory, box, rebooted, sample=False)


def discover(engine: Engine, box: SecretBox, name: str) -> dict[str, Any]:
    """Walk one OLT now and store its ONUs (``radbill olt discover``)."""
    factory = session_factory(engine)
    with factory() as session:
        olt = inventory.get_olt(session, name)
        inventory.profile_of(olt)
        session.expunge(olt)
    uptime, readings, error = asyncio.run(_read(olt, box))
    if readings is None:
        with unit_of_work(factory) as session:
            row = session.get(Olt, olt.id)
            assert row is not None
            row.last_error = error
        raise OltUnreachable(f"OLT {name}: {error}")
    return _store(factory, olt.id, uptime, readings, "")


def poll_all(engine: Engine, box: SecretBox) -> dict[str, int]:
    """One poll of every OLT (``radbill olt poll``, the scheduler)."""
    return asyncio.run(poll(session_factory(engine), box))
