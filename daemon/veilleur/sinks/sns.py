"""SNS sink: alerts published with ``PublishBatch``, one result per alert.

Routing. Each alert goes to exactly one topic of this sink: the topic of its severity if one
is set, else the default topic. To send critical alerts both to the e-mail topic and to an
SMS-only topic, configure two sinks (two outbox rows per alert): each topic then succeeds,
fails and is retried on its own, and a failing pager topic never re-sends the e-mail. A sink
with no default topic takes only the severities it routes (:meth:`SnsSink.accepts`); handed
another alert anyway, it answers PERMANENT rather than pretending to have delivered it.

Modes. ``json`` (default): ``MessageStructure=json`` with the full text for e-mail, the short
text for SMS and, for SQS, Lambda, HTTP(S) and everything else (``default``), the alert JSON
plus ``"texts"`` (subject, sms, e-mail as rendered: see ``render.subscriber_json``).
SNS delivers no message attributes with such messages, so ``attributes`` mode sends one
text (the e-mail text) plus String attributes (severity, rule, kind, notification_id,
account, region, and state for alarms) for subscription filter policies.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veilleur.alerts import Alert
from veilleur.model import Severity
from veilleur.notify import render
from veilleur.sinks.base import DeliveryResult, Entry, Outcome, batches
from veilleur.sinks.errors import classify_exception, classify_sns_entry, short_error

MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_BYTES = 256 * 1024  # one message, and the whole batch (body + attributes)

_JSON_PROTOCOLS = ("default", "sqs", "lambda", "http", "https")


class SnsMode(enum.StrEnum):
    JSON = "json"
    ATTRIBUTES = "attributes"


@dataclass(frozen=True, slots=True)
class TopicRouting:
    """Severity -> topic ARN; severities not listed go to ``default`` (None: not taken)."""

    default: str | None
    by_severity: Mapping[Severity, str] = field(default_factory=dict)

    def topic_for(self, severity: Severity) -> str | None:
        return self.by_severity.get(severity, self.default)


def _attributes(alert: Alert) -> dict[str, dict[str, str]]:
    # String only: moto mishandles Binary attributes, and filter policies match Strings.
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in render.message_attributes(alert).items()
    }


def _json_message(alert: Alert) -> str:
    """The per-protocol document, the subscriber JSON shrunk until the whole fits in 256 KB."""
    email, sms = render.email_text(alert), render.sms_text(alert)
    budget = render.ALERT_JSON_MAX_BYTES
    while True:
        doc = render.subscriber_json(alert, budget)
        message = json.dumps(
            {"email": email, "sms": sms} | dict.fromkeys(_JSON_PROTOCOLS, doc),
            ensure_ascii=False,
            separators=(",", ":"),
        )
        if len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES - 1024:
            return message
        if budget <= render.ALERT_JSON_MIN_BYTES:
            raise ValueError("message does not fit in 256 KB")  # not with a bounded e-mail
        budget = max(budget // 2, render.ALERT_JSON_MIN_BYTES)


class SnsSink:
    """Publishes alerts to SNS topics. ``client`` is a boto3 SNS client (injected)."""

    def __init__(
        self,
        client: Any,
        topics: TopicRouting | str,
        mode: SnsMode | str = SnsMode.JSON,
        *,
        name: str = "sns",
    ) -> None:
        self._client = client
        self._routing = TopicRouting(topics) if isinstance(topics, str) else topics
        self._mode = SnsMode(mode)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def accepts(self, alert: Alert) -> bool:
        """Whether some topic of this sink takes the alert (the outbox writes a row only then)."""
        return self._routing.topic_for(alert.severity) is not None

    def entry(self, alert: Alert, entry_id: str) -> dict[str, Any]:
        """The ``PublishBatchRequestEntry`` for one alert (also what tests inspect)."""
        request: dict[str, Any] = {"Id": entry_id, "Subject": render.subject(alert)}
        if self._mode is SnsMode.JSON:
            request["Message"] = _json_message(alert)
            request["MessageStructure"] = "json"
        else:
            request["Message"] = render.email_text(alert)
            request["MessageAttributes"] = _attributes(alert)
        return request

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        results: list[DeliveryResult | None] = [None] * len(alerts)
        by_topic: dict[str, list[Entry]] = {}
        for i, alert in enumerate(alerts):
            topic = self._routing.topic_for(alert.severity)
            if topic is None:
                results[i] = DeliveryResult(
                    alert.notification_id,
                    Outcome.PERMANENT,
                    f"no topic for severity {alert.severity.label} in sink {self._name}",
                )
                continue
            try:
                request = self.entry(alert, f"a{i}")
            except Exception as exc:  # a rendering bug must not sink the other alerts
                results[i] = DeliveryResult(
                    alert.notification_id,
                    Outcome.PERMANENT,
                    short_error(f"render failed: {type(exc).__name__}", str(exc)),
                )
                continue
            by_topic.setdefault(topic, []).append(Entry(i, request, _size(request)))
        for topic, entries in by_topic.items():
            for batch in batches(entries, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES):
                self._publish(topic, batch, alerts, results)
        return [r for r in results if r is not None]

    def _publish(
        self,
        topic: str,
        batch: list[Entry],
        alerts: Sequence[Alert],
        results: list[DeliveryResult | None],
    ) -> None:
        try:
            response = self._client.publish_batch(
                TopicArn=topic, PublishBatchRequestEntries=[e.request for e in batch]
            )
        except Exception as exc:
            failure = classify_exception(exc)
            for e in batch:
                nid = alerts[e.index].notification_id
                results[e.index] = DeliveryResult(nid, failure.outcome, failure.error)
            return
        by_id = {e.request["Id"]: e.index for e in batch}
        for ok in response.get("Successful", []):
            index = by_id.pop(ok.get("Id"), None)
            if index is not None:
                results[index] = DeliveryResult(alerts[index].notification_id, Outcome.DELIVERED)
        for failed in response.get("Failed", []):
            index = by_id.pop(failed.get("Id"), None)
            if index is not None:
                code = str(failed.get("Code") or "Unknown")
                results[index] = DeliveryResult(
                    alerts[index].notification_id,
                    classify_sns_entry(code, bool(failed.get("SenderFault"))),
                    short_error(code, failed.get("Message")),
                )
        for index in by_id.values():  # neither Successful nor Failed: SNS said nothing
            results[index] = DeliveryResult(
                alerts[index].notification_id, Outcome.RETRYABLE, "no result for entry"
            )


def _size(request: Mapping[str, Any]) -> int:
    """Body, subject and attributes in UTF-8 bytes: what counts against 256 KB."""
    size = len(request["Message"].encode("utf-8")) + len(request["Subject"].encode("utf-8"))
    for attr_name, attr in request.get("MessageAttributes", {}).items():
        size += len(attr_name.encode("utf-8")) + len(attr["DataType"])
        size += len(attr["StringValue"].encode("utf-8"))
    return size
