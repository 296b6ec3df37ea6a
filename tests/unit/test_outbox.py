"""The outbox drain, over a real SQLite store and fake sinks (plain classes, no mocks)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.model import Severity
from veilleur.notify.backoff import RetryPolicy
from veilleur.notify.outbox import drain
from veilleur.sinks.base import DeliveryResult, Outcome, Sink
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import OutboxEnqueue, OutboxRow, OutboxStatus, TickCommit

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=10), max_age=timedelta(hours=24))


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


RNG = FixedRng(0.0)  # every delay is exactly its ceiling: 5 s, 10 s, 20 s, ...


class FakeSink:
    """A sink whose answer per alert is decided by ``outcome``; records every call."""

    def __init__(self, name: str, outcome: Callable[[Alert], Outcome] | Outcome) -> None:
        self._name = name
        self.outcome = outcome
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        self.calls.append([a.notification_id for a in alerts])
        results = []
        for alert in alerts:
            outcome = self.outcome(alert) if callable(self.outcome) else self.outcome
            error = None if outcome is Outcome.DELIVERED else f"{outcome.value} from {self._name}"
            results.append(DeliveryResult(alert.notification_id, outcome, error))
        return results

    @property
    def sent(self) -> int:
        return sum(len(c) for c in self.calls)


class RaisingSink:
    """A buggy sink: raises instead of returning results."""

    name = "buggy"

    def __init__(self) -> None:
        self.calls = 0

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        self.calls += 1
        raise RuntimeError("boom")


class ForgetfulSink:
    """Returns a result for the first alert only, plus one for an alert it never got."""

    name = "forgetful"

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        return [
            DeliveryResult(alerts[0].notification_id, Outcome.DELIVERED),
            DeliveryResult("not-sent", Outcome.DELIVERED),
        ]


def make_alert(n: int, rule_id: str = "console-login-failures") -> Alert:
    group = (("sourceIPAddress", f"203.0.113.{n}"),)
    fp = fingerprint(rule_id, group)
    return Alert(
        rule_id=rule_id,
        title="Burst of failed console sign-ins",
        severity=Severity.HIGH,
        kind=AlertKind.THRESHOLD,
        fingerprint=fp,
        notification_id=notification_id(fp, f"event-{n}"),
        count=5,
        first_seen=T0,
        last_seen=T0,
        group=group,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "state.sqlite3") as s:
        yield s


def enqueue(store: SqliteStore, alerts: Sequence[Alert], sinks: tuple[str, ...]) -> None:
    tick = TickCommit(now=T0, notifications=[OutboxEnqueue(a, sinks) for a in alerts])
    store.commit_tick(tick)


def rows(store: SqliteStore, sink: str) -> list[OutboxRow]:
    """Every row of ``sink`` whatever its state (a far-future ``due`` plus the dead)."""
    conn = sqlite3.connect(store.path)
    try:
        return [
            r
            for r in _all_rows(store)
            if r.sink == sink
            and conn.execute("SELECT 1 FROM outbox WHERE id = ?", (r.id,)).fetchone()
        ]
    finally:
        conn.close()


def _all_rows(store: SqliteStore) -> list[OutboxRow]:
    far = T0 + timedelta(days=3650)
    pending = store.due(far, limit=10_000)
    conn = sqlite3.connect(store.path)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM outbox WHERE status = 'delivered'")]
    finally:
        conn.close()
    delivered = [_Delivered(i) for i in ids]
    return [*pending, *store.dead_letters(10_000), *delivered]  # type: ignore[list-item]


class _Delivered:
    def __init__(self, row_id: int) -> None:
        self.id = row_id
        self.sink = ""
