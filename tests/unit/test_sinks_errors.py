"""Error branches of the SNS and EventBridge sinks: what is retried, what is dead-lettered.

boto3 clients are mocks here (the error branches cannot be provoked on moto); the happy
paths run over HTTP in tests/integration/test_sinks.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from veilleur.alerts import Alert, AlertKind
from veilleur.model import Severity
from veilleur.notify import render
from veilleur.sinks.base import Outcome, Sink
from veilleur.sinks.errors import (
    classify_eventbridge_entry,
    classify_exception,
    classify_sns_entry,
    short_error,
)
from veilleur.sinks.eventbridge import MAX_ENTRY_BYTES, EventBridgeSink, entry_size
from veilleur.sinks.sns import SnsMode, SnsSink, TopicRouting

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
PAGER = "arn:aws:sns:us-east-1:123456789012:pager"


def alert(n: int, severity: Severity = Severity.HIGH, **kw: Any) -> Alert:
    return Alert(
        rule_id="r",
        title="t",
        severity=severity,
        kind=kw.pop("kind", AlertKind.EVENT),
        fingerprint="fp",
        notification_id=f"nid-{n}",
        count=1,
        first_seen=T0,
        last_seen=T0,
        **kw,
    )


def client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PublishBatch",
    )


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (client_error("AccessDenied", 403), Outcome.PERMANENT),
        (client_error("AccessDeniedException", 400), Outcome.PERMANENT),
        (client_error("AuthorizationError", 403), Outcome.PERMANENT),
        (client_error("NotFound", 404), Outcome.PERMANENT),
        (client_error("ResourceNotFoundException", 400), Outcome.PERMANENT),
        (client_error("InvalidParameter", 400), Outcome.PERMANENT),
        (client_error("Throttling", 400), Outcome.RETRYABLE),
        (client_error("ThrottlingException", 400), Outcome.RETRYABLE),
        (client_error("Throttled", 429), Outcome.RETRYABLE),
        (client_error("InternalError", 500), Outcome.RETRYABLE),
        (client_error("ServiceUnavailable", 503), Outcome.RETRYABLE),
        (client_error("SomethingNew", 502), Outcome.RETRYABLE),
        (client_error("SomethingNew", 429), Outcome.RETRYABLE),
        (client_error("SomethingElse", 400), Outcome.PERMANENT),
        (client_error("ExpiredToken", 400), Outcome.RETRYABLE),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), Outcome.RETRYABLE),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), Outcome.RETRYABLE),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), Outcome.RETRYABLE),
        (NoCredentialsError(), Outcome.RETRYABLE),
        (ParamValidationError(report="Missing required parameter"), Outcome.PERMANENT),
        (RuntimeError("surprise"), Outcome.RETRYABLE),
    ],
)
def test_classify_exception(exc: BaseException, outcome: Outcome) -> None:
    failure = classify_exception(exc)
    assert failure.outcome is outcome
    assert failure.error
    assert len(failure.error) <= 300


def test_short_error_is_one_bounded_printable_line() -> None:
    text = short_error("Code", "line1\nline2\x1b[31m" + "x" * 1000)
    assert text.startswith("Code: line1 line2")
    assert text.isprintable()
    assert len(text) <= 300


@pytest.mark.parametrize(
    ("code", "sender_fault", "outcome"),
    [
        ("InvalidParameter", True, Outcome.PERMANENT),
        ("InternalError", False, Outcome.RETRYABLE),
        ("SomethingNew", False, Outcome.RETRYABLE),
        ("SomethingNew", True, Outcome.PERMANENT),
        ("Throttled", True, Outcome.RETRYABLE),  # a sender fault, yet transient
        ("KMSThrottling", True, Outcome.RETRYABLE),
    ],
)
def test_classify_sns_entry(code: str, sender_fault: bool, outcome: Outcome) -> None:
    assert classify_sns_entry(code, sender_fault) is outcome


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("InternalFailure", Outcome.RETRYABLE),
        ("ThrottlingException", Outcome.RETRYABLE),
        ("AccessDeniedException", Outcome.PERMANENT),
        ("InvalidArgument", Outcome.PERMANENT),
        ("MalformedDetail", Outcome.PERMANENT),
        ("NotAuthorizedForSourceException", Outcome.PERMANENT),
        ("NotAuthorizedForDetailTypeException", Outcome.PERMANENT),
    ],
)
def test_classify_eventbridge_entry(code: str, outcome: Outcome) -> None:
    assert classify_eventbridge_entry(code) is outcome


# -- SNS sink -----------------------------------------------------------------------------------


def sns_ok(**kwargs: Any) -> dict[str, Any]:
    entries = kwargs["PublishBatchRequestEntries"]
    return {"Successful": [{"Id": e["Id"], "MessageId": "m"} for e in entries], "Failed": []}


def test_sns_per_entry_failures_map_to_outcomes_aligned_with_input() -> None:
    client = mock.Mock()
    client.publish_batch.return_value = {
        "Successful": [{"Id": "a0", "MessageId": "m0"}],
        "Failed": [
            {"Id": "a2", "Code": "InvalidParameter", "SenderFault": True, "Message": "bad"},
            {"Id": "a1", "Code": "InternalError", "SenderFault": False},
        ],
    }  # a3: neither successful nor failed
    alerts = [alert(i) for i in range(4)]

    results = SnsSink(client, TOPIC).deliver(alerts)

    assert [(r.notification_id, r.outcome) for r in results] == [
        ("nid-0", Outcome.DELIVERED),
        ("nid-1", Outcome.RETRYABLE),
        ("nid-2", Outcome.PERMANENT),
        ("nid-3", Outcome.RETRYABLE),
    ]
    assert results[2].error == "InvalidParameter: bad"


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (client_error("AuthorizationError", 403), Outcome.PERMANENT),
        (client_error("Throttled", 429), Outcome.RETRYABLE),
        (
            EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
            Outcome.RETRYABLE,
        ),
    ],
)
def test_sns_whole_call_error_applies_to_every_alert_of_the_batch(
    exc: BaseException, outcome: Outcome
) -> None:
    client = mock.Mock()
    client.publish_batch.side_effect = exc
    results = SnsSink(client, TOPIC).deliver([alert(1), alert(2)])
    assert [r.outcome for r in results] == [outcome, outcome]


def test_sns_one_failing_batch_does_not_fail_the_others() -> None:
    client = mock.Mock()
    calls: list[list[str]] = []

    def publish_batch(**kwargs: Any) -> dict[str, Any]:
        calls.append([e["Id"] for e in kwargs["PublishBatchRequestEntries"]])
        if len(calls) == 1:
            raise client_error("Throttled", 429)
        return sns_ok(**kwargs)

    client.publish_batch.side_effect = publish_batch
    alerts = [alert(i) for i in range(23)]

    results = SnsSink(client, TOPIC).deliver(alerts)

    assert [len(c) for c in calls] == [10, 10, 3]
    assert len({i for c in calls for i in c}) == 23  # ids unique across the call
    assert [r.notification_id for r in results] == [a.notification_id for a in alerts]
    assert [r.outcome for r in results] == [Outcome.RETRYABLE] * 10 + [Outcome.DELIVERED] * 13


def test_sns_routing_by_severity_keeps_results_aligned() -> None:
    client = mock.Mock()
    client.publish_batch.side_effect = sns_ok
    alerts = [alert(i, Severity.CRITICAL if i % 2 else Severity.LOW) for i in range(5)]
    sink = SnsSink(client, TopicRouting(TOPIC, {Severity.CRITICAL: PAGER}))

    results = sink.deliver(alerts)

    topics = {
        c.kwargs["TopicArn"]: c.kwargs["PublishBatchRequestEntries"]
        for c in client.publish_batch.call_args_list
    }
    assert set(topics) == {TOPIC, PAGER}
    assert len(topics[TOPIC]) == 3
    assert len(topics[PAGER]) == 2
    assert [r.notification_id for r in results] == [f"nid-{i}" for i in range(5)]
    assert {r.outcome for r in results} == {Outcome.DELIVERED}


def test_sns_sink_without_default_refuses_unrouted_alerts_without_calling_aws() -> None:
    client = mock.Mock()
    sink = SnsSink(client, TopicRouting(None, {Severity.CRITICAL: PAGER}), name="pager")
    [result] = sink.deliver([alert(1, Severity.LOW)])
    assert result.outcome is Outcome.PERMANENT
    assert "low" in (result.error or "")
    client.publish_batch.assert_not_called()


def test_sns_json_entry_structure_and_attributes_entry() -> None:
    a = alert(1, account="123456789012", region="eu-west-3")
    json_entry = SnsSink(mock.Mock(), TOPIC).entry(a, "a0")
    assert json_entry["MessageStructure"] == "json"
    assert "MessageAttributes" not in json_entry  # SNS would drop them anyway
    structure = json.loads(json_entry["Message"])
    assert structure["email"] == render.email_text(a)
    assert structure["sms"] == render.sms_text(a)
    for key in ("default", "sqs", "lambda", "http", "https"):
        doc = json.loads(structure[key])
        assert doc["texts"]["sms"] == render.sms_text(a)
        assert Alert.from_dict(doc) == a
    attr_entry = SnsSink(mock.Mock(), TOPIC, "attributes").entry(a, "a0")
    assert "MessageStructure" not in attr_entry
    assert attr_entry["MessageAttributes"]["region"] == {
        "DataType": "String",
        "StringValue": "eu-west-3",
    }
    assert SnsSink(mock.Mock(), TOPIC, SnsMode.ATTRIBUTES).entry(a, "x") == {
        **attr_entry,
        "Id": "x",
    }


def test_sns_huge_alert_message_stays_under_256_kb() -> None:
    huge = alert(1, distinct={"ua": tuple("u" * 4000 + str(i) for i in range(2000))})
    entry = SnsSink(mock.Mock(), TOPIC).entry(huge, "a0")
    assert len(entry["Message"].encode("utf-8")) <= 256 * 1024
    assert json.loads(json.loads(entry["Message"])["sqs"])["truncated"] is True


def test_sns_render_failure_is_permanent_for_that_alert_only() -> None:
    client = mock.Mock()
    client.publish_batch.side_effect = sns_ok
    real = render.email_text

    def email_text(a: Alert) -> str:
        if a.notification_id == "nid-2":
            raise ValueError("cannot render")
        return real(a)

    with mock.patch.object(render, "email_text", side_effect=email_text):
        results = SnsSink(client, TOPIC).deliver([alert(1), alert(2), alert(3)])
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.PERMANENT, Outcome.DELIVERED]
    assert "render failed: ValueError" in (results[1].error or "")
    [call] = client.publish_batch.call_args_list
    assert len(call.kwargs["PublishBatchRequestEntries"]) == 2


# -- EventBridge sink ---------------------------------------------------------------------------


def test_eventbridge_failed_entries_map_per_entry() -> None:
    client = mock.Mock()
    client.put_events.return_value = {
        "FailedEntryCount": 3,
        "Entries": [
            {"EventId": "e0"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
            {"ErrorCode": "MalformedDetail", "ErrorMessage": "bad json"},
            {"ErrorCode": "InternalFailure"},
        ],
    }
    results = EventBridgeSink(client, "bus").deliver([alert(i) for i in range(4)])
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED,
        Outcome.RETRYABLE,
        Outcome.PERMANENT,
        Outcome.RETRYABLE,
    ]
    assert results[2].error == "MalformedDetail: bad json"


def test_eventbridge_short_answer_is_retryable_and_whole_call_error_is_classified() -> None:
    client = mock.Mock()
    client.put_events.return_value = {"FailedEntryCount": 0, "Entries": [{"EventId": "e0"}]}
    results = EventBridgeSink(client, "bus").deliver([alert(0), alert(1)])
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.RETRYABLE]

    client.put_events.side_effect = client_error("AccessDeniedException", 400)
    results = EventBridgeSink(client, "bus").deliver([alert(0), alert(1)])
    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.PERMANENT]


def test_eventbridge_entry_fields_and_resources_are_arns_only() -> None:
    a = alert(
        1,
        kind=AlertKind.ALARM,
        resources=("arn:aws:iam::123456789012:user/alice", "not-an-arn", "arn:aws:x\n:evil"),
    )
    entry = EventBridgeSink(mock.Mock(), "security", source="acme.veilleur").entry(a)
    assert entry["Source"] == "acme.veilleur"
    assert entry["DetailType"] == "Veilleur Alarm State Change"
    assert entry["EventBusName"] == "security"
    assert entry["Resources"] == ["arn:aws:iam::123456789012:user/alice"]
    assert json.loads(entry["Detail"])["notification_id"] == "nid-1"
    assert "Time" not in entry


def test_eventbridge_entry_size_counts_like_aws() -> None:
    entry = {"Source": "é", "DetailType": "ab", "Detail": "{}", "Resources": ["arn:x", "ü"]}
    assert entry_size(entry) == 2 + 2 + 2 + 5 + 2
    assert entry_size({**entry, "Time": "2026-01-01T00:00:00Z"}) == 13 + 14


def test_eventbridge_huge_entries_stay_under_limit_and_are_batched_by_size() -> None:
    client = mock.Mock()
    client.put_events.side_effect = lambda **kw: {
        "FailedEntryCount": 0,
        "Entries": [{"EventId": str(i)} for i in range(len(kw["Entries"]))],
    }
    huge = [
        alert(i, distinct={"k": tuple("v" * 5000 + str(j) for j in range(200))}) for i in range(4)
    ]
    sink = EventBridgeSink(client, "bus", detail_max_bytes=200 * 1024)

    results = sink.deliver(huge)

    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    sizes = [[entry_size(e) for e in c.kwargs["Entries"]] for c in client.put_events.call_args_list]
    assert all(100 * 1024 < s <= MAX_ENTRY_BYTES for batch in sizes for s in batch)
    assert all(sum(batch) <= 256 * 1024 for batch in sizes)
    assert [len(batch) for batch in sizes] == [2, 2]  # four would fit the count limit, not 256 KB


def test_eventbridge_rejects_an_invalid_source() -> None:
    with pytest.raises(ValueError, match="source"):
        EventBridgeSink(mock.Mock(), "bus", source="")


def test_sinks_satisfy_the_sink_protocol() -> None:
    sinks: list[Sink] = [
        SnsSink(mock.Mock(), TOPIC, name="sns-mail"),
        EventBridgeSink(mock.Mock(), "bus"),
    ]
    assert [s.name for s in sinks] == ["sns-mail", "eventbridge"]
    assert [s.deliver([]) for s in sinks] == [[], []]
