"""Alert-storm control: per-rule and per-sink rate limits, then one summary. Pure.

SNS disables an email subscription that receives more than about 10 messages a second, and a
human reads nothing of 300 identical messages. For each sink, at most ``per_rule`` alerts of one
rule and ``per_sink`` alerts in all pass per ``window`` (processing time, the tick's ``now``);
the rest are counted, and once the window that began with the first held-back alert has passed,
one summary alert goes out in their place ("312 more alerts from rule X in the last 5m").
Critical alerts count against the limits like the others: a storm of criticals is still a storm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.durations import format_duration

SAMPLE_CAP = 5
DISTINCT_CAP = 10


@dataclass(slots=True)
class Held:
    """Alerts of one rule held back for one sink, waiting for their summary."""

    since: float
    count: int = 0
    template: dict[str, Any] = field(default_factory=dict)  # the first held alert, as a dict
    samples: list[str] = field(default_factory=list)
    distinct: dict[str, list[str]] = field(default_factory=dict)
    first_seen: str = ""
    last_seen: str = ""
    max_severity: str = "info"


@dataclass(slots=True)
class SinkBudget:
    sent: list[float] = field(default_factory=list)  # send times, all rules
    by_rule: dict[str, list[float]] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StormLimits:
    per_rule: int = 10
    per_sink: int = 30
    window: timedelta = timedelta(minutes=5)


_SEVERITY_ORDER = ["info", "low", "medium", "high", "critical"]


class StormGate:
    """Decides which alerts each sink receives. Owns its state; ``state_json`` persists it."""

    def __init__(self, limits: StormLimits) -> None:
        self.limits = limits
        self._sinks: dict[str, SinkBudget] = {}

    def admit(
        self, alerts: Sequence[Alert], sinks: Sequence[str], now: datetime
    ) -> dict[str, list[Alert]]:
        """The alerts (and due summaries) to enqueue per sink. Summary and alarm alerts are
        never held (they are already the aggregate, and state changes must arrive)."""
        ts = now.timestamp()
        out: dict[str, list[Alert]] = {s: [] for s in sinks}
        for sink in sinks:
            budget = self._sinks.setdefault(sink, SinkBudget())
            self._forget(budget, ts)
            for alert in alerts:
                if alert.kind in (AlertKind.SUMMARY, AlertKind.ALARM) or self._room(
                    budget, alert.rule_id
                ):
                    budget.sent.append(ts)
                    budget.by_rule.setdefault(alert.rule_id, []).append(ts)
                    out[sink].append(alert)
                else:
                    self._hold(budget, alert, ts)
            out[sink].extend(self._due_summaries(budget, ts))
        return out

    def held_count(self) -> int:
        return sum(h.count for b in self._sinks.values() for h in b.held.values())

    # -- internals ------------------------------------------------------------------------
    def _room(self, budget: SinkBudget, rule_id: str) -> bool:
        return (
            len(budget.sent) < self.limits.per_sink
            and len(budget.by_rule.get(rule_id, ())) < self.limits.per_rule
        )

    def _forget(self, budget: SinkBudget, ts: float) -> None:
        horizon = ts - self.limits.window.total_seconds()
        budget.sent = [t for t in budget.sent if t > horizon]
        for rule_id in list(budget.by_rule):
            kept = [t for t in budget.by_rule[rule_id] if t > horizon]
            if kept:
                budget.by_rule[rule_id] = kept
            else:
                del budget.by_rule[rule_id]

    def _hold(self, budget: SinkBudget, alert: Alert, ts: float) -> None:
        held = budget.held.get(alert.rule_id)
        d = alert.to_dict()
        if held is None:
            held = budget.held[alert.rule_id] = Held(
                since=ts, template=d, first_seen=d["first_seen"], last_seen=d["last_seen"]
            )
        held.count += 1
        held.first_seen = min(held.first_seen, d["first_seen"])
        held.last_seen = max(held.last_seen, d["last_seen"])
        if _SEVERITY_ORDER.index(d["severity"]) > _SEVERITY_ORDER.index(held.max_severity):
            held.max_severity = d["severity"]
        for sid in alert.sample_event_ids:
            if len(held.samples) < SAMPLE_CAP and sid not in held.samples:
                held.samples.append(sid)
        for key, values in alert.distinct.items():
            seen = held.distinct.setdefault(key, [])
            for v in values:
                if v not in seen and len(seen) < DISTINCT_CAP:
                    seen.append(v)

    def _due_summaries(self, budget: SinkBudget, ts: float) -> list[Alert]:
        window = self.limits.window.total_seconds()
        due = [r for r, h in budget.held.items() if ts - h.since >= window]
        out = []
        for rule_id in due:
            held = budget.held.pop(rule_id)
            out.append(summary_alert(rule_id, held, self.limits.window))
        return out

    # -- persistence ----------------------------------------------------------------------
    def state_json(self) -> dict[str, Any]:
        return {
            sink: {
                "sent": b.sent,
                "by_rule": b.by_rule,
                "held": {
                    r: {
                        "since": h.since,
                        "count": h.count,
                        "template": h.template,
                        "samples": h.samples,
                        "distinct": h.distinct,
                        "first_seen": h.first_seen,
                        "last_seen": h.last_seen,
                        "max_severity": h.max_severity,
                    }
                    for r, h in b.held.items()
                },
            }
            for sink, b in self._sinks.items()
        }

    def load_state(self, data: Mapping[str, Any]) -> None:
        self._sinks = {}
        for sink, b in data.items():
            self._sinks[sink] = SinkBudget(
                sent=[float(t) for t in b.get("sent", [])],
                by_rule={r: [float(t) for t in ts] for r, ts in b.get("by_rule", {}).items()},
                held={r: Held(**h) for r, h in b.get("held", {}).items()},
            )


def summary_alert(rule_id: str, held: Held, window: timedelta) -> Alert:
    t = held.template
    since = datetime.fromtimestamp(held.since, tz=UTC).isoformat()
    fp = fingerprint(rule_id, (("summary", "storm"),))
    base = Alert.from_dict(t)
    return Alert(
        rule_id=rule_id,
        title=f"{held.count} more alerts from {t['title']} in the last {format_duration(window)}",
        severity=base.severity.parse(held.max_severity),
        kind=AlertKind.SUMMARY,
        fingerprint=fp,
        notification_id=notification_id(fp, f"{since}/{held.count}"),
        count=held.count,
        first_seen=Alert.from_dict({**t, "first_seen": held.first_seen}).first_seen,
        last_seen=Alert.from_dict({**t, "last_seen": held.last_seen}).last_seen,
        group=(),
        distinct={k: tuple(v) for k, v in held.distinct.items()},
        sample_event_ids=tuple(held.samples),
        description=base.description,
        runbook=base.runbook,
        tags=base.tags,
        account=base.account,
        region=base.region,
        details={"suppressed": held.count, "window": format_duration(window), "since": since},
    )
