"""The ``metric:`` rule dialect: a CloudWatch metric alarm written as a veilleur rule.

A rule dict with a ``metric`` key is a metric rule (:func:`is_metric_rule`). It is validated
by a pydantic model (field by field) and then compiled (cross-field checks: M <= N,
period x N <= 1 day, the ids an expression uses) into a frozen :class:`MetricRule`. Every
problem is reported with its path: ``rules.yaml: rules[2] (cpu-high).metric.period: ...``.
Pure: no I/O, no clock. ``docs/metric-rules.md`` is the user's guide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator

from veilleur.model import Severity
from veilleur.rules.alarm import AlarmSpec, AlarmState, Comparison, TreatMissing, evaluate
from veilleur.rules.header import RuleHeaderModel, StrictModel
from veilleur.validation import Duration, pydantic_messages

MAX_DAY = 86_400  # period x evaluation_periods, seconds (PutMetricAlarm)
MAX_EXPRESSION_METRICS = 10  # metrics in one alarm's math expression
MAX_DIMENSIONS = 30
MAX_EXPRESSION_CHARS = 2048
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")  # MetricDataQuery.Id
_STATS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100(\.0{1,2})?)$")
# A lowercase-start identifier not glued to a word or a number: an id in an expression.
IDENT = re.compile(r"(?<![\w.])[a-z][a-zA-Z0-9_]*\b")
_UNSUPPORTED = ("SEARCH", "SELECT", "INSIGHT_RULE_METRIC", "ANOMALY_DETECTION_BAND", "METRICS")


# -- the model (the config edge) -------------------------------------------------------------


_Strict = StrictModel


def _check_statistic(value: str) -> str:
    for stat in _STATS:
        if value.lower() == stat.lower():
            return stat
    if _PERCENTILE.match(value.lower()):
        return value.lower()
    raise ValueError(
        f'invalid statistic "{value}" (expected one of {", ".join(_STATS)} or a percentile '
        "such as p99 or p99.9)"
    )


def _check_dimensions(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"at most {MAX_DIMENSIONS} dimensions, got {len(value)}")
    for name, val in value.items():
        if not 1 <= len(name) <= 255 or not 1 <= len(val) <= 1024:
            raise ValueError(f'dimension "{name[:60]}": names are 1-255 characters, values 1-1024')
    return value


class MetricStatModel(_Strict):
    """One metric of a math expression (``metrics: {m1: {...}}``)."""

    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str

    @field_validator("statistic")
    @classmethod
    def _statistic(cls, v: str) -> str:
        return _check_statistic(v)

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_dimensions(v)


class MetricModel(_Strict):
    namespace: str | None = Field(default=None, min_length=1, max_length=255)
    metric_name: str | None = Field(default=None, min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str | None = None
    expression: str | None = Field(default=None, min_length=1, max_length=MAX_EXPRESSION_CHARS)
    metrics: dict[str, MetricStatModel] = Field(default_factory=dict)
    period: Duration
    comparison: str
    threshold: float
    evaluation_periods: int = Field(ge=1, le=1440)
    datapoints_to_alarm: int | None = Field(default=None, ge=1)
    treat_missing_data: str = "missing"

    @field_validator("statistic")
    @classmethod
    def _statistic(cls, v: str | None) -> str | None:
        return None if v is None else _check_statistic(v)

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_dimensions(v)

    @field_validator("period")
    @classmethod
    def _period(cls, v: timedelta) -> timedelta:
        seconds = v.total_seconds()
        if seconds < 60 or seconds % 60:
            raise ValueError(
                f"period must be a multiple of 60 s (1m, 5m, 1h...), got {seconds:g} s "
                "(high-resolution periods of 10, 20, 30 s are not supported)"
            )
        return v

    @field_validator("comparison")
    @classmethod
    def _comparison(cls, v: str) -> str:
        return Comparison.parse(v).value

    @field_validator("treat_missing_data")
    @classmethod
    def _treat(cls, v: str) -> str:
        return TreatMissing.parse(v).value

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"threshold must be a finite number, got {v!r}")
        return v


class MetricTestModel(_Strict):
    name: str = Field(min_length=1)
    datapoints: list[float | None] = Field(min_length=1)
    start: Literal["OK", "ALARM", "INSUFFICIENT_DATA"] = "INSUFFICIENT_DATA"
    expect: Literal["OK", "ALARM", "INSUFFICIENT_DATA"] = Field(
        validation_alias=AliasChoices("expect", "expected")
    )


class MetricRuleModel(RuleHeaderModel):
    notify_insufficient_data: bool = False
    metric: MetricModel
    tests: list[MetricTestModel] = Field(default_factory=list)


# -- the compiled rule -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricStat:
    """One metric and statistic; hashable, so equal metrics are asked once per call."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name
    statistic: str

    def to_api(self, period: int) -> dict[str, Any]:
        """The ``MetricStat`` structure of a ``MetricDataQuery``."""
        return {
            "Metric": {
                "Namespace": self.namespace,
                "MetricName": self.metric_name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            },
            "Period": period,
            "Stat": self.statistic,
        }

    def describe(self) -> str:
        dims = ",".join(f"{n}={v}" for n, v in self.dimensions)
        return f"{self.namespace} {self.metric_name} {self.statistic}" + (
            f" {{{dims}}}" if dims else ""
        )


