"""Small builders shared by unit tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from veilleur.model import Severity, TrailEvent, format_time
from veilleur.rules.matcher import Scalar
from veilleur.rules.spec import FieldPath, MatcherKind, Rule, ThresholdSpec

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FieldEquals:
    """A plain matcher for engine tests: record[field] in values."""

    field: str
    values: frozenset[Any]

    def matches(self, record: Mapping[str, Any]) -> bool:
        return record.get(self.field) in self.values

    def required_values(self, path: tuple[str, ...]) -> frozenset[Scalar] | None:
        return self.values if path == (self.field,) else None

    def required_prefixes(self, path: tuple[str, ...]) -> frozenset[str] | None:
        return None


def rule(
    rule_id: str = "r",
    *,
    name: str = "ConsoleLogin",
    count: int | None = None,
    within: timedelta = timedelta(minutes=5),
    group_by: tuple[str, ...] = (),
    realert: timedelta | None = None,
    field: str = "eventName",
) -> Rule:
    threshold = (
        ThresholdSpec(count, within, tuple(FieldPath.parse(g) for g in group_by))
        if count is not None
        else None
    )
    return Rule(
        id=rule_id,
        title=f"rule {rule_id}",
        severity=Severity.HIGH,
        matcher=FieldEquals(field, frozenset([name])),
        matcher_kind=MatcherKind.EVENT_PATTERN,
        threshold=threshold,
        realert=realert,
        group_by=() if threshold else tuple(FieldPath.parse(g) for g in group_by),
    )


def event(
    seconds: float,
    *,
    event_id: str | None = None,
    name: str = "ConsoleLogin",
    ip: str = "203.0.113.9",
    user: str = "alice",
    **extra: Any,
) -> TrailEvent:
    t = T0 + timedelta(seconds=seconds)
    record = {
        "eventVersion": "1.08",
        "eventID": event_id or f"ev-{seconds:g}-{ip}-{name}",
        "eventTime": format_time(t),
        "eventName": name,
        "eventSource": "signin.amazonaws.com",
        "sourceIPAddress": ip,
        "userIdentity": {"type": "IAMUser", "userName": user},
        "recipientAccountId": "123456789012",
        "awsRegion": "us-east-1",
        **extra,
    }
    return TrailEvent.from_record(record)
