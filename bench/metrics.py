"""GetMetricData calls and metrics requested per tick. Prints figures; asserts nothing.

    .venv/bin/python bench/metrics.py [--targets 1]

For 1, 100 and 1,200 metric rules (every rule its own metric), then 1,200 rules shaped like
a real set (a third sharing a metric with another rule, one in twenty a 3-metric expression,
a fifth at a 1-hour period), one tick is planned and fetched against a counting stub client
(no server): calls made against the minimum ceil(queries / 500), metrics requested (what
CloudWatch bills), and the time to plan and to map the answers.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))

from veilleur.aws import Target
from veilleur.rules.metric_spec import MetricRule, parse_metric_rule
from veilleur.sources.cloudwatch import (
    MAX_QUERIES_PER_CALL,
    CloudWatchSource,
    fetch_all,
    plan_queries,
)

NOW = datetime(2026, 1, 1, 12, 7, 30, tzinfo=UTC)


class CountingCloudWatch:
    """Answers every returned query with one datapoint per period; counts what it is asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.queries = 0
        self.metrics = 0

    def get_metric_data(self, **kw: Any) -> Mapping[str, Any]:
        self.calls += 1
        queries = kw["MetricDataQueries"]
        self.queries += len(queries)
        self.metrics += sum(1 for q in queries if "MetricStat" in q)
        start, end = kw["StartTime"], kw["EndTime"]
        period = next((q["MetricStat"]["Period"] for q in queries if "MetricStat" in q), 300)
        stamps = []
        t = start
        while t < end:
            stamps.append(t)
            t += timedelta(seconds=period)
        return {
            "MetricDataResults": [
                {
                    "Id": q["Id"],
                    "Timestamps": stamps,
                    "Values": [50.0] * len(stamps),
                    "StatusCode": "Complete",
                }
                for q in queries
                if q.get("ReturnData", True)
            ]
        }


def metric(i: int) -> dict[str, Any]:
    return {
        "namespace": "AWS/EC2",
        "metric_name": "CPUUtilization",
        "dimensions": {"InstanceId": f"i-{i:08x}"},
        "statistic": "Average",
    }


def make_rule(
    i: int, *, shared: int | None = None, expr: bool = False, period: str = "5m"
) -> MetricRule:
    body: dict[str, Any] = {
        "period": period,
        "comparison": ">",
        "threshold": 80,
        "evaluation_periods": 3,
    }
    if expr:
        body.update(
            expression="(a + b + c) / 3",
            metrics={
                "a": metric(10_000 + 3 * i),
                "b": metric(10_001 + 3 * i),
                "c": metric(10_002 + 3 * i),
            },
        )
    else:
        body.update(metric(shared if shared is not None else i))
    raw = {"id": f"rule-{i}", "title": f"rule {i}", "severity": "high", "metric": body}
    out = parse_metric_rule(raw, f"rule-{i}")
    assert isinstance(out, MetricRule), out
    return out


def distinct(n: int) -> list[MetricRule]:
    return [make_rule(i) for i in range(n)]


def realistic(n: int, seed: int = 7) -> list[MetricRule]:
    rng = random.Random(seed)
    rules = []
    for i in range(n):
        roll = rng.random()
        period = "1h" if rng.random() < 0.2 else "5m"
        if roll < 0.05:
            rules.append(make_rule(i, expr=True, period=period))
        elif roll < 0.38 and i > 0:
            rules.append(make_rule(i, shared=rng.randrange(i), period=period))
        else:
            rules.append(make_rule(i, period=period))
    return rules


def run(name: str, rules: list[MetricRule], targets: list[Target]) -> None:
    started = time.perf_counter()
    batches = plan_queries(rules, targets, NOW, timedelta(minutes=2))
    planned = time.perf_counter()
    stubs = {t.key: CountingCloudWatch() for t in targets}
    result = fetch_all([CloudWatchSource(stubs[t.key], t) for t in targets], batches)
    fetched = time.perf_counter()
    calls = sum(s.calls for s in stubs.values())
    queries = sum(s.queries for s in stubs.values())
    metrics = sum(s.metrics for s in stubs.values())
    by_target_period: dict[tuple[str, int], int] = {}
    for b in batches:
        key = (b.target.key, b.period)
        by_target_period[key] = by_target_period.get(key, 0) + len(b.queries)
    minimum = sum(math.ceil(q / MAX_QUERIES_PER_CALL) for q in by_target_period.values())
    absolute = len(targets) * math.ceil(queries / len(targets) / MAX_QUERIES_PER_CALL)
    skipped = len(result.skipped)
    print(
        f"{name:<28} rules={len(rules):>5} queries={queries:>6} metrics={metrics:>6} "
        f"calls={calls:>3} min(per period)={minimum:>3} min(any)={absolute:>3} "
        f"skipped={skipped} plan={1000 * (planned - started):6.1f} ms "
        f"fetch+map={1000 * (fetched - planned):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1, help="accounts x regions")
    args = parser.parse_args()
    targets = [Target(f"{100000000000 + i}", "eu-west-1") for i in range(args.targets)]
    for n in (1, 100, 1200):
        run(f"{n} distinct metrics", distinct(n), targets)
    run("1200 realistic (shared, expr)", realistic(1200), targets)


if __name__ == "__main__":
    main()
