"""The CloudWatch source: every metric of every metric rule, in as few GetMetricData calls
as the 500-query limit allows, for exactly the periods an evaluation reads.

Pure part, :func:`plan_queries`: one :class:`Batch` (one call, paged) per (account/region,
period, chunk of <= 500 queries). A metric asked by several rules (same metric, statistic
and period) is asked once per call. Every rule of a period shares one end, the last period
complete before ``now - delay``, and each batch starts where its longest rule's evaluation
range starts; shorter ranges are the newest periods of the batch's. Rules of different
periods are never mixed in one call: a call has one time range, and cost is per metric
requested, not per datapoint, so this costs at most one extra call per distinct period.

Adapter part, :class:`CloudWatchSource`: sends a target's batches, follows ``NextToken``,
maps each rule's series onto its evaluation range (``None`` = no datapoint) or SKIPS the
rule with a reason when CloudWatch could not answer for it (call error, ``InternalError``,
``Forbidden``, ``PartialData`` left, messages) — a failure is never read as missing data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from veilleur.aws import Target
from veilleur.observe.metrics import CallOutcome, Metrics
from veilleur.rules.metric_spec import IDENT, MetricRule, MetricStat
from veilleur.sinks.base import Outcome
from veilleur.sinks.errors import classify_exception

MAX_QUERIES_PER_CALL = 500
MAX_PAGES_PER_BATCH = 50  # a guard against a token that never ends (100,800 points a page)
OPERATION = "GetMetricData"
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)

# -- planning (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one rule's series is in a batch: the query id and the rule's own range."""

    rule_id: str
    query_id: str
    start: datetime  # the rule's evaluation range: [start, start + periods x period)
    periods: int


@dataclass(frozen=True, slots=True)
class Batch:
    """One GetMetricData call (paged) for one target: ``queries`` are ready to send."""

    target: Target
    period: int
    start: datetime
    end: datetime
    queries: tuple[Mapping[str, Any], ...]
    slots: tuple[Slot, ...]

    @property
    def metrics(self) -> int:
        """Metrics requested (what CloudWatch bills): the ``MetricStat`` queries."""
        return sum(1 for q in self.queries if "MetricStat" in q)

    def request(self, token: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``get_metric_data``."""
        kwargs: dict[str, Any] = {
            "MetricDataQueries": [dict(q) for q in self.queries],
            "StartTime": self.start,
            "EndTime": self.end,
            "ScanBy": "TimestampAscending",
        }
        if token:
            kwargs["NextToken"] = token
        return kwargs


def evaluation_end(now: datetime, delay: timedelta, period: int) -> datetime:
    """The end of the newest period to evaluate: complete before ``now - delay``."""
    cut = math.floor((now - delay).timestamp())
    return datetime.fromtimestamp(cut - cut % period, tz=UTC)


@dataclass
class _Chunk:
    stats: dict[MetricStat, str] = field(default_factory=dict)  # metric -> query id
    returned: set[MetricStat] = field(default_factory=set)  # asked for directly by a rule
    exprs: dict[tuple[str, tuple[tuple[str, MetricStat], ...]], str] = field(default_factory=dict)
    rules: list[tuple[MetricRule, str]] = field(default_factory=list)  # rule, query id

    @property
    def size(self) -> int:
        return len(self.stats) + len(self.exprs)

    def cost(self, rule: MetricRule) -> int:
        new = sum(1 for _, s in rule.metrics if s not in self.stats)
        return new + (1 if rule.expression and _expr_key(rule) not in self.exprs else 0)

    def add(self, rule: MetricRule) -> None:
        for _, stat in rule.metrics:
            self.stats.setdefault(stat, f"m{len(self.stats)}")
        if rule.expression is None:
            stat = rule.metrics[0][1]
            self.returned.add(stat)
            self.rules.append((rule, self.stats[stat]))
        else:
            qid = self.exprs.setdefault(_expr_key(rule), f"e{len(self.exprs)}")
            self.rules.append((rule, qid))


def _expr_key(rule: MetricRule) -> tuple[str, tuple[tuple[str, MetricStat], ...]]:
    return (rule.expression or "", rule.metrics)


def _pack(rules: Sequence[MetricRule], limit: int) -> list[_Chunk]:
    """Rules into chunks of <= ``limit`` queries, an expression with its inputs. Expressions
    first (largest first, first fit); then single metrics, into the chunk that already asks
    for the metric, else the first chunk with room."""
    chunks: list[_Chunk] = []
    where: dict[MetricStat, _Chunk] = {}
    exprs = sorted((r for r in rules if r.expression), key=lambda r: -len(r.metrics))
    for rule in exprs:
        chunk = next((c for c in chunks if c.size + c.cost(rule) <= limit), None)
        if chunk is None:
            chunk = _Chunk()
            chunks.append(chunk)
        chunk.add(rule)
        for _, stat in rule.metrics:
            where.setdefault(stat, chunk)
    room = 0  # chunks before this one are full: single metrics only ever add
    for rule in rules:
        if rule.expression:
            continue
        stat = rule.metrics[0][1]
        chunk = where.get(stat)
        if chunk is None:
            while room < len(chunks) and chunks[room].size >= limit:
                room += 1
            if room == len(chunks):
                chunks.append(_Chunk())
            chunk = where[stat] = chunks[room]
        chunk.add(rule)
    return chunks


def _queries(chunk: _Chunk, period: int) -> tuple[dict[str, Any], ...]:
    queries: list[dict[str, Any]] = [
        {"Id": qid, "MetricStat": stat.to_api(period), "ReturnData": stat in chunk.returned}
        for stat, qid in chunk.stats.items()
    ]
    for (expression, metrics), qid in chunk.exprs.items():
        text = rename_ids(expression, {local: chunk.stats[stat] for local, stat in metrics})
        queries.append({"Id": qid, "Expression": text, "ReturnData": True})
    return tuple(queries)


def rename_ids(expression: str, ids: Mapping[str, str]) -> str:
    """``expression`` with each id (a lowercase-start identifier) renamed by ``ids``."""

    def rename(match: re.Match[str]) -> str:
        return ids.get(match.group(0), match.group(0))

    return IDENT.sub(rename, expression)


def plan_queries(
    rules: Sequence[MetricRule],
    targets: Sequence[Target],
    now: datetime,
    delay: timedelta = timedelta(0),
    *,
    limit: int = MAX_QUERIES_PER_CALL,
) -> list[Batch]:
    """Every call needed this tick: one batch per (target, period, chunk)."""
    by_period: dict[int, list[MetricRule]] = {}
    for rule in rules:
        by_period.setdefault(rule.period, []).append(rule)
    batches: list[Batch] = []
    for period, group in sorted(by_period.items()):
        end = evaluation_end(now, delay, period)
        for chunk in _pack(group, limit):
            longest = max(rule.evaluation_range for rule, _ in chunk.rules)
            slots = tuple(
                Slot(
                    rule.id,
                    qid,
                    end - timedelta(seconds=period * rule.evaluation_range),
                    rule.evaluation_range,
                )
                for rule, qid in chunk.rules
            )
            queries = _queries(chunk, period)
            start = end - timedelta(seconds=period * longest)
            batches.extend(Batch(t, period, start, end, queries, slots) for t in targets)
    return batches


# -- fetching (the adapter) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleData:
    """One rule's evaluation range for one target: ``points`` oldest first, or skipped."""

    rule_id: str
    target: Target
    start: datetime
    period: int
    points: tuple[float | None, ...] = ()
    skipped: str | None = None  # why the rule cannot be evaluated this tick
    retryable: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.period * len(self.points))

    def timestamps(self) -> list[datetime]:
        return [self.start + timedelta(seconds=self.period * i) for i in range(len(self.points))]


