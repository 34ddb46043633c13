"""The authorization snapshot: billing state held in memory for the RADIUS hot path.

rlm_python3 runs one Python call at a time for the whole server, so ``authorize`` must never
wait on I/O. :class:`AuthSnapshot` holds every subscriber and plan as frozen records plus the
open-session count per user; :class:`SnapshotRefresher` keeps it current from a background
thread: on PostgreSQL it is woken by ``NOTIFY`` when a change commits
(:class:`radbill.db.ChangeListener`), and it polls the change feeds (see
:func:`radbill.db.bump`) a few times a second anyway, the only way on SQLite.

At a million subscribers the snapshot must stay small and load in seconds: the columns the
policy reads (:class:`SubscriberEntry`) are read in chunks from a server-side cursor without
ORM objects and kept as one string per subscriber (:func:`entries_from_rows`), and the
password stays encrypted until the subscriber logs in (Fernet costs about 35 us a token:
decrypting a million at start took half a minute). A small bounded cache keeps the latest
decrypted records for retries and re-logins.

A restart answers from the snapshot the last run saved (:meth:`AuthSnapshot.save`: one line
per subscriber, sorted by key) as soon as the database has given the changes since it was
written: the file is mapped (:meth:`AuthSnapshot.load_saved`) and a subscriber not yet in
memory is found in it by binary search, while the refresher reads the whole file into memory
in the background (:meth:`AuthSnapshot.merge_saved`). File and change feed together are the
whole state, so a name in neither is unknown whether the merge has finished or not.

When the database is unreachable the snapshot keeps serving the last state it had, the
refresher logs loudly and retries with back-off, and recovers by itself. A database error is
never turned into "unknown user" or "unpaid": before the first successful load the policy
answers ``unavailable`` (no reply at all), so the NAS retries or fails over.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as dt
import functools
import itertools
import logging
import mmap
import os
import threading
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from billing import authfeed
from billing.rates import PlanSpeeds, plan_burst, plan_fup_rate, plan_rate
from radbill.crypto import SecretBox, SecretError
from radbill.dbapi import Reader, connect
from radbill.feeds import AUTH_FEED, ChangeListener, feed_value
from radius import sessionfeed
from radius.liveness import SessionRef
from radius.policy import PlanRecord, SubscriberRecord

if typing.TYPE_CHECKING:
    from billing.models import Subscriber

log = logging.getLogger("radbill.snapshot")


def username_key(username: str) -> str:
    """The snapshot key of a username: without surrounding spaces, in lower case (the
    database keeps usernames unique in lower case)."""
    return username.strip().lower()


class _PlanColumns(PlanSpeeds, typing.Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def ip_pool(self) -> str | None: ...
    @property
    def ipv6_pool(self) -> str | None: ...
    @property
    def delegated_ipv6_pool(self) -> str | None: ...
    @property
    def idle_timeout(self) -> int | None: ...
    @property
    def data_cap_bytes(self) -> int | None: ...
    @property
    def time_quota_s(self) -> int | None: ...


def plan_record(plan: _PlanColumns) -> PlanRecord:
    """The policy's view of a plan (a :class:`~billing.models.Plan` or a
    :class:`~billing.authfeed.PlanRow`)."""
    return PlanRecord(
        id=plan.id,
        name=plan.name,
        rate=plan_rate(plan),
        burst=plan_burst(plan),
        fup_rate=plan_fup_rate(plan),
        ip_pool=plan.ip_pool,
        ipv6_pool=plan.ipv6_pool,
        delegated_ipv6_pool=plan.delegated_ipv6_pool,
        idle_timeout=plan.idle_timeout,
        data_quota=plan.data_cap_bytes if plan.fup_download_bps is None else None,
        time_quota=plan.time_quota_s,
    )


class SubscriberEntry(NamedTuple):
    """A subscriber as the snapshot keeps it: the fields of
    :class:`~radius.policy.SubscriberRecord` under the same names and in the same order, but
    the password as its stored token (decrypted at login by :meth:`AuthSnapshot.record`).
    Each field is the :class:`~billing.models.Subscriber` column of its name: a field added
    here and to the record is loaded with nothing else to change."""

    username: str
    password_enc: str
    service: str
    status: str
    plan_id: int
    static_ip: str | None = None
    ip_pool: str | None = None
    mac_address: str | None = None
    simultaneous_use: int = 1
    paid_until: dt.datetime | None = None
    fup_throttled: bool = False
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    ipv6_pool: str | None = None
    cap_throttled: bool = False
    quota_left_bytes: int | None = None
    quota_left_seconds: int | None = None


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(SubscriberRecord))
if SubscriberEntry._fields[2:] != _RECORD_FIELDS[2:] or _RECORD_FIELDS[:2] != (
        "username", "password"):
    raise RuntimeError("SubscriberEntry and SubscriberRecord must list the same fields in the "
                       f"same order: {SubscriberEntry._fields} / {_RECORD_FIELDS}")
_AUTH_COLUMNS = (*SubscriberEntry._fields, "auth_version")
SAVED_FORMAT = "radbill-snapshot-2"  # first field of a saved snapshot's first line
# the first line: the format, then the auth version, the subscribers and the bytes that
# follow the line, each as a fixed-width number (written last, once known), then the fields
_HEADER_NUMBER = 20
SAVE_SECONDS = 600.0  # how often a running policy saves its snapshot (if it changed)
_new_entry = functools.partial(tuple.__new__, SubscriberEntry)

# A stored subscriber is one string: its fields joined by a character no field may hold
# (usernames, pools, addresses and tokens are validated), the username left empty when it is
# the key itself. Some 190 bytes for a subscriber on a plan's pool, against some 450 for a
# tuple of separate objects (and 3,800 for the ORM object it once was). A subscriber with the
# separator in a field (none passes validation) is kept as a SubscriberEntry instead.
_SEP = "\x1f"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _kind(hint: Any) -> str:
    """How a field of the given type is written: s(tring), i(nt), b(ool), t(ime)."""
    text = str(hint)
    for name, kind in (("datetime", "t"), ("bool", "b"), ("int", "i"), ("str", "s")):
        if name in text:
            return kind
    raise TypeError(f"SubscriberEntry field of type {hint}: add a way to store it")


_KINDS = tuple(_kind(h) for h in typing.get_type_hints(SubscriberEntry).values())


def _encode(kind: str, column: list[Any]) -> list[str]:
    if kind == "s":
        return ["" if v is None else v for v in column]
    if kind == "i":
        return ["" if v is None else str(v) for v in column]
    if kind == "b":
        return ["1" if v else "" for v in column]
    return ["" if v is None else str((v - _EPOCH) // _MICROSECOND) for v in column]


# where each kind of field is, in a stored subscriber's fields (the username and token, the
# first two, are kept as they are)
_TEXTS = tuple(i for i, k in enumerate(_KINDS) if k == "s" and i > 1)
_INTS = tuple(i for i, k in enumerate(_KINDS) if k == "i")
_FLAGS = tuple(i for i, k in enumerate(_KINDS) if k == "b")
_TIMES = tuple(i for i, k in enumerate(_KINDS) if k == "t")


def _fields(key: str, stored: str) -> list[Any]:
    """The values of a stored subscriber's fields, in :class:`SubscriberEntry`'s order (the
    password as its token). Kind by kind, not a call per field: this runs at every login of
    a subscriber not in the cache."""
    values: list[Any] = stored.split(_SEP)
    if len(values) != len(_KINDS):
        raise ValueError(f"stored subscriber {key!r}: {len(values)} fields, not "
                         f"{len(_KINDS)}")
    for i in _TEXTS:
        values[i] = values[i] or None
    for i in _INTS:
        text = values[i]
        values[i] = int(text) if text else None
    for i in _FLAGS:
        values[i] = bool(values[i])
    for i in _TIMES:
        text = values[i]
        values[i] = _EPOCH + dt.timedelta(microseconds=int(text)) if text else None
    values[0] = values[0] or key
    return values


def unpack(key: str, stored: str | SubscriberEntry) -> SubscriberEntry:
    """The entry a stored subscriber (see :func:`entries_from_rows`) stands for."""
    if not isinstance(stored, str):
        return stored
    return _new_entry(_fields(key, stored))


def entries_from_rows(rows: Sequence[Sequence[Any]]
                      ) -> tuple[list[tuple[str, str | SubscriberEntry]], int]:
    """(key, stored subscriber) pairs for rows of :data:`_AUTH_COLUMNS`, and the newest auth
    version among them. Column by column, so that most of the work per subscriber is done
    in C: a million rows load in seconds."""
    if not rows:
        return [], 0
    *columns, versions = (list(c) for c in zip(*rows, strict=True))
    names = columns[0]
    keys = list(map(str.lower, map(str.strip, names)))
    # a key equal to its username is the same string object, and the username is not stored
    keys = [name if key == name else key for key, name in zip(keys, names, strict=True)]
    encoded = [_encode(kind, column) for kind, column in zip(_KINDS, columns, strict=True)]
    encoded[0] = ["" if key is name else name for key, name in zip(keys, names, strict=True)]
    stored: list[str | SubscriberEntry] = list(map(_SEP.join, zip(*encoded, strict=True)))
    if any(_SEP in "".join(c) for c, k in zip(encoded, _KINDS, strict=True) if k == "s"):
        width = len(_KINDS)
        for i, text in enumerate(stored):
            if isinstance(text, str) and text.count(_SEP) != width - 1:
                stored[i] = _new_entry(row[i] for row in columns)
    return list(zip(keys, stored, strict=True)), max(versions)


def _header(version: int, count: int, body: int) -> bytes:
    numbers = "\t".join(f"{n:0{_HEADER_NUMBER}d}" for n in (version, count, body))
    return f"{SAVED_FORMAT}\t{numbers}\t{_SEP.join(_AUTH_COLUMNS[:-1])}\n".encode()


BIG_LOAD = 10_000  # rows read in one refresh after which freed memory is given back


def give_back_freed_memory() -> None:
    """Return the heap a big load freed (rows read and dropped) to the system: glibc keeps it
    otherwise, and it shows in FreeRADIUS's RSS (about 10 MB at 100,000 subscribers)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def subscriber_record(sub: Subscriber, box: SecretBox) -> SubscriberRecord:
    """The policy's view of a subscriber, with the password decrypted."""
    try:
        password: str | None = box.decrypt(sub.password_enc)
    except SecretError:
        log.error("subscriber %r: password cannot be decrypted with this key; rejecting "
                  "its logins until it is reset", sub.username)
        password = None
    return SubscriberRecord(
        username=sub.username,
        password=password,
        service=str(sub.service),
        status=str(sub.status),
        plan_id=sub.plan_id,
        static_ip=sub.static_ip,
        ip_pool=sub.ip_pool,
        mac_address=sub.mac_address,
        simultaneous_use=sub.simultaneous_use,
        paid_until=sub.paid_until,
        fup_throttled=sub.fup_throttled,
        framed_ipv6_prefix=sub.framed_ipv6_prefix,
        delegated_ipv6_prefix=sub.delegated_ipv6_prefix,
        ipv6_pool=sub.ipv6_pool,
        cap_throttled=sub.cap_throttled,
        quota_left_bytes=sub.quota_left_bytes,
        quota_left_seconds=sub.quota_left_seconds,
    )


