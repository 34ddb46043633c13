"""Which gateways an ISP uses, with its credentials: ``<data>/gateways.json`` (or the file
named by ``RADBILL_GATEWAYS_FILE``)::

    {"bkash": {"base_url": "https://tokenized.sandbox.bka.sh/v1.2.0-beta", "sandbox": true,
               "credentials": {"app_key": "...", "app_secret": "...", "username": "...",
                               "password": "..."}},
     "razorpay": {"base_url": "https://api.razorpay.com", "sandbox": false,
                  "credentials": {"key_id": "...", "key_secret": "...",
                                  "webhook_secret": "..."}}}

``RADBILL_PUBLIC_URL`` is where gateways and subscribers' browsers reach radbill (the payment
pages, return URLs and webhooks), e.g. ``https://pay.example-isp.com.bd``.
"""

from __future__ import annotations

import fcntl
import importlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from payments.gateways.base import GatewayConfig, PaymentGateway
from radbill.config import ConfigError, Settings

# The gateways' documented API roots: (sandbox, live). ``"sandbox": false`` in the file
# switches to live; a ``base_url`` overrides both (a simulator, a proxy).
DEFAULT_URLS = {
    "bkash": ("https://tokenized.sandbox.bka.sh/v1.2.0-beta",
              "https://tokenized.pay.bka.sh/v1.2.0-beta"),
    "nagad": ("http://sandbox.mynagad.com:10080/remote-payment-gateway-1.0",
              "https://api.mynagad.com"),
    "sslcommerz": ("https://sandbox.sslcommerz.com", "https://securepay.sslcommerz.com"),
    "razorpay": ("https://api.razorpay.com", "https://api.razorpay.com"),  # test/live by key
}

ADAPTERS = {
    "bkash": "payments.gateways.bkash:BkashGateway",
    "nagad": "payments.gateways.nagad:NagadGateway",
    "sslcommerz": "payments.gateways.sslcommerz:SslcommerzGateway",
    "razorpay": "payments.gateways.razorpay:RazorpayGateway",
}


def gateways_file(settings: Settings) -> Path:
    return settings.gateways_file or settings.data_dir / "gateways.json"


def load_configs(data: dict[str, Any]) -> dict[str, GatewayConfig]:
    """Gateway configurations from the parsed file. Raises :class:`ConfigError`."""
    out = {}
    for name, entry in data.items():
        if name not in ADAPTERS:
            raise ConfigError(f"gateways: unknown gateway {name!r} (known: "
                              f"{', '.join(sorted(ADAPTERS))})")
        if not isinstance(entry, dict):
            raise ConfigError(f"gateways: {name} must be an object")
        sandbox = entry.get("sandbox", True)
        if not isinstance(sandbox, bool):
            raise ConfigError(f"gateways: {name} sandbox must be true or false")
        base_url = entry.get("base_url") or DEFAULT_URLS[name][0 if sandbox else 1]
        creds = entry.get("credentials") or {}
        if not isinstance(creds, dict) or not all(isinstance(v, str) for v in creds.values()):
            raise ConfigError(f"gateways: {name} credentials must be strings")
        out[name] = GatewayConfig(name=name, base_url=str(base_url).rstrip("/"),
                                  credentials=creds, sandbox=sandbox,
                                  timeout=float(entry.get("timeout", 10)))
    return out


def configured(settings: Settings) -> dict[str, GatewayConfig]:
    """The ISP's gateways (none when the file does not exist)."""
    path = gateways_file(settings)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object of gateways")
    return load_configs(data)


class FileTokenStore:
    """A gateway's token in a small JSON file (mode 0600) next to the database, shared by
    every radbill process on the host under an ``flock``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: Mapping[str, object]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(data)))
        tmp.chmod(0o600)
        tmp.replace(self.path)


def adapter(config: GatewayConfig, token_dir: Path | None = None) -> PaymentGateway:
    """The adapter for one configured gateway. With *token_dir*, gateways that hold access
    tokens (bKash) share them between processes through a file there."""
    module, _, cls = ADAPTERS[config.name].partition(":")
    kwargs = {}
    if config.name == "bkash" and token_dir is not None:
        kwargs["token_store"] = FileTokenStore(token_dir / f"{config.name}-token.json")
    gateway: PaymentGateway = getattr(importlib.import_module(module), cls)(config, **kwargs)
    return gateway


def adapters(settings: Settings) -> dict[str, PaymentGateway]:
    """Every configured gateway's adapter, sharing tokens through ``<data>/gateway-tokens``."""
    return {name: adapter(cfg, settings.data_dir / "gateway-tokens")
            for name, cfg in configured(settings).items()}