@dataclass(frozen=True, slots=True)
class FetchStats:
    """API usage for one target: for ``veilleur_metric_queries_total``,
    ``veilleur_metrics_requested_total`` and AWS call counts (every page is a call)."""

    target: Target
    calls: int = 0  # requests answered, pages included
    throttles: int = 0
    errors: int = 0  # failed requests other than throttles
    queries: int = 0  # MetricDataQuery entries sent, every page
    metrics: int = 0  # of which MetricStat (billed "metrics requested"), every page


@dataclass(frozen=True, slots=True)
class FetchResult:
    data: Mapping[tuple[str, str], RuleData]  # (rule id, target key) -> series
    stats: Mapping[str, FetchStats]  # target key -> usage

    @classmethod
    def merge(cls, results: Iterable[FetchResult]) -> FetchResult:
        data: dict[tuple[str, str], RuleData] = {}
        stats: dict[str, FetchStats] = {}
        for r in results:
            data.update(r.data)
            stats.update(r.stats)
        return cls(data, stats)

    @property
    def skipped(self) -> list[RuleData]:
        return [d for d in self.data.values() if d.skipped is not None]


class CloudWatchSource:
    """GetMetricData for one target; ``client`` is a boto3 CloudWatch client (injected)."""

    def __init__(self, client: Any, target: Target, max_pages: int = MAX_PAGES_PER_BATCH) -> None:
        self._client = client
        self.target = target
        self._max_pages = max_pages

    def fetch(self, batches: Sequence[Batch]) -> FetchResult:
        """Every batch of this source's target (the others are ignored)."""
        data: dict[tuple[str, str], RuleData] = {}
        usage = _Usage()
        for batch in batches:
            if batch.target != self.target:
                continue
            for rd in self._fetch_batch(batch, usage):
                data[(rd.rule_id, self.target.key)] = rd
        stats = FetchStats(
            self.target, usage.calls, usage.throttles, usage.errors, usage.queries, usage.metrics
        )
        return FetchResult(data, {self.target.key: stats})

    def _fetch_batch(self, batch: Batch, usage: _Usage) -> list[RuleData]:
        page = _Page()
        token: str | None = None
        for _ in range(self._max_pages):
            try:
                response = self._client.get_metric_data(**batch.request(token))
            except (ClientError, BotoCoreError) as exc:
                failure = classify_exception(exc)
                code = (
                    exc.response.get("Error", {}).get("Code")
                    if isinstance(exc, ClientError)
                    else ""
                )
                if code in THROTTLE_CODES:
                    usage.throttles += 1
                else:
                    usage.errors += 1
                retry = failure.outcome is Outcome.RETRYABLE
                return [
                    _skip(batch, s, f"{OPERATION} failed: {failure.error}", retry)
                    for s in batch.slots
                ]
            usage.count(batch)
            page.read(response)
            token = response.get("NextToken") or None
            if token is None:
                break
        else:
            page.truncated = self._max_pages
        return [page.rule_data(batch, slot) for slot in batch.slots]


