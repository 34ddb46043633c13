"""Listing subscribers by a set of usernames (the admin's NAS filter: everyone online on one
NAS, thousands on a big one) keeps every IN list bounded and still pages in username order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from billing.subscribers import IN_CHUNK, list_subscribers
from radbill.db import session_factory
from tests.factories import make_plan, make_subscriber


def test_a_long_username_set_is_queried_in_bounded_chunks(db: Engine, box) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s)
        for i in range(30):
            make_subscriber(s, box, username=f"user{i:02d}")
        make_subscriber(s, box, username="zed")
    wanted = {f"user{i:02d}" for i in range(0, 30, 2)} | {f"ghost{i}" for i in range(1200)}
    params: list[int] = []

    def count(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
        params.append(len(parameters) if parameters else 0)

    event.listen(db, "before_cursor_execute", count)
    try:
        with factory() as s:
            first = [sub.username for sub in list_subscribers(s, usernames=wanted, limit=10)]
            every = [sub.username for sub in list_subscribers(s, usernames=wanted)]
            none_active = list_subscribers(s, usernames=wanted, status="suspended")
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert every == [f"user{i:02d}" for i in range(0, 30, 2)]
    assert first == every[:10]
    assert none_active == []
    assert params and max(params) <= IN_CHUNK + 5  # the IN list and a few other parameters


def test_percent_and_underscore_in_a_search_match_themselves(db: Engine, box) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s)
        # usernames allow _ but not % or \: those are in names
        for user, name in (("a_b", None), ("axb", None), ("u1", "50%off"), ("u2", "500ff"),
                           ("u3", "back\\slash"), ("u4", "backslash")):
            make_subscriber(s, box, username=user, full_name=name)
    with factory() as s:
        def found(term: str) -> list[str]:
            return [sub.username for sub in list_subscribers(s, search=term)]

        assert found("a_b") == ["a_b"]  # not axb: _ is not "any one character"
        assert found("_") == ["a_b"]
        assert found("%") == ["u1"]  # not everybody
        assert found("0%o") == ["u1"]  # not 500ff
        assert found("k\\s") == ["u3"]  # a backslash is itself too
        assert found("AXB") == ["axb"]  # still case-insensitive
        assert found("ff") == ["u1", "u2"]


def test_ids_by_username_ignore_case_and_spaces_in_bounded_chunks(db: Engine, box) -> None:  # type: ignore[no-untyped-def]
    # the accounting ingester asks for a whole batch's names: a NAS may send BOB or "bob "
    from billing.subscribers import subscriber_ids

    factory = session_factory(db)
    with factory() as s, s.begin():
        make_plan(s)
        made = {name: make_subscriber(s, box, username=name).id
                for name in ("alice", "Bob", "carol")}
    asked = {"ALICE", " bob", "Bob ", "carol", "dave"} | {f"ghost{i}" for i in range(12_000)}
    with factory() as s:
        found = subscriber_ids(s, asked)
        assert subscriber_ids(s, set()) == {}
    assert found == {"ALICE": made["alice"], " bob": made["Bob"], "Bob ": made["Bob"],
                     "carol": made["carol"]}  # unknown names left out, past the first chunk
