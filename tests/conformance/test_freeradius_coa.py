"""radbill's RFC 5176 client (coa/radius.py) against FreeRADIUS itself as the CoA server.

FreeRADIUS 3.2 is configured as a NAS would listen (``listen { type = coa }``) with the
client's ``require_message_authenticator = yes``; its ``detail`` module writes down every
attribute of every request it accepted. FreeRADIUS checks what our packets claim: the
Request Authenticator (the shared secret), the Message-Authenticator (BlastRADIUS), the
attribute encoding (vendor 14988's Mikrotik-Rate-Limit included); and our client checks
FreeRADIUS's answers (Response Authenticator) before it counts an ACK.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyrad import packet

from billing.rates import RatePair
from coa.controller import NasRef, Outcome, PolicyChange, SessionRef
from coa.dictionary import dictionary
from coa.radius import CoaController
from coa.transport import RadiusTransport
from simulators.radius_client import free_udp_port
from tests.coa.aio import arun

SECRET = "coa-conformance-secret"
FREERADIUS = shutil.which("freeradius")

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(FREERADIUS is None, reason="FreeRADIUS is not installed")]

CONFIG = """
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${{exec_prefix}}/sbin
raddbdir = {dir}
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {dir}
logdir = {dir}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
name = freeradius
correct_escapes = true
log {{
	destination = stdout
}}
security {{
	require_message_authenticator = yes
	limit_proxy_state = yes
}}
client nas {{
	ipaddr = 127.0.0.1
	secret = "{secret}"
	require_message_authenticator = yes
}}
modules {{
	detail coa_detail {{
		filename = {dir}/detail-coa
		header = "%t"
		log_packet_header = yes
	}}
	always ok {{
		rcode = ok
	}}
}}
server coa {{
	listen {{
		type = coa
		ipaddr = 127.0.0.1
		port = {port}
	}}
	recv-coa {{
		coa_detail
		ok
	}}
	send-coa {{
		ok
	}}
}}
"""


@dataclass
class CoaServer:
    """FreeRADIUS listening for CoA/Disconnect on 127.0.0.1:*port*."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.dir / "radiusd.out").read_text(errors="replace")

    def request_pairs(self) -> list[list[tuple[str, str]]]:
        """Every request as (attribute, value) pairs in order, repeated attributes kept."""
        path = self.dir / "detail-coa"
        if not path.exists():
            return []
        return [[(n, v.strip('"')) for n, _, v in
                 (line.strip().partition(" = ") for line in block.splitlines()[1:])]
                for block in path.read_text().split("\n\n") if block.strip()]

    def requests(self) -> list[dict[str, str]]:
        """Every request FreeRADIUS accepted, as its detail module wrote it."""
        path = self.dir / "detail-coa"
        if not path.exists():
            return []
        out = []
        for block in path.read_text().split("\n\n"):
            attrs = {}
            for line in block.splitlines()[1:]:
                name, _, value = line.strip().partition(" = ")
                attrs[name] = value.strip('"')
            if attrs:
                out.append(attrs)
        return out


@pytest.fixture(scope="module")
def freeradius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoaServer]:
    assert FREERADIUS is not None
    d = tmp_path_factory.mktemp("freeradius-coa")
    port = free_udp_port()
    (d / "radiusd.conf").write_text(CONFIG.format(dir=d, port=port, secret=SECRET))
    (d / "dictionary").write_text("")  # FreeRADIUS's own dictionaries, nothing local
    out = (d / "radiusd.out").open("wb")
    # -X: one thread and every decision in the log (this is a conformance check, not a bench)
    proc = subprocess.Popen([FREERADIUS, "-X", "-d", str(d), "-n", "radiusd"], stdout=out,
                            stderr=subprocess.STDOUT)
    server = CoaServer(port, d, proc)
    deadline = time.monotonic() + 30
    while "Ready to process requests" not in server.log:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("FreeRADIUS did not start:\n" + server.log[-3000:])
        time.sleep(0.05)
    yield server
    proc.terminate()
    proc.wait(10)
    out.close()


def nas(server: CoaServer, secret: str = SECRET) -> NasRef:
    return NasRef(ip="127.0.0.1", secret=secret, coa_port=server.port)


ALICE = SessionRef("alice", "8100000a", "100.64.0.10")


def send(fn: Any) -> Any:
    async def main() -> Any:
        transport = await RadiusTransport(sockets=1).start()
        try:
            return await fn(CoaController(transport, timeout=0.5, retries=1))
        finally:
            transport.close()

    return arun(main())


def test_freeradius_acks_our_disconnect_request_and_reads_every_attribute(
        freeradius: CoaServer) -> None:
    before = len(freeradius.requests())
    sent_at = int(time.time())
    result = send(lambda c: c.disconnect(nas(freeradius), ALICE))
    assert result.outcome is Outcome.ACK, freeradius.log[-2000:]
    got = freeradius.requests()[before:]
    assert len(got) == 1
    req = got[0]
    assert req["Packet-Type"] == "Disconnect-Request"
    assert (req["User-Name"], req["Acct-Session-Id"], req["Framed-IP-Address"],
            req["NAS-IP-Address"]) == ("alice", "8100000a", "100.64.0.10", "127.0.0.1")
    assert req["Message-Authenticator"].startswith("0x") and len(req["Message-Authenticator"]) == 34
    stamp = time.strptime(req["Event-Timestamp"], "%b %d %Y %H:%M:%S %Z")
    assert abs(time.mktime(stamp) - time.mktime(time.gmtime(sent_at))) <= 5


