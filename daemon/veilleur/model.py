"""Domain types shared by the core and the adapters. Pure data, no I/O."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Severity(enum.IntEnum):
    """Ordered so that ``severity >= Severity.HIGH`` reads naturally."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class InvalidRecord(ValueError):
    """A CloudTrail record that cannot be used (not an object, no eventTime, ...)."""


def parse_event_time(value: object) -> datetime:
    """CloudTrail's ``eventTime`` (``2023-07-10T11:42:03Z``) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"eventTime missing or not a string: {value!r:.60}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRecord(f"eventTime not ISO 8601: {value!r:.60}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # 9999-12-31T23:59:59-14:00
        raise InvalidRecord(f"eventTime out of range: {value!r:.60}") from exc


def format_time(dt: datetime) -> str:
    """ISO 8601 UTC with a ``Z``, seconds precision unless there are fractions."""
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One CloudTrail record. ``record`` is the parsed record; every field of it is
    attacker-controlled text and must be escaped before it reaches a message."""

    event_id: str
    event_time: datetime
    event_name: str
    event_source: str
    record: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_record(cls, record: object) -> TrailEvent:
        """Build from a parsed record; raise InvalidRecord with a short reason."""
        if not isinstance(record, dict):
            raise InvalidRecord(f"record is not a JSON object but {type(record).__name__}")
        event_id = record.get("eventID")
        if not isinstance(event_id, str) or not event_id:
            raise InvalidRecord("eventID missing or not a string")
        name = record.get("eventName")
        source = record.get("eventSource")
        if not isinstance(name, str) or not isinstance(source, str):
            raise InvalidRecord(f"eventName/eventSource missing in {event_id[:64]}")
        return cls(
            event_id=event_id,
            event_time=parse_event_time(record.get("eventTime")),
            event_name=name,
            event_source=source,
            record=record,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> TrailEvent:
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidRecord(f"not valid JSON: {exc}") from exc
        return cls.from_record(record)


def lookup(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Follow a dotted path through nested objects; ``MISSING`` if any step is absent."""
    cur: Any = record
    for key in path:
        if isinstance(cur, dict):
            if key not in cur:
                return MISSING
            cur = cur[key]
        else:
            return MISSING
    return cur


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
