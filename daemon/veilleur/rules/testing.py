"""A rule's own test cases (``tests:`` in its file), run by ``veilleur test``. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from veilleur.model import InvalidRecord, TrailEvent, format_time, parse_event_time
from veilleur.rules.engine import Engine
from veilleur.rules.spec import Rule, RuleTest

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CaseResult:
    rule_id: str
    name: str
    passed: bool
    detail: str  # what was expected and what happened


def complete_records(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``eventID``, ``eventTime`` and ``eventSource`` where a test leaves them out."""
    out = []
    t = BASE_TIME - timedelta(seconds=1)
    for n, raw in enumerate(events):
        rec = dict(raw)
        if "eventTime" in rec:
            t = parse_event_time(rec["eventTime"])
        else:
            t = t + timedelta(seconds=1)
            rec["eventTime"] = format_time(t)
        rec.setdefault("eventID", f"test-{n}")
        rec.setdefault("eventSource", "test.amazonaws.com")
        rec.setdefault("eventName", "TestEvent")
        out.append(rec)
    return out


def run_case(rule: Rule, case: RuleTest) -> CaseResult:
    try:
        records = complete_records(case.events)
        events = sorted(
            (TrailEvent.from_record(r) for r in records),
            key=lambda e: (e.event_time, e.event_id),
        )
    except InvalidRecord as exc:
        return CaseResult(rule.id, case.name, False, f"invalid test event: {exc}")
    engine = Engine([rule])
    now = max(e.event_time for e in events)
    alerts = engine.process(events, now)
    exp = case.expect
    problems = []
    if len(alerts) != exp.alerts:
        problems.append(f"expected {exp.alerts} alert(s), got {len(alerts)}")
    if exp.count is not None and alerts and alerts[0].count != exp.count:
        problems.append(f"expected count {exp.count}, got {alerts[0].count}")
    matches = engine.stats.matches[rule.id]
    summary = f"{len(events)} event(s), {matches} match(es), {len(alerts)} alert(s)"
    if problems:
        return CaseResult(rule.id, case.name, False, "; ".join(problems) + f" [{summary}]")
    return CaseResult(rule.id, case.name, True, summary)


def run_tests(rules: Sequence[Rule]) -> list[CaseResult]:
    return [run_case(rule, case) for rule in rules for case in rule.tests]
