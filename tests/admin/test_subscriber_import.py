"""Import and export of subscribers in the admin: "Check" lists every bad row by line and
reason (or previews the good ones) and writes nothing; "Import" writes them all; the export
leaves passwords out unless a manager asks for them."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import select

from billing.models import Subscriber
from tests.admin.conftest import csrf
from tests.factories import make_plan

GOOD = b"username,password,plan,phone\nann,pw-ann,Home,+8801700000001\nben,pw-ben,Home,\n"
BAD = b"username,password,plan\nann,pw,Home\nbad user,pw,Home\nann,pw,Home\ncy,pw,Gold\n"


def _post(client: Any, data: bytes, action: str) -> Any:
    return client.post("/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": csrf(client, "/subscribers/import"), "action": action,
        "file": (io.BytesIO(data), "subs.csv")})


def usernames(factory: Any) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(Subscriber.username).order_by(Subscriber.username)))


def test_check_then_import_from_the_admin(client_for, factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        make_plan(s, name="Home")
    client = client_for("billing")
    bad = _post(client, BAD, "import")
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "3 problem(s): nothing imported" in page
    assert '<td class="num">3</td>' in page  # the bad username's line
    assert "unknown plan &#39;Gold&#39;" in page and "also on line 2" in page
    assert usernames(factory) == []
    check = _post(client, GOOD, "check")
    assert check.status_code == 200
    assert "2 row(s) ready to import (dry run: nothing written)" in check.get_data(as_text=True)
    assert usernames(factory) == []
    done = _post(client, GOOD, "import")
    assert done.status_code == 302
    assert usernames(factory) == ["ann", "ben"]
    resp = client.get("/subscribers/export.csv")  # streamed: closed to end the request
    plain = resp.get_data(as_text=True).splitlines()
    resp.close()
    assert plain[1].startswith("ann,,Home,pppoe,,+8801700000001,")
    assert client.get("/subscribers/export.csv?with_passwords=1").status_code == 403
    admin = client_for("admin")
    resp = admin.get("/subscribers/export.csv?with_passwords=1")
    full = resp.get_data(as_text=True)
    resp.close()
    assert [r.split(",")[1] for r in full.splitlines()[1:]] == ["pw-ann", "pw-ben"]
    assert client_for("noc").get("/subscribers/import").status_code == 403
