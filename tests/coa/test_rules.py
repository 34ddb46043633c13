"""The pure enforcement rules, table-driven."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.rates import RatePair
from coa import rules
from coa.controller import Outcome, PolicyChange, StepResult
from radius.policy import AuthRequest, PlanRecord, PolicyConfig, SubscriberRecord, decide

NOW = dt.datetime(2026, 12, 9, 12, tzinfo=dt.UTC)
PLAN = PlanRecord(id=1, name="Home-20", rate=RatePair(20_000_000, 5_000_000),
                  fup_rate=RatePair(2_000_000, 1_000_000))


def want(status: str, mode: str = "walled-garden", throttled: bool = False) -> rules.Desired:
    sub = SubscriberRecord(username="a", password="p", service="pppoe", status=status,
                           plan_id=1, fup_throttled=throttled)
    return rules.desired(decide(AuthRequest(username="a", service_type="Framed-User"), sub, PLAN,
                                0, PolicyConfig(suspended_mode=mode), NOW))


def test_desired_state_comes_from_the_login_policy() -> None:
    assert want("active") == rules.Desired(True, "5M/20M", "", "active")
    assert want("active", throttled=True) == rules.Desired(True, "1M/2M", "",
                                                          "fair-usage-throttled")
    assert want("suspended") == rules.Desired(True, "256k/256k", "radbill-suspended",
                                              "suspended-walled-garden")
    assert want("suspended", mode="reject") == rules.Desired(False, reason="suspended")
    assert want("terminated") == rules.Desired(False, reason="terminated")
    assert want("disabled") == rules.Desired(False, reason="disabled")


DISCONNECT = rules.Step(rules.Kind.DISCONNECT)


@pytest.mark.parametrize(("action", "status", "service", "suspend_by", "expected"), [
    ("suspend", "suspended", "pppoe", "disconnect", DISCONNECT),
    ("suspend", "suspended", "pppoe", "coa", rules.Step(rules.Kind.CHANGE, PolicyChange(
        "256k/256k", "radbill-suspended"))),
    ("suspend", "suspended", "hotspot", "coa", DISCONNECT),  # CoA on hotspot unconfirmed
    ("reconnect", "active", "pppoe", "disconnect", DISCONNECT),
    # out of the garden: RADIUS cannot say "no address list", so the session re-dials
    ("reconnect", "active", "pppoe", "coa", DISCONNECT),
    ("throttle", "active", "pppoe", "disconnect", rules.Step(rules.Kind.CHANGE, PolicyChange(
        "5M/20M"))),
    ("plan_change", "active", "pppoe", "disconnect", rules.Step(rules.Kind.CHANGE, PolicyChange(
        "5M/20M"))),
    ("throttle", "active", "hotspot", "disconnect", DISCONNECT),
    # a rate change overtaken by a suspension: the garden needs the address list
    ("throttle", "suspended", "pppoe", "disconnect", DISCONNECT),
    ("terminate", "terminated", "pppoe", "coa", DISCONNECT),
    ("reconnect", "terminated", "pppoe", "coa", DISCONNECT),  # may not be online at all
    ("resync", "active", "pppoe", "coa", DISCONNECT),
    ("disconnect", "active", "pppoe", "coa", DISCONNECT),
])
def test_step_for(action: str, status: str, service: str, suspend_by: str,
                  expected: rules.Step) -> None:
    assert rules.step_for(action, want(status), service, suspend_by) == expected


@pytest.mark.parametrize(("outcome", "fallback"), [
    (Outcome.ACK, False), (Outcome.GONE, False), (Outcome.NAK, True),
    (Outcome.TIMEOUT, True), (Outcome.ERROR, True)])
def test_needs_fallback(outcome: Outcome, fallback: bool) -> None:
    assert rules.needs_fallback(StepResult(outcome, "disconnect")) is fallback


def test_backoff_doubles_and_is_capped() -> None:
    assert [rules.backoff(n) for n in (0, 1, 2, 3, 8, 20)] == [2.0, 2.0, 4.0, 8.0, 256.0, 300.0]


def r(outcome: Outcome, channel: str = "disconnect") -> StepResult:
    return StepResult(outcome, channel)


@pytest.mark.parametrize(("results", "attempts", "expected"), [
    ([], 1, rules.Verdict.DONE),  # nobody online: the next login gets the policy
    ([r(Outcome.ACK)], 1, rules.Verdict.CONFIRMING),
    ([r(Outcome.ACK, "api-disconnect")], 1, rules.Verdict.CONFIRMING),
    ([r(Outcome.ACK, "coa")], 1, rules.Verdict.DONE),
    ([r(Outcome.GONE)], 1, rules.Verdict.DONE),
    ([r(Outcome.ACK), r(Outcome.TIMEOUT)], 1, rules.Verdict.RETRY),
    ([r(Outcome.NAK)], 5, rules.Verdict.RETRY),
    ([r(Outcome.NAK)], 6, rules.Verdict.FAILED),
    ([r(Outcome.ERROR, "none")], 6, rules.Verdict.FAILED),
])
def test_verdict(results: list[StepResult], attempts: int, expected: rules.Verdict) -> None:
    assert rules.verdict(results, attempts, max_attempts=6) is expected
