"""Reversible encryption for secrets stored in the database.

Subscriber passwords must be reversible because CHAP and MS-CHAPv2 need the cleartext (or the
NT hash) on the server; NAS RADIUS secrets and RouterOS API passwords must be sent to devices.
They are stored as Fernet tokens (AES-128-CBC + HMAC-SHA256) under one key per installation.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from radbill.config import Settings


class SecretError(RuntimeError):
    """A stored secret cannot be decrypted (wrong or rotated key, corrupted value)."""


class SecretBox:
    """Encrypts and decrypts short secrets with the installation key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        """Return a printable token for *plaintext*."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of *token*; raise :class:`SecretError` if it cannot be read."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretError("stored secret cannot be decrypted with this key") from exc


def load_key(settings: Settings, create: bool = True) -> bytes:
    """The installation key: ``RADBILL_SECRET_KEY`` or the key file, created on first use."""
    if settings.secret_key:
        return settings.secret_key.encode("ascii")
    path = settings.secret_key_file or settings.data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        raise SecretError(f"no secret key: set RADBILL_SECRET_KEY or create {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Path(path).read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def secret_box(settings: Settings) -> SecretBox:
    """A :class:`SecretBox` for this installation."""
    return SecretBox(load_key(settings))
