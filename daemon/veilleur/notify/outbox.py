"""The outbox drain: deliver pending (alert, sink) rows, one sink at a time, each row on its own.

For each configured sink: take its due rows in batches, call ``sink.deliver`` once per batch,
then settle each row from its own result: DELIVERED -> delivered; RETRYABLE -> retry later with
backoff, or dead-letter once too old; PERMANENT -> dead-letter. A sink that raises (a bug: sinks
turn AWS errors into results) makes its whole batch RETRYABLE and is reported. A row is never
"sent because another sink succeeded", and rows of a sink that is no longer configured stay
pending and are reported, never dropped. Delivery is at least once: a crash between a send and
its mark re-sends with the same notification id, which consumers use to deduplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from veilleur.alerts import Alert
from veilleur.notify.backoff import RetryPolicy, Rng
from veilleur.sinks.base import DeliveryResult, Outcome, Sink
from veilleur.store.types import OutboxRow, OutboxStats, OutboxStore

_MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row given up on in this drain (the daemon logs each one)."""

    sink: str
    notification_id: str
    rule_id: str | None
    attempts: int  # including the last one
    error: str


@dataclass(frozen=True, slots=True)
class SinkReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    # Sink misbehaviour seen in this drain: raised, or results not matching the alerts sent.
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DrainReport:
    sinks: Mapping[str, SinkReport]  # every configured sink, zeros included
    unknown_sinks: Mapping[str, int]  # pending rows whose sink is not configured: kept
    dead_letters: tuple[DeadLetter, ...]
    outbox: OutboxStats  # after the drain: depth and oldest age for the gauges

    @property
    def delivered(self) -> int:
        return sum(r.delivered for r in self.sinks.values())

    @property
    def retried(self) -> int:
        return sum(r.retried for r in self.sinks.values())

    @property
    def dead(self) -> int:
        return sum(r.dead for r in self.sinks.values())


@dataclass(slots=True)
class _Tally:
    """Counters for one sink during one drain; frozen into a SinkReport at the end."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def report(self) -> SinkReport:
        return SinkReport(self.delivered, self.retried, self.dead, tuple(self.errors))


def drain(
    store: OutboxStore,
    sinks: Mapping[str, Sink],
    now: datetime,
    rng: Rng,
    policy: RetryPolicy,
    batch: int = 10,
    max_batches: int = 100,
    keep_going: Callable[[], bool] = lambda: True,
) -> DrainReport:
    """Deliver what is due at ``now``. ``batch`` alerts per ``deliver`` call; at most
    ``max_batches`` calls per sink per drain, so that a backlog cannot hold the loop;
    ``keep_going`` is asked before each call (a stopping daemon drains against a deadline)."""
    if batch < 1 or max_batches < 1:
        raise ValueError("batch and max_batches must be at least 1")
    reports: dict[str, SinkReport] = {}
    dead_letters: list[DeadLetter] = []
    for name in sorted(sinks):
        tally = _Tally()
        attempted: set[int] = set()
        for _ in range(max_batches):
            if not keep_going():
                break
            rows = [r for r in store.due(now, batch, sink=name) if r.id not in attempted]
            if not rows:
                break
            attempted.update(r.id for r in rows)
            _deliver_batch(store, sinks[name], name, rows, now, rng, policy, tally)
        reports[name] = tally.report()
        dead_letters.extend(tally.dead_letters)
    stats = store.stats(now)
    unknown = {s: n for s, n in sorted(stats.pending_by_sink.items()) if s not in sinks}
    return DrainReport(
        sinks=reports, unknown_sinks=unknown, dead_letters=tuple(dead_letters), outbox=stats
    )


def _deliver_batch(
    store: OutboxStore,
    sink: Sink,
    name: str,
    rows: Sequence[OutboxRow],
    now: datetime,
    rng: Rng,
    policy: RetryPolicy,
    tally: _Tally,
) -> None:
    sendable: list[tuple[OutboxRow, Alert]] = []
    for row in rows:
        try:
            sendable.append((row, row.alert()))
        except (KeyError, ValueError, TypeError) as exc:
            _dead(store, row, now, f"stored alert cannot be decoded: {exc!r}", tally)
    if not sendable:
        return
    results = _call_sink(sink, name, [alert for _, alert in sendable], tally)
    delivered: list[int] = []
    for row, _alert in sendable:
        result = results.get(row.notification_id)
        if result is None:
            result = DeliveryResult(row.notification_id, Outcome.RETRYABLE, "no result from sink")
        reason = result.error or f"{result.outcome.value} error"
        if result.outcome is Outcome.DELIVERED:
            delivered.append(row.id)
        elif result.outcome is Outcome.PERMANENT:
            _dead(store, row, now, reason, tally)
        elif policy.should_dead_letter(row.created_at, now):
            age = now - row.created_at
            error = f"gave up after {age} and {row.attempts + 1} attempts: {reason}"
            _dead(store, row, now, error, tally)
        else:
            next_at = policy.next_attempt(row.attempts + 1, now, rng)
            store.mark_retry(row.id, next_at, reason)
            tally.retried += 1
    if delivered:
        store.mark_delivered(delivered, now)
        tally.delivered += len(delivered)


def _call_sink(
    sink: Sink, name: str, alerts: Sequence[Alert], tally: _Tally
) -> dict[str, DeliveryResult]:
    """Results by notification id. A sink that raises gets RETRYABLE for every alert;
    missing results are filled in by the caller, unexpected ones are reported."""
    try:
        results = sink.deliver(alerts)
    except Exception as exc:  # a sink bug must not stop the drain nor lose the rows
        error = _short(f"sink {name} raised {type(exc).__name__}: {exc}")
        tally.errors.append(error)
        return {
            a.notification_id: DeliveryResult(a.notification_id, Outcome.RETRYABLE, error)
            for a in alerts
        }
    sent = {a.notification_id for a in alerts}
    by_id = {r.notification_id: r for r in results}
    missing = len(sent - by_id.keys())
    extra = len(by_id.keys() - sent)
    if missing or extra:
        tally.errors.append(
            f"sink {name} returned {len(results)} results for {len(alerts)} alerts "
            f"({missing} missing, {extra} unexpected)"
        )
    return by_id


def _dead(store: OutboxStore, row: OutboxRow, now: datetime, error: str, tally: _Tally) -> None:
    error = _short(error)
    store.mark_dead(row.id, now, error)
    tally.dead += 1
    rule_id = row.alert_doc.get("rule_id")
    tally.dead_letters.append(
        DeadLetter(
            sink=row.sink,
            notification_id=row.notification_id,
            rule_id=rule_id if isinstance(rule_id, str) else None,
            attempts=row.attempts + 1,
            error=error,
        )
    )


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"
