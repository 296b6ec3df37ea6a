"""EventBridge event patterns (the ``match:`` dialect), compiled once into small objects.

Semantics follow the EventBridge user guide ("Event patterns", "Content filtering in Amazon
EventBridge event patterns"); docs/event-pattern.md states them and every deliberate choice.
Matching is total: any JSON value anywhere in a record yields True or False, never an error,
and no regular expression is used (wildcards run a linear segment search, immune to ReDoS).
"""

from __future__ import annotations

import ipaddress
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from veilleur.model import MISSING
from veilleur.rules.matcher import MatcherError, Scalar

P = TypeVar("P")  # what a field is pinned to: exact values or prefixes

__all__ = ["EventPattern", "compile_event_pattern"]

Test = Callable[[Any], bool]
NUMERIC_LIMIT = 5.0e9  # EventBridge accepts numeric bounds in [-5e9, +5e9]
_HIGH_OPS = {"<": False, "<=": True}  # operator setting an upper bound -> inclusive?
_LOW_OPS = {">": False, ">=": True}  # operator setting a lower bound -> inclusive?
_STRING_OPS = frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard"})
_KINDS: tuple[tuple[Any, str], ...] = (
    (bool, "a boolean"), (int | float, "a number"), (str, "a string"),
    (list, "an array"), (Mapping, "an object"), (type(None), "null"),
)  # fmt: skip
_CASE_MARGIN = 16  # extra context for case folding of prefix/suffix slices (final sigma)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """The array of alternatives for one field: the field matches if any alternative does."""

    strings: frozenset[str]
    numbers: frozenset[int | float]
    consts: frozenset[bool | None]  # true, false and null
    exists_true: bool
    exists_false: bool
    str_tests: tuple[Test, ...]
    num_tests: tuple[Test, ...]
    any_tests: tuple[Test, ...]  # anything-but: see every kind of leaf value
    # Every string this leaf can match starts with one of these (exact values and
    # case-sensitive prefixes only), or None: the engine indexes prefix rules with it.
    prefixes: frozenset[str] | None = None

    @property
    def on_missing(self) -> bool:
        return self.exists_false

    def match(self, value: Any) -> bool:
        if isinstance(value, str):  # the common case first
            return self.exists_true or self._match_scalar(value)
        if isinstance(value, dict) or value is MISSING:
            return self.exists_false  # objects are not leaves (exists only sees leaves)
        if isinstance(value, list):
            return self._match_list(value)
        return self.exists_true or self._match_scalar(value)

    def _match_list(self, items: list[Any]) -> bool:
        seen_leaf = False
        stack = [items]
        while stack:
            for item in stack.pop():
                if isinstance(item, list):
                    stack.append(item)
                elif not isinstance(item, dict):
                    seen_leaf = True
                    if self.exists_true or self._match_scalar(item):
                        return True
        return not seen_leaf and self.exists_false

    def _match_scalar(self, value: Any) -> bool:
        if isinstance(value, str):
            if value in self.strings:
                return True
            for test in self.str_tests:
                if test(value):
                    return True
        elif value is None or isinstance(value, bool):
            if value in self.consts:
                return True
        elif isinstance(value, int | float):
            if value in self.numbers:
                return True
            for test in self.num_tests:
                if test(value):
                    return True
        else:
            return False  # not a JSON value: matches nothing
        return bool(self.any_tests) and any(test(value) for test in self.any_tests)

    def exact_values(self) -> frozenset[Scalar] | None:
        if self.str_tests or self.num_tests or self.any_tests or self.exists_true:
            return None
        return None if self.exists_false else self.strings | self.numbers | self.consts


