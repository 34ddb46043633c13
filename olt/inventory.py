"""OLT inventory services: register OLTs, store what discovery and polling find, bind
subscribers to ONUs by serial or MAC. The caller owns the session and the transaction."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from olt import codec
from olt.driver import OnuReading, SnmpOltDriver
from olt.models import Olt, Onu, OnuBinding, OnuSample
from olt.profiles import Profile, parse_overrides, profile
from olt.snmp import Credentials
from radbill.crypto import SecretBox
from radbill.errors import Conflict, InvalidInput, NotFound

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECRET_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
V3_KEY_RE = re.compile(r"^[\x21-\x7e]{8,64}$")  # USM keys are at least 8 characters
CHUNK = 900
SAMPLE_DAYS = 30


def _check(value: str | None, pattern: re.Pattern[str], what: str) -> str | None:
    if value is None:
        return None
    if not pattern.match(value):
        raise InvalidInput(f"invalid {what}: {value[:40]!r}")
    return value


def create_olt(
        session: Session, box: SecretBox, *, name: str, vendor: str, ip: str,
               port: int = 161, community: str | None = None,
               write_community: str | None = None, v3_user: str | None = None,
               v3_auth_key: str | None = None, v3_priv_key: str | None = None,
               overrides: str | None = None, timeout_ms: int = 2000, retries: int = 1,
               weak_rx_dbm: float = -27.0) -> Olt:
    """Register an OLT (everything checked before anything is written)."""
    _check(name, NAME_RE, "OLT name (1-64 letters, digits and . _ -)")
    try:
        host = str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:
        raise InvalidInput(f"invalid IP address {ip[:60]!r}") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port {port} is outside 1-65535")
    raw_overrides: Any = _overrides(overrides) if overrides else None
    profile(vendor, raw_overrides)  # unknown vendor or bad override: refused here
    parse_overrides(raw_overrides)
    if v3_user or v3_auth_key or v3_priv_key:
        if not (v3_user and v3_auth_key and v3_priv_key):
            raise InvalidInput("SNMPv3 needs --v3-user, --v3-auth-key and --v3-priv-key "
                               "(authPriv, SHA/AES)")
        _check(v3_user, NAME_RE, "SNMPv3 user")
        _check(v3_auth_key, V3_KEY_RE, "SNMPv3 auth key (8-64 printable characters)")
        _check(v3_priv_key, V3_KEY_RE, "SNMPv3 privacy key (8-64 printable characters)")
        if community or write_community:
            raise InvalidInput("give either v2c communities or SNMPv3 credentials, not both")
    elif not community:
        raise InvalidInput("--community (v2c) or --v3-user/--v3-auth-key/--v3-priv-key needed")
    _check(community, SECRET_RE, "community")
    _check(write_community, SECRET_RE, "write community")
    if not 100 <= timeout_ms <= 30000:
        raise InvalidInput(f"timeout {timeout_ms} ms is outside 100-30000")
    if not 0 <= retries <= 5:
        raise InvalidInput(f"retries {retries} is outside 0-5")
    if not -50.0 <= weak_rx_dbm <= 0.0:
        raise InvalidInput(f"weak signal threshold {weak_rx_dbm} dBm is outside -50..0")
    if session.scalar(select(Olt.id).where(Olt.name == name)) is not None:
        raise Conflict(f"an OLT named {name!r} exists")
    if session.scalar(select(Olt.id).where(Olt.host == host, Olt.port == port)) is not None:
        raise Conflict(f"an OLT at {host}:{port} exists")
    olt = Olt(name=name, vendor=vendor, host=host, port=port,
              community_enc=box.encrypt(community) if community else None,
              write_community_enc=box.encrypt(write_community) if write_community else None,
              v3_user=v3_user, v3_auth_key_enc=box.encrypt(v3_auth_key) if v3_auth_key else None,
              v3_priv_key_enc=box.encrypt(v3_priv_key) if v3_priv_key else None,
              overrides=raw_overrides, timeout_ms=timeout_ms, retries=retries,
              weak_rx_dbm=weak_rx_dbm)
    session.add(olt)
    session.flush()
    return olt


def _overrides(text: str) -> Any:
    if len(text) > 4000:
        raise InvalidInput("overrides: longer than 4000 characters")
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput("overrides: not JSON (a JSON object of profile fields)") from None


def update_olt(session: Session, name: str, *, overrides: str | None = None,
               timeout_ms: int | None = None, retries: int | None = None,
               weak_rx_dbm: float | None = None) -> Olt:
    """Change an OLT's profile overrides (``{}`` clears them), timeout, retries or weak-signal
    threshold; everything checked before anything changes."""
    olt = get_olt(session, name)
    raw = olt.overrides
    if overrides is not None:
        raw = _overrides(overrides) or None
        profile(olt.vendor, raw)
    if timeout_ms is not None and not 100 <= timeout_ms <= 30000:
        raise InvalidInput(f"timeout {timeout_ms} ms is outside 100-30000")
    if retries is not None and not 0 <= retries <= 5:
        raise InvalidInput(f"retries {retries} is outside 0-5")
    if weak_rx_dbm is not None and not -50.0 <= weak_rx_dbm <= 0.0:
        raise InvalidInput(f"weak signal threshold {weak_rx_dbm} dBm is outside -50..0")
    olt.overrides = raw
    olt.timeout_ms = olt.timeout_ms if timeout_ms is None else timeout_ms
    olt.retries = olt.retries if retries is None else retries
    olt.weak_rx_dbm = olt.weak_rx_dbm if weak_rx_dbm is None else weak_rx_dbm
    session.flush()
    return olt


def get_olt(session: Session, name: str) -> Olt:
    olt = session.scalar(select(Olt).where(Olt.name == name[:64]))
    if olt is None:
        raise NotFound(f"unknown OLT {name[:64]!r}")
    return olt


def profile_of(olt: Olt) -> Profile:
    return profile(olt.vendor, olt.overrides)


def credentials(olt: Olt, box: SecretBox) -> Credentials:
    """How to reach *olt*, secrets decrypted."""
    return Credentials(
        host=olt.host, port=olt.port,
        community=box.decrypt(olt.community_enc) if olt.community_enc else "public",
        write_community=box.decrypt(olt.write_community_enc) if olt.write_community_enc
        else None, v3_user=olt.v3_user,
        v3_auth_key=box.decrypt(olt.v3_auth_key_enc) if olt.v3_auth_key_enc else None,
        v3_priv_key=box.decrypt(olt.v3_priv_key_enc) if olt.v3_priv_key_enc else None,
        timeout=olt.timeout_ms / 1000, retries=olt.retries)


def driver_for(olt: Olt, box: SecretBox) -> SnmpOltDriver:
    return SnmpOltDriver(profile_of(olt), credentials(olt, box))


def list_olts(session: Session) -> list[dict[str, Any]]:
    """Every OLT with its ONU counts (no secrets)."""
    counts = dict(session.execute(select(Onu.olt_id, func.count()).group_by(Onu.olt_id)).all())
    bound = dict(session.execute(select(OnuBinding.olt_id, func.count())
                                 .group_by(OnuBinding.olt_id)).all())
    out = []
    for o in session.scalars(select(Olt).order_by(Olt.name)):
        p = profile_of(o)
        out.append({"name": o.name, "vendor": o.vendor, "host": o.host, "port": o.port,
                    "snmp": "v3" if o.v3_user else "v2c", "onus": counts.get(o.id, 0),
                    "bound": bound.get(o.id, 0), "snmp_block": p.snmp_block,
                    "overrides": sorted((o.overrides or {}).keys()),
                    "last_polled_at": o.last_polled_at, "last_error": o.last_error})
    return out


def store_readings(session: Session, olt: Olt, readings: Sequence[OnuReading],
                   now: dt.datetime, *, sample: bool = True) -> dict[str, int]:
    """Upsert what an OLT reported (by serial/MAC) and keep a sample per ONU for history."""
    known = {o.ident: o for o in session.scalars(select(Onu).where(Onu.olt_id == olt.id))}
    counts = {"new": 0, "seen": 0, "weak": 0, "online": 0}
    samples = []
    for r in readings[:20000]:
        onu = known.get(r.ident)
        if onu is None:
            onu = Onu(olt_id=olt.id, ident=r.ident)
            session.add(onu)
            known[r.ident] = onu
            counts["new"] += 1
        counts["seen"] += 1
        onu.snmp_index = r.index[:64]
        onu.pon = r.pon[:16] if r.pon else None
        onu.onu_no = r.onu_no
        onu.name = r.name[:64] if r.name else None
        onu.online = r.online
        onu.rx_dbm = r.rx_dbm
        onu.weak = r.rx_dbm is not None and r.rx_dbm < olt.weak_rx_dbm
        onu.blocked = r.blocked
        onu.seen_at = now
        counts["weak"] += onu.weak
        counts["online"] += r.online
        samples.append(onu)
    seen = {r.ident for r in readings[:20000]}
    for ident, onu in known.items():  # gone from the OLT (deregistered, powered off for good)
        if ident not in seen and (onu.online or onu.rx_dbm is not None):
            onu.online, onu.rx_dbm, onu.weak = False, None, False
            samples.append(onu)
    session.flush()
    if sample:
        session.add_all(OnuSample(onu_id=o.id, at=now, online=o.online, rx_dbm=o.rx_dbm)
                        for o in samples)
    olt.last_polled_at = now
    olt.last_error = None
    # history is kept for SAMPLE_DAYS: a poll every 5 minutes is 288 rows per ONU and day
    session.execute(delete(OnuSample).where(
        OnuSample.at < now - dt.timedelta(days=SAMPLE_DAYS),
        OnuSample.onu_id.in_(select(Onu.id).where(Onu.olt_id == olt.id)))
        .execution_options(synchronize_session=False))
    return counts


def onus_of(session: Session, olt: Olt) -> list[dict[str, Any]]:
    """The OLT's ONUs with the subscriber bound to each."""
    from billing.models import Subscriber

    bound = dict(session.execute(
        select(OnuBinding.ident, Subscriber.username)
        .join(Subscriber, Subscriber.id == OnuBinding.subscriber_id)
        .where(OnuBinding.olt_id == olt.id)).all())
    rows = session.scalars(select(Onu).where(Onu.olt_id == olt.id)
                           .order_by(Onu.pon, Onu.onu_no, Onu.ident))
    return [{"pon": o.pon, "onu": o.onu_no, "ident": o.ident, "index": o.snmp_index,
             "name": o.name, "status": "online" if o.online else "offline",
             "rx_dbm": o.rx_dbm, "weak": o.weak,
             "blocked": o.blocked, "subscriber": bound.get(o.ident),
             "seen_at": o.seen_at} for o in rows]


