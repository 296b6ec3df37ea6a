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
from veilleur.notify.outbox import DrainReport, SinkReport, drain
from veilleur.sinks.base import DeliveryResult, Outcome, Sink
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import OutboxEnqueue, OutboxRow, OutboxStatus, TickCommit

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    base=timedelta(seconds=5), cap=timedelta(minutes=10), max_age=timedelta(hours=24)
)


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


def statuses(store: SqliteStore, sink: str) -> list[tuple[str, int]]:
    """(status, attempts) of every row of ``sink``, whatever its state, in enqueue order."""
    conn = sqlite3.connect(store.path)
    try:
        query = "SELECT status, attempts FROM outbox WHERE sink = ? ORDER BY id"
        return [(str(r[0]), int(r[1])) for r in conn.execute(query, (sink,))]
    finally:
        conn.close()


def only_row(store: SqliteStore, sink: str) -> OutboxRow:
    (row,) = store.due(T0 + timedelta(days=3650), limit=10, sink=sink)
    return row


def run(store: SqliteStore, now: datetime, *sinks: Sink, batch: int = 10) -> DrainReport:
    return drain(store, {s.name: s for s in sinks}, now, RNG, POLICY, batch=batch)


# -- tests -------------------------------------------------------------------------------


def test_one_sink_down_does_not_block_nor_fake_the_other(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1), make_alert(2)], ("sns", "eventbridge"))
    sns, bus = FakeSink("sns", Outcome.RETRYABLE), FakeSink("eventbridge", Outcome.DELIVERED)
    report = run(store, T0, sns, bus)
    assert report.sinks["eventbridge"] == SinkReport(delivered=2)
    assert report.sinks["sns"] == SinkReport(retried=2)
    assert statuses(store, "eventbridge") == [("delivered", 1)] * 2
    assert statuses(store, "sns") == [("pending", 1)] * 2
    assert report.outbox.pending_by_sink == {"sns": 2}
    # Nothing is due again until the backoff has passed.
    again = run(store, T0 + timedelta(seconds=4), sns, bus)
    assert (sns.sent, bus.sent, again.retried, again.delivered) == (2, 2, 0, 0)


def test_retry_then_success_after_the_backoff(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1)], ("sns",))
    answers = iter([Outcome.RETRYABLE, Outcome.RETRYABLE, Outcome.DELIVERED])
    sns = FakeSink("sns", lambda _alert: next(answers))
    assert run(store, T0, sns).sinks["sns"].retried == 1
    row = only_row(store, "sns")
    assert (row.attempts, row.next_attempt_at) == (1, T0 + timedelta(seconds=5))
    assert row.last_error == "retryable from sns"
    assert run(store, row.next_attempt_at, sns).sinks["sns"].retried == 1
    row = only_row(store, "sns")
    assert (row.attempts, row.next_attempt_at) == (2, T0 + timedelta(seconds=15))
    assert run(store, row.next_attempt_at - timedelta(seconds=1), sns).sinks["sns"] == SinkReport()
    assert run(store, row.next_attempt_at, sns).sinks["sns"] == SinkReport(delivered=1)
    assert statuses(store, "sns") == [("delivered", 3)]
    assert len(sns.calls) == 3


def test_a_three_hour_outage_loses_nothing(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1)], ("sns",))
    outage_ends = T0 + timedelta(hours=3)
    sns = FakeSink("sns", lambda _alert: Outcome.RETRYABLE)
    now = T0
    while now < outage_ends:
        report = run(store, now, sns)
        assert report.dead == 0
        next_at = only_row(store, "sns").next_attempt_at
        assert next_at - now <= POLICY.cap
        now = next_at
    sns.outcome = Outcome.DELIVERED
    assert run(store, now, sns).delivered == 1
    assert statuses(store, "sns")[0][0] == "delivered"


def test_dead_letter_after_the_maximum_age(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1, rule_id="root-account-usage")], ("sns",))
    sns = FakeSink("sns", Outcome.RETRYABLE)
    policy = RetryPolicy(max_age=timedelta(hours=1))
    run(store, T0, sns)
    assert drain(store, {"sns": sns}, T0 + timedelta(minutes=59), RNG, policy).dead == 0
    report = drain(store, {"sns": sns}, T0 + timedelta(hours=1), RNG, policy)
    assert report.sinks["sns"] == SinkReport(dead=1)
    (letter,) = report.dead_letters
    assert (letter.sink, letter.rule_id, letter.attempts) == ("sns", "root-account-usage", 3)
    assert letter.error.startswith("gave up after 1:00:00 and 3 attempts: retryable from sns")
    assert report.outbox.dead_by_sink == {"sns": 1}
    (dead,) = store.dead_letters(limit=10)
    assert (dead.status, dead.finished_at) == (OutboxStatus.DEAD, T0 + timedelta(hours=1))