@dataclass(frozen=True, slots=True)
class _Object:
    """Fields that must all match, and ``$or`` groups of which one branch each must match."""

    fields: tuple[tuple[str, _Object | _Leaf], ...]
    ors: tuple[tuple[_Object, ...], ...]
    on_missing: bool  # the (constant) result against a value without fields

    def match(self, value: Any) -> bool:
        if isinstance(value, dict):
            return self.match_mapping(value)
        if isinstance(value, list):
            return self._match_list(value)
        return self.on_missing

    def match_mapping(self, obj: Mapping[str, Any]) -> bool:
        for key, child in self.fields:
            if not child.match(obj.get(key, MISSING)):
                return False
        for group in self.ors:
            for branch in group:
                if branch.match_mapping(obj):
                    break
            else:
                return False
        return True

    def _match_list(self, items: list[Any]) -> bool:
        # Array-consistent: every field of this object comes from the same element.
        seen_object = False
        stack = [items]
        while stack:
            for item in stack.pop():
                if isinstance(item, dict):
                    seen_object = True
                    if self.match_mapping(item):
                        return True
                elif isinstance(item, list):
                    stack.append(item)
        return not seen_object and self.on_missing

    def _pinned(
        self,
        path: tuple[str, ...],
        leaf: Callable[[_Leaf], frozenset[P] | None],
        combine: Callable[[list[frozenset[P]]], frozenset[P]],
    ) -> frozenset[P] | None:
        """What the field at ``path`` is pinned to, soundly: each field and each ``$or``
        whose every branch pins it (their union) is one constraint; ``leaf`` reads one off a
        leaf, ``combine`` merges the constraints that all hold."""
        if not path:
            return None
        found: list[frozenset[P]] = []
        for key, child in self.fields:
            if key != path[0]:
                continue
            if isinstance(child, _Leaf):
                pinned = leaf(child) if len(path) == 1 else None
            else:
                pinned = child._pinned(path[1:], leaf, combine)
            if pinned is not None:
                found.append(pinned)
        for group in self.ors:
            union: set[P] = set()
            for branch in group:
                branch_pins = branch._pinned(path, leaf, combine)
                if branch_pins is None:
                    break
                union |= branch_pins
            else:
                found.append(frozenset(union))
        return combine(found) if found else None

    def required_values(self, path: tuple[str, ...]) -> frozenset[Scalar] | None:
        return self._pinned(path, _Leaf.exact_values, lambda f: f[0].intersection(*f[1:]))

    def required_prefixes(self, path: tuple[str, ...]) -> frozenset[str] | None:
        """Sound like ``required_values``: a matching value starts with one of these.
        Every constraint holds, so any one of them is sound: the first is kept."""
        return self._pinned(path, lambda leaf: leaf.prefixes, lambda f: f[0])


@dataclass(frozen=True, slots=True)
class EventPattern:
    """A compiled EventBridge event pattern over one full CloudTrail record."""

    root: _Object

    def matches(self, record: Mapping[str, Any]) -> bool:
        if isinstance(record, dict | Mapping):
            return self.root.match_mapping(record)
        return self.root.match(record)

    def required_values(self, path: tuple[str, ...]) -> frozenset[Scalar] | None:
        return self.root.required_values(path)

    def required_prefixes(self, path: tuple[str, ...]) -> frozenset[str] | None:
        return self.root.required_prefixes(path)


def compile_event_pattern(pattern: object) -> EventPattern:
    """Validate and compile ``pattern``; raise MatcherError(message, where) if invalid."""
    if not isinstance(pattern, Mapping):
        raise MatcherError(f"an event pattern must be an object, not {_kind(pattern)}")
    try:
        return EventPattern(_compile_object(pattern, ""))
    except RecursionError:
        raise MatcherError("pattern is nested too deeply") from None


def _compile_object(obj: Mapping[Any, Any], where: str) -> _Object:
    if not obj:
        raise MatcherError("empty objects are not allowed", where)
    fields: list[tuple[str, _Object | _Leaf]] = []
    ors: list[tuple[_Object, ...]] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise MatcherError(f"field names must be strings, not {_kind(key)}", where)
        here = f"{where}.{key}" if where else key
        if key == "$or":
            ors.append(_compile_or(value, here))
        elif isinstance(value, Mapping):
            fields.append((key, _compile_object(value, here)))
        elif isinstance(value, list):
            fields.append((key, _compile_leaf(value, here)))
        else:
            raise MatcherError(f"must be an object or an array, not {_kind(value)}", here)
    on_missing = all(c.on_missing for _, c in fields) and all(
        any(b.on_missing for b in group) for group in ors
    )
    return _Object(tuple(fields), tuple(ors), on_missing)


def _compile_or(value: object, where: str) -> tuple[_Object, ...]:
    if not isinstance(value, list) or len(value) < 2:
        got = f"{len(value)} item(s)" if isinstance(value, list) else _kind(value)
        raise MatcherError(f"$or must be an array of at least 2 objects, got {got}", where)
    branches = []
    for i, branch in enumerate(value):
        if not isinstance(branch, Mapping):
            raise MatcherError(
                f"each $or branch must be an object, not {_kind(branch)}", f"{where}[{i}]"
            )
        branches.append(_compile_object(branch, f"{where}[{i}]"))
    return tuple(branches)


