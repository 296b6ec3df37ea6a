"""The rule engine: indexed matching, windows per (rule, group), alerts. Pure.

One ``Engine`` owns the window state of every rule. The caller feeds it events in eventTime
order with the ``now`` of the tick, reads the alerts, and persists ``engine.state_json()``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.durations import format_duration
from veilleur.model import MISSING, TrailEvent, lookup
from veilleur.rules import threshold
from veilleur.rules.spec import Rule

# Fields whose distinct values an alert carries (beyond the group keys).
DISTINCT_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("userName", ("userIdentity", "userName")),
    ("principal", ("userIdentity", "arn")),
    ("sourceIPAddress", ("sourceIPAddress",)),
    ("eventName", ("eventName",)),
)
MAX_RESOURCES = 10
TEXT_CAP = 512  # characters of a group or distinct value kept
STATE_VERSION = 1


def _text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value[:TEXT_CAP]  # attacker-sized strings stay out of the window state
    return json.dumps(value, sort_keys=True, default=str)[:TEXT_CAP]


def _group(rule: Rule, record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((p.text, _text(lookup(record, p.parts))) for p in rule.grouping)


def _epoch(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class RuleIndex:
    """Candidate rules per event: by eventName, then by eventSource, then by eventName
    prefix (resolved once per name, then cached), then the rest.

    A rule goes into the narrowest bucket its matcher pins soundly (``required_values``);
    rules that pin neither are tried on every event.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        by_name: dict[str, list[Rule]] = {}
        by_source: dict[str, list[Rule]] = {}
        by_prefix: list[tuple[frozenset[str], Rule]] = []
        always: list[Rule] = []
        for rule in rules:
            names = rule.matcher.required_values(("eventName",))
            sources = rule.matcher.required_values(("eventSource",))
            prefixes = rule.matcher.required_prefixes(("eventName",))
            if names is not None and all(isinstance(n, str) for n in names):
                for n in names:
                    by_name.setdefault(str(n), []).append(rule)
            elif sources is not None and all(isinstance(s, str) for s in sources):
                for s in sources:
                    by_source.setdefault(str(s), []).append(rule)
            elif prefixes is not None:
                by_prefix.append((prefixes, rule))
            else:
                always.append(rule)
        self._by_prefix = tuple(by_prefix)
        self._position = {id(r): i for i, r in enumerate(rules)}
        self._by_name = by_name
        self._by_source = by_source
        self._always = tuple(always)
        self._cache: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.indexed = len(rules) - len(always)

    def candidates(self, event_name: str, event_source: str) -> tuple[Rule, ...]:
        key = (event_name, event_source)
        hit = self._cache.get(key)
        if hit is None:
            hit = (
                tuple(self._by_name.get(event_name, ()))
                + tuple(self._by_source.get(event_source, ()))
                + tuple(r for pre, r in self._by_prefix if event_name.startswith(tuple(pre)))
                + self._always
            )
            # Rule-file order, whatever the bucket: the same alerts in the same order as a
            # naive evaluation (cached, so the sort is paid once per name).
            hit = tuple(sorted(hit, key=lambda r: self._position[id(r)]))
            if len(self._cache) < 100_000:  # bounded: names are attacker-influenced
                self._cache[key] = hit
        return hit


@dataclass
class EngineStats:
    events: int = 0
    matches: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)


