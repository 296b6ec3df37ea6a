"""Plain values crossing the store API, and the narrow interface the outbox drain needs.

Nothing here touches SQLite: a DynamoDB backend would take and return the same values.
Every datetime crossing the API is timezone-aware; the store keeps them in UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from veilleur.alerts import Alert

# -- errors ------------------------------------------------------------------------------


class StoreError(Exception):
    """Anything the store cannot do; the message says which file and what to do."""


class StoreVersionError(StoreError):
    """The file was written by a newer veilleur (or is older than a read-only opener needs)."""


class StoreCorruptError(StoreError):
    """The file is not a readable SQLite database, or fails its integrity check."""


# -- the tick transaction ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenId:
    """An event id already processed for ``source_key``; forgotten after ``expires_at``."""

    source_key: str
    event_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AlarmStateRecord:
    """The state of one metric alarm (rule x dimensions). ``state`` is the engine's value
    (``OK`` / ``ALARM`` / ``INSUFFICIENT_DATA``): a ``StrEnum`` member is stored as its text."""

    rule_id: str
    dimensions_key: str
    state: str
    since: datetime
    reason: str
    last_evaluated: datetime
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON-able (datapoints, ...)


@dataclass(frozen=True, slots=True)
class OutboxEnqueue:
    """Deliver ``alert`` to each sink in ``sinks``: one outbox row per (alert, sink)."""

    alert: Alert
    sinks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TickCommit:
    """Everything one tick writes, in one transaction: all of it or none of it.

    ``engine_state`` maps a key to the engine's JSON-able blob; ``None`` deletes the key.
    ``now`` stamps the new outbox rows and prunes seen ids whose expiry has passed."""

    now: datetime
    watermarks: Mapping[str, datetime] = field(default_factory=dict)
    seen_ids: Sequence[SeenId] = ()
    engine_state: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    alarm_states: Sequence[AlarmStateRecord] = ()
    notifications: Sequence[OutboxEnqueue] = ()


@dataclass(frozen=True, slots=True)
class CommitResult:
    enqueued: int  # new outbox rows
    duplicates: int  # (notification_id, sink) already in the outbox: ignored
    seen_pruned: int  # expired seen ids removed


# -- the outbox --------------------------------------------------------------------------


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One (alert, sink) delivery. ``alert_doc`` is the stored ``Alert.to_dict()``; it is
    decoded by the drain, per row, so one undecodable row cannot block the others."""

    id: int
    notification_id: str
    sink: str
    alert_doc: Mapping[str, Any] = field(repr=False)
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    status: OutboxStatus
    finished_at: datetime | None  # when delivered or dead-lettered

    def alert(self) -> Alert:
        """Decode the stored alert; raises (KeyError, ValueError, ...) if it cannot be."""
        return Alert.from_dict(self.alert_doc)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Outbox depth and age, per sink (the daemon turns them into gauges)."""

    pending_by_sink: Mapping[str, int]
    oldest_pending_age_by_sink: Mapping[str, timedelta]
    dead_by_sink: Mapping[str, int]

    @property
    def pending(self) -> int:
        return sum(self.pending_by_sink.values())

    @property
    def dead(self) -> int:
        return sum(self.dead_by_sink.values())

    @property
    def oldest_pending_age(self) -> timedelta | None:
        ages = self.oldest_pending_age_by_sink.values()
        return max(ages) if ages else None


class OutboxStore(Protocol):
    """What the drain needs from a store (SQLite now, DynamoDB later)."""

    def due(self, now: datetime, limit: int, sink: str | None = None) -> list[OutboxRow]: ...

    def mark_delivered(self, ids: Sequence[int], now: datetime) -> None: ...

    def mark_retry(self, id: int, next_at: datetime, error: str) -> None: ...

    def mark_dead(self, id: int, now: datetime, error: str) -> None: ...

    def stats(self, now: datetime) -> OutboxStats: ...
