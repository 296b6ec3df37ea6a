"""Which LookupEvents queries a poll makes, derived from the rules. Pure.

LookupEvents takes one lookup attribute per call and bills nothing but its 2 requests/s,
so the cost of a poll is its number of calls: one per page of 50 events per query.

- ``full``: no attribute, every management event of the window;
- ``writes``: ``ReadOnly=false`` when no rule can match a read-only event — real trails are
  mostly Describe/List/Get, so this divides the pages by several;
- ``names``: one ``EventName`` query per name when every rule pins eventName to a few names:
  the cheapest on a busy account (a query for a quiet name costs one call per poll).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from veilleur.rules.spec import Rule

MAX_NAME_QUERIES = 5


class PlanKind(enum.StrEnum):
    FULL = "full"
    WRITES = "writes"
    NAMES = "names"


@dataclass(frozen=True, slots=True)
class QueryPlan:
    kind: PlanKind
    lookups: tuple[tuple[str, str] | None, ...]  # (AttributeKey, AttributeValue) or None
    reason: str


FULL = QueryPlan(PlanKind.FULL, (None,), "some rule can match any event")


def plan_for(rules: Sequence[Rule], max_name_queries: int = MAX_NAME_QUERIES) -> QueryPlan:
    """The cheapest plan that still reads every event some rule could match."""
    if not rules:
        return QueryPlan(PlanKind.NAMES, (), "no event rules: nothing to read")
    names: set[str] = set()
    all_named = True
    for rule in rules:
        pinned = rule.matcher.required_values(("eventName",))
        if pinned is None or not all(isinstance(n, str) for n in pinned):
            all_named = False
            break
        names.update(str(n) for n in pinned)
    if all_named and len(names) <= max_name_queries:
        return QueryPlan(
            PlanKind.NAMES,
            tuple(("EventName", n) for n in sorted(names)),
            f"every rule pins eventName ({len(names)} names)",
        )
    if all(rule.matcher.required_values(("readOnly",)) == frozenset({False}) for rule in rules):
        return QueryPlan(
            PlanKind.WRITES, (("ReadOnly", "false"),), "no rule matches read-only events"
        )
    return FULL
