"""Metric rules over HTTP: moto's CloudWatch in, SNS and EventBridge notifications out.

A rule watching a queue depth goes OK -> ALARM -> OK over three evaluations (an injected
``now``, datapoints put between them); the ALARM and the resolution reach an SQS queue
subscribed to an SNS topic and an SQS target of an EventBridge rule.

Around moto's gaps (docs AWS-FACTS, "Local emulation"): a namespace of our own with
dimensioned metrics and distinct metric names (moto ignores the namespace when a query has
dimensions), minute-aligned timestamps (its buckets start at StartTime), basic statistics
only, and an expression that is a bare id reference (the only math it computes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import ACCOUNT, REGION, BusQueue, TopicQueue
from veilleur.alarms import AlarmKey, AlarmTick, evaluate_alarms, index_records
from veilleur.alerts import Alert
from veilleur.aws import Target
from veilleur.rules.metric_spec import MetricRule, parse_metric_rule
from veilleur.sinks.base import Outcome
from veilleur.sinks.eventbridge import DETAIL_TYPE_ALARM, EventBridgeSink
from veilleur.sinks.sns import SnsSink, TopicRouting
from veilleur.sources.cloudwatch import CloudWatchSource, FetchResult, plan_queries
from veilleur.store.types import AlarmStateRecord

NAMESPACE = "Veilleur/IntegrationTest"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TARGET = Target(ACCOUNT, REGION)


def rule(raw: dict[str, Any]) -> MetricRule:
    out = parse_metric_rule(raw, raw["id"])
    assert isinstance(out, MetricRule), out
    return out


DEPTH = rule(
    {
        "id": "orders-backlog",
        "title": "Orders queue backlog",
        "severity": "high",
        "metric": {
            "namespace": NAMESPACE,
            "metric_name": "QueueDepth",
            "dimensions": {"Queue": "orders"},
            "statistic": "Maximum",
            "period": "1m",
            "comparison": ">",
            "threshold": 100,
            "evaluation_periods": 3,
        },
    }
)
# Watched through an expression: its input is sent with ReturnData=false.
LATENCY = rule(
    {
        "id": "orders-latency",
        "title": "Orders latency",
        "severity": "medium",
        "metric": {
            "expression": "latency",
            "metrics": {
                "latency": {
                    "namespace": NAMESPACE,
                    "metric_name": "Latency",
                    "dimensions": {"Queue": "orders"},
                    "statistic": "Average",
                }
            },
            "period": "1m",
            "comparison": ">=",
            "threshold": 500,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 2,
        },
    }
)
RULES = [DEPTH, LATENCY]


def put(cw: Any, name: str, first: datetime, values: Sequence[float]) -> None:
    cw.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "Queue", "Value": "orders"}],
                "Timestamp": first + timedelta(minutes=i),
                "Value": value,
            }
            for i, value in enumerate(values)
        ],
    )


class Daemon:
    """The tick the lead wires into the service, minus the store: plan, fetch, evaluate."""

    def __init__(self, cw: Any) -> None:
        self.source = CloudWatchSource(cw, TARGET)
        self.records: dict[AlarmKey, AlarmStateRecord] = {}
        self.fetched: list[FetchResult] = []

    def tick(self, now: datetime) -> AlarmTick:
        batches = plan_queries(RULES, [TARGET], now, timedelta(0))
        result = self.source.fetch(batches)
        self.fetched.append(result)
        tick = evaluate_alarms(RULES, result, self.records, now)
        self.records.update(index_records(tick.records))
        return tick


def deliver(sinks: Sequence[SnsSink | EventBridgeSink], alerts: Sequence[Alert]) -> None:
    for sink in sinks:
        results = sink.deliver(alerts)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * len(alerts), results


def test_a_metric_rule_goes_ok_alarm_ok_and_both_changes_are_notified(
    aws_client: Callable[[str], Any],
    sns_topic_to_queue: Callable[..., TopicQueue],
    bus_rule_to_queue: Callable[..., BusQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    cw = aws_client("cloudwatch")
    topic = sns_topic_to_queue("veilleur-alarms")
    bus = bus_rule_to_queue("veilleur", pattern={"detail-type": [DETAIL_TYPE_ALARM]})
    sinks: list[SnsSink | EventBridgeSink] = [
        SnsSink(aws_client("sns"), TopicRouting(topic.topic_arn)),
        EventBridgeSink(aws_client("events"), bus.bus_name),
    ]
    daemon = Daemon(cw)
    put(cw, "Latency", T0 - timedelta(minutes=5), [120.0] * 11)

    # 1. Quiet queue: the start-up INSUFFICIENT_DATA -> OK is not notified.
    put(cw, "QueueDepth", T0 - timedelta(minutes=5), [10.0] * 5)
    first = daemon.tick(T0 + timedelta(seconds=30))
    assert [(t.rule_id, t.new, t.notified) for t in first.transitions] == [
        ("orders-backlog", "OK", False),
        ("orders-latency", "OK", False),
    ]
    assert first.alerts == ()

    # 2. Three minutes over the threshold (the still-filling minute 12:03 is left out).
    put(cw, "QueueDepth", T0, [150.0, 180.0, 210.0])
    put(cw, "QueueDepth", T0 + timedelta(minutes=3), [999.0])  # 12:03, after `now - delay`
    second = daemon.tick(T0 + timedelta(minutes=3, seconds=10))
    [alarm] = second.alerts
    assert alarm.details["datapoints"] == [150.0, 180.0, 210.0]
    deliver(sinks, second.alerts)

    # 3. Drained: back to OK, notified as resolved.
    put(cw, "QueueDepth", T0 + timedelta(minutes=4), [20.0, 15.0, 5.0])
    third = daemon.tick(T0 + timedelta(minutes=7, seconds=5))
    [resolved] = third.alerts
    deliver(sinks, third.alerts)

    assert not any(r.skipped for result in daemon.fetched for r in result.data.values())
    # One call per tick, two metrics requested (the expression's input included).
    assert [(f.stats[TARGET.key].calls, f.stats[TARGET.key].metrics) for f in daemon.fetched] == [
        (1, 2)
    ] * 3
    assert daemon.records[("orders-latency", TARGET.key + "?latency.Queue=orders")].state == "OK"

    sns_docs = [
        json.loads(json.loads(m["Body"])["Message"]) for m in receive_until(topic.queue_url, 2)
    ]
    events = [json.loads(m["Body"]) for m in receive_until(bus.queue_url, 2)]
    assert [e["detail-type"] for e in events] == [DETAIL_TYPE_ALARM] * 2
    for docs in (sns_docs, [e["detail"] for e in events]):
        by_state = {d["details"]["new_state"]: d for d in docs}
        assert sorted(by_state) == ["ALARM", "OK"]
        assert by_state["ALARM"]["details"]["old_state"] == "OK"
        assert by_state["ALARM"]["notification_id"] == alarm.notification_id
        assert by_state["ALARM"]["title"] == "Orders queue backlog"
        assert by_state["OK"]["details"]["old_state"] == "ALARM"
        assert by_state["OK"]["notification_id"] == resolved.notification_id
        assert by_state["OK"]["title"] == "Resolved: Orders queue backlog"
        assert by_state["OK"]["fingerprint"] == by_state["ALARM"]["fingerprint"]
        assert by_state["OK"]["details"]["datapoints"] == [20.0, 15.0, 5.0]
        assert by_state["ALARM"]["account"] == ACCOUNT
        assert by_state["ALARM"]["severity"] == "high"
