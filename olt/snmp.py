"""A small typed SNMP client over pysnmp 7 (asyncio, v3arch): GET, SET and bounded bulk walks
of numeric OIDs, with explicit timeouts and retries. Nothing of pysnmp leaks out: values come
back as ``int`` or ``bytes``, failures as the :class:`OltError` family.

One :class:`SnmpEngine` per client and per event loop, always closed (``close``): an engine
reused across ``asyncio.run()`` hangs walks (lextudio/pysnmp #64). MIB lookup is off: every
OID is numeric.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_PRIV_CFB128_AES,
    CommunityData,
    ContextData,
    Integer32,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    set_cmd,
)
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import Null
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

MAX_REPETITIONS = 20  # ZTE C300 V2.1 hangs on 0; keep 10-25
MAX_WALK_ROWS = 20000  # one column of one OLT: a bound, not an expectation


class OltError(Exception):
    """Base of every failure talking to an OLT."""


class OltTimeout(OltError):
    """No answer in time. A wrong v2c community looks exactly like this."""


class OltAuthError(OltError):
    """SNMPv3 refused us (wrong key, unknown user, unsupported level)."""


class OltReadOnly(OltError):
    """The OLT answered a SET with a no-write error (read-only community or view)."""


class OltWrongValue(OltError):
    """The OLT refused a SET's value or type."""


class OltUnsupported(OltError):
    """The profile cannot do this (no SNMP block on the model, no identity column...)."""


AUTH_INDICATIONS = (errind.WrongDigest, errind.UnknownUserName, errind.DecryptionError,
                    errind.AuthenticationError, errind.AuthenticationFailure,
                    errind.UnknownSecurityName, errind.UnsupportedSecurityLevel,
                    errind.NotInTimeWindow, errind.UnknownEngineID)
READ_ONLY_STATUS = {"noAccess", "notWritable", "readOnly", "authorizationError"}
WRONG_VALUE_STATUS = {"wrongValue", "wrongType", "badValue", "inconsistentValue",
                      "wrongLength", "wrongEncoding", "inconsistentName"}


@dataclass(frozen=True)
class Credentials:
    """How to reach one OLT: v2c communities (read, write) or v3 authPriv SHA/AES."""

    host: str
    port: int = 161
    community: str = "public"
    write_community: str | None = None  # None: the read community writes too
    v3_user: str | None = None
    v3_auth_key: str | None = None
    v3_priv_key: str | None = None
    timeout: float = 2.0
    retries: int = 1


def _value(v: Any) -> int | bytes | None:
    if isinstance(v, NoSuchObject | NoSuchInstance | EndOfMibView | Null):
        return None
    if isinstance(v, OctetString):
        return bytes(v.asOctets())
    try:
        return int(v)
    except (TypeError, ValueError):
        return bytes(str(v), "ascii", "replace")


def _raise(indication: Any, status: Any, index: Any, where: str) -> None:
    if indication:
        if isinstance(indication, errind.RequestTimedOut):
            raise OltTimeout(f"{where}: no answer (timed out; a wrong community looks the same)")
        if isinstance(indication, AUTH_INDICATIONS):
            raise OltAuthError(f"{where}: SNMPv3 authentication failed ({indication})")
        raise OltError(f"{where}: {indication}")
    if status:
        name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
        if name in READ_ONLY_STATUS:
            raise OltReadOnly(f"{where}: {name} (read-only community or view)")
        if name in WRONG_VALUE_STATUS:
            raise OltWrongValue(f"{where}: {name} at varbind {index}")
        raise OltError(f"{where}: {name} at varbind {index}")


class SnmpClient:
    """GET/SET/walk against one OLT. Use as ``async with SnmpClient(creds) as c``."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.engine = SnmpEngine()
        self._target: UdpTransportTarget | None = None
        self.where = f"OLT {creds.host}:{creds.port}"

    async def __aenter__(self) -> SnmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the engine and let its cancelled timer task finish on this loop (else
        asyncio reports it destroyed while pending when the loop ends)."""
        self.engine.close_dispatcher()
        await asyncio.sleep(0)

    def _auth(self, write: bool) -> CommunityData | UsmUserData:
        c = self.creds
        if c.v3_user:
            return UsmUserData(c.v3_user, authKey=c.v3_auth_key, privKey=c.v3_priv_key,
                               authProtocol=USM_AUTH_HMAC96_SHA,
                               privProtocol=USM_PRIV_CFB128_AES)
        community = (c.write_community or c.community) if write else c.community
        # v2c is what most OLTs in the field speak; v3 is used whenever configured
        return CommunityData(community, mpModel=1)  # noqa: S508

    async def _transport(self) -> UdpTransportTarget:
        if self._target is None:
            self._target = await UdpTransportTarget.create(
                (self.creds.host, self.creds.port), timeout=self.creds.timeout,
                retries=self.creds.retries)
        return self._target

    async def get(self, oids: Sequence[str]) -> dict[str, int | bytes | None]:
        """The values of *oids* (None where the OLT has no such object)."""
        ind, status, index, binds = await get_cmd(
            self.engine, self._auth(False), await self._transport(), ContextData(),
            *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False)
        _raise(ind, status, index, self.where)
        return {str(name): _value(val) for name, val in binds}

    async def set(self, values: Sequence[tuple[str, int | bytes]]) -> None:
        """One SET PDU with every (OID, value) of *values* (integers as Integer32)."""
        binds = [ObjectType(ObjectIdentity(o), Integer32(v) if isinstance(v, int)
                            else OctetString(v)) for o, v in values]
        ind, status, index, _ = await set_cmd(
            self.engine, self._auth(True), await self._transport(), ContextData(), *binds,
            lookupMib=False)
        _raise(ind, status, index, self.where)

    async def walk(self, column: str, max_rows: int = MAX_WALK_ROWS
                   ) -> list[tuple[str, int | bytes | None]]:
        """(index suffix, value) of every row under *column*, by GETBULK with bounded
        max-repetitions; stops at the end of the column or after *max_rows* rows."""
        prefix = column + "."
        rows: list[tuple[str, int | bytes | None]] = []
        last = column
        while len(rows) < max_rows:
            ind, status, index, binds = await bulk_cmd(
                self.engine, self._auth(False), await self._transport(), ContextData(), 0,
                min(MAX_REPETITIONS, max_rows - len(rows)), ObjectType(ObjectIdentity(last)),
                lookupMib=False)
            _raise(ind, status, index, self.where)
            if not binds:
                break
            for name, val in binds:
                oid = str(name)
                if not oid.startswith(prefix) or isinstance(val, EndOfMibView):
                    return rows
                rows.append((oid[len(prefix):], _value(val)))
                last = oid
        return rows
