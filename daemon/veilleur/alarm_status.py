"""What ``veilleur alarms`` shows: metric alarm states and threshold rules' windows. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from veilleur.rules.metric_spec import MetricRule
from veilleur.rules.spec import Rule
from veilleur.store.types import AlarmStateRecord

MAX_COUNTING_GROUPS = 5


@dataclass(frozen=True, slots=True)
class AlarmRow:
    rule_id: str
    kind: str  # "metric" or "threshold"
    dimensions: str
    state: str
    since: datetime | None
    reason: str


def alarm_rows(
    metric_rules: Sequence[MetricRule],
    rules: Sequence[Rule],
    records: Sequence[AlarmStateRecord],
    engine_state: Mapping[str, Any] | None,
    now: datetime,
) -> list[AlarmRow]:
    rows: list[AlarmRow] = []
    by_rule: dict[str, list[AlarmStateRecord]] = {}
    for r in records:
        by_rule.setdefault(r.rule_id, []).append(r)
    for m in metric_rules:
        found = sorted(by_rule.get(m.id, []), key=lambda r: r.dimensions_key)
        if not found:
            rows.append(
                AlarmRow(m.id, "metric", "-", "INSUFFICIENT_DATA", None, "not evaluated yet")
            )
        for r in found:
            rows.append(AlarmRow(m.id, "metric", r.dimensions_key, r.state, r.since, r.reason))
    windows = (engine_state or {}).get("rules", {})
    ts = now.timestamp()
    for rule in rules:
        if rule.threshold is None:
            continue
        groups = windows.get(rule.id, [])
        alarmed, counting = [], []
        for group, w in groups:
            dims = ", ".join(f"{k}={v}" for k, v in group) or "-"
            until, fired = w.get("s"), w.get("f")
            reason = None
            if until is not None and until > ts and rule.realert is not None:
                fired = until - rule.realert.total_seconds()
                reason = f"fired; repeats suppressed until {_dt(until).isoformat()}"
            elif fired is not None and fired + rule.threshold.within.total_seconds() > ts:
                reason = f"fired; {rule.threshold.count} new matches fire again (no realert)"
            if reason is not None:
                alarmed.append(AlarmRow(rule.id, "threshold", dims, "ALARM", _dt(fired), reason))
            elif w.get("t"):
                counting.append((len(w["t"]), dims))
        rows.extend(alarmed)
        counting.sort(reverse=True)
        for n, dims in counting[:MAX_COUNTING_GROUPS]:
            rows.append(
                AlarmRow(
                    rule.id,
                    "threshold",
                    dims,
                    "OK",
                    None,
                    f"{n} of {rule.threshold.count} matches in the window",
                )
            )
        if not alarmed and not counting:
            rows.append(AlarmRow(rule.id, "threshold", "-", "OK", None, "no matches in the window"))
    return rows


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