def _compile_leaf(values: list[Any], where: str) -> _Leaf:
    if not values:
        raise MatcherError("empty arrays are not allowed", where)
    strings: set[str] = set()
    numbers: set[int | float] = set()
    consts: set[bool | None] = set()
    tests: dict[str, list[Test]] = {"str": [], "num": [], "any": []}
    exists: set[bool] = set()
    prefixes: set[str] | None = set()
    for i, value in enumerate(values):
        here = f"{where}[{i}]"
        if prefixes is not None:
            if isinstance(value, str):
                prefixes.add(value)
            elif isinstance(value, Mapping) and set(value) == {"prefix"}:
                operand = value["prefix"]
                prefixes = prefixes | {operand} if isinstance(operand, str) else None
            else:
                prefixes = None
        if isinstance(value, str):
            strings.add(value)
        elif value is None or isinstance(value, bool):
            consts.add(value)
        elif isinstance(value, int | float):
            numbers.add(_finite(value, here))
        elif isinstance(value, Mapping):
            op, operand = _single_key(value, here)
            here = f"{here}.{op}"
            if op == "exists":
                if not isinstance(operand, bool):
                    raise MatcherError("exists takes true or false", here)
                exists.add(operand)
            elif op == "numeric":
                tests["num"].append(_numeric(operand, here))
            elif op == "anything-but":
                tests["any"].append(_anything_but(operand, here))
            elif op == "cidr":
                tests["str"].append(_cidr(operand, here))
            elif op in _STRING_OPS:
                tests["str"].append(_string_op(op, operand, here))
            else:
                raise MatcherError(f"unknown operator {op!r}", here)
        else:
            raise MatcherError(
                "a match value must be a string, number, true, false, null or an operator "
                f"object, not {_kind(value)}",
                here,
            )
    return _Leaf(
        strings=frozenset(strings),
        numbers=frozenset(numbers),
        consts=frozenset(consts),
        exists_true=True in exists,
        exists_false=False in exists,
        str_tests=tuple(tests["str"]),
        num_tests=tuple(tests["num"]),
        any_tests=tuple(tests["any"]),
        prefixes=None if prefixes is None else frozenset(prefixes),
    )


def _single_key(obj: Mapping[Any, Any], where: str) -> tuple[str, Any]:
    if len(obj) != 1:
        found = ", ".join(repr(k) for k in obj) or "none"
        raise MatcherError(f"an operator object has exactly one key, found {found}", where)
    ((op, operand),) = obj.items()
    if not isinstance(op, str):
        raise MatcherError(f"operator names are strings, not {_kind(op)}", where)
    return op, operand


def _string_op(op: str, operand: object, where: str) -> Test:
    """prefix / suffix (optionally ``{"equals-ignore-case": s}``), equals-ignore-case, wildcard."""
    if op in ("prefix", "suffix") and isinstance(operand, Mapping):
        inner, text = _single_key(operand, where)
        if inner != "equals-ignore-case":
            raise MatcherError(f"unsupported {op} operator {inner!r}", where)
        text = _string(text, f"{where}.{inner}")
        low, size = text.lower(), len(text) + _CASE_MARGIN
        if op == "prefix":
            return lambda v: v[:size].lower().startswith(low)
        return lambda v: v[-size:].lower().endswith(low)
    text = _string(operand, where)
    if op == "prefix":
        return lambda v: v.startswith(text)
    if op == "suffix":
        return lambda v: v.endswith(text)
    if op == "equals-ignore-case":
        return _ci_equals(frozenset({text.lower()}))
    return _wildcard(_wildcard_segments(text, where))


