"""What every sink (SNS, EventBridge, ...) offers the outbox drain."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from veilleur.alerts import Alert


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"  # throttling, 5xx, timeouts, connection errors: try again later
    PERMANENT = "permanent"  # access denied, unknown topic, invalid message: dead-letter


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    notification_id: str
    outcome: Outcome
    error: str | None = None  # short, safe to log (never credentials or signatures)


class Sink(Protocol):
    """Delivers alerts; one result per alert, aligned with the input, never all-or-nothing.
    Must not raise for AWS or network errors: they become RETRYABLE/PERMANENT results."""

    @property
    def name(self) -> str: ...

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One alert's request entry in a batch API call, with its size as the API counts it."""

    index: int  # position of the alert in deliver()'s input
    request: dict[str, Any]
    size: int


def batches(entries: Sequence[Entry], max_entries: int, max_bytes: int) -> list[list[Entry]]:
    """Consecutive groups of at most ``max_entries`` entries and ``max_bytes`` in total
    (PublishBatch and PutEvents: 10 entries, 256 KB)."""
    out: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == max_entries or size + entry.size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        out.append(current)
    return out
