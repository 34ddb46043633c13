"""What the HTTP adapters share: one pooled client with explicit timeouts, and the mapping of
network failures to outcomes (never reached: transient; no answer: unknown)."""

from __future__ import annotations

from typing import Any

import httpx

from notify.channels.base import Outcome

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def client(timeout: httpx.Timeout = DEFAULT_TIMEOUT, connections: int = 32) -> httpx.AsyncClient:
    """A client for one provider: keep-alive, bounded connections, no redirects followed."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                             limits=httpx.Limits(max_connections=connections,
                                                 max_keepalive_connections=connections))


def network_outcome(exc: httpx.HTTPError) -> tuple[Outcome, str]:
    """A request that failed in transport: was it sent?"""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Outcome.TRANSIENT, f"provider unreachable: {type(exc).__name__}"
    return Outcome.UNKNOWN, f"no answer from the provider: {type(exc).__name__}"


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def status_outcome(status: int) -> Outcome:
    """An HTTP status that is not the provider's answer."""
    if status in (429, 502, 503, 504):
        return Outcome.TRANSIENT
    if status in (401, 403):
        return Outcome.ACCOUNT
    return Outcome.UNKNOWN if status >= 500 else Outcome.PERMANENT
