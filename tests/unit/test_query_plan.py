"""The LookupEvents query plan derived from the rules, and the request pacer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from veilleur.rules.loader import load_rules, parse_rules
from veilleur.sources.pacing import Pacer
from veilleur.sources.query_plan import FULL, PlanKind, plan_for


def rules(*matchers: dict[str, Any]) -> list:
    doc = [{"id": f"r{n}", "title": "t", "severity": "low", **m} for n, m in enumerate(matchers)]
    return parse_rules(json.dumps(doc), "plan.yaml")


def test_rules_that_pin_a_few_names_get_one_query_per_name() -> None:
    plan = plan_for(
        rules(
            {"match": {"eventName": ["ConsoleLogin"]}},
            {"match": {"eventName": ["StopLogging", "DeleteTrail"], "readOnly": [False]}},
            {"filter_pattern": "{ $.eventName = ScheduleKeyDeletion }"},
        )
    )
    assert plan.kind is PlanKind.NAMES
    assert plan.lookups == (
        ("EventName", "ConsoleLogin"),
        ("EventName", "DeleteTrail"),
        ("EventName", "ScheduleKeyDeletion"),
        ("EventName", "StopLogging"),
    )


def test_too_many_names_fall_back_to_writes_when_every_rule_needs_writes() -> None:
    names = [f"Delete{n}" for n in range(6)]
    plan = plan_for(rules({"match": {"eventName": names, "readOnly": [False]}}))
    assert plan.kind is PlanKind.WRITES
    assert plan.lookups == (("ReadOnly", "false"),)


def test_too_many_names_without_read_only_is_a_full_scan() -> None:
    names = [f"Delete{n}" for n in range(6)]
    assert plan_for(rules({"match": {"eventName": names}})) == FULL


@pytest.mark.parametrize(
    "matcher",
    [
        {"match": {"eventName": [{"prefix": "Delete"}]}},  # not a name LookupEvents can take
        {"match": {"eventName": [{"anything-but": "ConsoleLogin"}]}},
        {"match": {"eventSource": ["kms.amazonaws.com"]}},
        {"match": {"$or": [{"eventName": ["A"]}, {"eventSource": ["s3.amazonaws.com"]}]}},
        {"filter_pattern": "{ $.errorCode = AccessDenied }"},
        {"filter_pattern": "{ $.eventName = ConsoleLogin || $.readOnly IS FALSE }"},
    ],
)
def test_a_rule_that_can_match_unnamed_events_widens_the_plan(matcher: dict[str, Any]) -> None:
    named = {"match": {"eventName": ["ConsoleLogin"]}}
    assert plan_for(rules(named, matcher)).kind is not PlanKind.NAMES


def test_a_rule_that_accepts_read_only_events_forces_a_full_scan() -> None:
    writes = {"match": {"readOnly": [False], "eventSource": ["iam.amazonaws.com"]}}
    reads = {"match": {"eventSource": ["s3.amazonaws.com"]}}
    assert plan_for(rules(writes)).kind is PlanKind.WRITES
    assert plan_for(rules(writes, reads)) == FULL


def test_no_event_rule_reads_nothing() -> None:
    plan = plan_for([])
    assert plan.kind is PlanKind.NAMES and plan.lookups == ()


def test_the_builtin_packs_need_a_full_scan() -> None:
    # Unauthorized-call and root-usage rules can match any event.
    assert plan_for(load_rules(["builtin:cis"])) == FULL
    assert plan_for(load_rules(["builtin:cis", "builtin:essentials"])) == FULL


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_spaces_calls_by_the_rate() -> None:
    t = FakeTime()
    pacer = Pacer(2.0, t.clock, t.sleep)
    for _ in range(3):
        pacer.acquire()
    assert t.sleeps == [0.5, 0.5]
    assert t.now == pytest.approx(101.0)
    assert pacer.waited == pytest.approx(1.0)


def test_pacer_does_not_wait_when_calls_are_already_slow() -> None:
    t = FakeTime()
    pacer = Pacer(2.0, t.clock, t.sleep)
    pacer.acquire()
    t.now += 3.0  # a slow answer
    pacer.acquire()
    assert t.sleeps == []


def test_pacer_penalty_after_a_throttle_holds_every_call() -> None:
    t = FakeTime()
    pacer = Pacer(2.0, t.clock, t.sleep)
    pacer.acquire()
    pacer.penalise(4.0)
    pacer.acquire()
    assert t.sleeps == [4.0]


def test_pacer_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0, FakeTime().clock, FakeTime().sleep)
