"""CloudWatch Logs JSON filter patterns as a matcher dialect (``filter_pattern:`` in rules).

``compile_filter_pattern('{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed
authentication") }')`` parses once into a tree of small closures; ``matches(record)`` then
only walks dicts and lists and compares strings and numbers: no regex is compiled or run on a
record field except the linear number syntax check, and nothing raises on any JSON value.
The supported syntax and its semantics are documented in docs/filter-pattern.md.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from veilleur.model import MISSING
from veilleur.rules.filter_pattern_lex import Step
from veilleur.rules.filter_pattern_parse import (
    NUMBER,
    AllOf,
    Check,
    CheckKind,
    Comparison,
    Node,
    NumberValue,
    Op,
    TextValue,
    Wildcard,
    parse,
    parse_number,
)
from veilleur.rules.matcher import MatcherError, Scalar

__all__ = ["FilterPattern", "MatcherError", "compile_filter_pattern"]

Predicate = Callable[[Any], bool]
Getter = Callable[[Any], Any]

_MAX_NUMERIC_STRING = 64
"""A string field longer than this is never read as a number (bounds the work per field)."""

_NUMBER_WORDS = frozenset({"true", "false", "NaN", "Infinity", "-Infinity"})
_RELATIONS: dict[Op, Callable[[Any, Any], bool]] = {
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


@dataclass(frozen=True, slots=True)
class FilterPattern:
    """A compiled filter pattern; implements the Matcher protocol."""

    text: str
    tree: Node = field(repr=False)
    _predicate: Predicate = field(repr=False, compare=False)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True if the record matches. Never raises on any JSON value."""
        return self._predicate(record)

    def required_values(self, path: tuple[str, ...]) -> frozenset[Scalar] | None:
        """The exact values the field at ``path`` must hold for a match, or None."""
        return _required(self.tree, tuple(path))

    def required_prefixes(self, path: tuple[str, ...]) -> frozenset[str] | None:
        """Not derived for filter patterns: their rules are indexed by exact values only."""
        return None


def compile_filter_pattern(text: str) -> FilterPattern:
    """Parse and compile ``text``; raise MatcherError(message, where) if it is malformed."""
    if not isinstance(text, str):
        raise MatcherError(f"a filter pattern is a string, not {type(text).__name__}")
    tree = parse(text)
    return FilterPattern(text, tree, _compile(tree))


# --- field access ---------------------------------------------------------------------------


def _getter(steps: tuple[Step, ...]) -> Getter:
    """Follow property names through objects and indexes through arrays; MISSING if a step
    cannot be taken (absent key, not an object, not an array, index out of range)."""
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]

        def get_one(record: Any) -> Any:
            return record.get(key, MISSING) if isinstance(record, dict) else MISSING

        return get_one

    def get(record: Any) -> Any:
        current = record
        for step in steps:
            if isinstance(step, str):
                if not isinstance(current, dict):
                    return MISSING
                current = current.get(step, MISSING)
                if current is MISSING:
                    return MISSING
            else:
                if not isinstance(current, list) or step >= len(current):
                    return MISSING
                current = current[step]
        return current

    return get


def _as_text(value: Any) -> str | None:
    """The text a string value is compared with: a string itself, a number or a boolean as
    JSON writes it; None for null, arrays, objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return None


def _as_number(value: Any) -> int | float | None:
    """A JSON number, or a string written as a number; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) <= _MAX_NUMERIC_STRING and NUMBER.fullmatch(value):
        return parse_number(value)
    return None


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list)


# --- compilation into closures --------------------------------------------------------------


def _compile(node: Node) -> Predicate:
    if isinstance(node, Comparison):
        return _compile_comparison(node)
    if isinstance(node, Check):
        return _compile_check(node)
    if isinstance(node, AllOf):
        all_parts = tuple(_compile(part) for part in node.parts)
        if len(all_parts) == 2:
            first, second = all_parts
            return lambda record: first(record) and second(record)
        return lambda record: all(part(record) for part in all_parts)
    names = _plain_names(node.parts)
    if names is not None:
        return _one_of(names[0], names[1])
    any_parts = tuple(_compile(part) for part in node.parts)
    return lambda record: any(part(record) for part in any_parts)


def _plain_names(parts: tuple[Node, ...]) -> tuple[tuple[Step, ...], frozenset[str]] | None:
    """``$.f = A || $.f = B || ...`` with plain values (the CIS shape): the selector steps and
    the set of values, so that the OR becomes one set lookup."""
    steps: tuple[Step, ...] | None = None
    names: set[str] = set()
    for part in parts:
        if not isinstance(part, Comparison) or part.op is not Op.EQ:
            return None
        value = part.value
        if not isinstance(value, TextValue) or value.wildcard is not Wildcard.EXACT:
            return None
        if _is_ambiguous(value.body) or (steps is not None and part.selector.steps != steps):
            return None
        steps = part.selector.steps
        names.add(value.body)
    return None if steps is None else (steps, frozenset(names))


