"""Delivery reports: MSG91 posts them to radbill's web app (its v2 webhook); a sent message
becomes delivered, or failed with the provider's reason. India: the DLT template and its
variables go with every message."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

from admin import create_app
from notify.config import save
from notify.models import Template
from radbill.config import Settings
from simulators.sms.msg91 import Msg91Simulator
from tests.notify.helpers import Clock, D, deliveries, tick, worker, world
from tests.pgserver import free_tcp_port

DLT = "1207161234567890123"


def test_msg91_reports_mark_messages_delivered_or_failed(db, box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(Settings(data_dir=tmp_path, database_url=db.url.render_as_string(False),
                              public_url=base), engine=db,
                     config={"RADBILL_GATEWAYS": {}, "SESSION_COOKIE_SECURE": False})
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sim = Msg91Simulator(webhook=f"{base}/webhooks/sms/msg91")
    sim.register(DLT, "Payment of ##amount## received for ##username##. Thank you.")
    sim.undeliverable.add("919876500002")
    sim.start()
    try:
        world_ = world(db, box)
        world_.subscriber("ravi", "Home", phone="9876500001")
        world_.subscriber("anil", "Home", phone="+91 98765 00002")
        with world_.factory() as s, s.begin():
            save(s, box, "sms", "msg91", {"base_url": sim.url, "country": "IN"},
                 {"authkey": sim.authkey})
            s.add(Template(kind="payment_received", channel="sms", locale="bn",
                           body="Payment of {{ amount }} received for {{ username }}. "
                                "Thank you.", dlt_template_id=DLT))
        world_.days_until(D(2026, 12, 1))
        world_.pay("ravi", "1050")
        world_.pay("anil", "1050")
        clock = Clock(world_.today)  # type: ignore[arg-type]
        clock.dhaka(D(2026, 12, 2), 10)
        tick(worker(world_, clock))
        texts = sorted(a.text for a in sim.accepted)
        assert texts == ["Payment of ৳1,050.00 received for anil. Thank you.",
                         "Payment of ৳1,050.00 received for ravi. Thank you."]
        deadline = time.monotonic() + 10
        while len(sim.reports) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tick(worker(world_, clock))  # a report that raced the recording is applied now
        by_number = {d.recipient: d for d in deliveries(world_, kind="payment_received")}
        assert by_number["919876500001"].status == "delivered"
        assert by_number["919876500002"].status == "failed"
        assert by_number["919876500002"].reason == "not delivered: FAILED Absent subscriber"
        # the other events had no DLT template: MSG91 cannot send them, and says why
        other = {d.status for d in deliveries(world_) if d.kind != "payment_received"}
        assert other == {"failed"}
    finally:
        sim.stop()
        server.shutdown()
