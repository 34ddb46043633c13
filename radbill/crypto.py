"""Reversible encryption for secrets stored in the database.

Subscriber passwords must be reversible because CHAP and MS-CHAPv2 need the cleartext (or the
NT hash) on the server; NAS RADIUS secrets and RouterOS API passwords must be sent to devices.
They are stored as Fernet tokens (AES-128-CBC + HMAC-SHA256) under one key per installation.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from radbill.config import Settings
from radbill.errors import DomainError

if TYPE_CHECKING:  # the key rotation's types: SQLAlchemy is imported where it runs, not here
    from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

# Every column that holds a SecretBox token, registered by the part that owns it (next to its
# model), so that a restore can check them and a key rotation can find them all.
ENCRYPTED: list[InstrumentedAttribute[Any]] = []
# What a key rotation also writes to a row whose token it re-encrypts, per column.
ANNOUNCE: dict[str, Callable[[Session], dict[str, Any]]] = {}


def encrypted(*columns: InstrumentedAttribute[Any],
              announce: Callable[[Session], dict[str, Any]] | None = None) -> None:
    """Declare *columns* as holding tokens of the installation key. *announce*, if given,
    returns the values a key rotation writes beside a new token, in the same transaction
    (once per batch): e.g. a change-feed stamp, so that a process holding the old tokens
    (the RADIUS snapshot) reads the new ones before the old key is dropped."""
    ENCRYPTED.extend(c for c in columns if c not in ENCRYPTED)
    if announce is not None:
        for c in columns:
            ANNOUNCE[_column_name(c)] = announce


def _column_name(column: InstrumentedAttribute[Any]) -> str:
    return f"{column.class_.__name__}.{column.key}"


class SecretError(DomainError, RuntimeError):
    """A stored secret cannot be decrypted (wrong or rotated key, corrupted value)."""


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# Fernet token: version byte 0x80, 8-byte time, 16-byte IV, AES-128-CBC blocks, HMAC-SHA256.
_FERNET_VERSION = 0x80
_FERNET_HEAD = 9  # version and time
_BLOCK = 16
_MAC = 32
_URLSAFE = bytes.maketrans(b"-_", b"+/")


class _TokenReader:
    """Fernet decryption for a hot path (the RADIUS snapshot reveals a password at each
    login): the same plaintext as :class:`~cryptography.fernet.Fernet`, without the cipher,
    mode and HMAC objects it builds for every token (two thirds of its 7 to 9 us here).
    The HMAC is checked first, as Fernet does, one-shot and in constant time; CBC decryption
    is one ECB pass over the blocks, kept per key, and an XOR with the IV and the blocks
    before each. Anything it does not read (no key's HMAC matches, a malformed token, bad
    padding or UTF-8) is None: the caller falls back to Fernet itself, errors and all."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self._keys: list[tuple[bytes, Any]] = []
        for key in keys:
            raw = base64.urlsafe_b64decode(key)
            ecb = Cipher(algorithms.AES(raw[_BLOCK:]), modes.ECB()).decryptor()  # noqa: S305 - CBC decryption, block by block, see the class
            self._keys.append((raw[:_BLOCK], ecb))

    def decrypt(self, token: str) -> str | None:
        try:
            data = binascii.a2b_base64(token.encode("ascii").translate(_URLSAFE))
        except (UnicodeEncodeError, binascii.Error):
            return None
        size = len(data) - _FERNET_HEAD - _BLOCK - _MAC  # of the ciphertext
        if size <= 0 or size % _BLOCK or data[0] != _FERNET_VERSION:
            return None
        signed, mac = data[:-_MAC], data[-_MAC:]
        for signing_key, ecb in self._keys:
            if hmac.compare_digest(hmac.digest(signing_key, signed, "sha256"), mac):
                return self._open(ecb, signed[_FERNET_HEAD:], size)
        return None

    @staticmethod
    def _open(ecb: Any, chain: bytes, size: int) -> str | None:
        """The plaintext of *chain* (the IV, then *size* bytes of ciphertext)."""
        try:
            blocks = ecb.update(chain[_BLOCK:])
            plain = (int.from_bytes(blocks, "big")
                     ^ int.from_bytes(chain[:size], "big")).to_bytes(size, "big")
            pad = plain[-1]
            if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes((pad,)) * pad:
                return None
            return plain[:-pad].decode("utf-8")
        except Exception:  # noqa: BLE001 - bad UTF-8, the context in use by another thread
            return None


class SecretBox:
    """Encrypts with the installation's current key and decrypts with any of its keys.

    The key file holds the current key on its first line and, after a rotation, the previous
    one below it (for decryption only). A box made from the file (*source*) picks up a
    rotation by itself: it re-reads the file when a token does not decrypt or before it
    encrypts, if the file has changed; long-running processes need no restart.
    """

    def __init__(self, key: bytes | list[bytes], source: Path | None = None) -> None:
        self._keys = [key] if isinstance(key, bytes) else list(key)
        self._fernet = MultiFernet([Fernet(k) for k in self._keys])
        self._source, self._stamp = source, _stamp(source)
        self._reader: _TokenReader | None = None

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    def _reload(self) -> bool:
        """Re-read the key file if it changed; True if the keys did."""
        stamp = _stamp(self._source)
        if self._source is None or stamp is None or stamp == self._stamp:
            return False
        keys = read_keys(self._source)
        self._stamp = stamp
        if keys == self._keys:
            return False
        self._keys, self._fernet = keys, MultiFernet([Fernet(k) for k in keys])
        return True

    def encrypt(self, plaintext: str) -> str:
        """Return a printable token for *plaintext*, under the current key."""
        self._reload()
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of *token*; raise :class:`SecretError` if it cannot be read."""
        for attempt in (1, 2):
            try:
                return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
            except (InvalidToken, ValueError) as exc:
                if attempt == 1 and self._reload():
                    continue
                raise SecretError("stored secret cannot be decrypted with this key") from exc
        raise AssertionError("unreachable")

    def decrypt_fast(self, token: str) -> str:
        """:meth:`decrypt` at about a third of its CPU, for the RADIUS hot path: the same
        plaintext, and whatever it cannot read goes through :meth:`decrypt` (a key file
        re-read, :class:`SecretError`)."""
        reader = self._reader
        if reader is None or reader.keys is not self._keys:  # first use, or keys re-read
            reader = self._reader = _TokenReader(self._keys)
        plain = reader.decrypt(token)
        return plain if plain is not None else self.decrypt(token)

    def rotate(self, token: str) -> str:
        """*token* re-encrypted under the current key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError) as exc:
            raise SecretError("stored secret cannot be decrypted with this key") from exc


