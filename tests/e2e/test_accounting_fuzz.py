"""Fuzz: thousands of random and malformed accounting and access packets through the real
FreeRADIUS, interleaved with valid ones; afterwards every valid record has arrived, every
record with bad content is set aside (or stored bounded, as :mod:`radius.bounds` decides),
and the ingester has read both spools to their end: nothing stopped it.

Packets are built by hand (``tests.e2e.rawradius``): pyrad refuses to build most of these.
A NAS retransmits until it is answered, so valid packets and well-formed bad ones wait for
their answer (and are thereby in the detail file, in order); structurally malformed ones
(which FreeRADIUS drops before the detail file) and random ones are sent without waiting.
The seed is fixed: the same packets every run."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from radbill.db import session_factory
from radius import rejects
from radius.ingest import FAILED_ALONE
from radius.models import DetailCursor, PostAuth, RadiusSession, RejectedRecord
from tests.e2e.rawradius import (
    ATTR,
    STATUS,
    access_request,
    accounting_request,
    u32,
)
from tests.e2e.server import SECRET, RadiusServer, wait_for
from tests.factories import make_subscriber

pytestmark = pytest.mark.e2e
SEED = 20261125
SESSIONS = 150  # valid sessions: Start, 2-4 Interims, a Stop for most
LOGINS = 120  # valid Access-Requests
BAD_ACCT = 700  # well-formed accounting with bad content
BAD_AUTH = 300  # well-formed Access-Requests with bad content
JUNK = 2500  # structurally malformed or random packets
G = 2**32
NAS = bytes([127, 0, 0, 1])
USERS = [f"fz-u{i}" for i in range(8)]  # subscribers for the logins
PASSWORD = "s3cret"


def attr(name: str, value: bytes | int | str) -> tuple[int, bytes]:
    if isinstance(value, int):
        return ATTR[name], u32(value)
    return ATTR[name], value.encode() if isinstance(value, str) else value


def counters(total_in: int, total_out: int) -> list[tuple[int, bytes]]:
    return [attr("Acct-Input-Octets", total_in & 0xFFFFFFFF),
            attr("Acct-Input-Gigawords", total_in >> 32),
            attr("Acct-Output-Octets", total_out & 0xFFFFFFFF),
            attr("Acct-Output-Gigawords", total_out >> 32)]


# -- what is sent -----------------------------------------------------------------------------


@dataclass
class Packet:
    """One datagram: to which port, whether to wait for its answer (and retransmit)."""

    data: Callable[[int], bytes]  # built for an identifier
    port: str  # "acct" | "auth"
    wait: bool


@dataclass
class Plan:
    """Everything sent, and what must be true afterwards."""

    sources: list[list[Packet]] = field(default_factory=list)  # each sent in its own order
    sessions: dict[str, tuple[int, int, bool, str | None, str | None]] = field(
        default_factory=dict)  # sid -> input, output, stopped, cause, nas_port_id
    logins: set[str] = field(default_factory=set)  # Calling-Station-Id of each valid login
    set_aside: dict[str, str] = field(default_factory=dict)  # marker -> reason starts with
    kept: dict[str, Callable[[RadiusSession], bool]] = field(default_factory=dict)
    logged: dict[str, Callable[[PostAuth], bool]] = field(default_factory=dict)
    jumps: set[str] = field(default_factory=set)  # sids that got an implausible Interim


def acct(attrs: list[tuple[int, bytes]], wait: bool = True, **kw: int) -> Packet:
    return Packet(lambda ident: accounting_request(SECRET.encode(), attrs, ident=ident, **kw),
                  "acct", wait)


def auth(attrs: list[tuple[int, bytes]], wait: bool = True, **kw: bool) -> Packet:
    return Packet(lambda _ident: access_request(SECRET.encode(), attrs, **kw), "auth", wait)


def valid_sessions(rnd: random.Random, plan: Plan) -> None:
    for n in range(SESSIONS):
        sid, user = f"fzA-{n:04d}", f"fz-acct{n % 40}"
        port = (f"ether{n % 8}-vlan{100 + n} pppoe-server dhaka-fiber-residential-"
                f"{'x' * rnd.randint(0, 160)}")  # NAS-Port-Ids longer than 64 are real
        head = [attr("Acct-Session-Id", sid), attr("User-Name", user),
                attr("NAS-IP-Address", NAS), attr("NAS-Port-Id", port),
                attr("Framed-IP-Address", bytes([10, 9, n // 250, n % 250 + 1])),
                attr("Calling-Station-Id", f"02:00:00:00:{n // 256:02X}:{n % 256:02X}")]
        seq = [acct([attr("Acct-Status-Type", STATUS["Start"]), *head,
                     attr("Acct-Session-Time", 0), *counters(0, 0)])]
        total_in = total_out = 0
        interims = rnd.randint(2, 4)
        for k in range(1, interims + 1):
            # up to ~100 GB per step (Gigawords well used); the NAS reports 60 s apart
            total_in += rnd.randint(0, 25 * G)
            total_out += rnd.randint(0, 5 * G)
            seq.append(acct([attr("Acct-Status-Type", STATUS["Interim-Update"]), *head,
                             attr("Acct-Session-Time", 60 * k), *counters(total_in, total_out)]))
            if k == 1 and n % 10 == 3:  # a NAS's garbage: Gigawords 2^31-1 in one Interim
                seq.append(acct([attr("Acct-Status-Type", STATUS["Interim-Update"]), *head,
                                 attr("Acct-Session-Time", 60 * k + 30),
                                 *counters((2**31 - 1) * G, total_out)]))
                plan.jumps.add(sid)
        stopped = n % 3 != 0
        cause = None
        if stopped:
            cause = "User-Request"
            seq.append(acct([attr("Acct-Status-Type", STATUS["Stop"]), *head,
                             attr("Acct-Session-Time", 60 * interims + 10),
                             *counters(total_in, total_out), attr("Acct-Terminate-Cause", 1)]))
        plan.sources.append(seq)
        plan.sessions[sid] = (total_in, total_out, stopped, cause, port)


def valid_logins(rnd: random.Random, plan: Plan) -> None:
    for n in range(LOGINS):
        csid = f"fzB-{n:04d}"
        plan.sources.append([auth([attr("User-Name", rnd.choice(USERS)),
                                   attr("User-Password", PASSWORD),
                                   attr("NAS-IP-Address", NAS), attr("Service-Type", 2),
                                   attr("Framed-Protocol", 1), attr("NAS-Port-Type", 15),
                                   attr("Calling-Station-Id", csid)])])
        plan.logins.add(csid)


Attrs = list[tuple[int, bytes]]
# What a bad accounting record must lead to: set aside with a reason containing the text,
# or stored as a session (keyed on the marker) for which the check holds.
Outcome = tuple[str, str] | tuple[str, Callable[[RadiusSession], bool]]


def bad_accounting(rnd: random.Random, plan: Plan) -> None:
    """Well-formed packets FreeRADIUS writes to the detail file, with content radbill must
    set aside (marker in Calling-Station-Id) or store bounded (marker in the session id)."""

    def case(n: int, m: str) -> tuple[Attrs, Outcome]:
        status = attr("Acct-Status-Type", STATUS[rnd.choice(["Start", "Interim-Update",
                                                              "Stop"])])
        base = [status, attr("NAS-IP-Address", NAS), attr("Calling-Station-Id", m)]
        user, sid = attr("User-Name", f"fz-bad{n % 7}"), attr("Acct-Session-Id", m)
        gw = rnd.randint(2**31, 2**32 - 1)
        cases: list[tuple[Attrs, Outcome]] = [
            ([*base, attr("User-Name", f"fz\x00{n}"), sid], ("aside", "User-Name=")),
            ([*base, user, attr("Acct-Session-Id", f"{m}\x00x")],
             ("aside", "Acct-Session-Id=")),
            ([*base, attr("User-Name", b"fz\xff\xfe" + bytes([n % 256])), sid],
             ("aside", "User-Name=")),
            ([*base, user, sid, attr("Acct-Output-Gigawords", gw)],
             ("aside", f"Acct-Output-Gigawords={gw} makes a counter")),
            ([attr("Acct-Status-Type", rnd.choice([0, 4, 5, 6, 15, 99, 2**32 - 1])),
              *base[1:], user, sid], ("aside", "Acct-Status-Type")),
            ([*base[1:], user, sid], ("aside", "Acct-Status-Type '' is not handled")),
            ([*base, sid], ("aside", "without User-Name or Acct-Session-Id")),
            ([*base, user, attr("Acct-Session-Id", b"s\xc3(" + m.encode())],
             ("aside", "Acct-Session-Id=")),
            # an implausible first record: a pebibyte in 10 s
            ([*base, user, sid, attr("Acct-Session-Time", 10), *counters(2**50, 0)],
             ("aside", "input counter jumps by")),
            # stored, bounded: a 253-character NAS-Port-Id, a NUL in the MAC, a
            # NUL-terminated User-Name (a C-string NAS): nothing set aside
            ([status, attr("NAS-IP-Address", NAS), attr("User-Name", "fz-c\x00"), sid,
              attr("NAS-Port-Id", "p" * 253), attr("Calling-Station-Id", b"AA:BB\x00CC")],
             ("kept", lambda r: (r.username == "fz-c" and r.nas_port_id == "p" * 253
                                 and r.calling_station_id == "AA:BB\ufffdCC"))),
            # stored, bounded: bytes that are not UTF-8 in display text, a short address
            ([status, attr("NAS-IP-Address", NAS), user, sid,
              attr("NAS-Port-Id", b"ether\xff1"), attr("Framed-IP-Address", b"\x0a\x00")],
             ("kept", lambda r: r.nas_port_id == "ether\ufffd1" and r.framed_ip is None)),
            # integers of the wrong length: FreeRADIUS passes them on as raw Attr-N, so the
            # counters are simply absent (0): stored, nothing set aside
            ([status, attr("NAS-IP-Address", NAS), user, sid,
              (ATTR["Acct-Input-Octets"], b"\x01\x02\x03"),
              (ATTR["Acct-Session-Time"], b"\x00" * 7)],
             ("kept", lambda r: r.input_octets == 0 and r.session_time == 0)),
        ]
        return cases[n % len(cases)]

    for n in range(BAD_ACCT):
        m = f"fzC-{n:04d}"
        attrs, (what, expect) = case(n, m)
        if what == "aside":
            plan.set_aside[m] = expect  # type: ignore[assignment]
        else:
            plan.kept[m] = expect  # type: ignore[assignment]
        plan.sources.append([acct(attrs)])


def bad_logins(rnd: random.Random, plan: Plan) -> None:
    """Well-formed Access-Requests with bad content: each is answered and logged, with
    its fields bounded (marker at the start of Calling-Station-Id)."""
    for n in range(BAD_AUTH):
        m = f"fzD-{n:04d}"
        kind = n % 6
        user: bytes = {0: f"fz-u{n % 8}\x00x".encode(), 1: b"fz\xff" + bytes([n % 256]),
                       2: b"u" * 253, 3: rnd.choice(USERS).encode(), 4: b"fz-u1",
                       5: b"\x01\x02\x1b[31m"}[kind]
        csid = {3: m.encode() + b"c" * (253 - len(m)), 4: m.encode() + b"\x00tail",
                5: m.encode() + b"\xff\xfe"}.get(kind, m.encode())
        attrs = [attr("User-Name", user), attr("User-Password", rnd.choice([PASSWORD, "x"])),
                 attr("NAS-IP-Address", NAS), attr("Calling-Station-Id", csid)]
        plan.sources.append([auth(attrs)])
        if kind == 3:
            plan.logged[m] = lambda r: len(r.calling_station_id or "") == 253
        elif kind == 5:
            plan.logged[m] = lambda r: (r.calling_station_id or "").endswith("\ufffd\ufffd")
        else:
            plan.logged[m] = lambda r: True


def fixed(data: bytes, port: str) -> Packet:
    """A datagram sent as it is, without waiting."""
    return Packet(partial(_same, data), port, False)


def _same(data: bytes, _ident: int) -> bytes:
    return data


def junk(rnd: random.Random, plan: Plan) -> None:
    """Structurally malformed or random datagrams, sent without waiting for an answer."""
    secret = SECRET.encode()

    def random_attrs() -> list[tuple[int, bytes]]:
        return [(rnd.randint(1, 255), rnd.randbytes(rnd.randint(0, 40)))
                for _ in range(rnd.randint(0, 12))]

    def random_bytes() -> Packet:
        return fixed(rnd.randbytes(rnd.randint(0, 200)), rnd.choice(["acct", "auth"]))

    def lying_length() -> Packet:
        return fixed(accounting_request(secret, [attr("Acct-Status-Type", 1),
                                                 attr("User-Name", "fz-j")],
                                        length_delta=rnd.choice([-30, -3, 5, 200, 5000])),
                     "acct")

    def bad_attribute_length() -> Packet:  # length 0 or 1, or running past the end
        tail = bytes([ATTR["User-Name"], rnd.choice([0, 1, 250])])
        return fixed(accounting_request(secret, [attr("Acct-Status-Type", 1)],
                                        raw_tail=tail + rnd.randbytes(rnd.randint(1, 30))),
                     "acct")

    def wrong_secret() -> Packet:
        return fixed(accounting_request(b"wrong", [attr("Acct-Status-Type", 1),
                                                   attr("User-Name", "fz-w"),
                                                   attr("Acct-Session-Id", "w")]), "acct")

    def random_accounting() -> Packet:  # correctly signed, random attributes
        return fixed(accounting_request(secret, random_attrs()), "acct")

    def random_access() -> Packet:  # with and without Message-Authenticator
        return fixed(access_request(secret, [(ATTR["User-Name"], b"fz-r"), *random_attrs()],
                                    message_authenticator=rnd.random() < 0.8), "auth")

    def short_password() -> Packet:  # not a multiple of 16 octets, junk after it
        tail = bytes([ATTR["User-Password"], 7]) + b"12345" + rnd.randbytes(rnd.randint(1, 9))
        return fixed(access_request(secret, [(ATTR["User-Name"], b"fz-u1")], raw_tail=tail),
                     "auth")

    makers = [random_bytes, lying_length, bad_attribute_length, wrong_secret,
              random_accounting, random_access, short_password]
    plan.sources += [[rnd.choice(makers)()] for _ in range(JUNK)]


def build() -> Plan:
    rnd = random.Random(SEED)
    plan = Plan()
    valid_sessions(rnd, plan)
    valid_logins(rnd, plan)
    bad_accounting(rnd, plan)
    bad_logins(rnd, plan)
    junk(rnd, plan)
    return plan


def interleave(rnd: random.Random, sources: list[list[Packet]]) -> list[Packet]:
    """All packets, sources mixed at random, each source's own order kept."""
    pending = [list(reversed(s)) for s in sources if s]
    out = []
    while pending:
        i = rnd.randrange(len(pending))
        out.append(pending[i].pop())
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return out


