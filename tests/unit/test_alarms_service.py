"""One tick of metric rules: state records, transitions and the alerts they notify."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from veilleur.alarms import (
    NOTIFIED,
    AlarmKey,
    AlarmTick,
    dimensions_key,
    evaluate_alarms,
    index_records,
)
from veilleur.alerts import AlertKind, fingerprint, notification_id
from veilleur.aws import Target
from veilleur.model import Severity
from veilleur.notify import render
from veilleur.rules.metric_spec import MetricRule, parse_metric_rule
from veilleur.sinks.eventbridge import DETAIL_TYPE_ALARM, EventBridgeSink
from veilleur.sources.cloudwatch import FetchResult, RuleData
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import AlarmStateRecord, TickCommit

PROD = Target("111111111111", "eu-west-1")
DEV = Target("222222222222", "us-east-1")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OK_POINTS = (10.0, 20.0, 30.0, 40.0, 50.0)
HIGH_POINTS = (10.0, 20.0, 90.0, 95.0, 99.0)
MISSING = (None,) * 5


def make_rule(*, notify_insufficient_data: bool = False, treat: str = "missing") -> MetricRule:
    raw = {
        "id": "cpu-high",
        "title": "Web CPU high",
        "severity": "critical",
        "description": "CPU of the web fleet",
        "runbook": "https://runbooks.example/cpu",
        "tags": ["capacity"],
        "notify_insufficient_data": notify_insufficient_data,
        "metric": {
            "namespace": "AWS/EC2",
            "metric_name": "CPUUtilization",
            "dimensions": {"AutoScalingGroupName": "web"},
            "statistic": "Average",
            "period": "5m",
            "comparison": ">",
            "threshold": 80,
            "evaluation_periods": 3,
            "treat_missing_data": treat,
        },
    }
    out = parse_metric_rule(raw, "test")
    assert isinstance(out, MetricRule), out
    return out


RULE = make_rule()


def fetched(
    points: Sequence[float | None] | None,
    *,
    target: Target = PROD,
    end: datetime = T0,
    skipped: str | None = None,
) -> FetchResult:
    start = end - timedelta(minutes=25)
    rd = RuleData(
        "cpu-high",
        target,
        start,
        300,
        tuple(points) if points is not None else (),
        skipped,
        skipped is not None,
    )
    return FetchResult({("cpu-high", target.key): rd}, {})


class Alarm:
    """Successive ticks of one rule, carrying the records as the store would."""

    def __init__(self, rule: MetricRule = RULE) -> None:
        self.rule = rule
        self.records: dict[AlarmKey, AlarmStateRecord] = {}
        self.now = T0 + timedelta(minutes=1)

    def tick(self, points: Sequence[float | None] | None, **kw: Any) -> AlarmTick:
        end = kw.pop("end", self.now - timedelta(minutes=1))
        out = evaluate_alarms([self.rule], fetched(points, end=end, **kw), self.records, self.now)
        self.records.update(index_records(out.records))
        self.now += timedelta(minutes=5)
        return out

    def record(self, target: Target = PROD) -> AlarmStateRecord:
        return self.records[("cpu-high", dimensions_key(self.rule, target))]


def states(tick: AlarmTick) -> list[tuple[str, str, bool]]:
    return [(t.old, t.new, t.notified) for t in tick.transitions]


def test_dimensions_key_is_target_and_escaped_dimensions() -> None:
    assert dimensions_key(RULE, PROD) == "111111111111/eu-west-1?AutoScalingGroupName=web"
    raw_rule = replace(
        RULE,
        metrics=(
            (
                "m1",
                replace(RULE.metrics[0][1], dimensions=(("Name", "a&b=c d"),)),
            ),
        ),
    )
    assert dimensions_key(raw_rule, PROD) == "111111111111/eu-west-1?Name=a%26b%3Dc+d"
    assert (
        dimensions_key(
            replace(raw_rule, metrics=(("m1", replace(RULE.metrics[0][1], dimensions=())),)), DEV
        )
        == "222222222222/us-east-1"
    )


def test_first_evaluation_starts_from_insufficient_data_and_start_up_ok_is_quiet() -> None:
    alarm = Alarm()
    tick = alarm.tick(OK_POINTS)

    assert states(tick) == [("INSUFFICIENT_DATA", "OK", False)]
    assert tick.alerts == ()
    [record] = tick.records
    assert (record.state, record.since, record.last_evaluated) == (
        "OK",
        alarm.now - timedelta(minutes=5),
        record.since,
    )
    assert record.details[NOTIFIED] is None
    assert record.reason.startswith("Threshold Crossed: 3 out of the last 3 datapoints")


def test_first_evaluation_without_data_is_insufficient_data_without_a_transition() -> None:
    tick = Alarm().tick(MISSING)
    assert tick.transitions == ()
    assert tick.alerts == ()
    assert tick.records[0].state == "INSUFFICIENT_DATA"


def test_ok_to_alarm_notifies_with_the_deciding_datapoints() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    now = alarm.now
    tick = alarm.tick(HIGH_POINTS, end=T0 + timedelta(minutes=5))

    assert states(tick) == [("OK", "ALARM", True)]
    [alert] = tick.alerts
    key = "111111111111/eu-west-1?AutoScalingGroupName=web"
    fp = fingerprint("cpu-high", (("dimensions", key),))
    assert alert.kind is AlertKind.ALARM
    assert alert.severity is Severity.CRITICAL
    assert alert.title == "Web CPU high"
    assert alert.fingerprint == fp
    assert alert.notification_id == notification_id(fp, "OK->ALARM@2026-01-01T12:05:00Z")
    assert (alert.account, alert.region) == ("111111111111", "eu-west-1")
    assert alert.group == (("AutoScalingGroupName", "web"),)
    assert (alert.first_seen, alert.last_seen) == (
        T0 - timedelta(minutes=20),
        T0 + timedelta(minutes=5),
    )
    assert alert.count == 3
    assert alert.runbook == "https://runbooks.example/cpu"
    d = alert.details
    assert (d["old_state"], d["new_state"]) == ("OK", "ALARM")
    assert d["reason"].startswith(
        "Threshold Crossed: 3 out of the last 3 datapoints [99.0, 95.0, 90.0]"
    )
    assert d["datapoints"] == [90.0, 95.0, 99.0]
    assert d["metric"] == "AWS/EC2 CPUUtilization Average {AutoScalingGroupName=web}"
    assert (d["threshold"], d["comparison"], d["period"]) == (80.0, ">", "5m")
    assert "range_values" not in d
    record = alarm.record()
    assert (record.state, record.since) == ("ALARM", now)
    assert record.details[NOTIFIED] == "ALARM"
    assert record.details["range_values"] == list(HIGH_POINTS)


def test_staying_in_alarm_notifies_nothing_and_keeps_since() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    alarm.tick(HIGH_POINTS)
    since = alarm.record().since
    tick = alarm.tick(HIGH_POINTS)
    assert (tick.alerts, tick.transitions) == ((), ())
    assert alarm.record().since == since
    assert alarm.record().last_evaluated == alarm.now - timedelta(minutes=5)


def test_back_to_ok_is_a_resolved_alert_with_the_rule_severity() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    raised = alarm.tick(HIGH_POINTS).alerts[0]
    tick = alarm.tick(OK_POINTS)

    assert states(tick) == [("ALARM", "OK", True)]
    [alert] = tick.alerts
    assert alert.title == "Resolved: Web CPU high"
    assert alert.severity is Severity.CRITICAL  # same routing as the alarm it resolves
    assert alert.fingerprint == raised.fingerprint
    assert alert.notification_id != raised.notification_id
    assert (alert.details["old_state"], alert.details["new_state"]) == ("ALARM", "OK")


def test_the_same_evaluation_replayed_gives_the_same_notification_id() -> None:
    records: dict[AlarmKey, AlarmStateRecord] = {}
    first = evaluate_alarms([RULE], fetched(OK_POINTS), records, T0)
    records = index_records(first.records)
    a = evaluate_alarms([RULE], fetched(HIGH_POINTS), records, T0 + timedelta(minutes=1))
    b = evaluate_alarms([RULE], fetched(HIGH_POINTS), records, T0 + timedelta(minutes=2))
    assert a.alerts[0].notification_id == b.alerts[0].notification_id


def test_insufficient_data_is_not_notified_by_default_nor_the_ok_after_it() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    to_missing = alarm.tick(MISSING)
    back = alarm.tick(OK_POINTS)
    assert states(to_missing) == [("OK", "INSUFFICIENT_DATA", False)]
    assert states(back) == [("INSUFFICIENT_DATA", "OK", False)]
    assert to_missing.alerts == back.alerts == ()


def test_insufficient_data_is_notified_when_the_rule_asks_and_so_is_its_end() -> None:
    alarm = Alarm(make_rule(notify_insufficient_data=True))
    start = alarm.tick(MISSING)  # a new alarm is already INSUFFICIENT_DATA: no change
    alarm.tick(OK_POINTS)  # start-up OK: quiet
    lost = alarm.tick(MISSING)
    found = alarm.tick(OK_POINTS)

    assert start.alerts == ()
    assert [a.title for a in lost.alerts] == ["Insufficient data: Web CPU high"]
    assert [a.title for a in found.alerts] == ["Resolved: Web CPU high"]
    assert lost.alerts[0].details["new_state"] == "INSUFFICIENT_DATA"


def test_an_alarm_that_loses_its_data_and_recovers_is_resolved() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    alarm.tick(HIGH_POINTS)
    gap = alarm.tick(MISSING)
    recovered = alarm.tick(OK_POINTS)
    assert states(gap) == [("ALARM", "INSUFFICIENT_DATA", False)]
    assert states(recovered) == [("INSUFFICIENT_DATA", "OK", True)]
    assert recovered.alerts[0].details["old_state"] == "INSUFFICIENT_DATA"


def test_an_alarm_back_from_a_data_gap_is_not_raised_twice() -> None:
    alarm = Alarm()
    alarm.tick(OK_POINTS)
    alarm.tick(HIGH_POINTS)
    alarm.tick(MISSING)
    again = alarm.tick(HIGH_POINTS)
    assert states(again) == [("INSUFFICIENT_DATA", "ALARM", False)]
    assert again.alerts == ()


def test_start_up_straight_into_alarm_is_notified() -> None:
    tick = Alarm().tick(HIGH_POINTS)
    assert states(tick) == [("INSUFFICIENT_DATA", "ALARM", True)]
    assert tick.alerts[0].details["old_state"] == "INSUFFICIENT_DATA"


def test_a_skipped_fetch_changes_nothing() -> None:
    alarm = Alarm()
    alarm.tick(HIGH_POINTS)
    before = alarm.record()
    tick = alarm.tick(None, skipped="GetMetricData failed: Throttling: Rate exceeded")
    assert (tick.records, tick.alerts, tick.transitions) == ((), (), ())
    [skip] = tick.skipped
    assert (skip.rule_id, skip.reason, skip.retryable) == (
        "cpu-high",
        "GetMetricData failed: Throttling: Rate exceeded",
        True,
    )
    assert alarm.record() == before


def test_one_alarm_per_target_and_the_worst_state_per_rule() -> None:
    data = FetchResult.merge([fetched(OK_POINTS), fetched(HIGH_POINTS, target=DEV)])
    tick = evaluate_alarms([RULE], data, {}, T0)

    assert sorted((r.dimensions_key, r.state) for r in tick.records) == [
        ("111111111111/eu-west-1?AutoScalingGroupName=web", "OK"),
        ("222222222222/us-east-1?AutoScalingGroupName=web", "ALARM"),
    ]
    [alert] = tick.alerts
    assert alert.account == DEV.account
    assert tick.rule_states({}) == {"cpu-high": "ALARM"}
    stale = AlarmStateRecord("gone", "x", "INSUFFICIENT_DATA", T0, "", T0)
    assert tick.rule_states({("gone", "x"): stale}) == {
        "cpu-high": "ALARM",
        "gone": "INSUFFICIENT_DATA",
    }


def test_rules_without_data_and_data_without_rules_are_ignored() -> None:
    other = replace(RULE, id="other")
    assert evaluate_alarms([other], fetched(OK_POINTS), {}, T0).records == ()


def test_an_unreadable_stored_state_counts_as_insufficient_data() -> None:
    key = ("cpu-high", dimensions_key(RULE, PROD))
    bad = AlarmStateRecord("cpu-high", key[1], "PANIC", T0, "", T0, {})
    tick = evaluate_alarms([RULE], fetched(HIGH_POINTS), {key: bad}, T0)
    assert states(tick) == [("INSUFFICIENT_DATA", "ALARM", True)]


def test_records_round_trip_through_the_store(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "state.db")
    try:
        first = evaluate_alarms([RULE], fetched(OK_POINTS), {}, T0)
        store.commit_tick(TickCommit(now=T0, alarm_states=first.records))
        previous = index_records(store.alarm_states())
        second = evaluate_alarms([RULE], fetched(HIGH_POINTS), previous, T0 + timedelta(minutes=5))
        store.commit_tick(TickCommit(now=T0, alarm_states=second.records))
        [stored] = store.alarm_states()
    finally:
        store.close()
    assert states(second) == [("OK", "ALARM", True)]
    assert stored.state == "ALARM"
    assert stored.details[NOTIFIED] == "ALARM"
    assert stored.details["datapoints"] == [90.0, 95.0, 99.0]


@pytest.mark.parametrize("points", [HIGH_POINTS, (None, None, 99.0, None, 99.0)])
def test_alarm_alerts_render_for_every_sink(points: Sequence[float | None]) -> None:
    [alert] = evaluate_alarms([make_rule(treat="breaching")], fetched(points), {}, T0).alerts
    assert "(INSUFFICIENT_DATA -> ALARM)" in render.subject(alert)
    assert len(render.sms_text(alert).encode()) <= 140
    assert "Datapoints:" in render.email_text(alert)
    entry = EventBridgeSink(object(), "bus").entry(alert)
    assert entry["DetailType"] == DETAIL_TYPE_ALARM
