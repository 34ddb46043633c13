"""In-memory state of the RADIUS hot path that the database cannot give in time. Pure.

- :class:`LoginThrottle`: per-user failed-login counts. After a run of wrong passwords a user's
  further attempts are refused without a password check, for a lock that doubles with each
  further failure (bounded), except from the device that last logged in successfully, so a
  guesser elsewhere cannot lock the subscriber out of its own router.
- :class:`ProvisionalSessions`: an accepted login counts toward Simultaneous-Use from the
  Accept, not from the moment its Start has gone through the spool and the snapshot (PPPoE
  Starts come seconds after the Accept). It lapses when its Start is seen or after a
  configurable time.
- :func:`same_device`: the open sessions a new login replaces (same NAS and same
  Calling-Station-Id or NAS-Port-Id): a router that lost power without Accounting-Stop/On
  leaves them behind, and the subscriber's redial must not be "already logged in".

Everything here runs inside rlm_python3, whose calls are serialised: no locks, no I/O, and
every table is bounded so a flood of made-up names cannot grow memory without limit. Every
login writes here, so what a login leaves behind is kept small: slotted records, plain
dictionaries (insertion-ordered: the oldest first) rather than ``OrderedDict`` (a linked
node per entry), a provisional session as one flat tuple holding the same key and station
strings as the trusted device (not each request's own copies: about 315 bytes a login while
it lives, 615 before), a trusted device stored only when it changes, and provisional sessions
dropped as soon as they lapse rather than when the user next logs in (at 1,000 logins a
second, 90 s worth instead of the last 100,000 users).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

MAX_USERS = 100_000  # entries kept per table; the oldest go first


_SEPARATORS = str.maketrans("", "", ":-. ")
_HEX12 = re.compile(r"[0-9a-f]{12}")


def station_key(calling_station_id: str | None) -> str | None:
    """A Calling-Station-Id to compare: a MAC in any spelling (``AA-BB-..``, ``aabb.cc..``)
    as ``aa:bb:..``, anything else in lower case."""
    if not calling_station_id:
        return None
    text = calling_station_id.strip().lower()
    digits = text.translate(_SEPARATORS)
    if _HEX12.fullmatch(digits):
        return ":".join((digits[0:2], digits[2:4], digits[4:6], digits[6:8], digits[8:10],
                         digits[10:12]))
    return text or None


@dataclass(frozen=True)
class SessionRef:
    """An open accounting session as the snapshot knows it."""

    nas_ip: str
    acct_session_id: str
    calling_station_id: str | None = None
    nas_port_id: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """Where a login comes from: the NAS and the subscriber's port or device on it."""

    nas_ip: str | None
    calling_station_id: str | None = None
    nas_port_id: str | None = None

    @property
    def identified(self) -> bool:
        """True if the port or device on the NAS is known."""
        return bool(self.nas_ip and (self.calling_station_id or self.nas_port_id))

    def matches(self, nas_ip: str | None, calling_station_id: str | None,
                nas_port_id: str | None) -> bool:
        """Same NAS, and the same Calling-Station-Id (case-insensitive: MAC spellings
        differ) or the same NAS-Port-Id."""
        if not self.nas_ip or self.nas_ip != nas_ip:
            return False
        if self.calling_station_id and calling_station_id:
            return station_key(self.calling_station_id) == station_key(calling_station_id)
        return bool(self.nas_port_id and self.nas_port_id == nas_port_id)


def same_device(refs: tuple[SessionRef, ...], device: Device) -> list[SessionRef]:
    """The open sessions a login from *device* replaces."""
    return [r for r in refs
            if device.matches(r.nas_ip, r.calling_station_id, r.nas_port_id)]


def _bound(table: dict[str, object], limit: int) -> None:
    # a plain dict keeps insertion order: its first key is the one touched longest ago,
    # as long as a touched key is popped and inserted again (see _touch)
    while len(table) > limit:
        del table[next(iter(table))]


def _touch(table: dict[str, object], key: str, value: object) -> None:
    """Set *key* and make it the newest."""
    table.pop(key, None)
    table[key] = value


@dataclass(slots=True)
class _Failures:
    count: int
    first_at: float
    locked_until: float = 0.0


