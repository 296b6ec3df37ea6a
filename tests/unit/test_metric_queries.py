"""GetMetricData planning (pure) and the fetch adapter, with a stub client (no server)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from veilleur.aws import Target
from veilleur.observe.metrics import Metrics
from veilleur.rules.metric_spec import MetricRule, parse_metric_rule
from veilleur.sources.cloudwatch import (
    Batch,
    CloudWatchSource,
    evaluation_end,
    fetch_all,
    plan_queries,
    record_fetch_metrics,
)

NOW = datetime(2026, 1, 1, 12, 7, 30, tzinfo=UTC)
PROD = Target("111111111111", "eu-west-1")
DEV = Target("222222222222", "us-east-1")
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


def metric_rule(
    rule_id: str,
    name: str = "CPUUtilization",
    *,
    statistic: str = "Average",
    period: str = "5m",
    n: int = 3,
    dims: Mapping[str, str] | None = None,
    expression: str | None = None,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
) -> MetricRule:
    metric: dict[str, Any] = {
        "period": period,
        "comparison": ">",
        "threshold": 80,
        "evaluation_periods": n,
    }
    if expression is None:
        metric.update(
            namespace="AWS/EC2",
            metric_name=name,
            statistic=statistic,
            dimensions=dict(dims or {"AutoScalingGroupName": "web"}),
        )
    else:
        metric.update(expression=expression, metrics=dict(metrics or {}))
    raw = {"id": rule_id, "title": rule_id, "severity": "high", "metric": metric}
    out = parse_metric_rule(raw, rule_id)
    assert isinstance(out, MetricRule), out
    return out


def lam(name: str, fn: str = "api") -> dict[str, Any]:
    return {
        "namespace": "AWS/Lambda",
        "metric_name": name,
        "dimensions": {"FunctionName": fn},
        "statistic": "Sum",
    }


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 1, 1, hh, mm, tzinfo=UTC)


# -- planning --------------------------------------------------------------------------------


def test_one_rule_one_call_for_exactly_its_evaluation_range() -> None:
    [batch] = plan_queries([metric_rule("cpu")], [PROD], NOW)

    assert (batch.target, batch.period) == (PROD, 300)
    # Newest complete 5-minute period before 12:07:30 is [12:00, 12:05); N = 3 reads 5.
    assert (batch.start, batch.end) == (at(11, 40), at(12, 5))
    assert batch.queries == (
        {
            "Id": "m0",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/EC2",
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "web"}],
                },
                "Period": 300,
                "Stat": "Average",
            },
            "ReturnData": True,
        },
    )
    [slot] = batch.slots
    assert (slot.rule_id, slot.query_id, slot.start, slot.periods) == ("cpu", "m0", at(11, 40), 5)
    assert batch.request() == {
        "MetricDataQueries": [dict(batch.queries[0])],
        "StartTime": at(11, 40),
        "EndTime": at(12, 5),
        "ScanBy": "TimestampAscending",
    }
    assert batch.request("tok")["NextToken"] == "tok"


@pytest.mark.parametrize(
    ("now", "delay", "period", "end"),
    [
        (at(12, 10), timedelta(0), 300, at(12, 10)),  # [12:05, 12:10) just completed
        (at(12, 10) - timedelta(seconds=1), timedelta(0), 300, at(12, 5)),
        (NOW, timedelta(minutes=3), 300, at(12, 0)),  # 12:04:30 -> [11:55, 12:00)
        (NOW, timedelta(seconds=60), 60, at(12, 6)),
        (NOW, timedelta(0), 3600, at(12, 0)),
        (NOW, timedelta(0), 86400, datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_the_range_ends_at_the_last_period_complete_before_now_minus_delay(
    now: datetime, delay: timedelta, period: int, end: datetime
) -> None:
    assert evaluation_end(now, delay, period) == end
    minutes = f"{period // 60}m"
    [batch] = plan_queries([metric_rule("r", period=minutes, n=1)], [PROD], now, delay)
    assert batch.end == end
    assert batch.start == end - timedelta(seconds=3 * period)
    assert batch.start.timestamp() % period == 0


def test_the_same_metric_statistic_and_period_is_asked_once() -> None:
    rules = [
        metric_rule("a"),
        metric_rule("b", n=5),  # longer range, same query
        metric_rule("c", statistic="Maximum"),  # another statistic: another query
        metric_rule("d", dims={"AutoScalingGroupName": "api"}),
    ]
    [batch] = plan_queries(rules, [PROD], NOW)

    assert len(batch.queries) == 3
    slots = {s.rule_id: s for s in batch.slots}
    assert slots["a"].query_id == slots["b"].query_id
    assert len({slots["a"].query_id, slots["c"].query_id, slots["d"].query_id}) == 3
    # One call spans the longest range; each rule keeps its own, ending at the same end.
    assert batch.start == at(12, 5) - timedelta(minutes=5 * 7)
    assert slots["a"].start == at(12, 5) - timedelta(minutes=5 * 5)
    assert slots["b"].start == batch.start


def test_1200_rules_make_three_calls_per_target_with_valid_unique_ids() -> None:
    rules = [metric_rule(f"r{i}", f"Metric{i}") for i in range(1200)]
    batches = plan_queries(rules, [PROD, DEV], NOW)

    assert len(batches) == 6
    for target in (PROD, DEV):
        mine = [b for b in batches if b.target == target]
        assert [len(b.queries) for b in mine] == [500, 500, 200]
        assert sorted(s.rule_id for b in mine for s in b.slots) == sorted(r.id for r in rules)
    for batch in batches:
        ids = [q["Id"] for q in batch.queries]
        assert len(ids) == len(set(ids))
        assert all(QUERY_ID.match(i) for i in ids)
        assert {s.query_id for s in batch.slots} <= set(ids)


def test_rules_of_different_periods_go_to_different_calls() -> None:
    rules = [metric_rule("five"), metric_rule("one", period="1m"), metric_rule("hour", period="1h")]
    batches = plan_queries(rules, [PROD], NOW)
    assert [(b.period, [s.rule_id for s in b.slots]) for b in batches] == [
        (60, ["one"]),
        (300, ["five"]),
        (3600, ["hour"]),
    ]


def test_an_expression_sends_its_inputs_without_data_and_its_own_ids() -> None:
    rules = [
        metric_rule(
            "error-rate",
            expression="100 * errors / invocations",
            metrics={"errors": lam("Errors"), "invocations": lam("Invocations")},
        ),
    ]
    [batch] = plan_queries(rules, [PROD], NOW)

    by_id = {q["Id"]: q for q in batch.queries}
    expr = by_id[batch.slots[0].query_id]
    assert expr["ReturnData"] is True
    assert "MetricStat" not in expr
    inputs = [q for q in batch.queries if "MetricStat" in q]
    assert [q["ReturnData"] for q in inputs] == [False, False]
    names = {q["MetricStat"]["Metric"]["MetricName"]: q["Id"] for q in inputs}
    assert expr["Expression"] == f"100 * {names['Errors']} / {names['Invocations']}"
    assert batch.metrics == 2


def test_expressions_share_their_inputs_and_identical_expressions_are_asked_once() -> None:
    errors, calls = lam("Errors"), lam("Invocations")
    rules = [
        metric_rule("rate", expression="e / i", metrics={"e": errors, "i": calls}),
        metric_rule("rate-copy", expression="e / i", metrics={"e": errors, "i": calls}),
        metric_rule("errors-scaled", expression="x * 60", metrics={"x": errors}),
    ]
    [batch] = plan_queries(rules, [PROD], NOW)

    slots = {s.rule_id: s.query_id for s in batch.slots}
    assert slots["rate"] == slots["rate-copy"]
    assert slots["errors-scaled"] != slots["rate"]
    assert batch.metrics == 2  # Errors once, Invocations once
    assert len(batch.queries) == 4


def test_a_directly_watched_metric_shared_with_an_expression_has_return_data() -> None:
    direct = metric_rule("cpu")
    stat = direct.metrics[0][1]
    doubled = metric_rule(
        "cpu-doubled",
        expression="c * 2",
        metrics={
            "c": {
                "namespace": stat.namespace,
                "metric_name": stat.metric_name,
                "dimensions": dict(stat.dimensions),
                "statistic": stat.statistic,
            }
        },
    )
    [batch] = plan_queries([doubled, direct], [PROD], NOW)
    [metric] = [q for q in batch.queries if "MetricStat" in q]
    assert metric["ReturnData"] is True
    assert {s.rule_id: s.query_id for s in batch.slots}["cpu"] == metric["Id"]


def test_an_expression_never_splits_from_its_inputs() -> None:
    rules = [
        metric_rule(
            f"x{i}",
            expression="a + b + c",
            metrics={"a": lam("A", f"f{i}"), "b": lam("B", f"f{i}"), "c": lam("C", f"f{i}")},
        )
        for i in range(5)
    ] + [metric_rule(f"s{i}", f"S{i}") for i in range(7)]
    batches = plan_queries(rules, [PROD], NOW, limit=10)

    assert all(len(b.queries) <= 10 for b in batches)
    for batch in batches:
        ids = {q["Id"] for q in batch.queries}
        for q in batch.queries:
            if "Expression" in q:
                assert set(re.findall(r"[a-z]\w*", q["Expression"])) <= ids
    assert sorted(s.rule_id for b in batches for s in b.slots) == sorted(r.id for r in rules)
    # 5 x 4 + 7 = 27 queries: the minimum is 3 calls, two fit per chunk plus singles.
    assert len(batches) == 3


def test_no_rules_no_calls() -> None:
    assert plan_queries([], [PROD], NOW) == []
    assert plan_queries([metric_rule("a")], [], NOW) == []


# -- fetching ----------------------------------------------------------------------------------


Responder = Callable[[dict[str, Any]], Mapping[str, Any]]


class StubCloudWatch:
    """Answers ``get_metric_data`` from scripted pages or raises; records every request."""

    def __init__(self, *pages: Mapping[str, Any] | Exception) -> None:
        self.pages = list(pages)
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> Mapping[str, Any]:
        self.requests.append(kwargs)
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page


def result(
    qid: str, points: Mapping[datetime, float], status: str = "Complete", **extra: Any
) -> dict[str, Any]:
    ordered = sorted(points.items(), reverse=True)  # CloudWatch's default: newest first
    return {
        "Id": qid,
        "Timestamps": [t for t, _ in ordered],
        "Values": [v for _, v in ordered],
        "StatusCode": status,
        **extra,
    }


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code}!"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetMetricData",
    )


def one_batch(*rules: MetricRule) -> Batch:
    [batch] = plan_queries(list(rules), [PROD], NOW)
    return batch


def test_datapoints_are_aligned_to_the_range_with_none_for_missing_periods() -> None:
    batch = one_batch(metric_rule("cpu"))  # range 11:40 .. 12:05, 5 periods
    stub = StubCloudWatch(
        {
            "MetricDataResults": [
                result(
                    "m0",
                    {
                        at(11, 40): 10.0,
                        at(11, 50): 90.0,
                        at(12, 0): 95.5,
                        at(12, 5): 1.0,  # outside the range: ignored
                        at(11, 52): 7.0,  # not on a period boundary: ignored
                    },
                )
            ]
        }
    )
    fetched = CloudWatchSource(stub, PROD).fetch([batch])

    rd = fetched.data[("cpu", PROD.key)]
    assert rd.skipped is None
    assert rd.points == (10.0, None, 90.0, None, 95.5)
    assert rd.timestamps() == [at(11, 40), at(11, 45), at(11, 50), at(11, 55), at(12, 0)]
    assert rd.end == at(12, 5)
    assert stub.requests == [batch.request()]


def test_a_shorter_rule_gets_the_newest_periods_of_a_shared_query() -> None:
    batch = one_batch(metric_rule("short", n=1), metric_rule("long", n=3))
    points = {at(11, 40) + timedelta(minutes=5 * i): float(i) for i in range(5)}
    fetched = CloudWatchSource(
        StubCloudWatch({"MetricDataResults": [result("m0", points)]}), PROD
    ).fetch([batch])
    assert fetched.data[("long", PROD.key)].points == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert fetched.data[("short", PROD.key)].points == (2.0, 3.0, 4.0)


def test_next_token_is_followed_and_partial_data_merged() -> None:
    batch = one_batch(metric_rule("cpu"), metric_rule("mem", "Memory"))
    stub = StubCloudWatch(
        {
            "MetricDataResults": [
                result("m0", {at(11, 40): 1.0}, "PartialData"),
                result("m1", {at(11, 40): 5.0}, "PartialData"),
            ],
            "NextToken": "page-2",
        },
        {
            "MetricDataResults": [
                result("m0", {at(11, 45): 2.0}),
                result("m1", {at(11, 45): 6.0}),
            ]
        },
    )
    fetched = CloudWatchSource(stub, PROD).fetch([batch])

    assert [r.get("NextToken") for r in stub.requests] == [None, "page-2"]
    assert fetched.data[("cpu", PROD.key)].points == (1.0, 2.0, None, None, None)
    assert fetched.data[("mem", PROD.key)].points == (5.0, 6.0, None, None, None)
    stats = fetched.stats[PROD.key]
    assert (stats.calls, stats.queries, stats.metrics) == (2, 4, 4)


def test_an_error_on_one_page_is_not_undone_by_a_later_complete_page() -> None:
    batch = one_batch(metric_rule("cpu"))
    stub = StubCloudWatch(
        {"MetricDataResults": [result("m0", {}, "InternalError")], "NextToken": "page-2"},
        {"MetricDataResults": [result("m0", {at(11, 45): 2.0})]},
    )
    cpu = CloudWatchSource(stub, PROD).fetch([batch]).data[("cpu", PROD.key)]
    assert cpu.points == ()  # never five "missing" points
    assert cpu.skipped == "InternalError for query m0"
    assert cpu.retryable


def test_partial_data_left_at_the_end_skips_the_rule_instead_of_reading_missing() -> None:
    batch = one_batch(metric_rule("cpu"), metric_rule("mem", "Memory"))
    stub = StubCloudWatch(
        {
            "MetricDataResults": [
                result("m0", {at(11, 40): 1.0}, "PartialData"),
                result("m1", {at(11, 40): 5.0}),
            ]
        }
    )
    fetched = CloudWatchSource(stub, PROD).fetch([batch])

    cpu = fetched.data[("cpu", PROD.key)]
    assert cpu.points == ()
    assert cpu.skipped == "PartialData for query m0"
    assert cpu.retryable
    assert fetched.data[("mem", PROD.key)].skipped is None
    assert [d.rule_id for d in fetched.skipped] == ["cpu"]


@pytest.mark.parametrize(
    ("status", "messages", "reason", "retryable"),
    [
        ("InternalError", [], "InternalError for query m0", True),
        (
            "Forbidden",
            [{"Code": "Forbidden", "Value": "Authentication too complex"}],
            "Forbidden for query m0 (Forbidden: Authentication too complex)",
            False,
        ),
        (
            "Complete",
            [{"Code": "ArithmeticError", "Value": "division by zero"}],
            "query m0: ArithmeticError: division by zero",
            True,
        ),
    ],
)
def test_a_query_error_skips_only_the_rules_of_that_query(
    status: str, messages: list[dict[str, str]], reason: str, retryable: bool
) -> None:
    batch = one_batch(metric_rule("cpu"), metric_rule("mem", "Memory"))
    stub = StubCloudWatch(
        {
            "MetricDataResults": [
                result("m0", {}, status, Messages=messages),
                result("m1", {at(12, 0): 3.0}),
            ]
        }
    )
    fetched = CloudWatchSource(stub, PROD).fetch([batch])

    cpu = fetched.data[("cpu", PROD.key)]
    assert (cpu.skipped, cpu.retryable) == (reason, retryable)
    assert fetched.data[("mem", PROD.key)].points == (None, None, None, None, 3.0)


def test_a_response_message_skips_every_rule_of_the_call() -> None:
    batch = one_batch(metric_rule("cpu"), metric_rule("mem", "Memory"))
    stub = StubCloudWatch(
        {
            "Messages": [
                {
                    "Code": "MaxMetricsExceeded",
                    "Value": "Maximum number of allowed metrics exceeded",
                }
            ],
            "MetricDataResults": [result("m0", {at(12, 0): 1.0})],
        }
    )
    fetched = CloudWatchSource(stub, PROD).fetch([batch])
    assert {d.rule_id: d.skipped for d in fetched.data.values()} == {
        "cpu": "CloudWatch said: MaxMetricsExceeded: Maximum number of allowed metrics exceeded",
        "mem": "CloudWatch said: MaxMetricsExceeded: Maximum number of allowed metrics exceeded",
    }


def test_a_query_without_result_is_skipped() -> None:
    batch = one_batch(metric_rule("cpu"))
    fetched = CloudWatchSource(StubCloudWatch({"MetricDataResults": []}), PROD).fetch([batch])
    assert fetched.data[("cpu", PROD.key)].skipped == "no result for query m0"


@pytest.mark.parametrize(
    ("error", "retryable", "throttles", "errors"),
    [
        (client_error("Throttling"), True, 1, 0),
        (client_error("InternalServiceError", 500), True, 0, 1),
        (client_error("AccessDenied", 403), False, 0, 1),
        (EndpointConnectionError(endpoint_url="https://monitoring.example"), True, 0, 1),
    ],
)
def test_a_failed_call_skips_its_rules_with_a_retryable_flag(
    error: Exception, retryable: bool, throttles: int, errors: int
) -> None:
    first = one_batch(metric_rule("cpu"))
    second = one_batch(metric_rule("hourly", period="1h"))
    stub = StubCloudWatch(error, {"MetricDataResults": [result("m0", {})]})
    fetched = CloudWatchSource(stub, PROD).fetch([first, second])

    cpu = fetched.data[("cpu", PROD.key)]
    assert cpu.skipped is not None
    assert cpu.skipped.startswith("GetMetricData failed: ")
    assert cpu.retryable is retryable
    # The next call is still made: one failing batch does not stop the others.
    assert fetched.data[("hourly", PROD.key)].points == (None,) * 5
    stats = fetched.stats[PROD.key]
    assert (stats.calls, stats.throttles, stats.errors) == (1, throttles, errors)


def test_a_token_that_never_ends_is_cut_and_skipped() -> None:
    batch = one_batch(metric_rule("cpu"))
    page = {"MetricDataResults": [result("m0", {}, "PartialData")], "NextToken": "again"}
    stub = StubCloudWatch(*([page] * 3))
    fetched = CloudWatchSource(stub, PROD, max_pages=3).fetch([batch])
    assert len(stub.requests) == 3
    assert fetched.data[("cpu", PROD.key)].skipped == "more than 3 pages"


def test_non_finite_values_are_missing_not_errors() -> None:
    batch = one_batch(metric_rule("cpu"))
    stub = StubCloudWatch(
        {"MetricDataResults": [result("m0", {at(12, 0): math.nan, at(11, 55): 4.0})]}
    )
    rd = CloudWatchSource(stub, PROD).fetch([batch]).data[("cpu", PROD.key)]
    assert rd.points == (None, None, None, 4.0, None)


def test_each_source_fetches_its_own_target_and_metrics_are_recorded() -> None:
    rules = [metric_rule("cpu"), metric_rule("mem", "Memory")]
    batches = plan_queries(rules, [PROD, DEV], NOW)
    empty = {"MetricDataResults": [result("m0", {}), result("m1", {})]}
    prod, dev = StubCloudWatch(empty), StubCloudWatch(client_error("Throttling"))
    fetched = fetch_all([CloudWatchSource(prod, PROD), CloudWatchSource(dev, DEV)], batches)

    assert len(prod.requests) == len(dev.requests) == 1
    assert sorted(fetched.data) == sorted((r, t.key) for r in ("cpu", "mem") for t in (PROD, DEV))
    metrics = Metrics()
    record_fetch_metrics(metrics, fetched)

    def value(name: str, target: Target, **labels: str) -> float | None:
        return metrics.value(name, account=target.account, region=target.region, **labels)

    assert value("veilleur_metric_queries_total", PROD) == 2
    assert value("veilleur_metrics_requested_total", PROD) == 2
    assert value("veilleur_metric_queries_total", DEV) == 0
    call = "veilleur_aws_api_calls_total"
    assert value(call, PROD, operation="GetMetricData", outcome="ok") == 1
    assert value(call, DEV, operation="GetMetricData", outcome="throttled") == 1
    assert value("veilleur_aws_throttles_total", DEV, operation="GetMetricData") == 1


def test_billed_metrics_leave_expressions_out_and_count_every_page() -> None:
    rule = metric_rule(
        "error-rate",
        expression="100 * errors / invocations",
        metrics={"errors": lam("Errors"), "invocations": lam("Invocations")},
    )
    batch = one_batch(rule)
    qid = batch.slots[0].query_id
    stub = StubCloudWatch(
        {"MetricDataResults": [result(qid, {}, "PartialData")], "NextToken": "page-2"},
        {"MetricDataResults": [result(qid, {at(11, 45): 2.0})]},
    )
    metrics = Metrics()
    record_fetch_metrics(metrics, CloudWatchSource(stub, PROD).fetch([batch]))
    labels = {"account": PROD.account, "region": PROD.region}
    assert metrics.value("veilleur_metric_queries_total", **labels) == 6  # 3 queries x 2 pages
    assert metrics.value("veilleur_metrics_requested_total", **labels) == 4  # 2 inputs x 2 pages
