"""NAS service: the routers allowed to send us RADIUS, with their shared secrets."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radbill import audit
from radbill.crypto import SecretBox
from radbill.db import AUTH_FEED, bump
from radbill.errors import Conflict, InvalidInput, NotFound
from radius.models import Nas, RadiusSession
from radius.nas_profiles import nas_types

ENFORCE_VIA = ("coa", "api")
API_TLS_MODES = ("none", "anon", "verify")
MAX_CA_PEM = 65_536  # a CA bundle for a few routers; anything bigger is a mistake
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
# FreeRADIUS reads secrets from a quoted string in clients.conf: keep them printable, no quote
# or backslash, so the rendered file can never be broken out of.
_SECRET_RE = re.compile(r'^[\x21\x23-\x5b\x5d-\x7e]{8,128}$')


def validate_secret(secret: str) -> str:
    """A RADIUS shared secret: 8-128 printable ASCII characters without quote or backslash."""
    if not _SECRET_RE.fullmatch(secret or ""):
        raise InvalidInput("RADIUS secret must be 8-128 printable ASCII characters, "
                           "without spaces, double quotes or backslashes")
    return secret


def validate_api_tls(mode: str, ca_pem: str | None, fingerprint: str | None
                     ) -> tuple[str, str | None, str | None]:
    """The API-SSL setting of a NAS: the mode, a CA (PEM text) and/or a SHA-256 fingerprint
    (hex, colons allowed) for ``verify`` only. Returns them normalised (fingerprint in lower
    case without colons)."""
    if mode not in API_TLS_MODES:
        raise InvalidInput(f"unknown API TLS mode {mode!r}: use none, anon or verify")
    if mode != "verify" and (ca_pem or fingerprint):
        raise InvalidInput("a CA or certificate fingerprint needs --api-tls verify")
    if ca_pem is not None:
        if len(ca_pem) > MAX_CA_PEM or "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise InvalidInput("the API TLS CA must be PEM certificates (at most 64 KiB)")
        try:
            ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidInput(f"the API TLS CA is not a usable certificate: {exc}") from None
    if fingerprint is not None:
        fingerprint = fingerprint.strip().replace(":", "").lower()
        if not _FINGERPRINT_RE.fullmatch(fingerprint):
            raise InvalidInput("the certificate fingerprint must be a SHA-256 in hex "
                               "(64 hex digits, colons allowed)")
    if ca_pem and fingerprint:
        raise InvalidInput("give a CA or a fingerprint, not both")
    return mode, ca_pem, fingerprint


def fingerprint_of(pem: str) -> str:
    """The SHA-256 fingerprint (hex) of a PEM certificate, as ``--api-tls-fingerprint`` takes
    it (what ``openssl x509 -fingerprint -sha256`` prints, without the colons)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def create_nas(
    session: Session,
    box: SecretBox,
    *,
    name: str,
    ip: str,
    secret: str,
    nas_type: str = "mikrotik",
    coa_port: int = 3799,
    require_message_authenticator: bool = True,
    api_port: int | None = None,
    api_username: str | None = None,
    api_password: str | None = None,
    api_tls: str = "none",
    api_tls_ca: str | None = None,
    api_tls_fingerprint: str | None = None,
    enforce_via: str = "coa",
    actor: str = "system",
) -> Nas:
    """Register a NAS. Running RADIUS nodes answer it within seconds (:mod:`radius.clients`)."""
    if not _NAME_RE.fullmatch(name or ""):
        raise InvalidInput(f"invalid NAS name {name!r}: 1-64 letters, digits and . _ -")
    try:
        addr = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        raise InvalidInput(f"invalid IP address {ip!r}") from None
    validate_secret(secret)
    supported = nas_types()
    if nas_type not in supported:
        raise InvalidInput(f"unknown NAS type {str(nas_type)[:32]!r}: use one of "
                           f"{', '.join(supported)}")
    for label, port in (("CoA port", coa_port), ("API port", api_port)):
        if port is not None and not 1 <= port <= 65535:
            raise InvalidInput(f"{label} {port} is outside 1-65535")
    if enforce_via not in ENFORCE_VIA:
        raise InvalidInput(f"unknown enforcement channel {enforce_via!r}: use coa or api")
    if enforce_via == "api" and not api_username:
        raise InvalidInput("enforcement over the RouterOS API needs --api-user and --api-password")
    if (api_username is None) != (api_password is None):
        raise InvalidInput("RouterOS API needs both --api-user and --api-password")
    api_tls, api_tls_ca, api_tls_fingerprint = validate_api_tls(api_tls, api_tls_ca,
                                                                api_tls_fingerprint)
    if api_tls != "none" and not api_username:
        raise InvalidInput("--api-tls needs --api-user and --api-password")
    nas = Nas(
        name=name,
        ip_address=str(addr),
        secret_enc=box.encrypt(secret),
        nas_type=nas_type,
        coa_port=coa_port,
        require_message_authenticator=require_message_authenticator,
        api_port=api_port or (8729 if api_tls != "none" else 8728) if api_username else None,
        api_username=api_username,
        api_password_enc=box.encrypt(api_password) if api_password else None,
        api_tls_mode=api_tls,
        api_tls_ca=api_tls_ca,
        api_tls_fingerprint=api_tls_fingerprint,
        enforce_via=enforce_via,
    )
    try:
        with session.begin_nested():
            session.add(nas)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a NAS named {name!r} or at {addr} already exists") from None
    bump(session, AUTH_FEED)  # the policy reloads the NAS types with the next change
    audit.record(session, actor=actor, action="nas.create", entity="nas", entity_id=nas.id,
                 after=summary(nas))
    return nas


