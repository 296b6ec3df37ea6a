"""SNS and EventBridge sinks over real HTTP to moto: what subscribers and targets receive."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.conftest import BusQueue, SentNotification, TopicQueue
from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.model import Severity
from veilleur.notify import render
from veilleur.sinks.base import Outcome
from veilleur.sinks.eventbridge import (
    DETAIL_TYPE_ALARM,
    DETAIL_TYPE_ALERT,
    MAX_ENTRY_BYTES,
    EventBridgeSink,
    entry_size,
)
from veilleur.sinks.sns import SnsMode, SnsSink, TopicRouting

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
USER_ARN = "arn:aws:iam::123456789012:user/alice"


def make_alert(
    n: int = 0,
    *,
    severity: Severity = Severity.HIGH,
    kind: AlertKind = AlertKind.THRESHOLD,
    ip: str = "203.0.113.9",
    users: tuple[str, ...] = ("alice", "bob"),
    details: dict[str, Any] | None = None,
) -> Alert:
    group = (("sourceIPAddress", ip),)
    fp = fingerprint("console-signin-failures", group)
    return Alert(
        rule_id="console-signin-failures",
        title="Burst of failed console sign-ins",
        severity=severity,
        kind=kind,
        fingerprint=fp,
        notification_id=notification_id(fp, f"event-{n}"),
        count=6,
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=4),
        group=group,
        distinct={"userName": users},
        sample_event_ids=(f"event-{n}",),
        runbook="https://runbooks.example/console",
        account="123456789012",
        region="us-east-1",
        resources=(USER_ARN,),
        details=details if details is not None else {"window": "5m"},
    )


def alarm_alert() -> Alert:
    return make_alert(
        99,
        severity=Severity.CRITICAL,
        kind=AlertKind.ALARM,
        details={
            "old_state": "OK",
            "new_state": "ALARM",
            "reason": "Threshold Crossed: 3 datapoints of 5 were greater than 80.0",
            "datapoints": [91.0, 95.5, 88.1],
        },
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def envelope_docs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in messages]


# -- SNS ------------------------------------------------------------------------------------


def test_json_mode_delivers_alert_document_to_sqs_with_email_and_sms_texts(
    aws_client: Callable[[str], Any],
    sns_topic_to_queue: Callable[..., TopicQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
    sns_sent: Callable[[str], list[SentNotification]],
) -> None:
    tq = sns_topic_to_queue("alerts")
    alert = make_alert(users=("alice", "<img src=x onerror=alert(1)>", "eve\r\nBcc: x@evil"))
    sink = SnsSink(aws_client("sns"), TopicRouting(tq.topic_arn))

    results = sink.deliver([alert])

    assert [(r.notification_id, r.outcome) for r in results] == [
        (alert.notification_id, Outcome.DELIVERED)
    ]
    [message] = receive_until(tq.queue_url, 1)
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == render.subject(alert)
    doc = json.loads(envelope["Message"])
    assert doc["notification_id"] == alert.notification_id
    assert doc == json.loads(render.subscriber_json(alert))
    assert Alert.from_dict(doc) == alert
    assert doc["texts"] == {
        "subject": render.subject(alert),
        "sms": render.sms_text(alert),
        "email": render.email_text(alert),
    }
    assert len(doc["texts"]["sms"].encode("utf-8")) <= 140
    # The e-mail and SMS texts travel in the same publish; SQS only shows its own key.
    [sent] = sns_sent(tq.topic_arn)
    structure = json.loads(sent.message)
    assert structure["email"] == render.email_text(alert)
    assert structure["sms"] == render.sms_text(alert)
    assert {"default", "sqs", "lambda", "http", "https"} <= structure.keys()
    assert alert.notification_id in structure["email"]
    assert "<img" not in structure["email"]
    assert "\r\nBcc" not in structure["email"]


def test_sms_text_fits_one_ascii_sms() -> None:
    alert = make_alert(ip="2001:db8::" + "f" * 200, users=("Łukasz 🙂",))
    text = render.sms_text(alert)
    assert len(text.encode("utf-8")) <= 140
    assert text.isascii()


def test_attributes_mode_delivers_message_attributes_and_filter_policy_applies(
    aws_client: Callable[[str], Any],
    sns_topic_to_queue: Callable[..., TopicQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    everything = sns_topic_to_queue("alerts-attr")
    sns = aws_client("sns")
    critical_only = sns.subscribe(
        TopicArn=everything.topic_arn,
        Protocol="sqs",
        Endpoint=aws_client("sqs").get_queue_attributes(
            QueueUrl=aws_client("sqs").create_queue(QueueName="critical-q")["QueueUrl"],
            AttributeNames=["QueueArn"],
        )["Attributes"]["QueueArn"],
        Attributes={"FilterPolicy": json.dumps({"severity": ["critical"]})},
        ReturnSubscriptionArn=True,
    )
    assert critical_only["SubscriptionArn"]
    critical_url = aws_client("sqs").get_queue_url(QueueName="critical-q")["QueueUrl"]
    high, alarm = make_alert(1), alarm_alert()
    sink = SnsSink(sns, TopicRouting(everything.topic_arn), SnsMode.ATTRIBUTES)

    results = sink.deliver([high, alarm])

    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    got = {e["Message"]: e for e in envelope_docs(receive_until(everything.queue_url, 2))}
    assert set(got) == {render.email_text(high), render.email_text(alarm)}
    attrs = got[render.email_text(alarm)]["MessageAttributes"]
    assert {k: v["Value"] for k, v in attrs.items()} == {
        "severity": "critical",
        "rule": "console-signin-failures",
        "kind": "alarm",
        "notification_id": alarm.notification_id,
        "account": "123456789012",
        "region": "us-east-1",
        "state": "ALARM",
    }
    assert all(v["Type"] == "String" for v in attrs.values())
    [only] = envelope_docs(receive_until(critical_url, 1))
    assert only["MessageAttributes"]["notification_id"]["Value"] == alarm.notification_id
    assert receive_until(critical_url, 1, deadline=1.0) == []


def test_severity_routing_sends_each_alert_to_its_topic_only(
    aws_client: Callable[[str], Any],
    sns_topic_to_queue: Callable[..., TopicQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    mail, pager = sns_topic_to_queue("mail"), sns_topic_to_queue("pager")
    sns = aws_client("sns")
    routed = SnsSink(sns, TopicRouting(mail.topic_arn, {Severity.CRITICAL: pager.topic_arn}))
    pager_only = SnsSink(sns, TopicRouting(None, {Severity.CRITICAL: pager.topic_arn}))
    low, critical = make_alert(1, severity=Severity.LOW), make_alert(2, severity=Severity.CRITICAL)

    results = routed.deliver([low, critical])

    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    mail_docs = [json.loads(e["Message"]) for e in envelope_docs(receive_until(mail.queue_url, 1))]
    pager_docs = [
        json.loads(e["Message"]) for e in envelope_docs(receive_until(pager.queue_url, 1))
    ]
    assert [d["notification_id"] for d in mail_docs] == [low.notification_id]
    assert [d["notification_id"] for d in pager_docs] == [critical.notification_id]
    assert pager_only.accepts(critical)
    assert not pager_only.accepts(low)
    [unrouted] = pager_only.deliver([low])
    assert unrouted.outcome is Outcome.PERMANENT


def test_many_alerts_are_batched_and_all_delivered_once(
    aws_client: Callable[[str], Any],
    sns_topic_to_queue: Callable[..., TopicQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    tq = sns_topic_to_queue("bulk")
    alerts = [make_alert(i, ip=f"198.51.100.{i}") for i in range(23)]

    results = SnsSink(aws_client("sns"), tq.topic_arn).deliver(alerts)

    assert [r.notification_id for r in results] == [a.notification_id for a in alerts]
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    docs = [json.loads(e["Message"]) for e in envelope_docs(receive_until(tq.queue_url, 23))]
    assert sorted(d["notification_id"] for d in docs) == sorted(a.notification_id for a in alerts)


def test_missing_topic_is_permanent(aws_client: Callable[[str], Any]) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:does-not-exist"
    results = SnsSink(aws_client("sns"), missing).deliver([make_alert(1), make_alert(2)])
    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.PERMANENT]
    assert all(r.error and r.error.startswith("NotFound") for r in results)


# -- EventBridge ------------------------------------------------------------------------------


def test_eventbridge_delivers_alert_and_alarm_to_rule_target(
    aws_client: Callable[[str], Any],
    bus_rule_to_queue: Callable[..., BusQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    bq = bus_rule_to_queue("security", pattern={"source": ["veilleur"]})
    alert, alarm = make_alert(1), alarm_alert()
    sink = EventBridgeSink(aws_client("events"), bq.bus_name)

    results = sink.deliver([alert, alarm])

    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    events = {
        e["detail"]["notification_id"]: e for e in envelope_docs(receive_until(bq.queue_url, 2))
    }
    assert set(events) == {alert.notification_id, alarm.notification_id}
    assert events[alert.notification_id]["detail-type"] == DETAIL_TYPE_ALERT
    assert events[alarm.notification_id]["detail-type"] == DETAIL_TYPE_ALARM
    assert events[alarm.notification_id]["detail"]["details"]["new_state"] == "ALARM"
    assert all(e["source"] == "veilleur" for e in events.values())
    assert events[alert.notification_id]["resources"] == [USER_ARN]
    assert Alert.from_dict(events[alert.notification_id]["detail"]) == alert


def test_eventbridge_other_source_does_not_match_rule(
    aws_client: Callable[[str], Any],
    bus_rule_to_queue: Callable[..., BusQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    bq = bus_rule_to_queue("security")
    sink = EventBridgeSink(aws_client("events"), bq.bus_name, source="acme.watch")
    assert [r.outcome for r in sink.deliver([make_alert(1)])] == [Outcome.DELIVERED]
    assert receive_until(bq.queue_url, 1, deadline=1.0) == []


class CountingEvents:
    """Wraps an EventBridge client to record the size of each PutEvents call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[int] = []

    def put_events(self, **kwargs: Any) -> Any:
        self.calls.append(len(kwargs["Entries"]))
        return self.client.put_events(**kwargs)