def subscriber_record_without_password(sub: Subscriber) -> SubscriberRecord:
    """The policy's view of a subscriber for deciding what a running session should have
    (enforcement): everything but the password, which is replaced by a placeholder."""
    return SubscriberRecord(
        username=sub.username,
        password="",
        service=str(sub.service),
        status=str(sub.status),
        plan_id=sub.plan_id,
        static_ip=sub.static_ip,
        ip_pool=sub.ip_pool,
        mac_address=None,
        simultaneous_use=sub.simultaneous_use,
        paid_until=sub.paid_until,
        fup_throttled=sub.fup_throttled,
        framed_ipv6_prefix=sub.framed_ipv6_prefix,
        delegated_ipv6_prefix=sub.delegated_ipv6_prefix,
        ipv6_pool=sub.ipv6_pool,
        cap_throttled=sub.cap_throttled,
        quota_left_bytes=sub.quota_left_bytes,
        quota_left_seconds=sub.quota_left_seconds,
    )


REVEALED_CACHE = 4_096  # decrypted records kept for retries and re-logins (about 0.5 KB each)


class AuthSnapshot:
    """In-memory authorization state. Reads are lock-free dictionary look-ups; the refresher
    replaces whole entries, which is atomic under the GIL. Subscribers and sessions are
    keyed by :func:`username_key`. ``subscribers`` holds :class:`SubscriberEntry` tuples
    (a :class:`~radius.policy.SubscriberRecord` put there directly is used as it is);
    :meth:`record` gives the policy's view with the password decrypted."""

    def __init__(self, revealed_cache: int = REVEALED_CACHE) -> None:
        self.subscribers: dict[str, str | SubscriberEntry | SubscriberRecord] = {}
        self.plans: dict[int, PlanRecord] = {}
        self.online: dict[str, int] = {}
        # the open sessions of each user (which NAS, which device): a redial from the same
        # device replaces its stale session instead of counting against Simultaneous-Use
        self.sessions: dict[str, tuple[SessionRef, ...]] = {}
        self.nas_types: dict[str, str] = {}  # NAS IP -> type (profile name)
        # how many sessions of each user have been seen open since the start: a Start that
        # ends a provisional session (radius.liveness) shows as this growing
        self.opened: dict[str, int] = {}
        self.auth_version = 0
        # the end of the last day billing ran for (billing.isp.billed_until): prepaid
        # cut-offs beyond it are held (radius.policy.cut_off)
        self.billed_until: dt.datetime | None = None
        self.session_version = 0
        self.loaded = False
        self.healthy = False
        self.last_refresh_ok: float | None = None
        self.last_error: str | None = None
        self.box: SecretBox | None = None  # decrypts the entries' passwords
        self.saved_version: int | None = None  # auth version of the saved file, if any
        # key -> (what was stored, its record): valid while that is what is stored
        self._revealed: dict[str, tuple[str | SubscriberEntry, SubscriberRecord]] = {}
        self._revealed_max = revealed_cache
        # a saved snapshot mapped at start, until merged: the map and where its lines start
        self._saved: tuple[mmap.mmap, int] | None = None
        self._saved_file: typing.BinaryIO | None = None
        self._saved_count = 0

    def _stored(self, key: str) -> str | SubscriberEntry | SubscriberRecord | None:
        stored = self.subscribers.get(key)
        if stored is None and self._saved is not None:
            return self._find_saved(key)
        return stored

    def _find_saved(self, key: str) -> str | SubscriberEntry | SubscriberRecord | None:
        """The stored subscriber under *key* in the mapped saved file (sorted by key), by
        binary search over its lines; None if it is not there."""
        saved = self._saved
        if saved is None:  # merged meanwhile (the map itself stays valid while referenced)
            return self.subscribers.get(key)
        mm, lo = saved
        want, hi = key.encode("utf-8"), len(mm)
        while lo < hi:
            mid = (lo + hi) // 2
            start = mm.rfind(b"\n", 0, mid) + 1  # the line holding mid (the header ends
            end = mm.find(b"\n", start)          # with one: never before the body)
            tab = mm.find(b"\t", start, end)
            found = mm[start:tab]
            if found == want:
                return mm[tab + 1:end].decode("utf-8")
            if found < want:
                lo = end + 1
            else:
                hi = start
        return None

    def known(self, key: str) -> bool:
        """Whether a subscriber is stored under *key* (see :func:`username_key`)."""
        return self._stored(key) is not None

    @property
    def size(self) -> int:
        """How many subscribers the snapshot holds (the saved file's count, while it is
        being merged, plus what changed since)."""
        if self._saved is None:
            return len(self.subscribers)
        return max(len(self.subscribers), self._saved_count)

    def entry(self, key: str) -> SubscriberEntry | SubscriberRecord | None:
        """The subscriber under *key* (see :func:`username_key`), password still encrypted."""
        stored = self._stored(key)
        if stored is None or isinstance(stored, SubscriberRecord):
            return stored
        return unpack(key, stored)

    def record(self, key: str) -> SubscriberRecord | None:
        """The policy's view of the subscriber under *key* (see :func:`username_key`), its
        password decrypted (None if it cannot be, which rejects that subscriber only)."""
        stored = self._stored(key)
        if stored is None or isinstance(stored, SubscriberRecord):
            return stored
        cached = self._revealed.get(key)
        if cached is not None and (cached[0] is stored or cached[0] == stored):
            return cached[1]
        if isinstance(stored, str):
            values = _fields(key, stored)
            values[1] = self._password(values[0], values[1])
            record = SubscriberRecord(*values)
        else:
            record = SubscriberRecord(stored.username,
                                      self._password(stored.username, stored.password_enc),
                                      *stored[2:])
        if len(self._revealed) >= self._revealed_max:
            self._revealed.clear()  # bounded: start again rather than grow
        self._revealed[key] = (stored, record)
        return record

    def _password(self, username: str, token: str) -> str | None:
        """The password of *token* (None if it cannot be decrypted: that subscriber's logins
        are rejected)."""
        if self.box is None:
            return None
        try:
            return self.box.decrypt_fast(token)
        except SecretError:
            log.error("subscriber %r: password cannot be decrypted with this key; "
                      "rejecting its logins until it is reset", username)
            return None

    def lookup(self, username: str) -> tuple[SubscriberRecord | None, PlanRecord | None, int]:
        """The subscriber, its plan and its open-session count."""
        key = username_key(username)
        sub = self.record(key)
        if sub is None:
            return None, None, 0
        return sub, self.plans.get(sub.plan_id), self.online.get(key, 0)

    def save(self, path: Path) -> bool:
        """Write the subscribers and the auth version they are current to into *path*
        (owner-only, replaced atomically), one line per subscriber sorted by key, for
        :meth:`load_saved` after a restart. Returns False, writing nothing, before the first
        load, while a saved file is still being merged, or if a subscriber cannot be written
        as a line (none can: usernames and fields are validated). The tokens stay
        encrypted."""
        if not self.loaded or self._saved is not None:
            return False
        # called by the refresher's own thread (nothing changes the dict meanwhile); the
        # sorted keys are one list (8 MB at a million), the lines 10,000 at a time
        version, subscribers = self.auth_version, self.subscribers
        if not all(isinstance(v, str) and "\n" not in v and "\t" not in k and "\n" not in k
                   for k, v in subscribers.items()):
            log.warning("snapshot not saved: a subscriber cannot be written as a line")
            return False
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed process
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                header = _header(version, 0, 0)
                fh.write(header)
                keys = iter(sorted(subscribers))
                body = 0
                while chunk := list(itertools.islice(keys, 10_000)):
                    data = "".join([f"{k}\t{subscribers[k]}\n" for k in chunk]).encode()
                    fh.write(data)
                    body += len(data)
                fh.seek(0)
                fh.write(_header(version, len(subscribers), body))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.saved_version = version
        return True

    def load_saved(self, path: Path) -> int:
        """Map a file :meth:`save` wrote, so that the first refresh reads from the database
        only what changed since (the change feed), and subscribers are answered from the
        file until :meth:`merge_saved` has read it into memory. Nothing is answered from it
        alone: the snapshot counts as loaded only once the database has answered. Returns
        how many subscribers it holds (0 if the file is missing, cut short or was written
        for other fields)."""
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return 0
        with contextlib.ExitStack() as on_error:
            on_error.callback(fh.close)
            first = fh.readline()
            magic, version, count, body, columns = (
                first.rstrip(b"\n").decode("utf-8", "replace").split("\t", 4) + [""] * 5)[:5]
            if magic != SAVED_FORMAT or columns != _SEP.join(_AUTH_COLUMNS[:-1]):
                log.warning("%s: written for other fields; loading from the database", path)
                return 0
            size = os.fstat(fh.fileno()).st_size
            if not body.isdigit() or size != len(first) + int(body) or not count.isdigit():
                log.warning("%s: cut short; loading from the database", path)
                return 0
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
            on_error.pop_all()
        if mapped is None:
            fh.close()
            return 0
        mapped.madvise(mmap.MADV_RANDOM)  # a few pages per look-up until merged
        self.subscribers = {}
        self.auth_version = int(version)
        self.saved_version = self.auth_version
        self._saved, self._saved_file, self._saved_count = (mapped, len(first)), fh, int(count)
        self._revealed.clear()
        return self._saved_count

    def merge_saved(self) -> int:
        """Read the mapped saved file (see :meth:`load_saved`) into memory under what
        changed since; returns how many subscribers it read (0: nothing mapped). Call it
        from the refresher's thread, after the first refresh: look-ups go on meanwhile."""
        if self._saved is None or self._saved_file is None:
            return 0
        fh, (_, start) = self._saved_file, self._saved
        subscribers: dict[str, str | SubscriberEntry | SubscriberRecord] = {}
        fh.seek(start)  # read through the file, not the map: no page of it stays resident
        rest = b""
        while block := fh.read(1 << 22):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            # keys and values hold neither tabs nor newlines: one split gives both
            parts = iter(block[:cut - 1].replace(b"\t", b"\n").decode("utf-8").split("\n"))
            subscribers.update(zip(parts, parts, strict=False))
        subscribers.update(self.subscribers)  # what changed since the file was written
        self.subscribers = subscribers
        self._saved = None
        self._saved_file = None
        fh.close()  # the map itself goes when the last look-up using it has finished
        give_back_freed_memory()
        return len(subscribers)

    def refresh(self, source: Reader | Any, box: SecretBox) -> int:
        """Apply every change since the last refresh, read through *source* (a
        :class:`~radbill.dbapi.Reader`, or a SQLAlchemy session: read inside its
        transaction). Returns how many records changed."""
        reader = source if isinstance(source, Reader) else Reader.of_session(source)
        self.box = box
        feed = feed_value(reader, AUTH_FEED)
        changed = 0
        if feed is None or feed > self.auth_version or not self.loaded:
            newest = self.auth_version
            # every plan on the first load (the subscribers may come from a saved file)
            plans_since = self.auth_version if self.loaded else 0
            for plan in authfeed.plans_since(reader, plans_since):
                self.plans[plan.id] = plan_record(plan)
                newest = max(newest, plan.auth_version)
                changed += 1
            subscribers = self.subscribers
            for rows in authfeed.auth_rows_since(reader, self.auth_version, _AUTH_COLUMNS):
                entries, version = entries_from_rows(rows)
                subscribers.update(entries)
                newest = max(newest, version)
                changed += len(entries)
            self.auth_version = newest
            self.billed_until = authfeed.billed_until(reader)
            if changed > BIG_LOAD:
                give_back_freed_memory()
            self.nas_types = sessionfeed.nas_types(reader)
        refs, seq, touched = sessionfeed.open_session_refs(reader, self.session_version)
        if self.session_version == 0:
            self.sessions, self.online = {}, {}
        for name, user_refs in refs.items():
            key = username_key(name)
            before = {r.acct_session_id for r in self.sessions.get(key, ())}
            # sessions opened since the last read, including any already closed again
            new = len(touched.get(key, set()) - before)
            if new:
                self.opened[key] = self.opened.get(key, 0) + new
            if user_refs:
                self.sessions[key] = user_refs
                self.online[key] = len(user_refs)
            else:
                self.sessions.pop(key, None)
                self.online.pop(key, None)
        counts = refs
        self.session_version = seq
        self.loaded = True
        return changed + len(counts)


