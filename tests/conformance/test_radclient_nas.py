"""The NAS simulator's RFC 5176 server, driven by FreeRADIUS's ``radclient`` (an RFC 5176
client radbill did not write): what a real router answers, the simulator must answer too.

RFC 5176: a Disconnect-Request or CoA-Request identifying a session the NAS has is answered
ACK (and acted on); one identifying no session, NAK with Error-Cause 503
(Session-Context-Not-Found); one without any session identification, NAK with 402
(Missing-Attribute); a request that fails authentication (wrong secret, no or a wrong
Message-Authenticator, an Event-Timestamp outside the window) is silently discarded
(section 3.5: "MUST silently discard"); packets of other codes are not served on this port.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from simulators.nas import NasSimulator
from tests.coa.conftest import NAS_SECRET

RADCLIENT = shutil.which("radclient")
pytestmark = pytest.mark.skipif(RADCLIENT is None, reason="radclient (freeradius-utils) missing")


def radclient(sim: NasSimulator, kind: str, attrs: dict[str, str], *,
              secret: str = NAS_SECRET, message_authenticator: bool = True,
              timestamp: int | None = None, no_timestamp: bool = False) -> str:
    """Send one request with radclient; its output (replies decoded with -x)."""
    assert RADCLIENT is not None
    lines = [f"{name} = {value}" for name, value in attrs.items()]
    if not no_timestamp:
        lines.append(f"Event-Timestamp = {timestamp or int(time.time())}")
    if message_authenticator:
        lines.append("Message-Authenticator = 0x00")  # radclient computes it
    proc = subprocess.run([RADCLIENT, "-x", "-r", "1", "-t", "1",
                           f"127.0.0.1:{sim.coa_port}", kind, secret],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=20, check=False)
    # the exit status too: one CI run saw radclient print the request it sent and then
    # neither a reply nor "No reply from server" (not reproduced in 32 runs under load)
    return f"{proc.stdout}{proc.stderr}(radclient exited {proc.returncode})"


def ident(s) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"User-Name": f'"{s.username}"', "Acct-Session-Id": f'"{s.session_id}"',
            "Framed-IP-Address": s.framed_ip}


def test_disconnect_of_an_online_session_is_acked_and_ends_it(sim: NasSimulator) -> None:
    alice, bob = sim.attach("alice"), sim.attach("bob")
    out = radclient(sim, "disconnect", ident(alice))
    assert "Received Disconnect-ACK" in out, out
    assert sim.online() == [bob] and sim.counters.disconnects == 1


def test_disconnect_of_an_unknown_session_is_nak_503(sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    out = radclient(sim, "disconnect", {**ident(alice), "Acct-Session-Id": '"ffffffff"'})
    assert "Received Disconnect-NAK" in out, out
    assert "Error-Cause = Session-Context-Not-Found" in out
    assert sim.online() == [alice]


def test_a_request_identifying_no_session_is_nak_402(sim: NasSimulator) -> None:
    sim.attach("alice")
    out = radclient(sim, "disconnect", {"NAS-IP-Address": "127.0.0.1"})
    assert "Received Disconnect-NAK" in out, out
    assert "Error-Cause = Missing-Attribute" in out


def test_coa_with_a_new_rate_is_acked_and_applied_live(sim: NasSimulator) -> None:
    alice = sim.attach("alice", rate_limit="5M/20M")
    out = radclient(sim, "coa", {**ident(alice),
                                 "Mikrotik-Rate-Limit": '"512k/1M 1M/2M 384k/768k 8/8"'})
    assert "Received CoA-ACK" in out, out
    assert alice.rate_limit == "512k/1M 1M/2M 384k/768k 8/8" and sim.online() == [alice]
    queue = next(r for r in sim.api_print("/queue/simple") if r["name"] == "<pppoe-alice>")
    assert queue["max-limit"] == "512000/1000000"


@pytest.mark.parametrize("fault", ["wrong-secret", "no-message-authenticator",
                                   "stale-timestamp", "no-timestamp"])
def test_requests_failing_authentication_are_silently_discarded(
        fault: str, sim: NasSimulator) -> None:
    alice = sim.attach("alice")
    kw: dict = {"wrong-secret": {"secret": "not-the-secret"},  # type: ignore[type-arg]
                "no-message-authenticator": {"message_authenticator": False},
                "stale-timestamp": {"timestamp": int(time.time()) - 3600},
                "no-timestamp": {"no_timestamp": True}}[fault]
    out = radclient(sim, "disconnect", ident(alice), **kw)
    assert "No reply from server" in out, out
    assert sim.online() == [alice]
    assert sim.counters.discarded >= 1 and sim.counters.disconnects == 0


def test_an_access_request_on_the_coa_port_is_not_served(sim: NasSimulator) -> None:
    sim.attach("alice")
    out = radclient(sim, "auth", {"User-Name": '"alice"', "User-Password": '"x"'})
    assert "No reply from server" in out, out
