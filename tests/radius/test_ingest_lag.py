"""Ingest lag: the age of the oldest record not applied yet and the bytes behind, per stream,
as a metric (Prometheus text, a textfile for node_exporter, the CLI) and an alert that is
raised once when the lag passes the threshold and resolved when it is back under it."""

import datetime as dt
import json
import os
import re

from sqlalchemy import select

from radbill.db import session_factory
from radbill.ops import Alert
from radius import lag
from radius.ingest import Ingester
from tests.conftest import wipe
from tests.radius.test_ingest import BASE, record, write

FILE, NEXT = "detail-20261124-20", "detail-20261124-21"
T0 = dt.datetime.fromtimestamp(BASE, dt.UTC)


def alerts(db):  # type: ignore[no-untyped-def]
    with session_factory(db)() as s:
        return [(a.kind, a.resolved_at is not None, a.resolved_by, a.message, a.data)
                for a in s.scalars(select(Alert).order_by(Alert.id))]


def test_lag_is_the_oldest_unapplied_record_and_the_bytes_behind(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = record("Start", "s1", 0) + record("Interim-Update", "s1", 60)
    write(tmp_path, FILE, first)
    # what a node that applied the Start has left: the Interim, from the cursor on
    start_only = tmp_path / "one"
    write(start_only, FILE, record("Start", "s1", 0))
    Ingester(session_factory(db), start_only).run_once()
    with session_factory(db)() as s:
        acct = lag.measure(tmp_path, lag.positions(s), T0 + dt.timedelta(seconds=600))[0]
    assert (acct.bytes_behind, acct.oldest_unapplied, acct.age_seconds) == (
        len(record("Interim-Update", "s1", 60)), T0 + dt.timedelta(seconds=60), 540.0)
    later = record("Start", "s2", 90)
    write(tmp_path, NEXT, later)
    now = T0 + dt.timedelta(seconds=600)
    before = lag.measure(tmp_path, {}, now)  # no cursor yet: nothing applied
    acct = {g.stream: g for g in before}["acct"]
    assert (acct.bytes_behind, acct.files_behind) == (len(first) + len(later), 2)
    assert (acct.oldest_unapplied, acct.age_seconds) == (T0, 600.0)  # the Start's Timestamp
    assert {g.stream: g for g in before}["postauth"].bytes_behind == 0

    wipe(db)
    Ingester(session_factory(db), tmp_path).run_once()
    with session_factory(db)() as s:
        caught_up = lag.measure(tmp_path, lag.positions(s), now)
    assert [(g.stream, g.bytes_behind, g.files_behind, g.oldest_unapplied, g.age_seconds)
            for g in caught_up] == [("acct", 0, 0, None, 0.0), ("postauth", 0, 0, None, 0.0)]


def test_a_record_still_being_written_counts_from_the_files_time(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = write(tmp_path, FILE, record("Start", "s1", 0)[:40])
    os.utime(p, (BASE + 30, BASE + 30))
    g = lag.measure(tmp_path, {}, T0 + dt.timedelta(seconds=100))[0]
    assert (g.bytes_behind, g.oldest_unapplied, g.age_seconds) == (
        40, T0 + dt.timedelta(seconds=30), 70.0)


def test_prometheus_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lags = [lag.StreamLag("acct", 1234, 2, T0, 61.5), lag.StreamLag("postauth", 0, 0, None, 0.0)]
    text = lag.prometheus_text(lags, 'node "a"')
    assert 'radbill_ingest_lag_seconds{node="node \\"a\\"",stream="acct"} 61.500\n' in text
    assert 'radbill_ingest_lag_bytes{node="node \\"a\\"",stream="acct"} 1234\n' in text
    assert 'radbill_ingest_lag_files{node="node \\"a\\"",stream="postauth"} 0\n' in text
    assert text.count("# TYPE ") == 3 and text.endswith("\n")
    path = tmp_path / "metrics" / "radbill_ingest.prom"
    lag.write_textfile(path, text)
    assert path.read_text() == text and [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644  # node_exporter runs as its own user


def test_alert_raised_once_updated_then_resolved(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    behind = [lag.StreamLag("acct", 5000, 1, T0, 400.0), lag.StreamLag("postauth", 0, 0, None, 0)]
    worse = [lag.StreamLag("acct", 9000, 2, T0, 700.0)]
    fine = [lag.StreamLag("acct", 100, 1, T0, 2.0)]
    steps = []
    for lags in (fine, behind, worse, behind, fine, fine):
        with session_factory(db)() as s, s.begin():
            steps.append(lag.check_alert(s, lags, 300, "n1", T0))
    assert steps == [None, "raised", "updated", "updated", "resolved", None]
    (kind, resolved, by, message, data), = alerts(db)
    assert (kind, resolved, by) == ("ingest_lag", True, "ingest")
    assert message.startswith("accounting ingest is 400 s behind on node n1 (acct: 5000 bytes "
                              "in 1 file(s) not applied; threshold 300 s)")
    assert data["worst_seconds"] == 700.0 and data["streams"][0]["age_seconds"] == 400.0
    with session_factory(db)() as s, s.begin():
        assert lag.check_alert(s, worse, 300, "n1", T0) == "raised"  # a new episode
    assert [a[1] for a in alerts(db)] == [True, False]


def test_each_node_has_its_own_alert(db) -> None:  # type: ignore[no-untyped-def]
    behind, fine = [lag.StreamLag("acct", 5000, 1, T0, 400.0)], [lag.StreamLag("acct", 0, 0,
                                                                              None, 0.0)]
    steps = []
    for node, lags in (("a", behind), ("b", fine), ("b", behind), ("a", fine), ("a", fine)):
        with session_factory(db)() as s, s.begin():
            steps.append(lag.check_alert(s, lags, 300, node, T0))
    # b catching up leaves a's alert open; a's catching up resolves a's only
    assert steps == ["raised", None, "raised", "resolved", None]
    assert [(a[4]["node"], a[1]) for a in alerts(db)] == [("a", True), ("b", False)]


def test_the_ingester_observes_while_it_runs(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "spool", FILE, record("Start", "s1", 0))
    metrics = tmp_path / "metrics" / "radbill_ingest.prom"
    ing = Ingester(session_factory(db), tmp_path / "spool", lag_alert_seconds=300,
                   metrics_path=metrics, node="n1")
    ing.observe(T0 + dt.timedelta(seconds=1000))  # nothing applied yet, 1000 s old
    assert 'radbill_ingest_lag_seconds{node="n1",stream="acct"} 1000.000' in metrics.read_text()
    assert [(a[0], a[1]) for a in alerts(db)] == [("ingest_lag", False)]
    assert ing.run_once() == 1
    ing.observe(T0 + dt.timedelta(seconds=1001))
    assert 'radbill_ingest_lag_bytes{node="n1",stream="acct"} 0' in metrics.read_text()
    assert [(a[0], a[1]) for a in alerts(db)] == [("ingest_lag", True)]


def test_with_the_database_down_the_last_cursors_are_used(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILE, record("Start", "s1", 0))
    ing = Ingester(session_factory(db), tmp_path, lag_alert_seconds=300)
    ing.run_once()
    ing.observe(T0)
    more = record("Interim-Update", "s1", 60)
    write(tmp_path, FILE, more)

    def down():  # type: ignore[no-untyped-def]
        raise ConnectionError("database down")

    ing.factory = down  # type: ignore[assignment]
    lags = ing.observe(T0 + dt.timedelta(seconds=500))  # never raises
    assert [(g.stream, g.bytes_behind, g.age_seconds) for g in lags] == [
        ("acct", len(more), 440.0), ("postauth", 0, 0.0)]


def test_cli_lag(cli, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spool = tmp_path / "radius" / "spool"
    write(spool, FILE, record("Start", "s1", 0))  # BASE is in 2026: far behind today
    result = cli("accounting", "lag", "--json", ok=False)
    assert result.exit_code == 1  # further behind than RADBILL_INGEST_LAG_ALERT_S
    data = json.loads(result.stdout)
    assert [(d["stream"], d["bytes_behind"], d["oldest_unapplied"]) for d in data] == [
        ("acct", len(record("Start", "s1", 0)), T0.isoformat()), ("postauth", 0, None)]
    assert cli("accounting", "ingest").exit_code == 0
    text = cli("accounting", "lag", "--prometheus").stdout
    assert re.search(r'^radbill_ingest_lag_bytes\{node="[^"]*",stream="acct"\} 0$', text, re.M)
