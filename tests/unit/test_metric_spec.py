"""The ``metric:`` rule dialect: what compiles, and what each mistake is told."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from veilleur.model import Severity
from veilleur.rules.alarm import AlarmState, Comparison, TreatMissing
from veilleur.rules.metric_spec import (
    MetricRule,
    MetricStat,
    is_metric_rule,
    parse_metric_rule,
    run_metric_tests,
)

WHERE = "rules.yaml: rules[0] (cpu-high)"

RULE_YAML = """
id: cpu-high
title: Web fleet CPU high
severity: high
description: "  Sustained CPU on the web ASG.  "
runbook: https://runbooks.example/cpu
tags: [capacity]
metric:
  namespace: AWS/EC2
  metric_name: CPUUtilization
  dimensions: {AutoScalingGroupName: web}
  statistic: Average
  period: 5m
  comparison: ">"
  threshold: 80
  evaluation_periods: 5
  datapoints_to_alarm: 3
  treat_missing_data: notBreaching
tests:
  - name: four of the last five breach
    datapoints: [10, 90, null, 91, 92, 10, 95]
    expect: ALARM
"""


def base() -> dict[str, Any]:
    doc = yaml.safe_load(RULE_YAML)
    assert isinstance(doc, dict)
    return doc


def expression_rule(expression: str, **metrics: dict[str, Any]) -> dict[str, Any]:
    raw = base()
    m = raw["metric"]
    for key in ("namespace", "metric_name", "dimensions", "statistic"):
        m.pop(key)
    m["expression"] = expression
    m["metrics"] = metrics
    return raw


def stat(name: str = "Errors", statistic: str = "Sum", **dims: str) -> dict[str, Any]:
    return {
        "namespace": "AWS/Lambda",
        "metric_name": name,
        "dimensions": dims,
        "statistic": statistic,
    }


def errors(raw: dict[str, Any]) -> list[str]:
    out = parse_metric_rule(raw, WHERE)
    assert isinstance(out, list), f"expected errors, compiled {out!r}"
    return out


def compiled(raw: dict[str, Any]) -> MetricRule:
    out = parse_metric_rule(raw, WHERE, origin="rules.yaml")
    assert isinstance(out, MetricRule), out
    return out


def test_a_single_metric_rule_compiles_to_an_alarm_spec_and_one_metric() -> None:
    rule = compiled(base())

    assert rule.id == "cpu-high"
    assert rule.severity is Severity.HIGH
    assert rule.description == "Sustained CPU on the web ASG."
    assert rule.origin == "rules.yaml"
    assert rule.period == 300
    assert rule.alarm.comparison is Comparison.GreaterThanThreshold
    assert rule.alarm.threshold == 80.0
    assert (rule.alarm.evaluation_periods, rule.alarm.datapoints_to_alarm) == (5, 3)
    assert rule.alarm.treat_missing is TreatMissing.notBreaching
    assert rule.evaluation_range == 7
    assert rule.metrics == (
        (
            "m1",
            MetricStat("AWS/EC2", "CPUUtilization", (("AutoScalingGroupName", "web"),), "Average"),
        ),
    )
    assert rule.expression is None
    assert rule.dimensions == (("AutoScalingGroupName", "web"),)
    assert rule.describe() == "AWS/EC2 CPUUtilization Average {AutoScalingGroupName=web}"
    assert rule.notify_insufficient_data is False


def test_defaults_m_to_n_and_missing_data_to_missing() -> None:
    raw = base()
    del raw["metric"]["datapoints_to_alarm"], raw["metric"]["treat_missing_data"]
    del raw["tests"]
    rule = compiled(raw)
    assert rule.alarm.datapoints_to_alarm == 5
    assert rule.alarm.treat_missing is TreatMissing.missing


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("average", "Average"),
        ("SAMPLECOUNT", "SampleCount"),
        ("p99", "p99"),
        ("P99.9", "p99.9"),
        ("p100", "p100"),
        ("p0", "p0"),
    ],
)
def test_statistics_are_normalised_to_the_aws_spelling(given: str, expected: str) -> None:
    raw = base()
    raw["metric"]["statistic"] = given
    assert compiled(raw).metrics[0][1].statistic == expected


@pytest.mark.parametrize(
    ("given", "expected"), [(">=", ">="), ("LessThanThreshold", "<"), ("<=", "<=")]
)
def test_comparisons_accept_symbols_and_aws_names(given: str, expected: str) -> None:
    raw = base()
    raw["metric"]["comparison"] = given
    assert compiled(raw).alarm.comparison.symbol == expected


def test_an_expression_rule_keeps_its_metrics_sorted_by_id() -> None:
    raw = expression_rule(
        "100 * errors / MAX([invocations, 1])",
        invocations=stat("Invocations", FunctionName="api"),
        errors=stat("Errors", FunctionName="api"),
    )
    rule = compiled(raw)
    assert rule.expression == "100 * errors / MAX([invocations, 1])"
    assert [mid for mid, _ in rule.metrics] == ["errors", "invocations"]
    assert rule.dimensions == (("errors.FunctionName", "api"), ("invocations.FunctionName", "api"))
    assert rule.describe().startswith("100 * errors / MAX([invocations, 1]) where errors = ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"period": "90s"},
            f"{WHERE}.metric.period: period must be a multiple of 60 s (1m, 5m, 1h...), got 90 s",
        ),
        ({"period": "30s"}, f"{WHERE}.metric.period: period must be a multiple of 60 s"),
        ({"period": "soon"}, f'{WHERE}.metric.period: invalid duration "soon"'),
        ({"statistic": "median"}, f'{WHERE}.metric.statistic: invalid statistic "median"'),
        ({"statistic": "p101"}, f'{WHERE}.metric.statistic: invalid statistic "p101"'),
        ({"comparison": "=="}, f"{WHERE}.metric.comparison: unknown comparison '=='"),
        (
            {"treat_missing_data": "zero"},
            f"{WHERE}.metric.treat_missing_data: unknown treat_missing_data 'zero'",
        ),
        ({"evaluation_periods": 0}, f"{WHERE}.metric.evaluation_periods: Input should be"),
        ({"colour": "red"}, f"{WHERE}.metric.colour: unknown field"),
        (
            {"dimensions": {f"d{i}": "x" for i in range(31)}},
            f"{WHERE}.metric.dimensions: at most 30 dimensions, got 31",
        ),
        ({"dimensions": {"Name": ""}}, f'{WHERE}.metric.dimensions: dimension "Name"'),
    ],
)
def test_field_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    raw = base()
    raw["metric"].update(change)
    [error] = errors(raw)
    assert error.startswith(message), error


def test_every_error_is_reported_at_once() -> None:
    raw = base()
    raw["metric"].update(period="90s", statistic="median")
    del raw["title"]
    assert sorted(errors(raw)) == sorted(
        [
            f"{WHERE}.title: required field missing",
            f"{WHERE}.metric.period: period must be a multiple of 60 s (1m, 5m, 1h...), got "
            "90 s (high-resolution periods of 10, 20, 30 s are not supported)",
            f'{WHERE}.metric.statistic: invalid statistic "median" (expected one of Average, '
            "Sum, Minimum, Maximum, SampleCount or a percentile such as p99 or p99.9)",
        ]
    )


def test_m_greater_than_n_and_more_than_a_day_are_reported_with_their_paths() -> None:
    raw = base()
    raw["metric"].update(period="1h", evaluation_periods=25, datapoints_to_alarm=26)
    del raw["tests"]
    assert errors(raw) == [
        f"{WHERE}.metric.evaluation_periods: period x evaluation_periods must be at most 1 "
        "day: 3600 s x 25 = 90000 s",
        f"{WHERE}.metric.datapoints_to_alarm: datapoints_to_alarm (M=26) must not exceed "
        "evaluation_periods (N=25)",
    ]


def test_exactly_one_day_is_allowed() -> None:
    raw = base()
    raw["metric"].update(period="1h", evaluation_periods=24, datapoints_to_alarm=3)
    del raw["tests"]
    assert compiled(raw).alarm.evaluation_periods == 24


def test_a_single_metric_needs_its_namespace_name_and_statistic() -> None:
    raw = base()
    del raw["metric"]["namespace"], raw["metric"]["statistic"]
    assert errors(raw) == [
        f"{WHERE}.metric.namespace: required field missing (or give `expression`)",
        f"{WHERE}.metric.statistic: required field missing (or give `expression`)",
    ]


def test_an_expression_may_only_use_declared_ids_and_must_use_them_all() -> None:
    raw = expression_rule("m1 + m2 + FILL(m3, 0)", m1=stat(), m4=stat("Throttles"))
    assert errors(raw) == [
        f"{WHERE}.metric.expression: unknown id m2, m3 (declared under metrics: m1, m4)",
        f"{WHERE}.metric.expression: metrics declared but not used: m4 (each one is paid for)",
    ]


def test_expression_ids_must_start_lowercase_as_aws_requires() -> None:
    raw = expression_rule("m1 + 1", m1=stat(), Bad=stat("Throttles"))
    assert errors(raw) == [
        f'{WHERE}.metric.metrics.Bad: invalid id "Bad": must start with a lowercase letter, '
        "then letters, digits or _ (as CloudWatch requires)"
    ]


def test_at_most_ten_metrics_in_an_expression() -> None:
    metrics = {f"m{i}": stat(f"M{i}") for i in range(11)}
    raw = expression_rule(" + ".join(metrics), **metrics)
    assert errors(raw) == [
        f"{WHERE}.metric.metrics: at most 10 metrics in an expression, got 11",
    ]
    ten = {f"m{i}": stat(f"M{i}") for i in range(10)}
    assert len(compiled(expression_rule(" + ".join(ten), **ten)).metrics) == 10


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("SEARCH('{AWS/EC2} CPU', 'Average')", "quoted strings are not supported"),
        ("METRICS()", "METRICS is not supported"),
    ],
)
def test_multi_series_expressions_are_refused(expression: str, message: str) -> None:
    raw = expression_rule(expression, m1=stat())
    assert any(message in e for e in errors(raw)), errors(raw)


def test_an_expression_excludes_the_single_metric_fields() -> None:
    raw = base()
    raw["metric"]["expression"] = "m1 * 2"
    raw["metric"]["metrics"] = {"m1": stat()}
    msgs = errors(raw)
    assert (
        f"{WHERE}.metric.namespace: not allowed with `expression`: declare it under `metrics`"
        in msgs
    )
    assert len(msgs) == 4  # namespace, metric_name, statistic, dimensions


def test_errors_inside_an_expression_metric_carry_its_id() -> None:
    raw = expression_rule("m1", m1=stat(statistic="mean"))
    [error] = errors(raw)
    assert error.startswith(f'{WHERE}.metric.metrics.m1.statistic: invalid statistic "mean"')


def test_rule_fields_are_checked_like_event_rules() -> None:
    raw = base()
    raw.update(id="CPU_High", severity="urgent", runbook="ftp://x")
    msgs = errors(raw)
    assert (
        f'{WHERE}.id: invalid rule id "CPU_High" (kebab-case: lowercase words and digits)' in msgs
    )
    assert f'{WHERE}.runbook: runbook must be an http(s) URL, got "ftp://x"' in msgs
    assert any(m.startswith(f"{WHERE}.severity: ") for m in msgs)


def test_is_metric_rule_dispatches_on_the_metric_key() -> None:
    assert is_metric_rule(base())
    assert not is_metric_rule({"id": "x", "match": {"source": ["aws.iam"]}})
    assert not is_metric_rule(["metric"])


def test_rule_tests_run_against_the_evaluator() -> None:
    rule = compiled(base())
    assert run_metric_tests(rule) == [("four of the last five breach", True, "ok")]
    raw = base()
    raw["tests"][0]["expect"] = "OK"
    [(name, passed, detail)] = run_metric_tests(compiled(raw))
    assert (name, passed) == ("four of the last five breach", False)
    assert detail.startswith("expected OK, got ALARM: Threshold Crossed: 4 out of the last 5")


def test_rule_tests_need_exactly_the_evaluation_range() -> None:
    raw = base()
    raw["tests"][0]["datapoints"] = [1, 2, 3]
    assert errors(raw) == [
        f"{WHERE}.tests[0].datapoints: expected 7 datapoints (the evaluation range for N=5, "
        "oldest first, null for missing), got 3"
    ]


def test_rule_tests_start_from_insufficient_data_by_default() -> None:
    raw = base()
    raw["metric"]["treat_missing_data"] = "ignore"
    raw["tests"] = [
        {
            "name": "all missing keeps the state",
            "datapoints": [None] * 7,
            "expect": "OK",
            "start": "OK",
        },
        {"name": "from the default", "datapoints": [None] * 7, "expect": "INSUFFICIENT_DATA"},
    ]
    rule = compiled(raw)
    assert rule.tests[1].start is AlarmState.INSUFFICIENT_DATA
    assert all(passed for _, passed, _ in run_metric_tests(rule))


def test_the_input_is_not_modified() -> None:
    raw = base()
    before = copy.deepcopy(raw)
    compiled(raw)
    assert raw == before