class LoginThrottle:
    """Per-user failed-login throttling. Times are monotonic seconds passed in."""

    def __init__(self, max_failures: int = 5, window: float = 900.0, base_lock: float = 30.0,
                 max_lock: float = 900.0, max_users: int = MAX_USERS) -> None:
        self.max_failures = max_failures
        self.window = window
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.max_users = max_users
        self._failures: dict[str, _Failures] = {}
        self._trusted: dict[str, str] = {}

    def blocked(self, user: str, calling_station_id: str | None, now: float) -> bool:
        """True if this attempt is to be refused without checking its password."""
        entry = self._failures.get(user)
        if entry is None or entry.locked_until <= now:
            return False
        trusted = self._trusted.get(user)
        return not (trusted and calling_station_id
                    and trusted == station_key(calling_station_id))

    def failure(self, user: str, now: float) -> None:
        """A wrong password for *user*."""
        entry = self._failures.get(user)
        if entry is None or (now - entry.first_at > self.window and entry.locked_until <= now):
            entry = _Failures(0, now)
        entry.count += 1
        if entry.count >= self.max_failures:
            extra = min(entry.count - self.max_failures, 16)
            entry.locked_until = now + min(self.base_lock * 2 ** extra, self.max_lock)
        _touch(self._failures, user, entry)  # type: ignore[arg-type]
        _bound(self._failures, self.max_users)  # type: ignore[arg-type]

    def trusted_station(self, user: str) -> str | None:
        """The station trusted for *user* (None if none), for
        :meth:`ProvisionalSessions.add` to share the string."""
        return self._trusted.get(user)

    def success(self, user: str, calling_station_id: str | None) -> None:
        """A right password: forget the failures, trust this device. *calling_station_id*
        already in :func:`station_key`'s form is stored as given (the same object as the
        provisional session's: see :meth:`ProvisionalSessions.stored`)."""
        self._failures.pop(user, None)
        key = station_key(calling_station_id)
        if key == calling_station_id:
            key = calling_station_id
        if key and self._trusted.get(user) != key:
            # only a change is stored: a re-login from the same device keeps the string
            # already there (and its age: the oldest trust goes first when the table is full)
            _touch(self._trusted, user, key)  # type: ignore[arg-type]
            _bound(self._trusted, self.max_users)  # type: ignore[arg-type]


class _Provisional(NamedTuple):
    """One accepted login, flat: no :class:`Device` object, and every string shared with
    the other tables (see :meth:`ProvisionalSessions.add`)."""

    user: str  # the key the user is stored under (the same object for all its entries)
    nas_ip: str | None
    calling_station_id: str | None
    nas_port_id: str | None
    expires: float
    base: int  # how many sessions of the user the snapshot had seen open at the Accept

    def same_device(self, device: Device) -> bool:
        return (self.nas_ip == device.nas_ip
                and self.calling_station_id == device.calling_station_id
                and self.nas_port_id == device.nas_port_id)


MAX_NAMES = 4_096  # NAS addresses and port ids kept to share between entries