def test_eventbridge_23_alerts_go_in_3_batches_all_delivered(
    aws_client: Callable[[str], Any],
    bus_rule_to_queue: Callable[..., BusQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    bq = bus_rule_to_queue("security")
    client = CountingEvents(aws_client("events"))
    alerts = [make_alert(i, ip=f"198.51.100.{i}") for i in range(23)]

    results = EventBridgeSink(client, bq.bus_name).deliver(alerts)

    assert client.calls == [10, 10, 3]
    assert [r.notification_id for r in results] == [a.notification_id for a in alerts]
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    got = [e["detail"]["notification_id"] for e in envelope_docs(receive_until(bq.queue_url, 23))]
    assert sorted(got) == sorted(a.notification_id for a in alerts)


def test_eventbridge_huge_alert_is_trimmed_under_the_entry_limit_and_delivered(
    aws_client: Callable[[str], Any],
    bus_rule_to_queue: Callable[..., BusQueue],
    receive_until: Callable[..., list[dict[str, Any]]],
) -> None:
    bq = bus_rule_to_queue("security")
    users = tuple(f"user-{i}-" + "x" * 2000 for i in range(400))  # ~800 KB of distinct values
    alert = make_alert(1, users=users)
    sink = EventBridgeSink(aws_client("events"), bq.bus_name, detail_max_bytes=10**9)

    assert entry_size(sink.entry(alert)) <= MAX_ENTRY_BYTES
    [result] = sink.deliver([alert])

    assert result.outcome is Outcome.DELIVERED
    [event] = envelope_docs(receive_until(bq.queue_url, 1))
    assert event["detail"]["notification_id"] == alert.notification_id
    assert event["detail"]["truncated"] is True
    assert len(event["detail"]["distinct"]["userName"]) < len(users)


def test_eventbridge_missing_bus_is_permanent(aws_client: Callable[[str], Any]) -> None:
    results = EventBridgeSink(aws_client("events"), "no-such-bus").deliver([make_alert(1)])
    assert [r.outcome for r in results] == [Outcome.PERMANENT]


# -- unreachable endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize("service", ["sns", "events"])
def test_closed_port_makes_every_alert_retryable_without_raising(
    aws_session: boto3.Session, service: str
) -> None:
    client = aws_session.client(
        service,
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2),
    )
    alerts = [make_alert(i) for i in range(12)]
    sink = (
        SnsSink(client, "arn:aws:sns:us-east-1:123456789012:alerts")
        if service == "sns"
        else EventBridgeSink(client, "security")
    )

    results = sink.deliver(alerts)

    assert [r.notification_id for r in results] == [a.notification_id for a in alerts]
    assert {r.outcome for r in results} == {Outcome.RETRYABLE}
    assert all(r.error and "EndpointConnectionError" in r.error for r in results)
