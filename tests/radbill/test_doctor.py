"""`radbill doctor` says what is wrong in plain words, one finding per line, exit 1 on a
problem, and changes nothing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from alembic import command

from radbill import migrate
from radbill.config import Settings
from radbill.db import engine_from_settings


def findings(cli, ok: bool = True) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    result = cli("doctor", "--json", ok=ok)
    out: dict[str, list[tuple[str, str]]] = {}
    for row in json.loads(result.output):
        out.setdefault(row["check"], []).append((row["level"], row["message"]))
    return out


def test_a_fresh_install_has_no_problem_and_says_what_is_missing(cli) -> None:  # type: ignore[no-untyped-def]
    found = findings(cli)
    assert {level for rows in found.values() for level, _ in rows} <= {"ok", "warn"}
    assert found["database"][0][0] == "ok" and "(head)" in found["database"][0][1]
    assert found["nas"] == [("warn", "no NAS yet: 'radbill nas create'")]
    assert found["channels"][0][0] == "warn"
    text = cli("doctor").output
    assert text.splitlines()[0].startswith("ok      freeradius")


def test_each_problem_is_named_in_plain_words(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cli("nas", "create", "core", "--ip", "127.0.0.1", "--secret", "long-random-secret",
        "--api-user", "radbill", "--api-password", "api-pass", "--api-port", str(closed),
        "--api-tls", "none")
    (tmp_path / "secret.key").chmod(0o644)
    (tmp_path / "gateways.json").write_text("{not json")
    (tmp_path / "gateways.json").chmod(0o600)
    engine = engine_from_settings(Settings.from_env())
    head = migrate.head_revision(engine)
    cfg = migrate.alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.stamp(cfg, "0009")  # as if an upgrade had been forgotten
    try:
        result = cli("doctor", ok=False)
        found = findings(cli, ok=False)
    finally:  # the database is the session's: put its stamp back
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.stamp(cfg, "head")
        engine.dispose()
    assert result.exit_code == 1
    assert found["database"][0] == ("problem", f"schema at revision 0009, this release needs "
                                    f"{head}: run 'radbill db upgrade'")
    assert ("problem", f"file {tmp_path / 'secret.key'} is open to other local users (mode "
            f"644): chmod 600 {tmp_path / 'secret.key'}") in found["file modes"]
    (level, message), = found["gateways"]
    assert level == "problem" and message.startswith(f"{tmp_path / 'gateways.json'}: ")
    (level, message), = [f for f in found["nas"] if "RouterOS API" in f[1]]
    assert level == "problem" and message.startswith(f"core: RouterOS API at 127.0.0.1:{closed} "
                                                     "unreachable")


def test_a_billing_run_that_stopped_is_a_problem(cli, db) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from billing.isp import local_today, mark_billed_through, settings
    from radbill.db import session_factory, utcnow

    assert findings(cli)["billing"][0][0] == "warn"  # never ran
    with session_factory(db)() as s, s.begin():
        today = local_today(settings(s), utcnow())
        mark_billed_through(s, today - dt.timedelta(days=1))
    assert findings(cli)["billing"] == [("ok", f"the billing run last ran for "
                                                f"{today - dt.timedelta(days=1)}")]
    with session_factory(db)() as s, s.begin():
        settings(s).billed_through = today - dt.timedelta(days=3)
    (level, message), = findings(cli, ok=False)["billing"]
    assert level == "problem" and "prepaid cut-offs after that day are held" in message


def test_each_nas_is_probed_by_coa_and_api(cli) -> None:  # type: ignore[no-untyped-def]
    """A NAS with the secret and API password radbill has: both answer. One whose secret
    and API password differ from radbill's: CoA stays silent (its answer does not verify)
    and the API login is refused. The probe is a Disconnect-Request for a user no subscriber
    has, and an API read: nothing on a router changes."""
    from simulators.nas import NasSimulator
    from tests.pgserver import free_tcp_port

    coa, api = free_tcp_port(), free_tcp_port()
    good = NasSimulator(nas_ip="127.0.0.1", secret="right-secret-1", coa_port=coa,
                        api_port=api, api_password="api-pass-1").start()
    other = NasSimulator(nas_ip="127.0.0.2", secret="routers-secret", coa_port=coa,
                         api_port=api, api_password="routers-pass").start()
    try:
        cli("nas", "create", "good", "--ip", "127.0.0.1", "--secret", "right-secret-1",
            "--coa-port", str(coa), "--api-user", "radbill", "--api-password", "api-pass-1",
            "--api-port", str(api))
        cli("nas", "create", "bad", "--ip", "127.0.0.2", "--secret", "wrong-secret-1",
            "--coa-port", str(coa), "--api-user", "radbill", "--api-password", "wrong-pass",
            "--api-port", str(api))
        found = findings(cli, ok=False)["nas"]
    finally:
        good.stop()
        other.stop()
    assert ("ok", f"good: CoA at 127.0.0.1:{coa} answers, the secret matches") in found
    assert ("ok", f"good: RouterOS API at 127.0.0.1:{api} logged in (router 'sim-nas')") in found
    assert ("problem", f"bad: CoA at 127.0.0.2:{coa} does not answer (unreachable, CoA off, "
            "or another secret): suspensions cannot reach logged-in subscribers") in found
    (api_bad,) = [m for level, m in found if m.startswith("bad: RouterOS API")]
    assert api_bad.startswith(f"bad: RouterOS API at 127.0.0.2:{api} unreachable or refused (")
    assert len(found) == 4


def test_each_gateways_credentials_are_proved_without_a_payment(cli, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                 ) -> None:
    from simulators.gateways.bkash import BkashSimulator
    from simulators.gateways.nagad import NagadSimulator
    from simulators.gateways.razorpay import RazorpaySimulator
    from simulators.gateways.sslcommerz import SslcommerzSimulator

    sims = {"bkash": BkashSimulator(), "nagad": NagadSimulator(),
            "razorpay": RazorpaySimulator(), "sslcommerz": SslcommerzSimulator()}
    for sim in sims.values():
        sim.start()

    def configure(wrong: bool) -> None:
        (tmp_path / "gateways.json").write_text(json.dumps({
            name: {"base_url": sim.url, "sandbox": True,
                   "credentials": {k: (v + "-wrong" if wrong and k != "username" else v)
                                   for k, v in sim.credentials.items()}}
            for name, sim in sims.items()}))
        (tmp_path / "gateways.json").chmod(0o600)
        for token in (tmp_path / "gateway-tokens").glob("*"):
            token.unlink()

    try:
        configure(wrong=False)
        right_rows = findings(cli, ok=False)["gateways"]
        configure(wrong=True)
        wrong_rows = findings(cli, ok=False)["gateways"]
    finally:
        for sim in sims.values():
            sim.stop()
    assert right_rows == [
        ("ok", "bkash: token granted to these credentials"),
        ("warn", "nagad: configured; its credentials are proved only by a checkout (it has no "
                 "read-only call)"),
        ("ok", "razorpay: API key accepted"),
        ("ok", "sslcommerz: store id and password accepted")]
    levels = {m.split(":")[0]: level for level, m in wrong_rows}
    assert levels == {"bkash": "problem", "nagad": "warn", "razorpay": "problem",
                      "sslcommerz": "problem"}
    assert all(m.endswith("payments through it fail") for level, m in wrong_rows
               if level == "problem")
