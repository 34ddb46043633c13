import datetime as dt
import hashlib
import io
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy import select

from billing.archive import render_pending, verify
from billing.models import Invoice
from tests.billing.sim import Sim


def test_every_issued_invoice_gets_an_archived_pdf_with_checksum(db, box, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = Sim(db, box, dt.date(2026, 11, 1))
    sim.isp(name="Dhaka Fiber Net", phone="+8801700000000", payment_link_base="https://pay.example")
    sim.plan("Home", price="1000", tax_percent="5")
    sim.subscriber("alice", "Home", full_name="Rahim Uddin")
    sim.subscriber("bob", "Home")
    sim.today = dt.date(2026, 12, 1)
    sim.run()
    assert render_pending(sim.factory, tmp_path) == 2
    assert render_pending(sim.factory, tmp_path) == 0  # nothing left to do
    with sim.factory() as s:
        invoices = s.scalars(select(Invoice).order_by(Invoice.id)).all()
        for inv in invoices:
            assert verify(inv)
            data = Path(inv.pdf_path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == inv.pdf_sha256
            text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
            assert inv.number in text and "Dhaka Fiber Net" in text
            assert inv.pay_token is not None
            assert "BDT 1,050.00" in text and f"https://pay.example/pay/{inv.pay_token}" in text
        assert "Rahim Uddin" in PdfReader(invoices[0].pdf_path).pages[0].extract_text()
        Path(invoices[1].pdf_path).write_bytes(b"tampered")
        assert not verify(invoices[1])