def fetch_all(sources: Iterable[CloudWatchSource], batches: Sequence[Batch]) -> FetchResult:
    """Each source fetches its own target's batches; one merged result."""
    return FetchResult.merge(source.fetch(batches) for source in sources)


def record_fetch_metrics(metrics: Metrics, result: FetchResult) -> None:
    """Queries and billed metrics requested, GetMetricData calls by outcome, per target."""
    for s in result.stats.values():
        account, region = s.target.account, s.target.region
        metrics.observe_metric_queries(account, region, s.queries, s.metrics)
        for outcome, n in (
            (CallOutcome.OK, s.calls),
            (CallOutcome.THROTTLED, s.throttles),
            (CallOutcome.ERROR, s.errors),
        ):
            for _ in range(n):
                metrics.observe_aws_call(OPERATION, account, region, outcome)


@dataclass
class _Usage:
    calls: int = 0
    throttles: int = 0
    errors: int = 0
    queries: int = 0
    metrics: int = 0

    def count(self, batch: Batch) -> None:
        self.calls += 1
        self.queries += len(batch.queries)
        self.metrics += batch.metrics


@dataclass
class _Page:
    """What the pages of one batch said, merged: values by query id and epoch second."""

    values: dict[str, dict[float, float]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # worst status seen per id
    messages: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)  # response-level Messages
    truncated: int = 0  # stopped following NextToken after this many pages

    def read(self, response: Mapping[str, Any]) -> None:
        self.general.extend(_messages(response.get("Messages")))
        for result in response.get("MetricDataResults", []):
            qid = str(result.get("Id", ""))
            series = self.values.setdefault(qid, {})
            for ts, value in zip(
                result.get("Timestamps", []), result.get("Values", []), strict=False
            ):
                series[_epoch(ts)] = float(value)
            code = str(result.get("StatusCode") or "Complete")
            # A later page may complete a PartialData answer, never undo an error.
            if self.status.get(qid, "Complete") in ("Complete", "PartialData"):
                self.status[qid] = code
            self.messages.setdefault(qid, []).extend(_messages(result.get("Messages")))

    def rule_data(self, batch: Batch, slot: Slot) -> RuleData:
        qid = slot.query_id
        problem: str | None = None
        retry = True
        if self.truncated:
            problem = f"more than {self.truncated} pages"
        elif self.general:
            problem = "CloudWatch said: " + "; ".join(self.general)
        elif qid not in self.status:
            problem = f"no result for query {qid}"
        elif self.status[qid] != "Complete":
            problem = f"{self.status[qid]} for query {qid}"
            retry = self.status[qid] != "Forbidden"
        elif self.messages.get(qid):
            problem = f"query {qid}: " + "; ".join(self.messages[qid])
        if problem is not None:
            if self.messages.get(qid) and self.status.get(qid) != "Complete":
                problem += " (" + "; ".join(self.messages[qid]) + ")"
            return _skip(batch, slot, problem[:500], retry)
        series = self.values.get(qid, {})
        base, step = slot.start.timestamp(), batch.period
        points: list[float | None] = [None] * slot.periods
        for ts, value in series.items():
            index, rest = divmod(ts - base, step)
            if rest == 0 and 0 <= index < slot.periods and math.isfinite(value):
                points[int(index)] = value
        return RuleData(slot.rule_id, batch.target, slot.start, batch.period, tuple(points))


def _skip(batch: Batch, slot: Slot, reason: str, retryable: bool) -> RuleData:
    return RuleData(slot.rule_id, batch.target, slot.start, batch.period, (), reason, retryable)


def _messages(raw: object) -> list[str]:
    if not isinstance(raw, list):
        return []
    out = []
    for m in raw:
        if isinstance(m, Mapping):
            code, value = m.get("Code"), m.get("Value")
            out.append(f"{code}: {value}" if value else str(code))
    return [" ".join(m.split())[:200] for m in out]


def _epoch(ts: object) -> float:
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    return float(ts)  # type: ignore[arg-type]