def test_freeradius_acks_our_coa_request_with_the_mikrotik_attributes(
        freeradius: CoaServer) -> None:
    before = len(freeradius.requests())
    change = PolicyChange(rate_limit="1M/512k 2M/1M 768k/384k 8/8",
                          address_list="radbill-suspended")
    result = send(lambda c: c.change(nas(freeradius), ALICE, change))
    assert result.outcome is Outcome.ACK, freeradius.log[-2000:]
    req = freeradius.requests()[before:][0]
    assert req["Packet-Type"] == "CoA-Request"
    assert req["Mikrotik-Rate-Limit"] == "1M/512k 2M/1M 768k/384k 8/8"
    assert req["Mikrotik-Address-List"] == "radbill-suspended"


def test_no_empty_address_list_is_ever_sent(freeradius: CoaServer) -> None:
    """RFC 2865 section 5 has no zero-length values (FreeRADIUS drops one on decode): a change
    that takes a session out of every list sends the rate alone, and leaving the walled
    garden is a Disconnect (tests/coa/test_rules.py)."""
    before = len(freeradius.requests())
    change = PolicyChange(rate_limit="5M/20M", address_list="")
    assert send(lambda c: c.change(nas(freeradius), ALICE, change)).outcome is Outcome.ACK
    (req,) = freeradius.requests()[before:]
    assert req["Mikrotik-Rate-Limit"] == "5M/20M"
    assert "Mikrotik-Address-List" not in req


def test_a_wrong_secret_is_dropped_by_freeradius(freeradius: CoaServer) -> None:
    before = len(freeradius.requests())
    result = send(lambda c: c.disconnect(nas(freeradius, "not-the-secret"), ALICE))
    assert result.outcome is Outcome.TIMEOUT
    assert freeradius.requests()[before:] == []
    assert "Shared secret is incorrect" in freeradius.log


def test_a_request_without_message_authenticator_is_dropped(freeradius: CoaServer) -> None:
    """What radbill never sends, FreeRADIUS refuses: the check our client satisfies is real."""
    before = len(freeradius.requests())
    pkt = packet.CoAPacket(code=packet.DisconnectRequest, secret=SECRET.encode(),
                           dict=dictionary())
    pkt["User-Name"] = "alice"
    pkt["Event-Timestamp"] = int(time.time())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(pkt.RequestPacket(), ("127.0.0.1", freeradius.port))
        with pytest.raises(TimeoutError):
            s.recvfrom(4096)
    assert freeradius.requests()[before:] == []
    assert "does not contain required Message-Authenticator" in freeradius.log


GARDEN = PolicyChange(rate_limit="256k/256k", address_list="radbill-suspended",
                      rate=RatePair(256_000, 256_000))
PLAN_RATE = PolicyChange(rate_limit="5M/20M", rate=RatePair(20_000_000, 5_000_000))


@pytest.mark.parametrize(("nas_type", "change", "expected"), [
    ("accel-ppp", PLAN_RATE, [("Filter-Id", "20000/5000")]),
    ("wispr", PLAN_RATE, [("WISPr-Bandwidth-Max-Up", "5000000"),
                          ("WISPr-Bandwidth-Max-Down", "20000000")]),
    ("cisco", PLAN_RATE, [("Cisco-AVPair", "ip:sub-qos-policy-in=radbill-5000k"),
                          ("Cisco-AVPair", "ip:sub-qos-policy-out=radbill-20000k")]),
    ("cisco", GARDEN, [("Cisco-AVPair", "ip:inacl=radbill-suspended"),
                       ("Cisco-AVPair", "ip:sub-qos-policy-in=radbill-256k"),
                       ("Cisco-AVPair", "ip:sub-qos-policy-out=radbill-256k")]),
    # ERX-Service-Activate is a tagged attribute: sent untagged, FreeRADIUS reads tag 0
    ("juniper", PLAN_RATE, [("ERX-Service-Activate:0", "radbill-rate(20000000,5000000)")]),
    ("juniper", GARDEN, [("ERX-Ingress-Policy-Name", "radbill-suspended"),
                         ("ERX-Service-Activate:0", "radbill-rate(256000,256000)")]),
])
def test_freeradius_reads_each_nas_types_coa_attributes(freeradius: CoaServer, nas_type: str,
                                                        change: PolicyChange,
                                                        expected: list[tuple[str, str]]
                                                        ) -> None:
    """The profile's CoA form, decoded by FreeRADIUS with its own vendor dictionaries."""
    before = len(freeradius.request_pairs())
    ref = NasRef(ip="127.0.0.1", secret=SECRET, coa_port=freeradius.port, nas_type=nas_type)
    result = send(lambda c: c.change(ref, ALICE, change))
    assert result.outcome is Outcome.ACK and result.channel == "coa", freeradius.log[-2000:]
    pairs = freeradius.request_pairs()[before]
    assert ("Packet-Type", "CoA-Request") in pairs
    vendor = [(n, v) for n, v in pairs if n.split("-")[0] in (
        "Filter", "WISPr", "Cisco", "ERX", "Mikrotik")]
    assert vendor == expected


@pytest.mark.parametrize("nas_type", ["other", "accel-ppp", "wispr"])
def test_a_nas_type_without_a_live_garden_gets_a_disconnect(freeradius: CoaServer,
                                                             nas_type: str) -> None:
    before = len(freeradius.requests())
    ref = NasRef(ip="127.0.0.1", secret=SECRET, coa_port=freeradius.port, nas_type=nas_type)
    result = send(lambda c: c.change(ref, ALICE, GARDEN))
    assert result.outcome is Outcome.ACK and result.channel == "disconnect"
    assert freeradius.requests()[before]["Packet-Type"] == "Disconnect-Request"