def normalize_ident(p: Profile, serial: str | None, mac: str | None) -> str:
    """The binding key in the form the OLT reports it; the kind must fit the profile."""
    if (serial is None) == (mac is None):
        raise InvalidInput("give exactly one of --serial or --mac")
    if serial is not None:
        if p.ident_kind != "serial":
            raise InvalidInput(f"{p.name} ONUs are known by MAC: use --mac")
        return codec.normalize_serial(serial)
    assert mac is not None
    if p.ident_kind != "mac":
        raise InvalidInput(f"{p.name} ONUs are known by serial: use --serial")
    return codec.normalize_mac(mac)


def bind(session: Session, username: str, olt_name: str, *, serial: str | None = None,
         mac: str | None = None) -> OnuBinding:
    """Bind *username*'s line to the ONU with that serial/MAC on *olt_name* (replacing the
    subscriber's previous binding). An ONU bound to another subscriber is refused."""
    from billing.subscribers import get_subscriber

    olt = get_olt(session, olt_name)
    ident = normalize_ident(profile_of(olt), serial, mac)
    sub = get_subscriber(session, username)
    other = session.scalar(select(OnuBinding).where(OnuBinding.olt_id == olt.id,
                                                    OnuBinding.ident == ident))
    if other is not None and other.subscriber_id != sub.id:
        raise Conflict(f"ONU {ident} on {olt.name} is already bound to another subscriber")
    binding = session.scalar(select(OnuBinding).where(OnuBinding.subscriber_id == sub.id))
    if binding is None:
        binding = OnuBinding(subscriber_id=sub.id, olt_id=olt.id, ident=ident)
        session.add(binding)
    else:
        binding.olt_id, binding.ident = olt.id, ident
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent bind of the same ONU
        raise Conflict(f"ONU {ident} on {olt.name} is already bound") from None
    return binding