class ProvisionalSessions:
    """Accepted logins whose Start has not been seen yet.

    A Start is recognised by the snapshot's count of sessions it has seen open for the user
    (:attr:`~radius.snapshot.AuthSnapshot.opened`), not by the sessions open now: a session
    may start and end again before the user's next login is decided, and its provisional
    session must not outlive it. Starts are matched to provisional sessions oldest first.

    A login is one flat tuple (a user's several, a tuple of them); the user's key, the NAS
    address and the port id are each stored once (every request brings its own copy of each
    string: the NAS addresses and the commonest port ids are shared through a small bounded
    table).
    """

    def __init__(self, lifetime: float = 90.0, max_users: int = MAX_USERS,
                 max_per_user: int = 64) -> None:
        self.lifetime = lifetime
        self.max_users = max_users
        self.max_per_user = max_per_user
        # a user's one provisional session as it is, several as a tuple (oldest first)
        self._by_user: dict[str, _Provisional | tuple[_Provisional, ...]] = {}
        self._names: dict[str, str] = {}

    def entries(self, user: str) -> tuple[_Provisional, ...]:
        """The provisional sessions of *user*, oldest first."""
        stored = self._by_user.get(user, ())
        return (stored,) if isinstance(stored, _Provisional) else stored

    @staticmethod
    def _packed(entries: tuple[_Provisional, ...] | list[_Provisional]
                ) -> _Provisional | tuple[_Provisional, ...]:
        return entries[0] if len(entries) == 1 else tuple(entries)

    def _name(self, text: str | None) -> str | None:
        if text is None:
            return None
        names = self._names
        shared = names.get(text)
        if shared is None:
            if len(names) >= MAX_NAMES:
                names.clear()  # bounded: start again rather than grow
            shared = names[text] = text
        return shared

    def add(self, user: str, device: Device, opened: int, now: float,
            trusted_station: str | None = None) -> None:
        """An Access-Accept goes out for *user* from *device*; *opened* is the snapshot's
        count of the user's sessions seen open so far. *trusted_station*: the user's trusted
        station as :class:`LoginThrottle` stores it (:meth:`LoginThrottle.trusted_station`),
        kept instead of an equal copy."""
        old = self.entries(user)
        station = device.calling_station_id
        if trusted_station is not None and trusted_station == station:
            station = trusted_station
        if old:
            user = old[0].user  # the key already stored (the dict keeps it on re-insert)
        entries = [e for e in old if e.expires > now
                   and not (device.identified and e.same_device(device))]
        entries = entries[-(self.max_per_user - 1):]
        entries.append(_Provisional(user, self._name(device.nas_ip), station,
                                    self._name(device.nas_port_id), now + self.lifetime,
                                    opened))
        _touch(self._by_user, user, self._packed(entries))  # type: ignore[arg-type]
        _bound(self._by_user, self.max_users)  # type: ignore[arg-type]
        self._drop_lapsed(now)

    def stored(self, user: str, calling_station_id: str | None
               ) -> tuple[str, str | None]:
        """*user* and *calling_station_id* as the user's latest provisional session stores
        them (the same objects, for :meth:`LoginThrottle.success`), or as given."""
        entries = self.entries(user)
        if not entries:
            return user, calling_station_id
        latest = entries[-1]
        station = latest.calling_station_id
        return latest.user, station if station == calling_station_id else calling_station_id

    def _drop_lapsed(self, now: float) -> None:
        # users in the order of their latest accept, each list newest last: the first user's
        # newest entry lapses before anybody else's, so lapsed users are found at the front
        table = self._by_user
        while table:
            first = next(iter(table))
            stored = table[first]
            newest = stored if isinstance(stored, _Provisional) else stored[-1]
            if newest.expires > now:
                return
            del table[first]

    def count(self, user: str, opened: int, device: Device, now: float) -> int:
        """Provisional sessions of *user* still counting toward Simultaneous-Use against a
        login from *device*: not lapsed, not yet matched by a Start (*opened*, the user's
        sessions seen open so far, has not grown past them), and not from *device* itself
        (a redial replaces its own provisional session)."""
        entries = self.entries(user)
        if not entries:
            return 0
        live, used = [], 0
        for e in entries:  # oldest first
            if e.expires <= now:
                continue
            if opened - e.base - used > 0:
                used += 1  # this one's Start (or an earlier accept's, matched in turn)
                continue
            live.append(e)
        if len(live) != len(entries):
            if live:
                self._by_user[user] = self._packed(live)  # same key: the dict keeps the stored one
            else:
                del self._by_user[user]
        return sum(1 for e in live if not (device.identified and e.same_device(device)))

    def discard(self, user: str, device: Device) -> None:
        """Take back the latest provisional session of *user* from *device* (its login was
        rejected after all: the password was wrong)."""
        entries = self.entries(user)
        for i in range(len(entries) - 1, -1, -1):
            if entries[i].same_device(device):
                rest = entries[:i] + entries[i + 1:]
                if rest:
                    self._by_user[user] = self._packed(rest)
                else:
                    del self._by_user[user]
                break

    def __len__(self) -> int:
        return sum(1 if isinstance(v, _Provisional) else len(v) for v in self._by_user.values())
