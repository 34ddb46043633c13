"""Start-up of the policy inside FreeRADIUS: settings, engine, key, snapshot, refresher."""

from __future__ import annotations

import logging
from pathlib import Path

from radbill.config import Settings
from radbill.crypto import secret_box
from radbill.feeds import ChangeListener
from radius.hook import PolicyHook, policy_config
from radius.liveness import LoginThrottle, ProvisionalSessions
from radius.nas_profiles import profiles
from radius.snapshot import AuthSnapshot, SnapshotRefresher

log = logging.getLogger("radbill.policy")

SNAPSHOT_FILE = "radius-snapshot"  # in the data directory: the policy's snapshot, saved


def settings_from_module_config(config: dict[str, str]) -> Settings:
    """Settings from the ``config { }`` block rendered into the module (all values strings)."""
    env = {
        "RADBILL_DATABASE_URL": config["database_url"],
        "RADBILL_DATA_DIR": config["data_dir"],
        "RADBILL_SECRET_KEY_FILE": config["secret_key_file"],
        "RADBILL_SUSPENDED_MODE": config.get("suspended_mode", ""),
        "RADBILL_WALLED_GARDEN_LIST": config.get("walled_garden_list", ""),
        "RADBILL_WALLED_GARDEN_RATE": config.get("walled_garden_rate", ""),
        "RADBILL_INTERIM_INTERVAL": config.get("interim_interval", ""),
        "RADBILL_SNAPSHOT_POLL_MS": config.get("snapshot_poll_ms", ""),
        "RADBILL_DETAILED_REJECT_MESSAGES": config.get("detailed_reject_messages", ""),
        "RADBILL_CASE_INSENSITIVE_USERNAMES": config.get("case_insensitive_usernames", ""),
        "RADBILL_PROVISIONAL_SESSION_SECONDS": config.get("provisional_session_seconds", ""),
        "RADBILL_LOGIN_FAILURES_BEFORE_THROTTLE": config.get(
            "login_failures_before_throttle", ""),
        "RADBILL_WALLED_GARDEN_URL": config.get("walled_garden_url", ""),
        "RADBILL_WALLED_GARDEN_POOL": config.get("walled_garden_pool", ""),
        "RADBILL_IDLE_TIMEOUT": config.get("idle_timeout", ""),
    }
    return Settings.from_env(env)


def start_policy(config: dict[str, str]) -> tuple[PolicyHook, SnapshotRefresher]:
    """Build the hook and start its refresher. The first load is tried here, synchronously,
    so a server started with a reachable database answers from its first request."""
    settings = settings_from_module_config(config)
    key_file = settings.secret_key_file
    if key_file is None or not Path(key_file).exists():
        raise RuntimeError(f"radbill secret key file {key_file} missing: run 'radbill db upgrade'")
    box = secret_box(settings, create=False)  # follows the key file through a rotation
    log.info("NAS types: %s", ", ".join(profiles()))  # a broken profile file fails the start
    snapshot = AuthSnapshot()
    # A restart starts from the snapshot the last run saved and reads only what changed since
    # from the database: seconds instead of a minute at a million subscribers.
    saved = settings.data_dir / SNAPSHOT_FILE
    try:
        if count := snapshot.load_saved(saved):
            log.info("saved snapshot mapped: %d subscribers; reading the changes since",
                     count)
    except (OSError, ValueError) as exc:
        log.warning("saved snapshot %s unreadable (%s); loading from the database", saved, exc)
        snapshot = AuthSnapshot()
    # Read through the driver on a connection of its own (read-only: never SQLite's write
    # lock), without SQLAlchemy: it would be a quarter of FreeRADIUS's memory.
    refresher = SnapshotRefresher(
        snapshot, settings.database_url, box, settings.snapshot_poll_ms / 1000, save_to=saved,
        listener=None if settings.is_sqlite else ChangeListener(settings.database_url))
    if refresher.refresh_once():
        log.info("policy ready: %d subscribers, %d plans, %d users online",
                 snapshot.size, len(snapshot.plans), len(snapshot.online))
    refresher.start()
    hook = PolicyHook(
        snapshot, policy_config(settings),
        case_insensitive=settings.case_insensitive_usernames,
        throttle=LoginThrottle(max_failures=settings.login_failures_before_throttle),
        provisional=ProvisionalSessions(lifetime=settings.provisional_session_seconds),
    )
    return hook, refresher