def test_permanent_error_dead_letters_that_alert_only(store: SqliteStore) -> None:
    bad = make_alert(2)
    enqueue(store, [make_alert(1), bad, make_alert(3)], ("sns",))

    def outcome(alert: Alert) -> Outcome:
        return Outcome.PERMANENT if alert == bad else Outcome.DELIVERED

    report = run(store, T0, FakeSink("sns", outcome))
    assert report.sinks["sns"] == SinkReport(delivered=2, dead=1)
    assert [d.notification_id for d in report.dead_letters] == [bad.notification_id]
    assert report.dead_letters[0].error == "permanent from sns"
    assert statuses(store, "sns") == [("delivered", 1), ("dead", 1), ("delivered", 1)]


def test_a_sink_that_raises_is_retried_and_reported(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1), make_alert(2)], ("buggy", "sns"))
    buggy, sns = RaisingSink(), FakeSink("sns", Outcome.DELIVERED)
    report = run(store, T0, buggy, sns)
    assert report.sinks["buggy"].retried == 2
    assert report.sinks["buggy"].errors == ("sink buggy raised RuntimeError: boom",)
    assert report.sinks["sns"] == SinkReport(delivered=2)
    assert statuses(store, "buggy") == [("pending", 1)] * 2
    far = T0 + timedelta(days=1)
    errors = {r.last_error for r in store.due(far, limit=10, sink="buggy")}
    assert errors == {"sink buggy raised RuntimeError: boom"}


def test_rows_of_an_unconfigured_sink_stay_pending_and_are_reported(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1), make_alert(2)], ("old-topic", "sns"))
    sns = FakeSink("sns", Outcome.DELIVERED)
    report = run(store, T0 + timedelta(days=30), sns)  # far past any dead-letter age
    assert report.unknown_sinks == {"old-topic": 2}
    assert "old-topic" not in report.sinks
    assert report.sinks["sns"] == SinkReport(delivered=2)
    assert statuses(store, "old-topic") == [("pending", 0)] * 2


def test_missing_and_unexpected_results_are_reported_and_retried(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1), make_alert(2)], ("forgetful",))
    report = run(store, T0, ForgetfulSink())
    assert (report.delivered, report.retried) == (1, 1)
    assert report.sinks["forgetful"].errors == (
        "sink forgetful returned 2 results for 2 alerts (1 missing, 1 unexpected)",
    )
    assert statuses(store, "forgetful") == [("delivered", 1), ("pending", 1)]


def test_due_rows_are_sent_in_batches(store: SqliteStore) -> None:
    enqueue(store, [make_alert(n) for n in range(25)], ("eventbridge",))
    bus = FakeSink("eventbridge", Outcome.DELIVERED)
    assert run(store, T0, bus, batch=10).delivered == 25
    assert [len(c) for c in bus.calls] == [10, 10, 5]


def test_max_batches_bounds_one_drain(store: SqliteStore) -> None:
    enqueue(store, [make_alert(n) for n in range(5)], ("sns",))
    sns = FakeSink("sns", Outcome.DELIVERED)
    report = drain(store, {"sns": sns}, T0, RNG, POLICY, batch=2, max_batches=2)
    assert (report.delivered, report.outbox.pending) == (4, 1)


def test_keep_going_stops_a_drain_between_sink_calls(store: SqliteStore) -> None:
    """A stopping daemon drains against a deadline: no call starts once it says stop."""
    enqueue(store, [make_alert(n) for n in range(5)], ("sns",))
    sns = FakeSink("sns", Outcome.DELIVERED)
    answers = iter([True, True])  # two calls allowed, then the deadline has passed
    report = drain(
        store, {"sns": sns}, T0, RNG, POLICY, batch=2, keep_going=lambda: next(answers, False)
    )
    assert len(sns.calls) == 2
    assert (report.delivered, report.outbox.pending) == (4, 1)  # the rest stays, not lost


def test_an_undecodable_stored_alert_is_dead_lettered_alone(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1), make_alert(2)], ("sns",))
    conn = sqlite3.connect(store.path)
    conn.execute('UPDATE outbox SET alert = \'{"rule_id": "x"}\' WHERE id = 1')
    conn.commit()
    conn.close()
    sns = FakeSink("sns", Outcome.DELIVERED)
    report = run(store, T0, sns)
    assert report.sinks["sns"] == SinkReport(delivered=1, dead=1)
    assert report.dead_letters[0].error.startswith("stored alert cannot be decoded")
    assert sns.calls == [[make_alert(2).notification_id]]


def test_a_replayed_tick_after_delivery_sends_nothing_again(store: SqliteStore) -> None:
    enqueue(store, [make_alert(1)], ("sns",))
    sns = FakeSink("sns", Outcome.DELIVERED)
    run(store, T0, sns)
    enqueue(store, [make_alert(1)], ("sns",))  # the same tick, replayed after a crash
    assert run(store, T0 + timedelta(minutes=1), sns).delivered == 0
    assert sns.sent == 1


def test_bad_batch_arguments_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        drain(store, {}, T0, RNG, POLICY, batch=0)
