"""rlm_python3 entry module: the only module that imports ``radiusd``.

FreeRADIUS calls :func:`instantiate` once at start, :func:`authorize` for every Access-Request
and :func:`detach` at shutdown. Everything here is a translation; the work happens in
:mod:`radius.hook` and :mod:`radius.snapshot`, which run and are tested without FreeRADIUS.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import radiusd  # provided by rlm_python3 inside FreeRADIUS

_state: dict[str, Any] = {}


def instantiate(_p: object) -> int:
    """Load the snapshot once (if the database answers) and start the refresher thread."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s radbill-policy %(levelname)s %(message)s",
    )
    from radius.runtime import start_policy

    hook, refresher = start_policy(dict(radiusd.config))
    _state["hook"] = hook
    _state["refresher"] = refresher
    return radiusd.RLM_MODULE_OK


def authorize(p: tuple[tuple[str, str], ...]) -> object:
    """Decide an Access-Request from the snapshot."""
    return _state["hook"].authorize(p)


def detach(_p: object = None) -> int:
    """Stop the refresher thread."""
    refresher = _state.pop("refresher", None)
    if refresher is not None:
        refresher.stop()
    return radiusd.RLM_MODULE_OK
