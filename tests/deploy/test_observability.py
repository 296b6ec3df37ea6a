"""deploy/grafana and deploy/prometheus: every metric they query is one the daemon exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, Summary
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.tools import DEPLOY
from veilleur.observe.metrics import Metrics

DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
# Series Prometheus makes itself, not the daemon.
PROMETHEUS_SERIES = {"up"}

FUNCTIONS = {
    # aggregation operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "days_in_month", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"


def touch_everything(metrics: Metrics) -> None:
    """One sample in every labelled family, whatever metrics.py defines now or later."""
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        names = value._labelnames
        child = value.labels(*["x"] * len(names)) if names else value
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram | Summary):
            child.observe(1)


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name in the daemon's exposition: *_total, *_bucket, *_sum, *_count..."""
    metrics = Metrics()
    touch_everything(metrics)
    names = set()
    for line in metrics.render().decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects; fails on an unknown function."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    assert text.count("(") == text.count(")"), expr
    assert text.count("{") == text.count("}"), expr
    assert text.count("[") == text.count("]"), expr
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries ($__rate_interval too)
    text = re.sub(GROUPING, " ", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        start = m.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # the exponent or unit of a number
        if word.lower() in KEYWORDS:
            continue
        if text[m.end() :].lstrip().startswith("("):
            assert word in FUNCTIONS, f"unknown PromQL function {word!r} in {expr}"
        else:
            names.add(word)
    return names


def test_the_name_extractor() -> None:
    assert metric_names(
        'sum by (le, source) (rate(veilleur_poll_duration_seconds_bucket{job=~"$job"}'
        "[$__rate_interval])) / ignoring(x) group_left up > 0.2 and on(job) time() - 3e2"
    ) == {"veilleur_poll_duration_seconds_bucket", "up"}
    with pytest.raises(AssertionError):
        metric_names("rat(veilleur_ready[5m])")


def dashboard_panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for p in doc["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    return panels


def test_dashboard_queries_only_exported_metrics(exported: set[str]) -> None:
    doc = json.loads(DASHBOARD.read_text("utf-8"))
    used: set[str] = set()
    panels = [p for p in dashboard_panels(doc) if p["type"] != "row"]
    assert len({p["id"] for p in dashboard_panels(doc)}) == len(dashboard_panels(doc))
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: {target['expr']}"
            unknown = names - exported - PROMETHEUS_SERIES
            assert not unknown, f"panel {panel['title']!r} queries {sorted(unknown)}"
            used |= names
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert m, query
            assert m.group(1) in exported
    # The panels the issue asks for.
    for name in (
        "veilleur_polls_total",
        "veilleur_poll_lag_seconds",
        "veilleur_events_total",
        "veilleur_rule_matches_total",
        "veilleur_alerts_total",
        "veilleur_notifications_total",
        "veilleur_outbox_depth",
        "veilleur_outbox_oldest_age_seconds",
        "veilleur_dead_letters_total",
        "veilleur_aws_api_calls_total",
        "veilleur_aws_throttles_total",
        "veilleur_alarm_state",
        "veilleur_ready",
    ):
        assert name in used, f"no panel shows {name}"


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text("utf-8"))
    assert set(doc) == {"groups"}
    rules = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["name"]
        assert group["rules"]
        rules.extend(group["rules"])
    return rules


def test_alert_rules_are_well_formed(alert_rules: list[dict[str, Any]]) -> None:
    names = [r["alert"] for r in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"Veilleur[A-Z][A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        if "for" in rule:
            assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert {"summary", "description"} <= set(rule["annotations"])
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}")


def test_alerts_query_only_exported_metrics(
    alert_rules: list[dict[str, Any]], exported: set[str]
) -> None:
    for rule in alert_rules:
        names = metric_names(rule["expr"])
        unknown = names - exported - PROMETHEUS_SERIES
        assert not unknown, f"{rule['alert']} queries {sorted(unknown)}"


def test_alerts_cover_the_ways_a_monitor_fails(alert_rules: list[dict[str, Any]]) -> None:
    exprs = {r["alert"]: " ".join(r["expr"].split()) for r in alert_rules}

    def some(*fragments: str) -> bool:
        return any(all(f in e for f in fragments) for e in exprs.values())

    assert some("up{", "== 0")  # the daemon is down
    assert some("veilleur_ready", "== 0")
    assert some("time() - veilleur_last_success_timestamp_seconds")  # no successful poll
    assert some("veilleur_outbox_depth", "deriv(")  # the outbox grows
    assert some("veilleur_outbox_oldest_age_seconds")
    assert some("increase(veilleur_dead_letters_total")
    assert some("veilleur_aws_throttles_total", "veilleur_aws_api_calls_total")
    # Every rule about the daemon's own series is scoped to its job.
    for name, expr in exprs.items():
        assert 'job="veilleur"' in expr, name


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def test_every_query_is_valid_promql(alert_rules: list[dict[str, Any]]) -> None:
    """A typo in an expression would only show when Prometheus or Grafana loads the file."""
    import promql_parser

    exprs = [(rule["alert"], rule["expr"]) for rule in alert_rules]
    for panel in dashboard_panels(json.loads(DASHBOARD.read_text("utf-8"))):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            exprs.append((panel["title"], re.sub(r"\$\{?\w+\}?", "veilleur", expr)))
    assert len(exprs) > 30
    for where, expr in exprs:
        try:
            promql_parser.parse(expr)
        except Exception as exc:  # the parser raises plain ValueErrors and its own types
            pytest.fail(f"{where}: {exc}\n{expr}")
