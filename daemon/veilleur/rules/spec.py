"""Compiled rules: what the loader produces and the engine consumes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from veilleur.model import Severity
from veilleur.rules.matcher import Matcher


class MatcherKind(enum.StrEnum):
    EVENT_PATTERN = "match"
    FILTER_PATTERN = "filter_pattern"


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A dotted path into a record, e.g. ``userIdentity.userName``."""

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        parts = tuple(text.removeprefix("$.").split("."))
        if not text or any(not p for p in parts):
            raise ValueError(f'invalid field path "{text}" (expected e.g. userIdentity.userName)')
        return cls(text=text.removeprefix("$."), parts=parts)


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    count: int
    within: timedelta
    group_by: tuple[FieldPath, ...] = ()


@dataclass(frozen=True, slots=True)
class Expectation:
    alerts: int
    count: int | None = None  # expected count of the first alert (thresholds)


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    events: tuple[Mapping[str, Any], ...]
    expect: Expectation


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    severity: Severity
    matcher: Matcher = field(compare=False)
    matcher_kind: MatcherKind
    description: str = ""
    runbook: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    threshold: ThresholdSpec | None = None
    realert: timedelta | None = None
    group_by: tuple[FieldPath, ...] = ()  # realert grouping for rules without threshold
    tests: tuple[RuleTest, ...] = ()
    origin: str = ""  # "builtin:cis" or the file path

    @property
    def grouping(self) -> tuple[FieldPath, ...]:
        return self.threshold.group_by if self.threshold else self.group_by

    @property
    def stateful(self) -> bool:
        """Rules that need per-group state: thresholds above 1 or suppression."""
        return self.realert is not None or (self.threshold is not None and self.threshold.count > 1)