class SnapshotRefresher(threading.Thread):
    """Keeps an :class:`AuthSnapshot` current. Never raises; logs and backs off instead."""

    def __init__(
        self,
        snapshot: AuthSnapshot,
        engine: str | Any,
        box: SecretBox,
        poll_seconds: float = 0.25,
        max_backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        listener: ChangeListener | None = None,
        save_to: Path | None = None,
        save_seconds: float = SAVE_SECONDS,
    ) -> None:
        super().__init__(name="radbill-snapshot", daemon=True)
        # where the snapshot is saved for a fast restart: after the first load, then every
        # save_seconds if it changed. Not at shutdown: at a million subscribers that would
        # hold a restart up for seconds, and a restart from an older file only reads more
        # of the change feed.
        self.save_to = save_to
        self.save_seconds = save_seconds
        self._last_save: float | None = None
        self.snapshot = snapshot
        # where to read: radbill's database URL (a connection of the refresher's own, through
        # the driver: no SQLAlchemy inside FreeRADIUS), or a SQLAlchemy engine (tests, tools)
        self.engine = engine
        self._reader: Reader | None = None
        self._reader_of: Any = None
        self.box = box
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.clock = clock
        # PostgreSQL: woken by NOTIFY at every change (see radbill.db.bump); polling stays
        # the fallback when there is no listener or it fails
        self.listener = listener
        self.listening = False
        self._listen_retry_at = 0.0
        self._stop_event = threading.Event()
        self._failures = 0

    def _open(self) -> Reader:
        """The refresher's connection, (re)made if there is none or :attr:`engine` changed."""
        if self._reader is None or self._reader_of is not self.engine:
            self._close()
            source = self.engine
            self._reader = (connect(source, application_name="radbill-policy")
                            if isinstance(source, str) else Reader.of_engine(source))
            self._reader_of = source
        return self._reader

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._reader_of = None

    def _read(self) -> int:
        reader = self._open()
        with reader.transaction():
            return self.snapshot.refresh(reader, self.box)

    def refresh_once(self) -> bool:
        """One refresh; True on success."""
        try:
            kept = self._reader is not None and self._reader_of is self.engine
            try:
                changed = self._read()
            except Exception:
                if not kept:
                    raise
                # the connection kept since the last refresh may have died idle (a database
                # restart, an idle timeout): one try on a new one before calling it an outage
                self._close()
                changed = self._read()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last snapshot
            self._failures += 1
            self.snapshot.healthy = False
            self.snapshot.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            # Loud at the first failure and every ~30 s after, not at every poll.
            if self._failures == 1 or self._failures % max(1, int(30 / self.poll_seconds)) == 0:
                age = (
                    f"{self.clock() - self.snapshot.last_refresh_ok:.0f}s old"
                    if self.snapshot.last_refresh_ok is not None
                    else "never loaded: not answering Access-Requests"
                )
                log.error("DATABASE UNREACHABLE: authorizing from the last snapshot (%s, %d "
                          "subscribers); retrying. %s", age, self.snapshot.size,
                          self.snapshot.last_error)
            self._close()  # a new connection next time
            return False
        if self._failures:
            log.warning("database reachable again after %d failed refreshes; snapshot current",
                        self._failures)
        elif changed and not self.snapshot.healthy:
            log.info("snapshot loaded: %d subscribers, %d plans, %d users online",
                     self.snapshot.size, len(self.snapshot.plans),
                     len(self.snapshot.online))
        self._failures = 0
        self.snapshot.healthy = True
        self.snapshot.last_refresh_ok = self.clock()
        return True

    def save_if_due(self) -> None:
        """Save the snapshot if it changed since it was last saved (or read from the file),
        at most every :attr:`save_seconds` once saved in this run."""
        snap = self.snapshot
        if self.save_to is None or not snap.loaded or snap.auth_version == snap.saved_version:
            return
        if self._last_save is None or self.clock() - self._last_save >= self.save_seconds:
            self.save()

    def merge_saved(self) -> None:
        """Read a mapped saved snapshot into memory (once); a failure is logged, and the
        file stays mapped and answering."""
        if self.snapshot._saved is None:
            return
        started = time.monotonic()
        try:
            count = self.snapshot.merge_saved()
        except (OSError, ValueError) as exc:
            log.error("saved snapshot not read into memory (%s); answering from the file", exc)
            return
        log.info("saved snapshot read into memory: %d subscribers in %.1f s", count,
                 time.monotonic() - started)

    def save(self) -> None:
        """Save the snapshot to :attr:`save_to` (if set); a failure is logged, never raised."""
        if self.save_to is None:
            return
        self._last_save = self.clock()
        try:
            self.snapshot.save(self.save_to)
        except OSError as exc:
            log.warning("snapshot not saved to %s: %s", self.save_to, exc)

    def run(self) -> None:
        while not self._stop_event.is_set():
            ok = self.refresh_once()
            if ok:
                self.merge_saved()  # answering meanwhile: from the mapped file
                self.save_if_due()  # here, not in refresh_once: never before the first answer
            delay = self.poll_seconds if ok else min(
                self.max_backoff, self.poll_seconds * 2 ** min(self._failures, 6)
            )
            self.wait_for_change(delay)

    LISTEN_RETRY_S = 30.0
    STOP_SLICE_S = 0.25

    def wait_for_change(self, delay: float) -> bool:
        """Wait until the next refresh: *delay* seconds, or less when the database notifies
        a change. True if a notification woke it. A listener that fails is dropped for
        :attr:`LISTEN_RETRY_S` (polling meanwhile), with one log line each way."""
        listener = self.listener
        if listener is None or self.clock() < self._listen_retry_at:
            self._stop_event.wait(delay)
            return False
        try:
            listener.connect()
            if not self.listening:
                log.info("listening for changes: a change is applied when it commits")
                self.listening = True
            # in slices, so that stop() is not held up by a long poll interval
            end = time.monotonic() + delay
            while not self._stop_event.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                if listener.wait(min(left, self.STOP_SLICE_S)):
                    return True
            return False
        except Exception as exc:  # noqa: BLE001 - polling goes on; retried later
            if self.listening or not self._listen_retry_at:
                log.warning("change notifications unavailable (%s): polling every %d ms",
                            f"{type(exc).__name__}: {exc}".splitlines()[0],
                            round(self.poll_seconds * 1000))
            self.listening = False
            self._listen_retry_at = self.clock() + self.LISTEN_RETRY_S
            self._stop_event.wait(delay)
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        if not self.is_alive():
            self._close()
            if self.listener is not None:
                self.listener.close()
