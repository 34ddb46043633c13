"""Stock rlm_sql's accounting path, replayed against PostgreSQL: the baseline for
``bench/accounting_ingest.py``.

What FreeRADIUS's ``sql`` module does for each accounting request, with the stock
``schema.sql`` (table ``radacct``) and the stock PostgreSQL ``queries.conf``: one statement
per request, in autocommit, with the values written into the SQL text (rlm_sql expands
``%{...}`` and sends a plain query); an Interim-Update or a Stop whose UPDATE finds no row
falls back to the INSERT that follows it in ``queries.conf``. Requests run on a pool of
threads and connections (rlm_sql's pool starts with 5, like FreeRADIUS's thread pool), the
records of one session on one thread in file order, as a NAS sends them.

This is rlm_sql's ceiling: the FreeRADIUS server around it (packet decoding, the ``acct_unique``
policy, the reply) costs nothing here. Only the ``Acct-Unique-Session-Id`` is computed, as the
stock policy does (MD5 of User-Name, Acct-Session-Id, NAS-IP-Address, NAS-Port-Id, NAS-Port).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from _common import cpu_seconds

STOCK_SQL_DIR = Path("/etc/freeradius/3.0/mods-config/sql/main/postgresql")

COLUMNS = ("AcctSessionId, AcctUniqueId, UserName, Realm, NASIPAddress, NASPortId, NASPortType, "
           "AcctStartTime, AcctUpdateTime, AcctStopTime, AcctSessionTime, AcctAuthentic, "
           "ConnectInfo_start, ConnectInfo_Stop, AcctInputOctets, AcctOutputOctets, "
           "CalledStationId, CallingStationId, AcctTerminateCause, ServiceType, FramedProtocol, "
           "FramedIpAddress, FramedIpv6Address, FramedIpv6Prefix, FramedInterfaceId, "
           "DelegatedIpv6Prefix")
INPUT = "((%(in_gw)s::bigint << 32) + %(in_oct)s::bigint)"
OUTPUT = "((%(out_gw)s::bigint << 32) + %(out_oct)s::bigint)"
TS = "TO_TIMESTAMP(%(ts)s)"

# queries.conf (PostgreSQL), accounting { type { start, interim-update, stop } }
START = (
    f"INSERT INTO radacct ({COLUMNS}) VALUES(%(sid)s, %(uid)s, %(user)s, NULLIF('', ''), "
    f"%(nas)s, NULLIF(%(port)s, ''), '', {TS}, {TS}, NULL, 0, '', '', NULL, 0, 0, '', "
    "%(csid)s, NULL, '', '', NULLIF(%(fip)s, '')::inet, NULLIF('', '')::inet, "
    "NULLIF('', '')::inet, NULLIF('', ''), NULLIF('', '')::inet) "
    f"ON CONFLICT (AcctUniqueId) DO UPDATE SET AcctStartTime = {TS}, AcctUpdateTime = {TS}, "
    "ConnectInfo_start = '' WHERE radacct.AcctUniqueId = %(uid)s "
    "AND radacct.AcctStopTime IS NULL")
INTERIM = (
    "UPDATE radacct SET FramedIPAddress = NULLIF(%(fip)s, '')::inet, "  # noqa: S608 - fixed
    "FramedIPv6Address = NULLIF('', '')::inet, FramedIPv6Prefix = NULLIF('', '')::inet, "
    "FramedInterfaceId = NULLIF('', ''), DelegatedIPv6Prefix = NULLIF('', '')::inet, "
    "AcctSessionTime = %(stime)s, AcctInterval = (%(ts)s - EXTRACT(EPOCH FROM "
    f"(COALESCE(AcctUpdateTime, AcctStartTime)))), AcctUpdateTime = {TS}, "
    f"AcctInputOctets = {INPUT}, AcctOutputOctets = {OUTPUT} "
    "WHERE AcctUniqueId = %(uid)s AND AcctStopTime IS NULL")
STOP = (
    f"UPDATE radacct SET AcctStopTime = {TS}, AcctUpdateTime = {TS}, "  # noqa: S608 - fixed
    "AcctSessionTime = COALESCE(%(stime)s, (%(ts)s - EXTRACT(EPOCH FROM(AcctStartTime)))), "
    f"AcctInputOctets = {INPUT}, AcctOutputOctets = {OUTPUT}, "
    "AcctTerminateCause = %(cause)s, FramedIPAddress = NULLIF(%(fip)s, '')::inet, "
    "FramedIPv6Address = NULLIF('', '')::inet, FramedIPv6Prefix = NULLIF('', '')::inet, "
    "FramedInterfaceId = NULLIF('', ''), DelegatedIPv6Prefix = NULLIF('', '')::inet, "
    "ConnectInfo_stop = '' WHERE AcctUniqueId = %(uid)s AND AcctStopTime IS NULL")
# the INSERT an Interim or a Stop falls back to when its UPDATE found no open row
INSERT = (
    f"INSERT INTO radacct ({COLUMNS}) VALUES(%(sid)s, %(uid)s, %(user)s, NULLIF('', ''), "
    "%(nas)s, NULLIF(%(port)s, ''), '', TO_TIMESTAMP(%(ts)s - %(stime)s), "
    f"{TS}, TO_TIMESTAMP(%(stop)s::bigint), NULLIF(%(stime_text)s, '')::bigint, '', '', "
    f"NULL, {INPUT}, {OUTPUT}, "
    "'', %(csid)s, %(cause)s, '', '', NULLIF(%(fip)s, '')::inet, NULLIF('', '')::inet, "
    "NULLIF('', '')::inet, NULLIF('', ''), NULLIF('', '')::inet) "
    "ON CONFLICT (AcctUniqueId) DO NOTHING")


def setup(url: str) -> None:
    """The stock schema in the (empty) database at *url*."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((STOCK_SQL_DIR / "schema.sql").read_text().encode())


