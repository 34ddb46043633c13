"""rlm_python3 entry module: the only module that imports ``radiusd``.

FreeRADIUS calls :func:`instantiate` once at start, :func:`authorize` for every
Access-Request, :func:`post_auth` once its outcome is known, and :func:`detach` at
shutdown. Everything here is a translation; the work happens in :mod:`radius.hook` and
:mod:`radius.snapshot`, which run and are tested without FreeRADIUS.
"""

from __future__ import annotations

import logging
from typing import Any

import radiusd  # provided by rlm_python3 inside FreeRADIUS

_state: dict[str, Any] = {}


class RadlogHandler(logging.Handler):
    """Python logging into FreeRADIUS's own log.

    Once running, FreeRADIUS points file descriptor 2 elsewhere, so a plain stderr handler
    loses everything the background refresher logs (an outage warning included). radlog
    writes wherever FreeRADIUS logs, and is safe to call from any thread.
    """

    LEVELS = ((logging.ERROR, radiusd.L_ERR), (logging.WARNING, radiusd.L_WARN),
              (logging.INFO, radiusd.L_INFO))

    def emit(self, record: logging.LogRecord) -> None:
        level = next((lvl for py, lvl in self.LEVELS if record.levelno >= py), radiusd.L_DBG)
        try:
            radiusd.radlog(level, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def instantiate(_p: object) -> int:
    """Load the snapshot once (if the database answers) and start the refresher thread."""
    handler = RadlogHandler()
    handler.setFormatter(logging.Formatter("radbill-policy %(levelname)s %(message)s"))
    root = logging.getLogger("radbill")
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    from radius.runtime import start_policy

    hook, refresher = start_policy(dict(radiusd.config))
    _state["hook"] = hook
    _state["refresher"] = refresher
    return radiusd.RLM_MODULE_OK


def authorize(p: tuple[tuple[str, str], ...]) -> object:
    """Decide an Access-Request from the snapshot."""
    return _state["hook"].authorize(p)


def post_auth(p: tuple[tuple[str, str], ...]) -> object:
    """Record the outcome in memory (throttling, provisional sessions); never changes it."""
    return _state["hook"].post_auth(p)


def detach(_p: object = None) -> int:
    """Stop the refresher thread."""
    refresher = _state.pop("refresher", None)
    if refresher is not None:
        refresher.stop()
    return radiusd.RLM_MODULE_OK