def key_path(settings: Settings) -> Path:
    return settings.secret_key_file or settings.data_dir / "secret.key"


def read_keys(path: Path) -> list[bytes]:
    """The keys in a key file, current first."""
    keys = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    for n, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretError(f"{path}: line {n} is not a radbill secret key") from None
    if not keys:
        raise SecretError(f"{path} holds no key")
    return keys


def load_keys(settings: Settings, create: bool = True) -> list[bytes]:
    """The installation's keys, current first: ``RADBILL_SECRET_KEY`` (comma-separated) or
    the key file, created on first use."""
    if settings.secret_key:
        return [k.strip().encode("ascii") for k in settings.secret_key.split(",") if k.strip()]
    path = key_path(settings)
    if path.exists():
        return read_keys(path)
    if not create:
        raise SecretError(f"no secret key: set RADBILL_SECRET_KEY or create {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_keys(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return [key]


def load_key(settings: Settings, create: bool = True) -> bytes:
    """The installation's current key."""
    return load_keys(settings, create)[0]


def secret_box(settings: Settings, create: bool = True) -> SecretBox:
    """A :class:`SecretBox` for this installation (following its key file)."""
    keys = load_keys(settings, create)
    return SecretBox(keys, None if settings.secret_key else key_path(settings))


def write_keys(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(b"".join(k + b"\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rotate_key(settings: Settings, factory: sessionmaker[Session], batch: int = 500) -> int:
    """Encrypt every stored secret under a new key; return how many were re-encrypted.

    1. the key file becomes [new, current, older...]: every process can read both kinds of
       token from here on (a crash at any later point leaves a working installation, and
       running it again finishes the job);
    2. every registered column is re-encrypted in batches, each committed;
    3. the file becomes [new, current]: the previous key stays for decryption only, for a
       value a process that had not yet re-read the file wrote meanwhile; the next rotation
       re-encrypts those and drops it.
    """
    from sqlalchemy import update

    if settings.secret_key:
        raise SecretError("the key comes from RADBILL_SECRET_KEY: generate a key, set "
                          "RADBILL_SECRET_KEY=new,old everywhere, then rotate from a key file")
    path = key_path(settings)
    current = read_keys(path)
    keys = [Fernet.generate_key(), *current]
    write_keys(path, keys)
    box = SecretBox(keys)
    rotated = 0
    for column in ENCRYPTED:
        (pk,) = column.class_.__mapper__.primary_key
        last = None
        while True:
            with factory() as session, session.begin():
                rows = _tokens(session, column, last, batch)
                if not rows:
                    break
                announce = ANNOUNCE.get(_column_name(column))
                extra = announce(session) if announce is not None else {}
                for key_value, token in rows:
                    # compare and set: a value changed meanwhile is already readable
                    session.execute(update(column.class_)
                                    .where(pk == key_value, column == token)
                                    .values({column.key: box.rotate(token), **extra}))
                rotated += len(rows)
                last = rows[-1][0]
    write_keys(path, keys[:2])
    return rotated


def _tokens(session: Session, column: InstrumentedAttribute[Any], after: Any, batch: int
            ) -> list[Any]:
    """The next *batch* of (primary key, token) rows of *column* after the key *after*."""
    from sqlalchemy import select

    (pk,) = column.class_.__mapper__.primary_key
    query = select(pk, column).where(column.is_not(None)).order_by(pk).limit(batch)
    if after is not None:
        query = query.where(pk > after)
    return list(session.execute(query).all())


def check_stored(factory: sessionmaker[Session], box: SecretBox, batch: int = 1000
                 ) -> tuple[int, int]:
    """Decrypt every stored secret (in batches, by primary key); return (checked, unreadable)."""
    checked = unreadable = 0
    for column in ENCRYPTED:
        last = None
        while True:
            with factory() as session:
                rows = _tokens(session, column, last, batch)
            if not rows:
                break
            for _, token in rows:
                checked += 1
                try:
                    box.decrypt(token)
                except SecretError:
                    unreadable += 1
            last = rows[-1][0]
    return checked, unreadable


def key_matches(session: Session, box: SecretBox) -> bool:
    """Whether *box* reads the secrets stored in the database: one token of each encrypted
    column is tried (enough: every token of an installation is under its one key, or the
    previous one during a rotation). True when nothing is stored yet."""
    from sqlalchemy import select

    for column in ENCRYPTED:
        token = session.scalar(select(column).where(column.is_not(None)).limit(1))
        if token is None:
            continue
        try:
            box.decrypt(token)
        except SecretError:
            return False
    return True
