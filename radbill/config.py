"""Configuration from ``RADBILL_*`` environment variables.

Every setting has a default that runs the embedded demo (SQLite file under ``var/``), so a fresh
checkout works with no configuration at all. Production sets ``RADBILL_DATABASE_URL`` to a
``postgresql+psycopg://`` URL and ``RADBILL_SECRET_KEY`` (or a key file) explicitly.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A RADBILL_* variable has a value radbill cannot use."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    return value


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _bounded(env: dict[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _int(env, name, default, minimum)
    if value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "yes", "true", "on"):
        return True
    if raw in ("0", "no", "false", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not yes or no")


def _text(env: dict[str, str], name: str, max_len: int) -> str:
    value = (env.get(name) or "").strip()
    if len(value) > max_len or any(c in value for c in '"\\\n\r\t'):
        raise ConfigError(f"{name} must be at most {max_len} characters without quotes, "
                          "backslashes or control characters")
    return value


_NODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _node_name(env: dict[str, str]) -> str:
    """This RADIUS node's name (``RADBILL_NODE_NAME``, default the host name): what its
    detail-file cursors are kept under, so nodes sharing a database never read each other's
    position."""
    value = (env.get("RADBILL_NODE_NAME") or "").strip()
    if not value:
        value = socket.gethostname().split(".")[0][:64]
    if not _NODE_RE.fullmatch(value):
        raise ConfigError(f"RADBILL_NODE_NAME={value[:80]!r}: 1-64 letters, digits and . _ - "
                          "(set it when the host name does not fit)")
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :meth:`from_env`; tests build it directly."""

    data_dir: Path
    database_url: str
    secret_key: str | None = None
    secret_key_file: Path | None = None
    suspended_mode: str = "walled-garden"  # or "reject"
    walled_garden_list: str = "radbill-suspended"
    walled_garden_rate: str = "256k/256k"
    interim_interval: int = 300
    # Accounting counters growing faster than this (per direction) are set aside as garbage.
    acct_max_mbps: int = 100_000
    # The ingester raises an alert when the database is this far behind the detail spools.
    ingest_lag_alert_s: int = 300
    ingest_read_ahead: bool = True
    # Where the running ingester writes its lag for node_exporter's textfile collector
    # (None: <data>/metrics).
    metrics_dir: Path | None = None
    radius_auth_port: int = 1812
    radius_acct_port: int = 1813
    radius_listen: str = "127.0.0.1"
    radius_reject_delay: int = 1
    # This RADIUS node's name (several nodes share one database): "" is a single node of a
    # version before nodes had names.
    node_name: str = ""
    snapshot_poll_ms: int = 250
    # What a rejected subscriber is told: one generic message (no account enumeration), or
    # the reason (disabled, suspended, ...) once the password has been found right.
    detailed_reject_messages: bool = False
    # Usernames match case-insensitively (BOB = bob), as in MySQL-based tools ISPs come from.
    case_insensitive_usernames: bool = True
    # An accepted login counts toward Simultaneous-Use until its Start arrives, or this long.
    provisional_session_seconds: int = 90
    # Failed logins of one user before further attempts are refused without a password check.
    login_failures_before_throttle: int = 5
    # Where a NAS that can only redirect (WISPr hotspots) sends suspended subscribers, and
    # the address pool for suspended subscribers on NAS that garden by pool (accel-ppp).
    walled_garden_url: str = ""
    walled_garden_pool: str = ""
    # Idle-Timeout sent with every accept (0: none).
    idle_timeout: int = 0
    enforce_suspend_by: str = "disconnect"  # or "coa": move PPPoE sessions live
    coa_timeout_ms: int = 1000
    coa_retries: int = 3
    # How often the enforcement worker compares billing with the network (seconds).
    reconcile_seconds: int = 60
    gateways_file: Path | None = None  # default <data>/gateways.json
    public_url: str = "http://127.0.0.1:8080"  # where gateways and browsers reach radbill
    trusted_proxies: int = 0  # reverse proxies in front of the web app whose X-Forwarded-* count
    ratelimit_storage: str = "memory://"  # Flask-Limiter storage, e.g. redis://127.0.0.1:6379
    # Retention (retention/): how long each kind of growing record is kept; 0 keeps it for
    # ever. Money (invoices, payments, the ledger) is never pruned, whatever these say.
    keep_postauth_days: int = 30  # then summarised per subscriber and day
    keep_postauth_summary_days: int = 400
    keep_spool_days: int = 7  # detail files, gzip-compressed as soon as they are applied
    keep_sessions_months: int = 6  # closed accounting sessions (usage per day stays)
    keep_outbox_days: int = 180  # messages sent; the dunning ladder's steps stay
    keep_audit_days: int = 730
    keep_enforcement_days: int = 90  # enforcement attempts
    keep_job_runs_days: int = 90
    retention_batch: int = 5000  # rows per transaction: no long locks
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the ``RADBILL_*`` variables (``os.environ`` unless *env* is given)."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("RADBILL_DATA_DIR") or PROJECT_ROOT / "var").resolve()
        url = env.get("RADBILL_DATABASE_URL") or f"sqlite:///{data_dir / 'radbill.db'}"
        if not (url.startswith("sqlite") or url.startswith("postgresql")):
            raise ConfigError(
                f"RADBILL_DATABASE_URL={url!r}: "
                "only sqlite:/// and postgresql+psycopg:// are supported"
            )
        key_file = env.get("RADBILL_SECRET_KEY_FILE")
        return cls(
            data_dir=data_dir,
            database_url=url,
            secret_key=env.get("RADBILL_SECRET_KEY") or None,
            secret_key_file=Path(key_file) if key_file else data_dir / "secret.key",
            suspended_mode=_choice(
                env, "RADBILL_SUSPENDED_MODE", "walled-garden", ("walled-garden", "reject")
            ),
            walled_garden_list=env.get("RADBILL_WALLED_GARDEN_LIST") or "radbill-suspended",
            walled_garden_rate=env.get("RADBILL_WALLED_GARDEN_RATE") or "256k/256k",
            interim_interval=_int(env, "RADBILL_INTERIM_INTERVAL", 300, minimum=60),
            acct_max_mbps=_int(env, "RADBILL_ACCT_MAX_MBPS", 100_000, minimum=1),
            ingest_lag_alert_s=_bounded(env, "RADBILL_INGEST_LAG_ALERT_S", 300, 10, 86400 * 7),
            ingest_read_ahead=_bool(env, "RADBILL_INGEST_READ_AHEAD", True),
            metrics_dir=Path(env["RADBILL_METRICS_DIR"]) if env.get("RADBILL_METRICS_DIR")
            else None,
            radius_auth_port=_int(env, "RADBILL_RADIUS_AUTH_PORT", 1812, minimum=1),
            radius_acct_port=_int(env, "RADBILL_RADIUS_ACCT_PORT", 1813, minimum=1),
            radius_listen=env.get("RADBILL_RADIUS_LISTEN") or "127.0.0.1",
            radius_reject_delay=_int(env, "RADBILL_RADIUS_REJECT_DELAY", 1),
            node_name=_node_name(env),
            snapshot_poll_ms=_int(env, "RADBILL_SNAPSHOT_POLL_MS", 250, minimum=10),
            detailed_reject_messages=_bool(env, "RADBILL_DETAILED_REJECT_MESSAGES", False),
            case_insensitive_usernames=_bool(env, "RADBILL_CASE_INSENSITIVE_USERNAMES", True),
            provisional_session_seconds=_bounded(env, "RADBILL_PROVISIONAL_SESSION_SECONDS",
                                                 90, 5, 3600),
            login_failures_before_throttle=_bounded(
                env, "RADBILL_LOGIN_FAILURES_BEFORE_THROTTLE", 5, 1, 1000),
            walled_garden_url=_text(env, "RADBILL_WALLED_GARDEN_URL", 247),
            walled_garden_pool=_text(env, "RADBILL_WALLED_GARDEN_POOL", 64),
            idle_timeout=_bounded(env, "RADBILL_IDLE_TIMEOUT", 0, 0, 2**31 - 1),
            enforce_suspend_by=_choice(env, "RADBILL_ENFORCE_SUSPEND_BY", "disconnect",
                                       ("disconnect", "coa")),
            coa_timeout_ms=_int(env, "RADBILL_COA_TIMEOUT_MS", 1000, minimum=50),
            coa_retries=_int(env, "RADBILL_COA_RETRIES", 3),
            reconcile_seconds=_bounded(env, "RADBILL_RECONCILE_SECONDS", 60, 5, 86_400),
            gateways_file=Path(env["RADBILL_GATEWAYS_FILE"]) if env.get("RADBILL_GATEWAYS_FILE")
            else None,
            public_url=(env.get("RADBILL_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/"),
            trusted_proxies=_int(env, "RADBILL_TRUSTED_PROXIES", 0),
            ratelimit_storage=env.get("RADBILL_RATELIMIT_STORAGE") or "memory://",
            keep_postauth_days=_bounded(env, "RADBILL_KEEP_POSTAUTH_DAYS", 30, 0, 36_500),
            keep_postauth_summary_days=_bounded(env, "RADBILL_KEEP_POSTAUTH_SUMMARY_DAYS", 400,
                                                0, 36_500),
            keep_spool_days=_bounded(env, "RADBILL_KEEP_SPOOL_DAYS", 7, 1, 36_500),
            keep_sessions_months=_bounded(env, "RADBILL_KEEP_SESSIONS_MONTHS", 6, 0, 1200),
            keep_outbox_days=_bounded(env, "RADBILL_KEEP_OUTBOX_DAYS", 180, 0, 36_500),
            keep_audit_days=_bounded(env, "RADBILL_KEEP_AUDIT_DAYS", 730, 0, 36_500),
            keep_enforcement_days=_bounded(env, "RADBILL_KEEP_ENFORCEMENT_DAYS", 90, 0, 36_500),
            keep_job_runs_days=_bounded(env, "RADBILL_KEEP_JOB_RUNS_DAYS", 90, 0, 36_500),
            retention_batch=_bounded(env, "RADBILL_RETENTION_BATCH", 5000, 100, 50_000),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