def params(attrs: Mapping[str, str]) -> dict[str, object]:
    """The values rlm_sql would expand for one request."""
    unique = hashlib.md5(  # noqa: S324 - the stock acct_unique policy's hash, not security
        ",".join(attrs.get(a, "") for a in ("User-Name", "Acct-Session-Id", "NAS-IP-Address",
                                            "NAS-Port-Id", "NAS-Port")).encode()).hexdigest()
    stime = attrs.get("Acct-Session-Time", "")
    return {"sid": attrs.get("Acct-Session-Id", ""), "uid": unique,
            "user": attrs.get("User-Name", ""), "nas": attrs.get("NAS-IP-Address", ""),
            "port": attrs.get("NAS-Port-Id", ""), "csid": attrs.get("Calling-Station-Id", ""),
            "fip": attrs.get("Framed-IP-Address", ""), "ts": int(attrs["Timestamp"]),
            "stime": int(stime or 0), "stime_text": stime,
            "in_oct": attrs.get("Acct-Input-Octets", "0"),
            "in_gw": attrs.get("Acct-Input-Gigawords", "0"),
            "out_oct": attrs.get("Acct-Output-Octets", "0"),
            "out_gw": attrs.get("Acct-Output-Gigawords", "0"),
            "cause": attrs.get("Acct-Terminate-Cause", ""),
            "stop": None, "status": attrs.get("Acct-Status-Type", "")}


def _store(cur: psycopg.ClientCursor[tuple[object, ...]], p: dict[str, object]) -> None:
    status = p["status"]
    if status == "Start":
        cur.execute(START, p)
        return
    cur.execute(INTERIM if status == "Interim-Update" else STOP, p)
    if cur.rowcount == 0:  # no open row: the next query in queries.conf
        cur.execute(INSERT, {**p, "stop": p["ts"] if status == "Stop" else None})


def replay(url: str, records: Sequence[Mapping[str, str]], threads: int = 5) -> float:
    """Store *records* (detail attributes) as rlm_sql would, on *threads* connections; the
    records of one session go to one thread, in order. Returns the CPU seconds the database
    server's backends of those connections spent (from ``/proc``, read before they close)."""
    work: list[list[dict[str, object]]] = [[] for _ in range(threads)]
    for attrs in records:
        p = params(attrs)
        work[int(str(p["uid"])[:8], 16) % threads].append(p)
    errors: list[BaseException] = []
    server: list[float] = []

    def run(items: list[dict[str, object]]) -> None:
        try:
            with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor
                                 ) as conn, conn.cursor() as cur:
                pid = conn.info.backend_pid
                before = cpu_seconds([pid]).get(pid, 0.0)
                for p in items:
                    _store(cur, p)  # type: ignore[arg-type]
                server.append(cpu_seconds([pid]).get(pid, 0.0) - before)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return sum(server)
