"""Every Prometheus metric the daemon exports, owned by one ``Metrics`` object.

No global registry: the daemon builds one ``Metrics`` and passes it where it is needed, so tests
can build as many as they like. Labels are bounded by configuration (accounts, regions, sinks),
by the rule set (rule, pack) or by code (outcome, reason, state, operation); never event ids,
IP addresses or user names. ``docs/metrics.md`` says what each metric means and what to alert on.
"""

from __future__ import annotations

import enum
import platform
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from veilleur import __version__

NAMESPACE = "veilleur"

# A poll is a few API calls paced under 2 TPS, or a few hundred pages when catching up.
POLL_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# LookupEvents shows events ~5 min after they happen, sometimes 15 min or more.
INGESTION_DELAY_BUCKETS = (
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
)
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")

Label = str | enum.Enum
Instant = datetime | float  # an aware datetime, or seconds since the epoch


class PollOutcome(enum.StrEnum):
    OK = "ok"
    PARTIAL = "partial"  # a window not read completely: the watermark did not move past it
    THROTTLED = "throttled"
    ERROR = "error"


class EventOutcome(enum.StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class SuppressReason(enum.StrEnum):
    REALERT = "realert"
    RATE_LIMIT = "rate_limit"


class CallOutcome(enum.StrEnum):
    OK = "ok"
    THROTTLED = "throttled"
    ERROR = "error"


class OutboxSnapshot(Protocol):
    """What ``observe_outbox`` reads (``veilleur.store.types.OutboxStats`` has this shape)."""

    @property
    def pending_by_sink(self) -> Mapping[str, int]: ...
    @property
    def oldest_pending_age_by_sink(self) -> Mapping[str, timedelta]: ...
    @property
    def dead_by_sink(self) -> Mapping[str, int]: ...


def label(value: Label) -> str:
    """A label value: a StrEnum's value, another enum's lowercase name (Severity.HIGH: "high")."""
    if isinstance(value, enum.StrEnum):
        return value.value
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return value


def epoch_seconds(t: Instant) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


class Metrics:
    """The daemon's metrics in their own ``CollectorRegistry``."""

    def __init__(self, *, version: str = __version__, python: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), namespace=NAMESPACE, registry=r)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), namespace=NAMESPACE, registry=r)

        where = ("source", "account", "region")
        # Sources
        self.polls = counter("polls_total", "Polls by outcome.", (*where, "outcome"))
        self.poll_duration = Histogram(
            "poll_duration_seconds",
            "Wall time of one poll.",
            ["source"],
            namespace=NAMESPACE,
            registry=r,
            buckets=POLL_DURATION_BUCKETS,
        )
        self.last_success = gauge(
            "last_success_timestamp_seconds", "When the last successful poll ended.", where
        )
        self.poll_lag = gauge("poll_lag_seconds", "How far the watermark is behind now.", where)
        self.poll_interval = gauge(
            "poll_interval_seconds",
            "The configured poll interval (for alerting rules).",
            ["source"],
        )
        self.poll_behind = counter(
            "poll_behind_total", "Polls that could not read their whole window in time.", where
        )
        self.events = counter(
            "events_total", "CloudTrail events by outcome.", ("account", "region", "outcome")
        )
        self.ingestion_delay = Histogram(
            "ingestion_delay_seconds",
            "Poll time minus eventTime of new events (an upper bound on the visibility delay).",
            namespace=NAMESPACE,
            registry=r,
            buckets=INGESTION_DELAY_BUCKETS,
        )
        self.metric_queries = counter(
            "metric_queries_total",
            "GetMetricData queries sent (metric and expression queries, every page).",
            ("account", "region"),
        )
        self.metrics_requested = counter(
            "metrics_requested_total",
            "Metrics requested in GetMetricData calls (MetricStat queries): what CloudWatch bills.",
            ("account", "region"),
        )
        # Rules and alerts
        self.rule_matches = counter("rule_matches_total", "Events a rule matched.", ("rule",))
        self.alerts = counter("alerts_total", "Alerts raised.", ("rule", "severity"))
        self.alerts_suppressed = counter(
            "alerts_suppressed_total", "Alerts not raised, by reason.", ("rule", "reason")
        )
        self.alarm_state = gauge(
            "alarm_state", "1 for a metric rule's current state, 0 otherwise.", ("rule", "state")
        )
        self.rules_loaded = gauge("rules_loaded", "Rules loaded, by pack or file.", ("pack",))
        # Notifications
        self.notifications = counter(
            "notifications_total", "Delivery attempts by sink and outcome.", ("sink", "outcome")
        )
        self.outbox_depth = gauge("outbox_depth", "Notifications waiting to be sent.", ("sink",))
        self.outbox_oldest_age = gauge(
            "outbox_oldest_age_seconds", "Age of the oldest waiting notification.", ("sink",)
        )
        self.dead_letters_total = counter(
            "dead_letters_total", "Notifications given up on.", ("sink",)
        )
        # Not "dead_letters": a counter's family name is its name without _total.
        self.outbox_dead_letters = gauge(
            "outbox_dead_letters", "Dead letters currently kept.", ("sink",)
        )
        # AWS
        op = ("operation", "account", "region")
        self.aws_api_calls = counter("aws_api_calls_total", "AWS API calls.", (*op, "outcome"))
        self.aws_throttles = counter("aws_throttles_total", "AWS API calls throttled.", op)
        # The process
        self.config_reloads = counter("config_reloads_total", "Reloads by outcome.", ("outcome",))
        self.ready = gauge("ready", "1 when the daemon reports ready, else 0.")
        self.build_info = gauge("build_info", "Always 1.", ("version", "python"))
        self.build_info.labels(version, python or platform.python_version()).set(1)

    # -- sources ---------------------------------------------------------------------------
    def observe_poll(
        self,
        source: str,
        account: str,
        region: str,
        outcome: Label,
        duration: float,
        now: Instant,
        watermark: Instant | None = None,
    ) -> None:
        """Count a poll; on success stamp the time; with a watermark, set the lag."""
        out = label(outcome)
        self.polls.labels(source, account, region, out).inc()
        self.poll_duration.labels(source).observe(max(0.0, duration))
        now_s = epoch_seconds(now)
        if out == PollOutcome.OK:
            self.last_success.labels(source, account, region).set(now_s)
        if watermark is not None:
            lag = max(0.0, now_s - epoch_seconds(watermark))
            self.poll_lag.labels(source, account, region).set(lag)

    def observe_behind(self, source: str, account: str, region: str) -> None:
        self.poll_behind.labels(source, account, region).inc()

    def observe_events(
        self,
        account: str,
        region: str,
        *,
        new: int = 0,
        duplicate: int = 0,
        invalid: int = 0,
    ) -> None:
        for outcome, n in (
            (EventOutcome.NEW, new),
            (EventOutcome.DUPLICATE, duplicate),
            (EventOutcome.INVALID, invalid),
        ):
            self.events.labels(account, region, outcome.value).inc(n)

    def observe_ingestion(self, event_times: Iterable[Instant], now: Instant) -> None:
        """One observation per new event: poll time minus eventTime (never negative)."""
        now_s = epoch_seconds(now)
        for t in event_times:
            self.ingestion_delay.observe(max(0.0, now_s - epoch_seconds(t)))

    def set_poll_interval(self, source: str, seconds: float) -> None:
        self.poll_interval.labels(source).set(seconds)

    def observe_metric_queries(
        self, account: str, region: str, queries: int, metrics: int | None = None
    ) -> None:
        """Queries sent; ``metrics`` of them billed metrics (all of them when not given)."""
        self.metric_queries.labels(account, region).inc(queries)
        self.metrics_requested.labels(account, region).inc(queries if metrics is None else metrics)

    # -- rules and alerts --------------------------------------------------------------------
    def observe_match(self, rule: str, n: int = 1) -> None:
        self.rule_matches.labels(rule).inc(n)

    def observe_alert(self, rule: str, severity: Label) -> None:
        self.alerts.labels(rule, label(severity)).inc()

    def observe_suppressed(self, rule: str, reason: Label) -> None:
        self.alerts_suppressed.labels(rule, label(reason)).inc()

    def set_alarm_state(self, rule: str, state: Label) -> None:
        current = label(state)
        for s in {*ALARM_STATES, current}:
            self.alarm_state.labels(rule, s).set(1 if s == current else 0)

    def set_alarm_states(self, states: Mapping[str, Label]) -> None:
        """Replace every alarm state: rules gone after a reload disappear from the output."""
        self.alarm_state.clear()
        for rule, state in states.items():
            self.set_alarm_state(rule, state)

    def set_rules_loaded(self, by_pack: Mapping[str, int]) -> None:
        """Replace the rule counts: packs dropped by a reload disappear from the output."""
        self.rules_loaded.clear()
        for pack, n in by_pack.items():
            self.rules_loaded.labels(pack).set(n)

    # -- notifications -----------------------------------------------------------------------
    def observe_notification(self, sink: str, outcome: Label) -> None:
        self.notifications.labels(sink, label(outcome)).inc()

    def observe_dead_letter(self, sink: str, n: int = 1) -> None:
        self.dead_letters_total.labels(sink).inc(n)

    def observe_outbox(self, stats: OutboxSnapshot, sinks: Iterable[str] = ()) -> None:
        """Set the outbox gauges; ``sinks`` (the configured ones) read 0 when absent from stats."""
        names = {*sinks, *stats.pending_by_sink, *stats.dead_by_sink}
        for sink in names:
            age = stats.oldest_pending_age_by_sink.get(sink)
            self.outbox_depth.labels(sink).set(stats.pending_by_sink.get(sink, 0))
            self.outbox_oldest_age.labels(sink).set(age.total_seconds() if age else 0.0)
            self.outbox_dead_letters.labels(sink).set(stats.dead_by_sink.get(sink, 0))

    # -- AWS -------------------------------------------------------------------------------
    def observe_aws_call(self, operation: str, account: str, region: str, outcome: Label) -> None:
        out = label(outcome)
        self.aws_api_calls.labels(operation, account, region, out).inc()
        if out == CallOutcome.THROTTLED:
            self.aws_throttles.labels(operation, account, region).inc()

    # -- the process -------------------------------------------------------------------------
    def observe_reload(self, ok: bool) -> None:
        self.config_reloads.labels("ok" if ok else "error").inc()

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value, or None: for tests (``value("veilleur_ready")``)."""
        return self.registry.get_sample_value(name, labels)
