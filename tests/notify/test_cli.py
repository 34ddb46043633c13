"""`radbill notify ...`: channels from the command line (secrets masked), a test message to
the simulator, status, retry, a round of the worker; bad input is one `error:` line and
writes nothing."""

from __future__ import annotations

import json
import re

import pytest


def test_channels_send_test_status_and_retry(cli, ssl_sim, telegram_sim) -> None:  # type: ignore[no-untyped-def]
    cli("notify", "channel", "sms", "--provider", "sslwireless", "--url", ssl_sim.url,
        "--api-token", ssl_sim.api_token, "--sid", ssl_sim.sid, "--price", "0.35")
    cli("notify", "channel", "telegram", "--token", telegram_sim.token, "--noc-chat", "-1001",
        "--finance-chat", "-1002", "--url", telegram_sim.url)
    listed = json.loads(cli("notify", "channel", "list", "--json").output)
    assert [(c["channel"], c["provider"], c["secrets"]) for c in listed] == [
        ("sms", "sslwireless", {"api_token": "********"}),
        ("telegram", "telegram", {"token": "********"})]
    assert ssl_sim.api_token not in cli("notify", "channel", "list").output
    out = cli("notify", "send-test", "--channel", "sms", "--to", "01711000009").output
    assert re.match(r"sent: message #\d+ to 8801711000009", out), out
    assert [(a.to, a.text) for a in ssl_sim.accepted] == [
        ("8801711000009", "My ISP: test message from radbill.")]
    assert cli("notify", "send-test", "--channel", "telegram", "--to", "-1001").output \
        .startswith("sent:")
    # a chat the bot is not in: a permanent failure, exit 1
    failed = cli("notify", "send-test", "--channel", "telegram", "--to", "-999", ok=False)
    assert failed.exit_code == 1 and "failed (failed)" in failed.output
    failed_id = re.search(r"message #(\d+)", failed.output).group(1)  # type: ignore[union-attr]
    status = json.loads(cli("notify", "status", "--json").output)
    assert status["deliveries"] == {"sms": {"sent": 1}, "telegram": {"failed": 1, "sent": 1}}
    assert status["cost"] == []  # test messages are not priced
    assert "queued again" in cli("notify", "retry", failed_id).output
    assert "chat not found" not in cli("notify", "run", "--once").output
    rows = json.loads(cli("notify", "messages", "--json", "--channel", "telegram").output)
    # the test messages (after 20:00 in Dhaka the round also sends the daily summary to the
    # finance chat: not one of them)
    assert [r["status"] for r in rows if r["kind"] != "summary"] == ["failed", "sent"]


def test_generic_http_channel_from_the_cli(cli, bulk_sim) -> None:  # type: ignore[no-untyped-def]
    cli("notify", "channel", "sms", "--provider", "generic-http", "--url",
        f"{bulk_sim.url}/api/smsapi", "--body",
        f"api_key={bulk_sim.api_key}&senderid={bulk_sim.sender_id}&number={{to}}"
        "&message={text}", "--success", '"response_code": ?202')
    assert cli("notify", "send-test", "--channel", "sms", "--to", "+8801811000001"
               ).output.startswith("sent:")
    assert [a.to for a in bulk_sim.accepted] == ["8801811000001"]


@pytest.mark.parametrize(("args", "message"), [
    (["notify", "send-test", "--channel", "sms", "--to", "01711"], "not a valid mobile"),
    (["notify", "send-test", "--channel", "email", "--to", "a@b.example"],
     "email channel is not configured"),
    (["notify", "channel", "sms", "--provider", "generic-http", "--url", "ftp://x",
      "--success", "ok"], "not http"),
    (["notify", "channel", "sms", "--provider", "generic-http", "--url", "http://x/{to}"],
     "--success is required"),
    # another provider does not inherit the saved provider's secrets
    (["notify", "channel", "sms", "--provider", "bulksmsbd", "--sender-id", "X"],
     "api_key is required"),
    (["notify", "channel", "email", "--smtp-host", "h", "--smtp-port", "0", "--from", "a@b"],
     "0 is not in the range"),
    (["notify", "retry", "99"], "no message #99"),
    (["notify", "channel", "resume", "sms"], "not configured"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(cli, ssl_sim, args, message) -> None:  # type: ignore[no-untyped-def]
    if args[2:3] != ["resume"]:
        cli("notify", "channel", "sms", "--provider", "sslwireless", "--url", ssl_sim.url,
            "--api-token", "t", "--sid", "S")
    before = cli("notify", "channel", "list", "--json").output, \
        cli("notify", "status", "--json").output
    result = cli(*args, ok=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert (cli("notify", "channel", "list", "--json").output,
            cli("notify", "status", "--json").output) == before


def test_preferences_from_the_cli(cli, db, box) -> None:  # type: ignore[no-untyped-def]
    from notify.models import Preference
    from radbill.db import session_factory
    from tests.factories import make_plan, make_subscriber

    with session_factory(db)() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box, "lia")
    out = json.loads(cli("notify", "preferences", "lia", "--locale", "en", "--no-sms",
                         "--json").output)
    assert out == {"username": "lia", "locale": "en", "sms": False, "email": True}
    out = json.loads(cli("notify", "preferences", "lia", "--sms", "--json").output)
    assert out == {"username": "lia", "locale": "en", "sms": True, "email": True}
    bad = cli("notify", "preferences", "ghost", "--no-sms", ok=False)
    assert bad.output.startswith("error: ") and "ghost" in bad.output
    with session_factory(db)() as s:
        [pref] = s.query(Preference).all()
        assert (pref.locale, pref.sms_opt_out, pref.email_opt_out) == ("en", False, False)


def test_a_subscriber_created_by_an_operator_is_welcomed_in_their_language(
        cli, ssl_sim) -> None:  # type: ignore[no-untyped-def]
    cli("plan", "create", "Home", "--price", "500", "--currency", "BDT", "--rate", "10M")
    cli("subscriber", "create", "ram", "--password", "pw", "--plan", "Home", "--phone",
        "01711000070", "--name", "Ram")
    cli("notify", "preferences", "ram", "--locale", "hi")
    cli("notify", "channel", "sms", "--provider", "sslwireless", "--url", ssl_sim.url,
        "--api-token", ssl_sim.api_token, "--sid", ssl_sim.sid, "--quiet", "00:00-00:00")
    cli("notify", "run", "--once")
    assert [(a.to, a.text) for a in ssl_sim.accepted] == [
        ("8801711000070", "My ISP में आपका स्वागत है, Ram! आपका लॉगिन ram है। सहायता:")]