@dataclass(frozen=True, slots=True)
class MetricRuleTest:
    name: str
    datapoints: tuple[float | None, ...]
    start: AlarmState
    expect: AlarmState


@dataclass(frozen=True, slots=True)
class MetricRule:
    """A compiled metric rule. ``metrics`` maps the rule's own ids to metrics; a rule
    without ``expression`` has exactly one, ``m1``, whose series is evaluated."""

    id: str
    title: str
    severity: Severity
    alarm: AlarmSpec
    period: int  # seconds, a multiple of 60
    metrics: tuple[tuple[str, MetricStat], ...]
    expression: str | None = None
    description: str = ""
    runbook: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    notify_insufficient_data: bool = False
    tests: tuple[MetricRuleTest, ...] = ()
    origin: str = ""

    @property
    def evaluation_range(self) -> int:
        """Periods fetched for one evaluation (N + 2, see ``rules/alarm.py``)."""
        return self.alarm.evaluation_range

    @property
    def dimensions(self) -> tuple[tuple[str, str], ...]:
        """What identifies the watched series: the metric's dimensions, or for an
        expression each metric's, as ``m1.InstanceId``."""
        if self.expression is None:
            return self.metrics[0][1].dimensions
        return tuple((f"{mid}.{n}", v) for mid, stat in self.metrics for n, v in stat.dimensions)

    def describe(self) -> str:
        """``AWS/EC2 CPUUtilization Average {AutoScalingGroupName=web}`` or the expression
        with its metrics: what alerts call "metric"."""
        if self.expression is None:
            return self.metrics[0][1].describe()
        inputs = "; ".join(f"{mid} = {stat.describe()}" for mid, stat in self.metrics)
        return f"{self.expression} where {inputs}"


# -- dispatch, parse, compile ------------------------------------------------------------------


def is_metric_rule(raw: object) -> bool:
    """Whether a rule-file entry is in the ``metric:`` dialect (the loader dispatches on it)."""
    return isinstance(raw, dict) and "metric" in raw


class MetricRuleError(ValueError):
    """Cross-field problems: ``problems`` holds (path under the rule, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


def parse_metric_rule(
    raw: Mapping[str, Any], where: str, origin: str = ""
) -> MetricRule | list[str]:
    """Validate and compile one rule-file entry; on failure the messages, each prefixed
    with ``where`` and the field's path (``{where}.metric.period: ...``)."""
    try:
        model = MetricRuleModel.model_validate(raw)
    except ValidationError as exc:
        return pydantic_messages(exc, where)
    try:
        return compile_metric_rule(model, origin)
    except MetricRuleError as exc:
        return [f"{where}.{path}: {message}" for path, message in exc.problems]


def compile_metric_rule(model: MetricRuleModel, origin: str = "") -> MetricRule:
    """The checks one field cannot make alone; raise :class:`MetricRuleError` with all."""
    m = model.metric
    problems: list[tuple[str, str]] = []
    period = int(m.period.total_seconds())
    n = m.evaluation_periods
    mm = m.datapoints_to_alarm if m.datapoints_to_alarm is not None else n
    if period * n > MAX_DAY:
        problems.append(
            (
                "metric.evaluation_periods",
                f"period x evaluation_periods must be at most 1 day: {period} s x {n} = "
                f"{period * n} s",
            )
        )
    if mm > n:
        problems.append(
            (
                "metric.datapoints_to_alarm",
                f"datapoints_to_alarm (M={mm}) must not exceed evaluation_periods (N={n})",
            )
        )
    metrics = _metrics(m, problems)
    tests = _tests(model, problems)
    if problems:
        raise MetricRuleError(problems)
    alarm = AlarmSpec(
        Comparison(m.comparison), m.threshold, n, mm, TreatMissing(m.treat_missing_data)
    )
    bad = [t for t in tests if len(t.datapoints) != alarm.evaluation_range]
    if bad:
        raise MetricRuleError(
            [
                (
                    f"tests[{tests.index(t)}].datapoints",
                    f"expected {alarm.evaluation_range} datapoints (the evaluation range for "
                    f"N={n}, oldest first, null for missing), got {len(t.datapoints)}",
                )
                for t in bad
            ]
        )
    return MetricRule(
        id=model.id,
        title=model.title,
        severity=Severity.parse(model.severity),
        alarm=alarm,
        period=period,
        metrics=metrics,
        expression=m.expression.strip() if m.expression else None,
        description=model.description.strip(),
        runbook=model.runbook,
        tags=tuple(model.tags),
        metadata=dict(model.metadata),
        notify_insufficient_data=model.notify_insufficient_data,
        tests=tests,
        origin=origin,
    )