def binding_of(session: Session, subscriber_id: int) -> dict[str, Any] | None:
    """The subscriber's ONU as last seen (for the subscriber page), or None."""
    row = session.execute(
        select(OnuBinding, Olt).join(Olt, Olt.id == OnuBinding.olt_id)
        .where(OnuBinding.subscriber_id == subscriber_id)).first()
    if row is None:
        return None
    binding, olt = row
    onu = session.scalar(select(Onu).where(Onu.olt_id == olt.id, Onu.ident == binding.ident))
    p = profile_of(olt)
    return {"olt": olt.name, "vendor": olt.vendor, "ident": binding.ident,
            "snmp_block": p.snmp_block, "pon": onu.pon if onu else None,
            "onu": onu.onu_no if onu else None, "online": onu.online if onu else None,
            "rx_dbm": onu.rx_dbm if onu else None, "weak": onu.weak if onu else None,
            "blocked": onu.blocked if onu else None, "seen_at": onu.seen_at if onu else None,
            "onu_id": onu.id if onu else None}


def samples_of(session: Session, onu_id: int, limit: int = 500) -> list[OnuSample]:
    """The newest samples of one ONU, oldest first (for a chart)."""
    rows = list(session.scalars(select(OnuSample).where(OnuSample.onu_id == onu_id)
                                .order_by(OnuSample.at.desc()).limit(limit)))
    return rows[::-1]
