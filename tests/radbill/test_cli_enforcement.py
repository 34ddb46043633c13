"""`radbill subscriber suspend|reconnect|disable|terminate` ask the network to follow, and
`radbill enforcement status` reports the queue."""

import json

from sqlalchemy import select

from billing.models import EnforcementRequest
from radbill.db import session_factory


def test_every_status_change_by_an_operator_queues_enforcement(cli, db) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "Home-20", "--price", "500", "--currency", "BDT", "--rate", "10M/10M")
    cli("subscriber", "create", "alice", "--password", "pw", "--plan", "Home-20")
    for command in ("suspend", "reconnect", "disable", "reconnect", "terminate"):
        cli("subscriber", command, "alice", "--reason", f"test {command}")
    cli("subscriber", "terminate", "alice")  # already terminated: nothing new
    with session_factory(db)() as s:
        rows = [(r.action, r.reason, r.status) for r in s.scalars(
            select(EnforcementRequest).order_by(EnforcementRequest.id))]
    assert rows == [("suspend", "test suspend", "pending"),
                    ("reconnect", "test reconnect", "pending"),
                    ("disable", "test disable", "pending"),
                    ("reconnect", "test reconnect", "pending"),
                    ("terminate", "test terminate", "pending")]
    status = json.loads(cli("enforcement", "status", "--json").output)
    assert (status["pending"], status["failed"], status["drift"]) == (5, 0, 0)
    assert status["last_reconcile"] is None
    assert "pending 5, confirming 0, failed 0, drift 0" in cli("enforcement", "status").output
