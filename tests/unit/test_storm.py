"""Alert storms: rate limits per rule and per sink, then exactly one summary."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.unit.helpers import T0, event, rule
from veilleur.alerts import AlertKind
from veilleur.notify.storm import StormGate, StormLimits
from veilleur.rules.engine import Engine


def alerts_for(n: int, rule_id: str = "r", offset: int = 0) -> list:
    engine = Engine([rule(rule_id)])
    return engine.process([event(offset + i, event_id=f"{rule_id}-{i}") for i in range(n)], T0)


def test_under_the_limits_everything_passes() -> None:
    gate = StormGate(StormLimits(per_rule=10, per_sink=30))
    out = gate.admit(alerts_for(10), ["sns", "bus"], T0)
    assert len(out["sns"]) == 10
    assert len(out["bus"]) == 10


def test_storm_is_held_then_summarised_once() -> None:
    gate = StormGate(StormLimits(per_rule=10, per_sink=30, window=timedelta(minutes=5)))
    out = gate.admit(alerts_for(322), ["sns"], T0)
    assert len(out["sns"]) == 10
    assert gate.held_count() == 312
    # Before the window has passed: nothing more.
    assert gate.admit([], ["sns"], T0 + timedelta(minutes=4))["sns"] == []
    later = gate.admit([], ["sns"], T0 + timedelta(minutes=5))["sns"]
    assert len(later) == 1
    summary = later[0]
    assert summary.kind is AlertKind.SUMMARY
    assert summary.count == 312
    assert summary.title.startswith("312 more alerts from")
    assert summary.details["suppressed"] == 312
    assert len(summary.sample_event_ids) <= 5
    assert gate.held_count() == 0
    assert gate.admit([], ["sns"], T0 + timedelta(minutes=20))["sns"] == []


def test_per_sink_limit_spans_rules() -> None:
    gate = StormGate(StormLimits(per_rule=10, per_sink=15))
    batch = alerts_for(10, "a") + alerts_for(10, "b")
    out = gate.admit(batch, ["sns"], T0)["sns"]
    assert len(out) == 15
    assert gate.held_count() == 5


def test_limits_reset_after_the_window() -> None:
    gate = StormGate(StormLimits(per_rule=3, per_sink=30, window=timedelta(minutes=5)))
    assert len(gate.admit(alerts_for(3), ["s"], T0)["s"]) == 3
    assert len(gate.admit(alerts_for(1, offset=100), ["s"], T0 + timedelta(minutes=1))["s"]) == 0
    # 6 minutes later the budget is back; the held alert is summarised at the same time.
    out = gate.admit(alerts_for(2, offset=200), ["s"], T0 + timedelta(minutes=6))["s"]
    kinds = [a.kind for a in out]
    assert kinds.count(AlertKind.SUMMARY) == 1
    assert kinds.count(AlertKind.EVENT) == 2


def test_state_survives_a_restart_and_summary_id_is_stable() -> None:
    gate = StormGate(StormLimits(per_rule=1))
    gate.admit(alerts_for(5), ["s"], T0)
    saved = json.loads(json.dumps(gate.state_json()))
    ids = []
    for _ in range(2):  # the same state restored twice gives the same summary id
        again = StormGate(StormLimits(per_rule=1))
        again.load_state(saved)
        out = again.admit([], ["s"], T0 + timedelta(minutes=5))["s"]
        assert [a.count for a in out] == [4]
        ids.append(out[0].notification_id)
    assert ids[0] == ids[1]
