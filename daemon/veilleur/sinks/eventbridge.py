"""EventBridge sink: one custom event per alert with ``PutEvents``, one result per alert.

Each entry: ``Source`` (``veilleur`` unless configured), ``DetailType`` ``Veilleur Alert`` or
``Veilleur Alarm State Change``, ``Detail`` the alert JSON (it carries ``notification_id``:
EventBridge has no dedup key, consumers deduplicate on it), ``Resources`` the alert's ARNs.
An entry stays under 256 KB as AWS measures it (Source + DetailType + Detail + each Resource,
UTF-8 bytes; no Time is sent); requests carry at most 10 entries and 256 KB. Failed entries
come back as RETRYABLE/PERMANENT results, so the outbox retries only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from veilleur.alerts import Alert, AlertKind
from veilleur.notify import render
from veilleur.sinks.base import DeliveryResult, Entry, Outcome, batches
from veilleur.sinks.errors import classify_eventbridge_entry, classify_exception, short_error

DETAIL_TYPE_ALERT = "Veilleur Alert"
DETAIL_TYPE_ALARM = "Veilleur Alarm State Change"
MAX_BATCH_ENTRIES = 10
MAX_ENTRY_BYTES = 256 * 1024 - 1  # "less than 256 KB"
MAX_REQUEST_BYTES = 256 * 1024
MAX_RESOURCES = 20
MAX_ARN_CHARS = 2048


def entry_size(entry: dict[str, Any]) -> int:
    """The size EventBridge counts for a ``PutEventsRequestEntry`` (AWS user guide,
    "Calculating PutEvents event entry size")."""
    size = 14 if entry.get("Time") is not None else 0
    size += len(entry["Source"].encode("utf-8")) + len(entry["DetailType"].encode("utf-8"))
    if entry.get("Detail") is not None:
        size += len(entry["Detail"].encode("utf-8"))
    for resource in entry.get("Resources", ()):
        size += len(resource.encode("utf-8"))
    return size


def _resources(alert: Alert) -> list[str]:
    """ARNs only (the field means ARNs), printable, bounded in length and number."""
    arns = [
        r
        for r in alert.resources
        if r.startswith("arn:") and len(r) <= MAX_ARN_CHARS and r.isprintable() and r.isascii()
    ]
    return list(dict.fromkeys(arns))[:MAX_RESOURCES]


class EventBridgeSink:
    """Puts alerts on an event bus. ``client`` is a boto3 EventBridge client (injected)."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        source: str = "veilleur",
        *,
        name: str = "eventbridge",
        detail_max_bytes: int = render.ALERT_JSON_MAX_BYTES,
    ) -> None:
        if not source or len(source) > 256 or not source.isprintable():
            raise ValueError(f"invalid EventBridge source {source!r:.80}")
        if not bus_name:
            raise ValueError("bus_name must not be empty")
        self._client = client
        self._bus = bus_name
        self._source = source
        self._name = name
        self._detail_max = max(detail_max_bytes, render.ALERT_JSON_MIN_BYTES)

    @property
    def name(self) -> str:
        return self._name

    def entry(self, alert: Alert) -> dict[str, Any]:
        """The ``PutEventsRequestEntry`` for one alert, under the entry size limit."""
        detail_type = DETAIL_TYPE_ALARM if alert.kind is AlertKind.ALARM else DETAIL_TYPE_ALERT
        request: dict[str, Any] = {
            "Source": self._source,
            "DetailType": detail_type,
            "EventBusName": self._bus,
            "Resources": _resources(alert),
        }
        fixed = entry_size({**request, "Detail": ""})
        budget = min(self._detail_max, MAX_ENTRY_BYTES - fixed)
        if budget < render.ALERT_JSON_MIN_BYTES:  # cannot happen with bounded resources
            request["Resources"] = []
            budget = min(self._detail_max, MAX_ENTRY_BYTES - entry_size({**request, "Detail": ""}))
        request["Detail"] = render.alert_json(alert, budget)
        return request

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        results: list[DeliveryResult | None] = [None] * len(alerts)
        entries: list[Entry] = []
        for i, alert in enumerate(alerts):
            try:
                request = self.entry(alert)
            except Exception as exc:  # a rendering bug must not sink the other alerts
                results[i] = DeliveryResult(
                    alert.notification_id,
                    Outcome.PERMANENT,
                    short_error(f"render failed: {type(exc).__name__}", str(exc)),
                )
                continue
            entries.append(Entry(i, request, entry_size(request)))
        for batch in batches(entries, MAX_BATCH_ENTRIES, MAX_REQUEST_BYTES):
            self._put(batch, alerts, results)
        return [r for r in results if r is not None]

    def _put(
        self, batch: list[Entry], alerts: Sequence[Alert], results: list[DeliveryResult | None]
    ) -> None:
        try:
            response = self._client.put_events(Entries=[e.request for e in batch])
        except Exception as exc:
            failure = classify_exception(exc)
            for e in batch:
                nid = alerts[e.index].notification_id
                results[e.index] = DeliveryResult(nid, failure.outcome, failure.error)
            return
        answers = response.get("Entries", [])
        for position, e in enumerate(batch):
            nid = alerts[e.index].notification_id
            answer = answers[position] if position < len(answers) else None
            if answer is None:
                results[e.index] = DeliveryResult(nid, Outcome.RETRYABLE, "no result for entry")
            elif answer.get("ErrorCode"):
                code = str(answer["ErrorCode"])
                results[e.index] = DeliveryResult(
                    nid,
                    classify_eventbridge_entry(code),
                    short_error(code, answer.get("ErrorMessage")),
                )
            elif answer.get("EventId"):
                results[e.index] = DeliveryResult(nid, Outcome.DELIVERED)
            else:
                results[e.index] = DeliveryResult(nid, Outcome.RETRYABLE, "entry without EventId")
