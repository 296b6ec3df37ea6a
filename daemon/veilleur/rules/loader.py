"""Rule files (YAML) to compiled ``Rule`` objects, with every error reported by path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, Field, ValidationError, field_validator

from veilleur.model import Severity
from veilleur.rules.event_pattern import compile_event_pattern
from veilleur.rules.filter_pattern import compile_filter_pattern
from veilleur.rules.header import RuleHeaderModel, StrictModel
from veilleur.rules.matcher import Matcher, MatcherError
from veilleur.rules.metric_spec import MetricRule, is_metric_rule, parse_metric_rule
from veilleur.rules.spec import (
    Expectation,
    FieldPath,
    MatcherKind,
    Rule,
    RuleTest,
    ThresholdSpec,
)
from veilleur.validation import ConfigError, Duration, pydantic_messages

BUILTIN_PACKS = ("cis", "essentials")


_Strict = StrictModel


class ThresholdModel(_Strict):
    count: int = Field(ge=1, le=100_000)
    within: Duration
    group_by: list[str] = Field(default_factory=list, max_length=5)

    @field_validator("within")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if v.total_seconds() <= 0 or v.total_seconds() > 7 * 86400:
            raise ValueError("must be between 1s and 7d")
        return v


class ExpectModel(_Strict):
    alerts: int = Field(ge=0)
    count: int | None = Field(default=None, ge=1)


class TestModel(_Strict):
    name: str = Field(min_length=1)
    events: list[dict[str, Any]] = Field(min_length=1)
    repeat: int = Field(default=1, ge=1, le=10_000)
    # `expected:` and `does_not_fire` are accepted too, as people write them.
    expect: Literal["fires", "no_alert", "does_not_fire"] | ExpectModel = Field(
        validation_alias=AliasChoices("expect", "expected")
    )


class RuleModel(RuleHeaderModel):
    match: dict[str, Any] | None = None
    filter_pattern: str | None = None
    threshold: ThresholdModel | None = None
    realert: Duration | None = None
    group_by: list[str] = Field(default_factory=list, max_length=5)
    tests: list[TestModel] = Field(default_factory=list)


def _path(text: str) -> FieldPath:
    return FieldPath.parse(text)


def _compile_matcher(
    match: Any, filter_pattern: Any, where: str, errors: list[str]
) -> tuple[Matcher, MatcherKind] | None:
    if (match is None) == (filter_pattern is None):
        errors.append(f"{where}: exactly one of `match` or `filter_pattern` is required")
        return None
    kind = MatcherKind.EVENT_PATTERN if match is not None else MatcherKind.FILTER_PATTERN
    try:
        if match is not None:
            return compile_event_pattern(match), kind
        return compile_filter_pattern(filter_pattern), kind
    except MatcherError as exc:
        sub = f".{exc.where}" if exc.where and not exc.where.startswith("at ") else ""
        tail = f" ({exc.where})" if exc.where.startswith("at ") else ""
        errors.append(f"{where}.{kind.value}{sub}: {exc.message}{tail}")
        return None


def _compile(model: RuleModel, where: str, errors: list[str]) -> Rule | None:
    compiled = _compile_matcher(model.match, model.filter_pattern, where, errors)
    if compiled is None:
        return None
    matcher, kind = compiled
    try:
        threshold = (
            ThresholdSpec(
                count=model.threshold.count,
                within=model.threshold.within,
                group_by=tuple(_path(p) for p in model.threshold.group_by),
            )
            if model.threshold
            else None
        )
        group_by = tuple(_path(p) for p in model.group_by)
    except ValueError as exc:
        errors.append(f"{where}.group_by: {exc}")
        return None
    if threshold and model.group_by:
        errors.append(f"{where}.group_by: put group_by inside threshold for threshold rules")
        return None
    tests = []
    for i, t in enumerate(model.tests):
        if t.expect == "fires":
            exp = Expectation(alerts=1)
        elif t.expect in ("no_alert", "does_not_fire"):
            exp = Expectation(alerts=0)
        else:
            assert isinstance(t.expect, ExpectModel)
            exp = Expectation(alerts=t.expect.alerts, count=t.expect.count)
        events = tuple(t.events) * t.repeat if t.repeat > 1 else tuple(t.events)
        tests.append(RuleTest(name=t.name or f"case {i}", events=events, expect=exp))
    return Rule(
        id=model.id,
        title=model.title,
        severity=Severity.parse(model.severity),
        matcher=matcher,
        matcher_kind=kind,
        description=model.description.strip(),
        runbook=model.runbook,
        tags=tuple(model.tags),
        metadata=dict(model.metadata),
        threshold=threshold,
        realert=model.realert,
        group_by=group_by,
        tests=tuple(tests),
    )


@dataclass(frozen=True)
class RuleSet:
    """Everything rule files hold: event rules (CloudTrail) and metric rules (CloudWatch)."""

    events: tuple[Rule, ...] = ()
    metrics: tuple[MetricRule, ...] = ()

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(self.events + other.events, self.metrics + other.metrics)

    @property
    def all_ids(self) -> list[tuple[str, str]]:
        return [(r.id, r.origin) for r in self.events] + [(m.id, m.origin) for m in self.metrics]


def parse_rule_file(text: str, origin: str) -> RuleSet:
    """Parse one rule file's text; raise ConfigError listing every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{origin}: not valid YAML: {exc}"]) from exc
    if isinstance(doc, dict) and set(doc) <= {"rules"}:
        doc = doc.get("rules")
    if not isinstance(doc, list):
        raise ConfigError([f"{origin}: expected a list of rules (or a mapping with `rules:`)"])
    errors: list[str] = []
    rules: list[Rule] = []
    metrics: list[MetricRule] = []
    for i, raw in enumerate(doc):
        where = f"{origin}: rules[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            where = f"{origin}: rules[{i}] ({raw['id'][:64]})"
        if is_metric_rule(raw):
            parsed = parse_metric_rule(raw, where, origin)
            if isinstance(parsed, list):
                errors.extend(parsed)
            else:
                metrics.append(parsed)
            continue
        try:
            model = RuleModel.model_validate(raw)
        except ValidationError as exc:
            errors.extend(pydantic_messages(exc, where))
            # The matcher's own errors too, so that one run lists every problem of the rule.
            fields = ("match", "filter_pattern")
            touched = any(e["loc"] and e["loc"][0] in fields for e in exc.errors())
            if (
                isinstance(raw, dict)
                and not touched
                and any(raw.get(f) is not None for f in fields)
            ):
                _compile_matcher(raw.get("match"), raw.get("filter_pattern"), where, errors)
            continue
        rule = _compile(model, where, errors)
        if rule is not None:
            rules.append(_with_origin(rule, origin))
    ids = [str(r["id"]) for r in doc if isinstance(r, dict) and isinstance(r.get("id"), str)]
    for rule_id in sorted({x for x in ids if ids.count(x) > 1}):
        errors.append(f"{origin}: duplicate rule id {rule_id!r} ({ids.count(rule_id)} rules)")
    if errors:
        raise ConfigError(errors)
    return RuleSet(tuple(rules), tuple(metrics))