class Engine:
    """Evaluates rules over events. ``lateness`` is how long a window stays open for late
    events (the poller's overlap): state is kept for ``within + lateness``."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        lateness: timedelta = timedelta(minutes=15),
        naive: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self._lateness = lateness.total_seconds()
        self._index = RuleIndex(self.rules)
        self._naive = naive
        self._windows: dict[str, dict[tuple[tuple[str, str], ...], threshold.GroupWindow]] = {
            r.id: {} for r in self.rules if r.stateful
        }
        self.stats = EngineStats()

    # -- evaluation --------------------------------------------------------------------
    def process(self, events: Iterable[TrailEvent], now: datetime) -> list[Alert]:
        """Evaluate events (in eventTime order) and expire state as of ``now``."""
        alerts: list[Alert] = []
        for event in events:
            self.process_one(event, alerts)
        self.expire(now)
        return alerts

    def matching_rules(self, event: TrailEvent) -> list[Rule]:
        rules = (
            self.rules
            if self._naive
            else self._index.candidates(event.event_name, event.event_source)
        )
        record = event.record
        return [r for r in rules if r.matcher.matches(record)]

    def process_one(self, event: TrailEvent, out: list[Alert]) -> None:
        self.stats.events += 1
        for rule in self.matching_rules(event):
            self.stats.matches[rule.id] += 1
            alert = self._on_match(rule, event)
            if alert is not None:
                self.stats.alerts[rule.id] += 1
                out.append(alert)

    def _on_match(self, rule: Rule, event: TrailEvent) -> Alert | None:
        record = event.record
        group = _group(rule, record)
        if not rule.stateful:
            return self._alert(rule, event, group, None)
        spec = rule.threshold
        count = spec.count if spec else 1
        within = spec.within.total_seconds() if spec else 0.0
        windows = self._windows[rule.id]
        window = windows.get(group)
        if window is None:
            window = windows[group] = threshold.GroupWindow()
        values = tuple(
            (name, _text(v))
            for name, path in DISTINCT_FIELDS
            if (v := lookup(record, path)) is not MISSING and v is not None
        )
        firing = threshold.observe(
            window,
            _epoch(event.event_time),
            event.event_id,
            values,
            count=count,
            within=within,
            realert=rule.realert.total_seconds() if rule.realert else None,
        )
        if firing is None:
            if window.suppressed_until is not None:
                self.stats.suppressed[rule.id] += 1
            return None
        return self._alert(rule, event, group, firing)

    def _alert(
        self,
        rule: Rule,
        event: TrailEvent,
        group: tuple[tuple[str, str], ...],
        firing: threshold.Firing | None,
    ) -> Alert:
        record = event.record
        fp = fingerprint(rule.id, group)
        distinct: dict[str, tuple[str, ...]]
        samples: tuple[str, ...]
        if firing is None:
            distinct = {
                name: (_text(v),)
                for name, path in DISTINCT_FIELDS
                if (v := lookup(record, path)) is not MISSING and v is not None
            }
            count, first, last, samples = 1, event.event_time, event.event_time, (event.event_id,)
            details: dict[str, Any] = {}
        else:
            distinct = firing.distinct
            count, first, last = firing.count, _dt(firing.first), _dt(firing.last)
            samples = firing.sample_ids
            details = {}
            if firing.suppressed_before:
                details["suppressed_before"] = firing.suppressed_before
            if rule.threshold:
                details["window"] = format_duration(rule.threshold.within)
        return Alert(
            rule_id=rule.id,
            title=rule.title,
            severity=rule.severity,
            kind=AlertKind.THRESHOLD if rule.threshold else AlertKind.EVENT,
            fingerprint=fp,
            notification_id=notification_id(fp, event.event_id),
            count=count,
            first_seen=first,
            last_seen=last,
            group=group,
            distinct=distinct,
            sample_event_ids=samples,
            description=rule.description,
            runbook=rule.runbook,
            tags=rule.tags,
            account=_opt_text(record.get("recipientAccountId")),
            region=_opt_text(record.get("awsRegion")),
            resources=_resources(record),
            details=details,
        )

    # -- state ---------------------------------------------------------------------------
    def expire(self, now: datetime) -> None:
        """Forget matches and groups that can no longer contribute to a window."""
        ts = _epoch(now)
        for rule in self.rules:
            windows = self._windows.get(rule.id)
            if not windows:
                continue
            within = rule.threshold.within.total_seconds() if rule.threshold else 0.0
            horizon = ts - within - self._lateness
            dead = [g for g, w in windows.items() if threshold.expire(w, horizon)]
            for g in dead:
                del windows[g]

    def group_count(self) -> int:
        return sum(len(w) for w in self._windows.values())

    def state_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "rules": {
                rule_id: [[list(map(list, g)), w.to_json()] for g, w in windows.items()]
                for rule_id, windows in self._windows.items()
                if windows
            },
        }

    def load_state(self, data: Mapping[str, Any]) -> None:
        """Restore windows; rules that no longer exist are dropped, new rules start empty."""
        for windows in self._windows.values():
            windows.clear()  # the blob replaces the state: nothing of the current one remains
        if data.get("version") != STATE_VERSION:
            return
        for rule_id, groups in data.get("rules", {}).items():
            if rule_id not in self._windows:
                continue
            self._windows[rule_id] = {
                tuple((str(k), str(v)) for k, v in g): threshold.GroupWindow.from_json(w)
                for g, w in groups
            }


def _opt_text(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _resources(record: Mapping[str, Any]) -> tuple[str, ...]:
    res = record.get("resources")
    if not isinstance(res, list):
        return ()
    arns = [r["ARN"] for r in res if isinstance(r, dict) and isinstance(r.get("ARN"), str)]
    return tuple(a[:2048] for a in arns[:MAX_RESOURCES])
