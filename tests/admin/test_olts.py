"""The OLT pages and the ONU on the subscriber page, from a real poll of a simulated OLT."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from olt import inventory
from olt.poller import poll
from radbill.crypto import secret_box
from simulators.olt import SimOlt, demo_onus
from tests.coa.aio import arun
from tests.factories import make_plan, make_subscriber


@pytest.fixture
def sim() -> Iterator[SimOlt]:
    olt = SimOlt("zte-gpon", demo_onus("zte-gpon", 4)).start()
    yield olt
    olt.stop()


def test_olt_pages_and_the_subscribers_onu(client_for: Any, factory: Any, settings: Any,  # type: ignore[no-untyped-def]
                                           sim: SimOlt) -> None:
    box = secret_box(settings)
    with factory() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box, username="alice")
        make_subscriber(s, box, username="bob")
        inventory.create_olt(s, box, name="olt-1", vendor="zte-gpon", ip="127.0.0.1",
                             port=sim.port, community="public", write_community="private")
        inventory.create_olt(s, box, name="epon", vendor="vsol-epon", ip="127.0.0.2",
                             community="public")
        inventory.bind(s, "alice", "olt-1", serial=sim.onus[1].ident)
        inventory.bind(s, "bob", "epon", mac="02:00:00:00:00:09")
    sim.set_onu(sim.onus[1].ident, rx_dbm=-28.5)
    arun(poll(factory, box))
    sim.set_onu(sim.onus[1].ident, rx_dbm=-29.0)
    arun(poll(factory, box))
    client = client_for("noc")
    listing = client.get("/olts").get_data(as_text=True)
    assert 'href="/olts/olt-1"' in listing and "NAS only" in listing
    page = client.get("/olts/olt-1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "PON 1/0/1" in html and "PON 1/0/2" in html and sim.onus[1].ident in html
    assert "-29.00" in html and "weak" in html and 'href="/subscribers/alice"' in html
    assert client.get("/olts/nope").status_code == 404
    alice = client.get("/subscribers/alice").get_data(as_text=True)
    assert "ONU (FTTH)" in alice and sim.onus[1].ident in alice and "weak signal" in alice
    assert "Rx power (dBm), last 2 polls" in alice and "-29.00 dBm" in alice
    bob = client.get("/subscribers/bob").get_data(as_text=True)
    assert "enforced at the NAS only" in bob