def list_nas(session: Session) -> list[Nas]:
    """Every NAS, by name."""
    return list(session.scalars(select(Nas).order_by(Nas.name)))


def summary(nas: Nas) -> dict[str, object]:
    """A plain dictionary of a NAS (no secrets) for JSON output and audit rows."""
    return {
        "name": nas.name,
        "ip_address": nas.ip_address,
        "type": nas.nas_type,
        "coa_port": nas.coa_port,
        "require_message_authenticator": nas.require_message_authenticator,
        "api_port": nas.api_port,
        "api_username": nas.api_username,
        "api_tls": nas.api_tls_mode,
        "enforce_via": nas.enforce_via,
    }


def get_nas(session: Session, name: str, *, lock: bool = False) -> Nas:
    """The NAS called *name*; :class:`NotFound` if there is none."""
    stmt = select(Nas).where(Nas.name == name)
    nas = session.scalar(stmt.with_for_update() if lock else stmt)
    if nas is None:
        raise NotFound(f"no NAS named {str(name)[:64]!r}")
    return nas


def update_nas(
    session: Session,
    box: SecretBox,
    name: str,
    *,
    ip: str | None = None,
    secret: str | None = None,
    nas_type: str | None = None,
    coa_port: int | None = None,
    require_message_authenticator: bool | None = None,
    actor: str = "system",
) -> Nas:
    """Change a NAS's address, secret, type, CoA port or Message-Authenticator rule (what is
    None stays). Running RADIUS nodes follow within seconds (:mod:`radius.clients`)."""
    nas = get_nas(session, name, lock=True)
    before = summary(nas)
    changes: dict[str, object] = {}
    if ip is not None:
        try:
            changes["ip_address"] = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise InvalidInput(f"invalid IP address {ip!r}") from None
    if secret is not None:
        changes["secret_enc"] = box.encrypt(validate_secret(secret))
    if nas_type is not None:
        supported = nas_types()
        if nas_type not in supported:
            raise InvalidInput(f"unknown NAS type {str(nas_type)[:32]!r}: use one of "
                               f"{', '.join(supported)}")
        changes["nas_type"] = nas_type
    if coa_port is not None:
        if not 1 <= coa_port <= 65535:
            raise InvalidInput(f"CoA port {coa_port} is outside 1-65535")
        changes["coa_port"] = coa_port
    if require_message_authenticator is not None:
        changes["require_message_authenticator"] = require_message_authenticator
    try:
        with session.begin_nested():
            for key, value in changes.items():
                setattr(nas, key, value)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a NAS at {changes.get('ip_address')} already exists") from None
    after = summary(nas)
    if after == before and secret is None:
        return nas
    bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="nas.update", entity="nas", entity_id=nas.id,
                 before=before, after={**after, "secret_changed": secret is not None})
    return nas


def delete_nas(session: Session, name: str, *, force: bool = False, actor: str = "system"
               ) -> dict[str, object]:
    """Remove a NAS (running RADIUS nodes stop answering it within seconds). Refused while
    accounting has sessions open on it, unless *force* (they are closed by the stale-session
    job when its accounting stops)."""
    nas = get_nas(session, name, lock=True)
    open_sessions = session.scalar(select(func.count()).select_from(RadiusSession).where(
        RadiusSession.nas_ip == nas.ip_address, RadiusSession.stopped_at.is_(None))) or 0
    if open_sessions and not force:
        raise Conflict(f"NAS {nas.name} has {open_sessions} open sessions: move its "
                       "subscribers first, or delete it with --force")
    before = summary(nas)
    session.delete(nas)
    session.flush()
    bump(session, AUTH_FEED)
    audit.record(session, actor=actor, action="nas.delete", entity="nas", entity_id=nas.id,
                 before=before, after={"open_sessions": open_sessions})
    return {**before, "open_sessions": open_sessions}