def _stat(namespace: str, name: str, dims: Mapping[str, str], statistic: str) -> MetricStat:
    return MetricStat(namespace, name, tuple(sorted(dims.items())), statistic)


def _metrics(m: MetricModel, problems: list[tuple[str, str]]) -> tuple[tuple[str, MetricStat], ...]:
    single = {
        "namespace": m.namespace,
        "metric_name": m.metric_name,
        "statistic": m.statistic,
    }
    if m.expression is None:
        if m.metrics:
            problems.append(("metric.metrics", "`metrics` needs an `expression` using them"))
        missing = [k for k, v in single.items() if v is None]
        for key in missing:
            problems.append((f"metric.{key}", "required field missing (or give `expression`)"))
        if missing or m.metrics:
            return ()
        assert m.namespace is not None
        assert m.metric_name is not None
        assert m.statistic is not None
        return (("m1", _stat(m.namespace, m.metric_name, m.dimensions, m.statistic)),)
    given = [k for k, v in single.items() if v is not None] + (
        ["dimensions"] if m.dimensions else []
    )
    for key in given:
        problems.append(
            (f"metric.{key}", "not allowed with `expression`: declare it under `metrics`")
        )
    if not m.metrics:
        problems.append(("metric.metrics", "an expression needs its metrics (m1: {...})"))
    if len(m.metrics) > MAX_EXPRESSION_METRICS:
        problems.append(
            (
                "metric.metrics",
                f"at most {MAX_EXPRESSION_METRICS} metrics in an expression, got {len(m.metrics)}",
            )
        )
    for mid in m.metrics:
        if not QUERY_ID.match(mid) or len(mid) > 255:
            problems.append(
                (
                    f"metric.metrics.{mid}",
                    f'invalid id "{mid}": must start with a lowercase letter, then letters, '
                    "digits or _ (as CloudWatch requires)",
                )
            )
    problems.extend(("metric.expression", p) for p in expression_problems(m.expression, m.metrics))
    return tuple(
        (mid, _stat(s.namespace, s.metric_name, s.dimensions, s.statistic))
        for mid, s in sorted(m.metrics.items())
    )


def expression_problems(expression: str, declared: Mapping[str, object]) -> list[str]:
    """What is wrong with a metric-math expression, given the ids declared for it."""
    problems = []
    if "'" in expression or '"' in expression:
        problems.append("quoted strings are not supported (SEARCH and Metrics Insights queries)")
    upper = set(re.findall(r"\b[A-Z_]+\b", expression))
    for name in _UNSUPPORTED:
        if name in upper:
            problems.append(f"{name} is not supported: a metric rule watches one time series")
    used = set(IDENT.findall(expression))
    unknown = sorted(used - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        problems.append(f"unknown id {', '.join(unknown)} (declared under metrics: {known})")
    unused = sorted({d for d in declared if QUERY_ID.match(d)} - used)
    if unused and declared:
        problems.append(
            f"metrics declared but not used: {', '.join(unused)} (each one is paid for)"
        )
    return problems


def _tests(model: MetricRuleModel, problems: list[tuple[str, str]]) -> tuple[MetricRuleTest, ...]:
    out = []
    for i, t in enumerate(model.tests):
        if any(v is not None and not math.isfinite(v) for v in t.datapoints):
            problems.append((f"tests[{i}].datapoints", "datapoints must be finite or null"))
            continue
        out.append(
            MetricRuleTest(t.name, tuple(t.datapoints), AlarmState(t.start), AlarmState(t.expect))
        )
    return tuple(out)


def run_metric_tests(rule: MetricRule) -> list[tuple[str, bool, str]]:
    """Each ``tests:`` case of ``rule``: (name, passed, what happened)."""
    results = []
    for t in rule.tests:
        got = evaluate(t.datapoints, t.start, rule.alarm)
        ok = got.state is t.expect
        detail = f"expected {t.expect}, got {got.state}: {got.reason}"
        results.append((t.name, ok, "ok" if ok else detail))
    return results