# -- how it is sent ---------------------------------------------------------------------------


class Nas:
    """Sends like a NAS: waits for an answer and retransmits (valid packets), or just sends.
    Sockets are renewed every 200 identifiers so no identifier is reused while FreeRADIUS
    may still hold the previous packet that had it; a packet sent without waiting goes from
    a socket of its own. (Junk sent from one port, every packet with identifier 0, made
    FreeRADIUS 3.2.7 log "Received conflicting packet ... Giving up on old request" hundreds
    of times and, once in some runs, die of SIGSEGV right after "Module detail_acct became
    unblocked": its own bug on a request it gives up while a module still holds it, which no
    NAS triggers, as a NAS never reuses an identifier it is still waiting on.)"""

    def __init__(self, server: RadiusServer) -> None:
        self.ports = {"acct": server.acct_port, "auth": server.auth_port}
        self.sock: socket.socket | None = None
        self.ident = 0
        self.retransmits = 0

    def send(self, packet: Packet) -> int | None:
        dest = ("127.0.0.1", self.ports[packet.port])
        if not packet.wait:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
                junk.sendto(packet.data(0), dest)
            return None
        if self.sock is None or self.ident % 200 == 0:
            if self.sock is not None:
                self.sock.close()
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.settimeout(0.5)
        data = packet.data(self.ident % 256)
        ident = data[1]  # (access_request picks its own)
        self.ident += 1
        for _ in range(20):
            self.sock.sendto(data, dest)
            try:
                while True:
                    reply = self.sock.recv(4096)
                    if reply[1] == ident:
                        return reply[0]
            except TimeoutError:
                self.retransmits += 1
        raise AssertionError(f"no answer to a valid packet after 20 tries: {data[:40]!r}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


# -- the test ---------------------------------------------------------------------------------


def spool_end(spool: Path, stream: str) -> tuple[str, int] | None:
    files = sorted((spool / stream).glob("detail-*"))
    return (files[-1].name, files[-1].stat().st_size) if files else None


def test_fuzz_every_valid_record_arrives_and_every_bad_one_is_set_aside(
        radius: RadiusServer, seeded: Engine, server_box: object) -> None:
    with session_factory(seeded)() as s, s.begin():
        for user in USERS:
            # 120 logins from as many devices among 8 users, never stopped: each counts
            # toward Simultaneous-Use from its accept (a provisional session), so allow them
            make_subscriber(s, server_box, username=user, password=PASSWORD,  # type: ignore[arg-type]
                            simultaneous_use=100)
    c = radius.client()
    wait_for(lambda: all(c.authenticate(u, PASSWORD).accepted for u in USERS), timeout=10)

    plan = build()
    packets = interleave(random.Random(SEED + 1), plan.sources)
    assert len(packets) > 4000
    nas = Nas(radius)
    started = time.monotonic()
    try:
        answers = [nas.send(p) for p in packets]
    except AssertionError:
        # FreeRADIUS stopped answering: keep what it and the policy said, for whoever looks
        out = Path(__file__).resolve().parents[2] / "test-artifacts" / "fuzz"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"radius-{time.strftime('%Y%m%d-%H%M%S')}.log").write_text(radius.log)
        raise
    finally:
        nas.close()
    sent_in = time.monotonic() - started
    waited = [a for a, p in zip(answers, packets, strict=True) if p.wait]
    assert all(a in (2, 3, 5) for a in waited)

    # the ingester reads both spools to their very end: nothing stopped it
    factory = session_factory(seeded)

    def caught_up() -> bool:
        with factory() as s:
            for stream in ("acct", "postauth"):
                end = spool_end(radius.spool, stream)
                cur = s.get(DetailCursor, (radius.node, stream))
                if end is None or cur is None or (cur.file_name, cur.offset) != end:
                    return False
        return True

    # junk sent last may still be in FreeRADIUS: caught up twice, half a second apart
    wait_for(lambda: caught_up() and (time.sleep(0.5) or caught_up()), timeout=60,
             interval=0.2)

    with factory() as s:
        rows = {r.acct_session_id: r for r in s.scalars(select(RadiusSession))}
        aside = [rejects.summary(r) for r in s.scalars(select(RejectedRecord))]
        log = list(s.scalars(select(PostAuth)))

    # every valid accounting record arrived: exact counters, state and NAS-Port-Id, and the
    # NAS's garbage Interims left no trace in them
    for sid, (total_in, total_out, stopped, cause, port) in plan.sessions.items():
        row = rows.get(sid)
        assert row is not None, sid
        assert (row.input_octets, row.output_octets, row.stopped_at is not None,
                row.terminate_cause, row.nas_port_id) == (total_in, total_out, stopped, cause,
                                                          port), sid
    # every valid login is in the post-auth log, accepted
    accepted = {r.calling_station_id for r in log if r.decision == "accept"}
    assert plan.logins <= accepted

    # every bad record FreeRADIUS passed on is set aside with its reason...
    by_marker: dict[str, list[str]] = {}
    for entry in aside:
        marker = entry["record"].get("Calling-Station-Id") or entry["acct_session_id"] or ""
        by_marker.setdefault(marker, []).append(entry["reason"])
    for marker, why in plan.set_aside.items():
        assert [r for r in by_marker.get(marker, []) if why in r], (marker, why,
                                                                     by_marker.get(marker))
    # ...every one of them by validation, before the database: nothing reached it and failed
    assert not [e for e in aside if e["reason"].startswith(FAILED_ALONE)]
    # ...the garbage Interims on valid sessions too...
    jumps = {e["acct_session_id"] for e in aside if e["reason"].startswith("input counter")}
    assert plan.jumps <= jumps
    # ...or, where only a label was wrong, stored bounded
    for marker, ok in plan.kept.items():
        assert marker in rows and ok(rows[marker]), marker
        assert marker not in by_marker
    logged = {(r.calling_station_id or "")[:8]: r for r in log}
    for marker, ok in plan.logged.items():
        assert marker in logged and ok(logged[marker]), marker
    # one alert for the whole burst
    from radbill.ops import Alert

    with factory() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.kind == rejects.ALERT_KIND)))
    assert len(alerts) == 1 and (alerts[0].data or {})["count"] == len(aside)
    print(f"\nfuzz: {len(packets)} packets sent in {sent_in:.1f} s "
          f"({nas.retransmits} retransmissions), {len(rows)} sessions, {len(log)} post-auth "
          f"rows, {len(aside)} records set aside")
