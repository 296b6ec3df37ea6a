"""One tick, in straight-line code: fetch -> evaluate -> commit -> (drain on its own schedule).

``Watch`` owns the engine (windows), the storm gate and each source's in-memory state, and
is the only writer of the store. Polling (network) runs outside its lock; evaluation and the
commit run inside it, so ticks of several sources never interleave their state changes.
If the commit fails, the in-memory state is restored from the store: the tick is replayed
by the next poll and produces the same alerts with the same notification ids.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from veilleur.alarms import AlarmTick, evaluate_alarms, index_records
from veilleur.alerts import Alert
from veilleur.model import Severity
from veilleur.notify.backoff import RetryPolicy
from veilleur.notify.outbox import DrainReport, drain
from veilleur.notify.storm import StormGate
from veilleur.observe.metrics import CallOutcome, Metrics, PollOutcome, SuppressReason
from veilleur.rules.engine import Engine
from veilleur.rules.metric_spec import MetricRule
from veilleur.sinks.base import Sink
from veilleur.sources.cloudtrail import CloudTrailPoller, PollResult, SourceState
from veilleur.sources.cloudwatch import (
    CloudWatchSource,
    fetch_all,
    plan_queries,
    record_fetch_metrics,
)
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import OutboxEnqueue, SeenId, StoreError, TickCommit

log = structlog.get_logger("veilleur")

ENGINE_KEY = "engine"
STORM_KEY = "storm"
SEEN_SLACK = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class Source:
    """A CloudTrail source at run time: its poller and what it remembers."""

    key: str  # "cloudtrail/<account>/<region>"
    poller: CloudTrailPoller
    state: SourceState = field(default_factory=SourceState)
    last_success: datetime | None = None
    last_result: PollResult | None = None


@dataclass(frozen=True)
class SinkRoute:
    sink: Sink
    min_severity: Severity = Severity.INFO


@dataclass(frozen=True)
class TickReport:
    source: str
    ok: bool
    events: int
    alerts: int
    enqueued: int
    complete: bool
    error: str | None


class Watch:
    def __init__(
        self,
        *,
        engine: Engine,
        gate: StormGate,
        store: SqliteStore,
        sources: Sequence[Source],
        sinks: Mapping[str, SinkRoute],
        metrics: Metrics,
        policy: RetryPolicy,
        lateness: timedelta,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        metric_rules: Sequence[MetricRule] = (),
        metric_sources: Sequence[CloudWatchSource] = (),
        metric_delay: timedelta = timedelta(minutes=2),
    ) -> None:
        self.engine = engine
        self.gate = gate
        self.store = store
        self.sources = list(sources)
        self.sinks = dict(sinks)
        self.metrics = metrics
        self.policy = policy
        self.lateness = lateness
        self.clock = clock
        self.rng = rng or random.Random()
        self.metric_rules = tuple(metric_rules)
        self.metric_sources = list(metric_sources)
        self.metric_delay = metric_delay
        self.last_metric_success: datetime | None = None
        self._lock = threading.RLock()
        self._drain_lock = threading.Lock()

    # -- start-up ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Load windows, storm state, watermarks and seen ids from the store."""
        now = self.clock()
        with self._lock:
            self._restore_core()
            marks = self.store.watermarks()
            for src in self.sources:
                src.state.watermark = marks.get(src.key)
                ts = now.timestamp()
                src.state.seen = dict.fromkeys(self.store.seen_ids(src.key, now), ts)

    def _restore_core(self) -> None:
        """Windows and storm state as last committed (empty if nothing was)."""
        self.engine.load_state(self.store.engine_state(ENGINE_KEY) or {})
        self.gate.load_state(self.store.engine_state(STORM_KEY) or {})

    # -- one tick of one source ------------------------------------------------------------
    def tick(self, source: Source) -> TickReport:
        started = time.monotonic()
        now = self.clock()
        result = source.poller.poll(source.state, now)
        target = source.poller.target
        bound = log.bind(source=source.key, account=target.account, region=target.region)
        with self._lock:
            alerts = self.engine.process(result.events, now)
            per_sink = self._route(alerts, now)
            commit = TickCommit(
                now=now,
                watermarks={source.key: result.watermark} if result.watermark else {},
                seen_ids=[
                    SeenId(source.key, e.event_id, now + 2 * self.lateness + SEEN_SLACK)
                    for e in result.events
                ]
                + [
                    SeenId(source.key, i, now + 2 * self.lateness + SEEN_SLACK)
                    for i in result.invalid_ids
                ],
                engine_state={
                    ENGINE_KEY: self.engine.state_json(),
                    STORM_KEY: self.gate.state_json(),
                },
                notifications=[
                    OutboxEnqueue(alert, (sink,))
                    for sink, routed in per_sink.items()
                    for alert in routed
                ],
            )
            try:
                committed = self.store.commit_tick(commit)
            except StoreError as exc:
                bound.error("tick_commit_failed", error=str(exc))
                self._restore_core()  # forget what this tick did; the next poll replays it
                self._observe_poll(source, result, now, started, PollOutcome.ERROR)
                return TickReport(source.key, False, 0, 0, 0, False, f"commit failed: {exc}")
            source.state.apply(result, self.lateness)
        self._report(source, result, alerts, now, started, bound)
        return TickReport(
            source.key,
            ok=result.error is None or (not result.permanent and result.watermark is not None),
            events=len(result.events),
            alerts=len(alerts),
            enqueued=committed.enqueued,
            complete=result.complete,
            error=result.error,
        )

    def _route(self, alerts: list[Alert], now: datetime) -> dict[str, list[Alert]]:
        """Per sink: its severities, through the storm gate; what the gate holds is counted."""
        out: dict[str, list[Alert]] = {}
        for name, route in self.sinks.items():
            wanted = [a for a in alerts if a.severity >= route.min_severity]
            out.update(self.gate.admit(wanted, [name], now))
            admitted = {a.notification_id for a in out[name]}
            for a in wanted:
                if a.notification_id not in admitted:
                    self.metrics.observe_suppressed(a.rule_id, SuppressReason.RATE_LIMIT)
        return out

    def _observe_poll(
        self,
        source: Source,
        result: PollResult,
        now: datetime,
        started: float,
        outcome: PollOutcome,
    ) -> None:
        t = source.poller.target
        self.metrics.observe_poll(
            "cloudtrail",
            t.account,
            t.region,
            outcome,
            time.monotonic() - started,
            now,
            source.state.watermark,
        )

    def _report(
        self,
        source: Source,
        result: PollResult,
        alerts: list[Alert],
        now: datetime,
        started: float,
        bound: Any,
    ) -> None:
        t = source.poller.target
        m = self.metrics
        if result.complete:
            outcome = PollOutcome.OK
            source.last_success = now
        elif result.throttles and result.error and "gave up" in result.error:
            outcome = PollOutcome.THROTTLED
        elif result.watermark is not None or result.pages:
            outcome = PollOutcome.PARTIAL
        else:
            outcome = PollOutcome.ERROR
        source.last_result = result
        self._observe_poll(source, result, now, started, outcome)
        m.observe_events(
            t.account,
            t.region,
            new=len(result.events),
            duplicate=result.duplicates,
            invalid=len(result.invalid),
        )
        m.observe_ingestion((e.event_time for e in result.events), now)
        ok_calls = result.calls - result.throttles - result.call_errors
        for call_outcome, n in (
            (CallOutcome.OK, ok_calls),
            (CallOutcome.THROTTLED, result.throttles),
            (CallOutcome.ERROR, result.call_errors),
        ):
            for _ in range(n):
                m.observe_aws_call("LookupEvents", t.account, t.region, call_outcome)
        with self._lock:  # the engine's counters are shared by every source's tick
            matches = dict(self.engine.stats.matches)
            suppressed = dict(self.engine.stats.suppressed)
            self.engine.stats.matches.clear()
            self.engine.stats.suppressed.clear()
        for rule_id, n in matches.items():
            if n:
                m.observe_match(rule_id, n)
        for rule_id, n in suppressed.items():
            for _ in range(n):
                m.observe_suppressed(rule_id, SuppressReason.REALERT)
        for reason in result.invalid[:20]:
            bound.warning("invalid_event", reason=reason)
        for a in alerts:
            m.observe_alert(a.rule_id, a.severity)
            bound.warning(
                "alert",
                rule=a.rule_id,
                severity=a.severity.label,
                notification_id=a.notification_id,
                count=a.count,
            )
        fields: dict[str, Any] = {
            "window_start": result.window_start.isoformat(),
            "window_end": result.window_end.isoformat(),
            "new": len(result.events),
            "duplicates": result.duplicates,
            "calls": result.calls,
            "pages": result.pages,
            "throttles": result.throttles,
            "alerts": len(alerts),
        }
        fields["swept"] = result.swept
        if result.sweep_error:
            bound.warning("late_sweep_failed", error=result.sweep_error)
        if result.complete:
            bound.info("poll", **fields)
        else:
            m.observe_behind("cloudtrail", t.account, t.region)
            bound.warning("poll_behind", error=result.error, permanent=result.permanent, **fields)

    # -- one tick of the metric rules ---------------------------------------------------------
    def tick_metrics(self) -> AlarmTick | None:
        """Fetch every metric of every rule (few GetMetricData calls), evaluate, commit."""
        if not self.metric_rules or not self.metric_sources:
            return None
        now = self.clock()
        targets = [s.target for s in self.metric_sources]
        batches = plan_queries(self.metric_rules, targets, now, self.metric_delay)
        fetched = fetch_all(self.metric_sources, batches)  # network: outside the lock
        with self._lock:
            previous = index_records(self.store.alarm_states())
            tick = evaluate_alarms(self.metric_rules, fetched, previous, now)
            per_sink = self._route(list(tick.alerts), now)
            commit = TickCommit(
                now=now,
                alarm_states=tick.records,
                engine_state={STORM_KEY: self.gate.state_json()},
                notifications=[
                    OutboxEnqueue(alert, (sink,))
                    for sink, routed in per_sink.items()
                    for alert in routed
                ],
            )
            try:
                self.store.commit_tick(commit)
            except StoreError as exc:
                log.error("metric_commit_failed", error=str(exc))
                self._restore_core()
                return None
        record_fetch_metrics(self.metrics, fetched)
        ids = {r.id for r in self.metric_rules}
        self.metrics.set_alarm_states(
            tick.rule_states({k: v for k, v in previous.items() if k[0] in ids})
        )
        if not tick.skipped:
            self.last_metric_success = now
        for sk in tick.skipped:
            log.warning(
                "metric_rule_skipped",
                rule=sk.rule_id,
                dimensions=sk.dimensions_key,
                reason=sk.reason,
                retryable=sk.retryable,
            )
        for tr in tick.transitions:
            log.warning(
                "alarm_state_change",
                rule=tr.rule_id,
                dimensions=tr.dimensions_key,
                old=tr.old.value,
                new=tr.new.value,
                notified=tr.notified,
                reason=tr.reason,
            )
        for a in tick.alerts:
            self.metrics.observe_alert(a.rule_id, a.severity)
        return tick

    # -- the outbox -------------------------------------------------------------------------
    def drain(self, deadline: float | None = None) -> DrainReport:
        """Deliver what is due; with ``deadline`` (``time.monotonic()``), no new sink call
        starts after it."""

        def keep_going() -> bool:
            return deadline is None or time.monotonic() < deadline

        with self._drain_lock:
            now = self.clock()
            report = drain(
                self.store,
                {n: r.sink for n, r in self.sinks.items()},
                now,
                self.rng,
                self.policy,
                keep_going=keep_going,
            )
        m = self.metrics
        for name, rep in report.sinks.items():
            for _ in range(rep.delivered):
                m.observe_notification(name, "delivered")
            for _ in range(rep.retried):
                m.observe_notification(name, "retryable")
            if rep.dead:
                m.observe_notification(name, "dead")
                m.observe_dead_letter(name, rep.dead)
            for err in rep.errors[:5]:
                log.warning("delivery_failed", sink=name, error=err)
        for dl in report.dead_letters:
            log.error(
                "dead_letter", sink=dl.sink, notification_id=dl.notification_id, error=dl.error
            )
        for sink, n in report.unknown_sinks.items():
            log.warning("outbox_unknown_sink", sink=sink, pending=n)
        m.observe_outbox(report.outbox, self.sinks)
        return report

    # -- health ------------------------------------------------------------------------------
    def freshness(self, now: datetime, max_age: timedelta, metric_max_age: timedelta) -> list[str]:
        """Sources whose last successful poll is older than allowed (for /readyz)."""
        stale = []
        for src in self.sources:
            if src.last_success is None or now - src.last_success > max_age:
                stale.append(f"{src.key}: no successful poll for {max_age}")
        if self.metric_rules and self.metric_sources:
            last = self.last_metric_success
            if last is None or now - last > metric_max_age:
                stale.append(f"cloudwatch: no complete metric evaluation for {metric_max_age}")
        return stale
