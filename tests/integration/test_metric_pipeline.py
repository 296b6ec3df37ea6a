"""Metric rules through the daemon's own tick: moto CloudWatch -> Watch -> SNS/EventBridge -> SQS;
the state survives a restart and `veilleur alarms` reads it while the store is open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.pipeline_kit import FakeClock, open_pipeline, write_config
from veilleur.cli import main

RULES = """
- id: web-cpu-high
  title: Web fleet CPU above 80 %
  severity: high
  metric:
    namespace: Veilleur/Demo
    metric_name: CPUUtilization
    dimensions: {AutoScalingGroupName: web}
    statistic: Maximum
    period: 1m
    comparison: ">"
    threshold: 80
    evaluation_periods: 5
    datapoints_to_alarm: 3
"""


@pytest.fixture
def setup(
    tmp_path: Path,
    clock: FakeClock,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    sns_topic_to_queue,
    bus_rule_to_queue,
) -> Iterator[dict]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    topic = sns_topic_to_queue("alarms")
    bus = bus_rule_to_queue("veilleur")
    (tmp_path / "metric-rules.yaml").write_text(RULES)
    cfg = write_config(
        tmp_path,
        topic.topic_arn,
        bus.bus_name,
        ["metric-rules.yaml"],
        extra={"cloudtrail": {"enabled": False}},
    )
    return {"topic": topic, "bus": bus, "cfg": cfg}


def put(cw, base, minutes: range, value: float) -> None:
    cw.put_metric_data(
        Namespace="Veilleur/Demo",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Value": value,
                "Unit": "Percent",
                "Timestamp": base + timedelta(minutes=m),
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "web"}],
            }
            for m in minutes
        ],
    )


def test_ok_alarm_ok_notified_once_each_and_state_persists(
    setup, clock: FakeClock, aws_client, receive_until, capsys
) -> None:
    cw = aws_client("cloudwatch")
    t0 = clock.now()
    put(cw, t0, range(-10, 0), 20.0)
    p = open_pipeline(setup["cfg"], clock)
    tick = p.watch.tick_metrics()
    assert tick is not None and not tick.skipped
    assert [r.state for r in tick.records] == ["OK"]
    assert tick.alerts == ()  # the start-up INSUFFICIENT_DATA -> OK is quiet

    put(cw, t0, range(5), 95.0)
    clock.advance(7 * 60)
    tick = p.watch.tick_metrics()
    assert [r.state for r in tick.records] == ["ALARM"]
    p.watch.drain()
    # Re-evaluating the same data (and a restart) does not notify again.
    p.store.close()
    p = open_pipeline(setup["cfg"], clock)
    tick = p.watch.tick_metrics()
    assert tick.alerts == ()
    assert p.metrics.value("veilleur_alarm_state", rule="web-cpu-high", state="ALARM") == 1

    capsys.readouterr()  # drop the log lines written so far
    assert main(["alarms", "-c", str(setup["cfg"]), "--format", "json"]) == 0
    (row,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert row["rule_id"] == "web-cpu-high" and row["state"] == "ALARM"
    assert {"dimensions", "since", "reason"} <= set(row)

    put(cw, t0, range(5, 10), 10.0)
    clock.advance(5 * 60)
    tick = p.watch.tick_metrics()
    assert [r.state for r in tick.records] == ["OK"]
    p.watch.drain()

    docs = [
        json.loads(json.loads(m["Body"])["Message"])
        for m in receive_until(setup["topic"].queue_url, 2, deadline=5)
    ]
    assert [(d["details"]["old_state"], d["details"]["new_state"]) for d in docs] == [
        ("OK", "ALARM"),
        ("ALARM", "OK"),
    ]
    events = [json.loads(m["Body"]) for m in receive_until(setup["bus"].queue_url, 2, deadline=5)]
    assert [e["detail-type"] for e in events] == ["Veilleur Alarm State Change"] * 2
    assert [e["detail"]["details"]["new_state"] for e in events] == ["ALARM", "OK"]
    assert events[0]["detail"]["details"]["datapoints"]
    calls = p.metrics.value(
        "veilleur_aws_api_calls_total",
        operation="GetMetricData",
        account="123456789012",
        region="us-east-1",
        outcome="ok",
    )
    assert calls == 2  # one call per tick for this rule set, since the restart
    p.store.close()
