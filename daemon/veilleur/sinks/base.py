"""What every sink (SNS, EventBridge, ...) offers the outbox drain."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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
