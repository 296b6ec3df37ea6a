"""Alerts: what the core decides, what the sinks deliver. Pure data and pure helpers."""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from veilleur.model import Severity, format_time, parse_event_time

# A fixed namespace so that a notification id is a pure function of what fired: a tick
# replayed after a crash produces the same ids, so consumers can deduplicate.
_NOTIFICATION_NS = uuid.UUID("6f1c1b52-3c0e-4f57-9a43-5d1f8e0b7a11")


class AlertKind(enum.StrEnum):
    EVENT = "event"  # one matching record
    THRESHOLD = "threshold"  # count of matches in a window reached
    ALARM = "alarm"  # a metric rule changed state
    SUMMARY = "summary"  # an alert storm folded into one message


def fingerprint(rule_id: str, group: tuple[tuple[str, str], ...]) -> str:
    """Stable identity of (rule, group): same rule and group values, same fingerprint."""
    h = hashlib.sha256(rule_id.encode())
    for key, value in group:
        h.update(b"\x00" + key.encode() + b"\x01" + value.encode())
    return h.hexdigest()[:32]


def notification_id(fp: str, trigger: str) -> str:
    """Unique per firing, deterministic: ``trigger`` is what made it fire (an event id,
    an alarm transition time); retries and replays reuse it."""
    return str(uuid.uuid5(_NOTIFICATION_NS, f"{fp}/{trigger}"))


@dataclass(frozen=True, slots=True)
class Alert:
    rule_id: str
    title: str
    severity: Severity
    kind: AlertKind
    fingerprint: str
    notification_id: str
    count: int
    first_seen: datetime
    last_seen: datetime
    group: tuple[tuple[str, str], ...] = ()
    distinct: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sample_event_ids: tuple[str, ...] = ()
    description: str = ""
    runbook: str | None = None
    tags: tuple[str, ...] = ()
    account: str | None = None
    region: str | None = None
    resources: tuple[str, ...] = ()
    # Kind-specific details (alarm: old_state, new_state, reason, datapoints; summary: ...).
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The alert document: what SQS/Lambda/HTTPS subscribers and EventBridge receive."""
        return {
            "notification_id": self.notification_id,
            "fingerprint": self.fingerprint,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity.label,
            "kind": self.kind.value,
            "count": self.count,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "group": dict(self.group),
            "distinct": {k: list(v) for k, v in self.distinct.items()},
            "sample_event_ids": list(self.sample_event_ids),
            "description": self.description,
            "runbook": self.runbook,
            "tags": list(self.tags),
            "account": self.account,
            "region": self.region,
            "resources": list(self.resources),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        """Inverse of ``to_dict`` (the outbox stores alerts as JSON)."""
        return cls(
            rule_id=d["rule_id"],
            title=d["title"],
            severity=Severity.parse(d["severity"]),
            kind=AlertKind(d["kind"]),
            fingerprint=d["fingerprint"],
            notification_id=d["notification_id"],
            count=int(d["count"]),
            first_seen=parse_event_time(d["first_seen"]),
            last_seen=parse_event_time(d["last_seen"]),
            group=tuple((str(k), str(v)) for k, v in d.get("group", {}).items()),
            distinct={k: tuple(v) for k, v in d.get("distinct", {}).items()},
            sample_event_ids=tuple(d.get("sample_event_ids", ())),
            description=d.get("description", ""),
            runbook=d.get("runbook"),
            tags=tuple(d.get("tags", ())),
            account=d.get("account"),
            region=d.get("region"),
            resources=tuple(d.get("resources", ())),
            details=dict(d.get("details", {})),
        )
