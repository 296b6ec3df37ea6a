"""One tick of metric rules: fetched series and stored states in; new states and alerts out.

Pure: ``now`` is passed in, nothing is read or written here. For each (rule, target) the
fetch could answer for, :func:`evaluate_alarms` runs CloudWatch's evaluation
(``rules/alarm.py``) from the stored state (INSUFFICIENT_DATA when there is none, as a new
CloudWatch alarm), writes a new :class:`AlarmStateRecord` and decides what to notify.
A rule the fetch skipped keeps its record untouched: a failed read is never missing data.

Notification policy (subscribers see states, not every internal change). Only a state
change can notify, and only when subscribers were last told something else:

- to ALARM: notified, unless the last notification already said ALARM (ALARM ->
  INSUFFICIENT_DATA -> ALARM with INSUFFICIENT_DATA not notified sends nothing new);
- to OK: notified when the last notification said ALARM (or INSUFFICIENT_DATA, for rules
  that notify it) — "resolved"; a rule never notified before (start-up) stays quiet;
- to INSUFFICIENT_DATA: notified only for rules with ``notify_insufficient_data``.

``details["notified_state"]`` of the record remembers what subscribers were last told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.aws import Target
from veilleur.durations import format_duration
from veilleur.model import format_time
from veilleur.rules.alarm import AlarmState, Evaluation, evaluate
from veilleur.rules.metric_spec import MetricRule
from veilleur.sources.cloudwatch import FetchResult, RuleData
from veilleur.store.types import AlarmStateRecord

AlarmKey = tuple[str, str]  # (rule id, dimensions key), as the store keys alarm states
NOTIFIED = "notified_state"
_TITLE_PREFIX = {
    AlarmState.ALARM: "",
    AlarmState.OK: "Resolved: ",
    AlarmState.INSUFFICIENT_DATA: "Insufficient data: ",
}
_RANK = {AlarmState.OK: 0, AlarmState.INSUFFICIENT_DATA: 1, AlarmState.ALARM: 2}


def dimensions_key(rule: MetricRule, target: Target) -> str:
    """``123456789012/eu-west-1?AutoScalingGroupName=web``: one alarm per rule and target,
    stable, readable in ``veilleur alarms``, separators in values escaped."""
    return f"{target.key}?{urlencode(rule.dimensions)}" if rule.dimensions else target.key


@dataclass(frozen=True, slots=True)
class Transition:
    rule_id: str
    dimensions_key: str
    old: AlarmState
    new: AlarmState
    notified: bool  # an alert was raised for it
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    rule_id: str
    dimensions_key: str
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class AlarmTick:
    records: tuple[AlarmStateRecord, ...]  # for TickCommit.alarm_states
    alerts: tuple[Alert, ...]  # to route to the sinks
    transitions: tuple[Transition, ...]
    skipped: tuple[Skipped, ...]

    def rule_states(self, previous: Mapping[AlarmKey, AlarmStateRecord]) -> dict[str, str]:
        """The worst state per rule (ALARM > INSUFFICIENT_DATA > OK) over this tick's
        records and the previous ones not re-evaluated: for ``Metrics.set_alarm_states``."""
        merged = dict(previous)
        merged.update({(r.rule_id, r.dimensions_key): r for r in self.records})
        worst: dict[str, AlarmState] = {}
        for (rule_id, _), record in merged.items():
            state = _state(record.state)
            if rule_id not in worst or _RANK[state] > _RANK[worst[rule_id]]:
                worst[rule_id] = state
        return {rule_id: state.value for rule_id, state in worst.items()}


def index_records(records: Iterable[AlarmStateRecord]) -> dict[AlarmKey, AlarmStateRecord]:
    """``store.alarm_states()`` as the ``previous`` mapping."""
    return {(r.rule_id, r.dimensions_key): r for r in records}


def evaluate_alarms(
    rules: Sequence[MetricRule],
    data: FetchResult,
    previous: Mapping[AlarmKey, AlarmStateRecord],
    now: datetime,
) -> AlarmTick:
    by_rule: dict[str, list[RuleData]] = {}
    for rd in data.data.values():
        by_rule.setdefault(rd.rule_id, []).append(rd)
    records: list[AlarmStateRecord] = []
    alerts: list[Alert] = []
    transitions: list[Transition] = []
    skipped: list[Skipped] = []
    for rule in rules:
        for rd in sorted(by_rule.get(rule.id, ()), key=lambda d: d.target.key):
            key = dimensions_key(rule, rd.target)
            if rd.skipped is not None:
                skipped.append(Skipped(rule.id, key, rd.skipped, rd.retryable))
                continue
            prev = previous.get((rule.id, key))
            record, alert, transition = _evaluate_one(rule, rd, key, prev, now)
            records.append(record)
            if alert is not None:
                alerts.append(alert)
            if transition is not None:
                transitions.append(transition)
    return AlarmTick(tuple(records), tuple(alerts), tuple(transitions), tuple(skipped))


def _evaluate_one(
    rule: MetricRule,
    rd: RuleData,
    key: str,
    prev: AlarmStateRecord | None,
    now: datetime,
) -> tuple[AlarmStateRecord, Alert | None, Transition | None]:
    old = _state(prev.state) if prev else AlarmState.INSUFFICIENT_DATA
    told = _told(prev)
    result = evaluate(rd.points, old, rule.alarm)
    new = result.state
    changed = new is not old
    notify = changed and _should_notify(rule, new, told)
    if notify:
        told = new
    details = _details(rule, rd, result)
    record = AlarmStateRecord(
        rule_id=rule.id,
        dimensions_key=key,
        state=new.value,
        since=now if changed or prev is None else prev.since,
        reason=result.reason,
        last_evaluated=now,
        details={**details, NOTIFIED: told.value if told else None},
    )
    if not changed:
        return record, None, None
    transition = Transition(rule.id, key, old, new, notify, result.reason)
    if not notify:
        return record, None, transition
    return record, _alert(rule, rd, key, old, result, details), transition


def _should_notify(rule: MetricRule, new: AlarmState, told: AlarmState | None) -> bool:
    if new is AlarmState.ALARM:
        return told is not AlarmState.ALARM
    if new is AlarmState.OK:
        return told is AlarmState.ALARM or (
            rule.notify_insufficient_data and told is AlarmState.INSUFFICIENT_DATA
        )
    return rule.notify_insufficient_data and told is not AlarmState.INSUFFICIENT_DATA


def _details(rule: MetricRule, rd: RuleData, result: Evaluation) -> dict[str, Any]:
    spec = rule.alarm
    return {
        "metric": rule.describe(),
        "threshold": spec.threshold,
        "comparison": spec.comparison.symbol,
        "evaluation_periods": spec.evaluation_periods,
        "datapoints_to_alarm": spec.datapoints_to_alarm,
        "treat_missing_data": spec.treat_missing.value,
        "period": format_duration(timedelta(seconds=rd.period)),
        "range_start": format_time(rd.start),
        "range_end": format_time(rd.end),
        "datapoints": list(result.deciding),  # oldest first, null: a missing period
        "range_values": list(rd.points),  # the whole evaluation range, oldest first
        "breaching": result.breaching,
        "basis": result.basis.value,
    }


def _alert(
    rule: MetricRule,
    rd: RuleData,
    key: str,
    old: AlarmState,
    result: Evaluation,
    details: Mapping[str, Any],
) -> Alert:
    fp = fingerprint(rule.id, (("dimensions", key),))
    trigger = f"{old.value}->{result.state.value}@{format_time(rd.end)}"
    return Alert(
        rule_id=rule.id,
        title=_TITLE_PREFIX[result.state] + rule.title,
        severity=rule.severity,
        kind=AlertKind.ALARM,
        fingerprint=fp,
        notification_id=notification_id(fp, trigger),
        count=result.breaching,
        first_seen=rd.start,
        last_seen=rd.end,
        group=rule.dimensions,
        description=rule.description,
        runbook=rule.runbook,
        tags=rule.tags,
        account=rd.target.account,
        region=rd.target.region,
        details={
            "old_state": old.value,
            "new_state": result.state.value,
            "reason": result.reason,
            **{k: v for k, v in details.items() if k != "range_values"},
        },
    )


def _state(text: str) -> AlarmState:
    try:
        return AlarmState(text)
    except ValueError:
        return AlarmState.INSUFFICIENT_DATA


def _told(prev: AlarmStateRecord | None) -> AlarmState | None:
    if prev is None:
        return None
    value = prev.details.get(NOTIFIED)
    return _state(value) if isinstance(value, str) else None