def parse_rules(text: str, origin: str) -> list[Rule]:
    """The event rules of one file (metric rules are validated and left out)."""
    return list(parse_rule_file(text, origin).events)


def _with_origin(rule: Rule, origin: str) -> Rule:
    return replace(rule, origin=origin)


def builtin_text(name: str) -> str:
    if name not in BUILTIN_PACKS:
        raise ConfigError(
            [
                f'unknown built-in pack "builtin:{name}" (known: '
                + ", ".join(f"builtin:{p}" for p in BUILTIN_PACKS)
                + ")"
            ]
        )
    return resources.files("veilleur.packs").joinpath(f"{name}.yaml").read_text("utf-8")


def load_rule_set(sources: Sequence[str], base_dir: Path | None = None) -> RuleSet:
    """Load built-in packs (``builtin:cis``) and files; ids must be unique across all."""
    errors: list[str] = []
    found = RuleSet()
    for src in sources:
        try:
            if src.startswith("builtin:"):
                found += parse_rule_file(builtin_text(src.removeprefix("builtin:")), src)
                continue
            path = Path(src)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                errors.append(f"{src}: cannot read rule file: {exc.strerror or exc}")
                continue
            found += parse_rule_file(text, src)
        except ConfigError as exc:
            errors.extend(exc.messages)
    seen: dict[str, str] = {}
    for rule_id, origin in found.all_ids:
        if rule_id in seen:
            errors.append(f"{origin}: duplicate rule id {rule_id!r} (also in {seen[rule_id]})")
        seen.setdefault(rule_id, origin)
    if errors:
        raise ConfigError(errors)
    return found


def load_rules(sources: Sequence[str], base_dir: Path | None = None) -> list[Rule]:
    """The event rules of ``load_rule_set``."""
    return list(load_rule_set(sources, base_dir).events)