def _one_of(steps: tuple[Step, ...], names: frozenset[str]) -> Predicate:
    get = _getter(steps)

    def one_of(record: Any) -> bool:
        value = get(record)
        return isinstance(value, str) and value in names

    return one_of


def _is_ambiguous(body: str) -> bool:
    """True if a plain string value would also equal some number or boolean's JSON text."""
    return body in _NUMBER_WORDS or NUMBER.fullmatch(body) is not None


def _compile_check(node: Check) -> Predicate:
    get = _getter(node.selector.steps)
    if node.kind is CheckKind.IS_NULL:
        return lambda record: get(record) is None
    if node.kind is CheckKind.NOT_EXISTS:
        return lambda record: get(record) is MISSING
    if node.kind is CheckKind.IS_TRUE:
        return lambda record: get(record) is True
    return lambda record: get(record) is False


def _compile_comparison(node: Comparison) -> Predicate:
    get = _getter(node.selector.steps)
    value = node.value
    if isinstance(value, TextValue):
        equal = _text_equal(value)
    elif node.op in _RELATIONS:
        relation, bound = _RELATIONS[node.op], value.number

        def related(record: Any) -> bool:
            number = _as_number(get(record))
            return number is not None and relation(number, bound)

        return related
    else:
        equal = _number_equal(value)

    if node.op is Op.EQ:
        return lambda record: equal(get(record))

    def not_equal(record: Any) -> bool:
        field_value = get(record)
        if field_value is MISSING:
            return True  # '!=' on an absent field matches (CIS root-usage relies on it)
        if _is_container(field_value):
            return False  # a selector on an array or object never applies
        return not equal(field_value)

    return not_equal


def _string_test(body: str, wildcard: Wildcard) -> Callable[[str], bool]:
    """One string method per wildcard form, chosen once at compile time."""
    if wildcard is Wildcard.PREFIX:

        def prefix(text: str) -> bool:
            return text.startswith(body)

        return prefix
    if wildcard is Wildcard.SUFFIX:

        def suffix(text: str) -> bool:
            return text.endswith(body)

        return suffix
    if wildcard is Wildcard.CONTAINS:

        def contains(text: str) -> bool:
            return body in text

        return contains

    def exact(text: str) -> bool:
        return text == body

    return exact


def _text_equal(value: TextValue) -> Callable[[Any], bool]:
    """``=`` against a string value: strings directly, numbers and booleans by their JSON
    text, null only by the lone wildcard ``*``, arrays and objects never."""
    if value.wildcard is Wildcard.ANY:

        def present(field_value: Any) -> bool:
            return field_value is not MISSING and not _is_container(field_value)

        return present
    test = _string_test(value.body, value.wildcard)

    def equal(field_value: Any) -> bool:
        if type(field_value) is str:
            return test(field_value)
        text = _as_text(field_value)
        return text is not None and test(text)

    return equal


def _number_equal(value: NumberValue) -> Callable[[Any], bool]:
    number = value.number

    def equal(field_value: Any) -> bool:
        found = _as_number(field_value)
        return found is not None and found == number

    return equal


# --- required values ------------------------------------------------------------------------


def _required(node: Node, path: tuple[str, ...]) -> frozenset[Scalar] | None:
    """Sound over-approximation of the values the field at ``path`` may hold in a match."""
    if isinstance(node, Comparison):
        if node.selector.steps != path or node.op is not Op.EQ:
            return None
        value = node.value
        if not isinstance(value, TextValue) or value.wildcard is not Wildcard.EXACT:
            return None
        if _is_ambiguous(value.body):
            return None  # would also match a number or boolean written that way
        return frozenset({value.body})
    if isinstance(node, Check):
        if node.selector.steps != path:
            return None
        pinned: dict[CheckKind, frozenset[Scalar]] = {
            CheckKind.IS_NULL: frozenset({None}),
            CheckKind.IS_TRUE: frozenset({True}),
            CheckKind.IS_FALSE: frozenset({False}),
        }
        return pinned.get(node.kind)
    found = [_required(part, path) for part in node.parts]
    if isinstance(node, AllOf):
        constraints = [values for values in found if values is not None]
        if not constraints:
            return None
        return frozenset.intersection(*constraints)
    if any(values is None for values in found):
        return None
    return frozenset().union(*(values for values in found if values is not None))
