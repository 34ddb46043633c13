"""gunicorn's settings for radbill-web (``gunicorn --config python:admin.gunicorn_conf``).

Read from the environment so that ``/etc/radbill/radbill.env`` is the one place an operator
edits: ``RADBILL_WEB_BIND`` (default 127.0.0.1:8080: put a TLS proxy in front),
``RADBILL_WEB_WORKERS`` (default 1) and ``RADBILL_WEB_THREADS`` (default 8). With more than
one worker, set ``RADBILL_RATELIMIT_STORAGE=redis://...`` so the login throttle counts across
workers. gunicorn tells systemd when it is ready (``Type=notify``).
"""

from __future__ import annotations

import os


def _count(name: str, default: int, maximum: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise SystemExit(f"error: {name}={raw!r} is not a whole number from 1 to {maximum}")
    return int(raw)


bind = [os.environ.get("RADBILL_WEB_BIND") or "127.0.0.1:8080"]
workers = _count("RADBILL_WEB_WORKERS", 1, 64)
threads = _count("RADBILL_WEB_THREADS", 8, 256)
worker_class = "gthread"
timeout = 60
graceful_timeout = 30
accesslog = "-"  # the journal
errorlog = "-"
proc_name = "radbill-web"