def _any_of(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(test(v) for test in tests)


def _ci_equals(lowered: frozenset[str]) -> Test:
    longest = max(map(len, lowered))  # str.lower never shortens a string

    def test(v: str) -> bool:
        return len(v) <= longest and v.lower() in lowered

    return test


def _wildcard_segments(text: str, where: str) -> tuple[str, ...]:
    """Split on unescaped ``*``; ``\\*`` is a star, ``\\\\`` a backslash, nothing else escapes."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise MatcherError(f"invalid escape at position {i}: only \\* and \\\\", where)
            current.append(text[i + 1])
            i += 2
            continue
        if c == "*":
            if i + 1 < len(text) and text[i + 1] == "*":
                raise MatcherError(f"consecutive wildcard characters at position {i}", where)
            segments.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    segments.append("".join(current))
    return tuple(segments)


def _wildcard(segments: tuple[str, ...]) -> Test:
    if len(segments) == 1:
        literal = segments[0]
        return lambda v: v == literal
    first, middle, last = segments[0], segments[1:-1], segments[-1]
    fixed = len(first) + len(last)

    def test(v: str) -> bool:
        if len(v) < fixed or not v.startswith(first) or not v.endswith(last):
            return False
        pos, end = len(first), len(v) - len(last)
        for segment in middle:  # leftmost placement is optimal for ``*`` globs
            found = v.find(segment, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True

    return test


def _cidr(operand: object, where: str) -> Test:
    text = _string(operand, where)
    if "/" not in text:
        raise MatcherError(f"invalid CIDR {text!r}: a prefix length (/n) is required", where)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise MatcherError(f"invalid CIDR {text!r}: {exc}", where) from None

    def test(v: str) -> bool:
        if len(v) > 64:  # longer than any textual IP address, with room for a zone id
            return False
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return test


def _numeric(operand: object, where: str) -> Test:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise MatcherError("numeric takes [op, n] or [op, n, op, n]", where)
    ops = operand[0::2]
    bounds = [_bound(v, f"{where}[{2 * i + 1}]") for i, v in enumerate(operand[1::2])]
    for i, op in enumerate(ops):
        if op not in ("=", "<", "<=", ">", ">="):
            raise MatcherError(f"unknown numeric operator {op!r}", f"{where}[{2 * i}]")
    if len(ops) == 1:
        op, n = ops[0], bounds[0]
        if op == "=":
            return lambda v: v == n
        if op in _LOW_OPS:
            return _range(n, _LOW_OPS[op], math.inf, False)
        return _range(-math.inf, False, n, _HIGH_OPS[op])
    if ops[0] not in _LOW_OPS or ops[1] not in _HIGH_OPS:
        raise MatcherError("a numeric range is [> or >=, low, < or <=, high]", where)
    if not bounds[0] < bounds[1]:
        raise MatcherError(f"numeric range is empty: {bounds[0]} is not below {bounds[1]}", where)
    return _range(bounds[0], _LOW_OPS[ops[0]], bounds[1], _HIGH_OPS[ops[1]])


def _range(low: float, low_in: bool, high: float, high_in: bool) -> Test:
    above, below = operator.le if low_in else operator.lt, operator.le if high_in else operator.lt
    return lambda v: above(low, v) and below(v, high)


def _bound(value: object, where: str) -> float:
    number = _finite(value, where)
    if not -NUMERIC_LIMIT <= number <= NUMERIC_LIMIT:
        raise MatcherError(f"numeric bound {number} is outside [-5e9, 5e9]", where)
    return float(number)


def _anything_but(operand: object, where: str) -> Test:
    """Any leaf value (string, number, boolean, null) except the ones described."""
    if isinstance(operand, Mapping):
        op, inner = _single_key(operand, where)
        here = f"{where}.{op}"
        if op not in _STRING_OPS:
            raise MatcherError(f"unsupported anything-but operator {op!r}", here)
        if isinstance(inner, list):
            texts = [_string(t, f"{here}[{i}]") for i, t in enumerate(inner)]
        else:
            texts = [_string(inner, here)]
        if not texts or (op in ("prefix", "suffix") and "" in texts):
            raise MatcherError(f"anything-but {op} needs non-empty strings", here)
        if op == "equals-ignore-case":
            excluded = _ci_equals(frozenset(t.lower() for t in texts))
        else:
            excluded = _any_of(tuple(_string_op(op, t, here) for t in texts))
        return lambda v: not (isinstance(v, str) and excluded(v))
    items = operand if isinstance(operand, list) else [operand]
    kinds = {_kind(v) for v in items}
    if kinds not in ({"a string"}, {"a number"}):
        raise MatcherError(
            "anything-but takes a string, a number, a non-empty array of only strings or "
            "only numbers, or an operator object",
            where,
        )
    strings = frozenset(v for v in items if isinstance(v, str))
    numbers = frozenset(_finite(v, where) for v in items if not isinstance(v, str))
    if strings:
        return lambda v: not (isinstance(v, str) and v in strings)
    return lambda v: isinstance(v, bool) or not (isinstance(v, int | float) and v in numbers)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise MatcherError(f"expected a string, not {_kind(value)}", where)
    return value


def _finite(value: object, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MatcherError(f"expected a number, not {_kind(value)}", where)
    if isinstance(value, float) and not math.isfinite(value):
        raise MatcherError(f"expected a finite number, not {value}", where)
    return value


def _kind(value: object) -> str:
    for cls, name in _KINDS:
        if isinstance(value, cls):
            return name
    return type(value).__name__
