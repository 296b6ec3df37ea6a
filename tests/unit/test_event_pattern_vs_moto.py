"""Differential test: veilleur's event-pattern matcher against moto's, in-process.

Each case carries the outcome the EventBridge documentation prescribes. veilleur must give
that outcome in every case; moto must agree with veilleur, except in the cases listed in
MOTO_DIVERGENCES, where moto is known to disagree with the documentation (each one is
explained in docs/event-pattern.md, "Differences from moto"). Those cases are strict xfails:
if a moto upgrade fixes one, the test fails and the list must shrink.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from veilleur.rules.event_pattern import compile_event_pattern

events_models = pytest.importorskip("moto.events.models")

# (id, pattern over the CloudTrail record, record, outcome per the EventBridge documentation)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # exact values, null, empty string, missing
    ("exact-string", {"eventName": ["ConsoleLogin"]}, {"eventName": "ConsoleLogin"}, True),
    ("exact-other", {"eventName": ["ConsoleLogin"]}, {"eventName": "GetObject"}, False),
    ("exact-case", {"eventName": ["consolelogin"]}, {"eventName": "ConsoleLogin"}, False),
    ("exact-list", {"eventName": ["A", "B"]}, {"eventName": "B"}, True),
    (
        "exact-and",
        {"eventName": ["A"], "readOnly": [False]},
        {"eventName": "A", "readOnly": True},
        False,
    ),
    ("exact-number", {"count": [5]}, {"count": 5}, True),
    ("exact-number-float", {"count": [5]}, {"count": 5.0}, True),
    ("exact-number-vs-string", {"count": ["5"]}, {"count": 5}, False),
    ("exact-bool", {"readOnly": [False]}, {"readOnly": False}, True),
    ("exact-bool-vs-string", {"readOnly": ["false"]}, {"readOnly": False}, False),
    ("exact-true-vs-1", {"flag": [True]}, {"flag": 1}, False),
    ("exact-1-vs-true", {"flag": [1]}, {"flag": True}, False),
    ("null-matches-null", {"invokedBy": [None]}, {"invokedBy": None}, True),
    ("null-vs-empty", {"invokedBy": [None]}, {"invokedBy": ""}, False),
    ("empty-vs-null", {"invokedBy": [""]}, {"invokedBy": None}, False),
    ("empty-matches-empty", {"invokedBy": [""]}, {"invokedBy": ""}, True),
    ("null-vs-missing", {"invokedBy": [None]}, {}, False),
    ("nested", {"userIdentity": {"type": ["Root"]}}, {"userIdentity": {"type": "Root"}}, True),
    ("nested-parent-scalar", {"userIdentity": {"type": ["Root"]}}, {"userIdentity": "Root"}, False),
    ("leaf-vs-object", {"userIdentity": ["Root"]}, {"userIdentity": {"type": "Root"}}, False),
    # arrays in the record
    ("array-any", {"tags": ["b"]}, {"tags": ["a", "b"]}, True),
    ("array-none", {"tags": ["c"]}, {"tags": ["a", "b"]}, False),
    (
        "array-of-objects",
        {"resources": {"type": ["T"]}},
        {"resources": [{"type": "S"}, {"type": "T"}]},
        True,
    ),
    ("array-prefix", {"tags": [{"prefix": "pr"}]}, {"tags": ["dev", "prod"]}, True),
    # prefix / suffix / equals-ignore-case
    ("prefix", {"eventName": [{"prefix": "Get"}]}, {"eventName": "GetObject"}, True),
    ("prefix-miss", {"eventName": [{"prefix": "get"}]}, {"eventName": "GetObject"}, False),
    ("prefix-number", {"count": [{"prefix": "1"}]}, {"count": 12}, False),
    (
        "prefix-ignore-case",
        {"eventName": [{"prefix": {"equals-ignore-case": "GET"}}]},
        {"eventName": "getObject"},
        True,
    ),
    ("suffix", {"key": [{"suffix": ".png"}]}, {"key": "a.png"}, True),
    (
        "suffix-ignore-case",
        {"key": [{"suffix": {"equals-ignore-case": ".PNG"}}]},
        {"key": "a.png"},
        True,
    ),
    ("equals-ignore-case", {"n": [{"equals-ignore-case": "alice"}]}, {"n": "ALICE"}, True),
    ("equals-ignore-case-miss", {"n": [{"equals-ignore-case": "alice"}]}, {"n": "alicia"}, False),
    # anything-but
    ("ab-string", {"t": [{"anything-but": "Root"}]}, {"t": "IAMUser"}, True),
    ("ab-string-hit", {"t": [{"anything-but": "Root"}]}, {"t": "Root"}, False),
    ("ab-list", {"t": [{"anything-but": ["Root", "X"]}]}, {"t": "X"}, False),
    ("ab-number", {"c": [{"anything-but": 123}]}, {"c": 124}, True),
    ("ab-numbers", {"c": [{"anything-but": [100, 200]}]}, {"c": 200}, False),
    ("ab-missing", {"t": [{"anything-but": "Root"}]}, {}, False),
    ("ab-prefix", {"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "us-east-1"}, False),
    ("ab-prefix-other", {"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "eu-west-1"}, True),
    ("ab-suffix", {"k": [{"anything-but": {"suffix": ".png"}}]}, {"k": "a.jpg"}, True),
    (
        "ab-ignore-case",
        {"s": [{"anything-but": {"equals-ignore-case": "init"}}]},
        {"s": "INIT"},
        False,
    ),
    (
        "ab-ignore-case-list",
        {"s": [{"anything-but": {"equals-ignore-case": ["a", "b"]}}]},
        {"s": "c"},
        True,
    ),
    ("ab-wildcard", {"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/lib/x"}, False),
    (
        "ab-wildcard-other",
        {"p": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"p": "/usr/bin/x"},
        True,
    ),
    # numeric
    ("num-range", {"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 5}, True),
    ("num-range-out", {"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 0}, False),
    ("num-lt", {"c": [{"numeric": ["<", 10]}]}, {"c": 9.5}, True),
    ("num-eq", {"c": [{"numeric": ["=", 3.018e2]}]}, {"c": 301.8}, True),
    ("num-string", {"c": [{"numeric": [">", 0]}]}, {"c": "5"}, False),
    ("num-bool", {"c": [{"numeric": [">", 0]}]}, {"c": True}, False),
    # exists
    ("exists-true", {"e": [{"exists": True}]}, {"e": "x"}, True),
    ("exists-true-null", {"e": [{"exists": True}]}, {"e": None}, True),
    ("exists-true-missing", {"e": [{"exists": True}]}, {}, False),
    ("exists-false-missing", {"e": [{"exists": False}]}, {}, True),
    ("exists-false-present", {"e": [{"exists": False}]}, {"e": "x"}, False),
    ("exists-false-object", {"e": [{"exists": False}]}, {"e": {"c1": 100}}, True),
    ("exists-true-object", {"e": [{"exists": True}]}, {"e": {"c1": 100}}, False),
    ("exists-true-empty-object", {"e": [{"exists": True}]}, {"e": {}}, False),
    ("exists-false-empty-array", {"e": [{"exists": False}]}, {"e": []}, True),
    ("exists-false-objects-array", {"e": [{"exists": False}]}, {"e": [{"c1": 1}]}, True),
    ("exists-false-parent-scalar", {"u": {"i": [{"exists": False}]}}, {"u": "x"}, True),
    # wildcard
    ("wildcard", {"k": [{"wildcard": "dir/*.png"}]}, {"k": "dir/a.png"}, True),
    ("wildcard-miss", {"k": [{"wildcard": "dir/*.png"}]}, {"k": "dir/a.jpg"}, False),
    ("wildcard-escaped-star", {"k": [{"wildcard": "a\\*b"}]}, {"k": "a*b"}, True),
    ("wildcard-escaped-star-miss", {"k": [{"wildcard": "a\\*b"}]}, {"k": "axb"}, False),
    ("wildcard-newline", {"k": [{"wildcard": "a*b"}]}, {"k": "a\nb"}, True),
    # cidr
    ("cidr-v4", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.9"}, True),
    ("cidr-v4-out", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.9"}, False),
    ("cidr-v6", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"}, True),
    ("cidr-not-ip", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "ec2.amazonaws.com"}, False),
    ("cidr-number", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": 167772161}, False),
    # $or
    ("or", {"$or": [{"a": ["1"]}, {"b": ["1"]}]}, {"b": "1"}, True),
    ("or-none", {"$or": [{"a": ["1"]}, {"b": ["1"]}]}, {"c": "1"}, False),
    (
        "or-nested",
        {"u": {"$or": [{"t": ["Root"]}, {"t": ["IAMUser"], "$or": [{"n": ["a"]}, {"n": ["b"]}]}]}},
        {"u": {"t": "IAMUser", "n": "b"}},
        True,
    ),
    (
        "or-nested-miss",
        {"u": {"$or": [{"t": ["Root"]}, {"t": ["IAMUser"], "$or": [{"n": ["a"]}, {"n": ["b"]}]}]}},
        {"u": {"t": "IAMUser", "n": "c"}},
        False,
    ),
]

# id -> why moto's answer differs from the documented one (see docs/event-pattern.md)
MOTO_DIVERGENCES: dict[str, str] = {
    "exact-true-vs-1": "moto compares with Python ==, where True == 1",
    "exact-1-vs-true": "moto compares with Python ==, where 1 == True",
    "array-of-objects": "moto does not look inside arrays of objects",
    "num-bool": "moto treats a JSON boolean as a number (bool is an int in Python)",
    "exists-true-empty-object": "moto sees an empty object as a present leaf",
    "exists-false-empty-array": "moto sees an empty array as a present leaf",
    "exists-false-objects-array": "moto sees an array of objects as a present leaf",
    "wildcard-newline": "moto's wildcard regex lacks DOTALL: * does not match a newline",
    "cidr-number": "moto passes the number to ipaddress.ip_address, which accepts integers",
}

EVENT_ENVELOPE = {
    "version": "0",
    "id": "0d9d3f8e-0000-0000-0000-000000000000",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.cloudtrail",
    "account": "123456789012",
    "time": "2024-01-01T00:00:00Z",
    "region": "eu-west-1",
    "resources": [],
}


def moto_matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """moto wants an EventBridge event: the CloudTrail record sits under ``detail``."""
    compiled = events_models.EventPattern.load(json.dumps({"detail": pattern}))
    return bool(compiled.matches_event({**EVENT_ENVELOPE, "detail": record}))


def _params() -> list[Any]:
    params = []
    for case_id, pattern, record, expected in CASES:
        reason = MOTO_DIVERGENCES.get(case_id)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(pattern, record, expected, id=case_id, marks=marks))
    return params


@pytest.mark.parametrize(("pattern", "record", "expected"), _params())
def test_moto_agrees(pattern: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert moto_matches(pattern, record) is expected


@pytest.mark.parametrize(
    ("pattern", "record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_veilleur_follows_the_documentation(
    pattern: dict[str, Any], record: dict[str, Any], expected: bool
) -> None:
    assert compile_event_pattern(pattern).matches(record) is expected


def test_divergence_list_names_real_cases() -> None:
    assert set(MOTO_DIVERGENCES) <= {c[0] for c in CASES}
    assert len({c[0] for c in CASES}) == len(CASES)


# Patterns EventBridge rejects. veilleur rejects them all; moto accepts these (it only checks
# that leaves are non-empty arrays), so a rule that moto accepts may still be invalid on AWS.
INVALID_BUT_ACCEPTED_BY_MOTO = [
    {"c": [{"numeric": [">", 5, "<", 1]}]},
    {"c": [{"numeric": [">", "five"]}]},
    {"k": [{"wildcard": "a**b"}]},
    {"ip": [{"cidr": "10.0.0.0/33"}]},
    {"k": [{"unknown-operator": 1}]},
    {"$or": [{"a": ["1"]}]},
]


@pytest.mark.parametrize("pattern", INVALID_BUT_ACCEPTED_BY_MOTO)
def test_moto_validates_less_than_eventbridge(pattern: dict[str, Any]) -> None:
    from veilleur.rules.matcher import MatcherError

    with pytest.raises(MatcherError):
        compile_event_pattern(pattern)
    events_models.EventPattern.load(json.dumps({"detail": pattern}))  # no exception
