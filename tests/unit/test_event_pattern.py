"""The EventBridge event-pattern dialect (``match:``): semantics, validation, index hints."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veilleur.rules.event_pattern import compile_event_pattern
from veilleur.rules.matcher import MatcherError


def matches(pattern: dict[str, Any], record: Any) -> bool:
    return compile_event_pattern(pattern).matches(record)


LOGIN = {
    "eventName": "ConsoleLogin",
    "eventSource": "signin.amazonaws.com",
    "sourceIPAddress": "203.0.113.9",
    "userIdentity": {"type": "IAMUser", "userName": "alice", "invokedBy": None},
    "responseElements": {"ConsoleLogin": "Failure"},
    "errorMessage": "Failed authentication",
    "additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com"},
    "readOnly": False,
    "eventVersion": "1.08",
    "resources": [{"ARN": "arn:aws:iam::1:user/alice", "type": "AWS::IAM::User"}],
    "tags": ["prod", "eu"],
    "count": 7,
    "ratio": 0.25,
    "empty": "",
    "nothing": [],
    "deep": {"a": {"b": {"c": [1, [2, [3]]]}}},
}


class TestExactValues:
    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ({"eventName": ["ConsoleLogin"]}, True),
            ({"eventName": ["consolelogin"]}, False),  # case-sensitive
            ({"eventName": ["GetObject", "ConsoleLogin"]}, True),  # any value of the array
            ({"eventName": ["ConsoleLogin"], "readOnly": [True]}, False),  # fields are ANDed
            ({"readOnly": [False]}, True),
            ({"readOnly": ["false"]}, False),  # JSON types are distinct
            ({"readOnly": [0]}, False),  # false is not 0
            ({"count": [7]}, True),
            ({"count": [7.0]}, True),  # numbers compare as numbers
            ({"count": ["7"]}, False),
            ({"count": [True]}, False),
            ({"ratio": [0.25]}, True),
            ({"empty": [""]}, True),
            ({"empty": [None]}, False),  # empty string is not null
            ({"userIdentity": {"invokedBy": [None]}}, True),
            ({"userIdentity": {"invokedBy": [""]}}, False),
            ({"userIdentity": {"sessionContext": [None]}}, False),  # missing is not null
            ({"userIdentity": {"type": ["IAMUser"]}}, True),
            ({"userIdentity": ["IAMUser"]}, False),  # an object is not a leaf value
            ({"eventName": {"sub": ["x"]}}, False),  # a string has no fields
            ({"deep": {"a": {"b": {"c": [3]}}}}, True),  # nested arrays are flattened
            ({"tags": ["eu"]}, True),  # an array matches if any element does
            ({"tags": ["us"]}, False),
        ],
    )
    def test_exact(self, pattern: dict[str, Any], expected: bool) -> None:
        assert matches(pattern, LOGIN) is expected

    def test_true_is_not_one(self) -> None:
        assert not matches({"x": [1]}, {"x": True})
        assert not matches({"x": [True]}, {"x": 1})
        assert matches({"x": [True]}, {"x": True})
        assert not matches({"x": [False]}, {"x": 0})

    def test_large_integers_like_account_ids(self) -> None:
        assert matches({"account": [123456789012]}, {"account": 123456789012})
        assert not matches({"account": [123456789012]}, {"account": "123456789012"})


class TestStringOperators:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ({"prefix": "Console"}, "ConsoleLogin", True),
            ({"prefix": "console"}, "ConsoleLogin", False),
            ({"prefix": ""}, "anything", True),
            ({"prefix": "1"}, 12, False),  # strings only
            ({"prefix": {"equals-ignore-case": "CONSOLE"}}, "consoleLogin", True),
            ({"prefix": {"equals-ignore-case": "x"}}, "ConsoleLogin", False),
            ({"suffix": "Login"}, "ConsoleLogin", True),
            ({"suffix": "login"}, "ConsoleLogin", False),
            ({"suffix": {"equals-ignore-case": "LOGIN"}}, "ConsoleLogin", True),
            ({"equals-ignore-case": "consolelogin"}, "CONSOLELOGIN", True),
            ({"equals-ignore-case": "consolelogin"}, "ConsoleLogin2", False),
            ({"equals-ignore-case": "7"}, 7, False),
            ({"wildcard": "*Login"}, "ConsoleLogin", True),
            ({"wildcard": "Con*Log*"}, "ConsoleLogin", True),
            ({"wildcard": "*"}, "", True),
            ({"wildcard": "a*b*a"}, "aba", True),
            ({"wildcard": "a*b*a"}, "ab", False),
            ({"wildcard": "a*a"}, "a", False),  # the two a's cannot overlap
            ({"wildcard": "*/lib/*"}, "/usr/lib/x", True),
            ({"wildcard": "a*b"}, "a\nb", True),  # a star matches any character
            ({"wildcard": r"a\*b"}, "a*b", True),  # escaped star is literal
            ({"wildcard": r"a\*b"}, "axb", False),
            ({"wildcard": "a\\\\*"}, "a\\xyz", True),  # escaped backslash, then a star
            ({"wildcard": "exact"}, "exact", True),
            ({"wildcard": "exact"}, "exactly", False),
            ({"wildcard": "*"}, 5, False),
            ({"cidr": "10.0.0.0/24"}, "10.0.0.255", True),
            ({"cidr": "10.0.0.0/24"}, "10.0.1.0", False),
            ({"cidr": "10.0.0.1/24"}, "10.0.0.7", True),  # host bits are ignored
            ({"cidr": "2001:db8::/32"}, "2001:db8:0:1::5", True),
            ({"cidr": "2001:db8::/32"}, "2001:db9::5", False),
            ({"cidr": "0.0.0.0/0"}, "::1", False),  # families never mix
            ({"cidr": "10.0.0.0/8"}, "ec2.amazonaws.com", False),
            ({"cidr": "10.0.0.0/8"}, 167772161, False),  # a number is not an address
            ({"cidr": "10.0.0.0/8"}, "10." * 10_000, False),
        ],
    )
    def test_operator(self, condition: dict[str, Any], value: Any, expected: bool) -> None:
        assert matches({"f": [condition]}, {"f": value}) is expected
        assert not matches({"f": [condition]}, {"g": value})  # never on a missing field

    def test_case_folding_is_unicode_aware(self) -> None:
        assert matches({"f": [{"equals-ignore-case": "ÉTÉ"}]}, {"f": "été"})
        assert matches({"f": [{"prefix": {"equals-ignore-case": "ΣΟ"}}]}, {"f": "σοφία"})

    @given(st.text(alphabet="ab*", max_size=8), st.text(alphabet="ab*", max_size=12))
    def test_wildcard_agrees_with_a_reference(self, glob: str, value: str) -> None:
        if "**" in glob:
            return
        reference = re.fullmatch(".*".join(map(re.escape, glob.split("*"))), value, re.S)
        # a '*' in the value is an ordinary character
        assert matches({"f": [{"wildcard": glob}]}, {"f": value}) is bool(reference)

    def test_wildcard_is_linear_on_hostile_input(self) -> None:
        # a backtracking regex would take ages here
        assert not matches({"f": [{"wildcard": "*a*a*a*a*a*a*a*b"}]}, {"f": "a" * 50_000})


class TestAnythingBut:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ({"anything-but": "Root"}, "IAMUser", True),
            ({"anything-but": "Root"}, "Root", False),
            ({"anything-but": "Root"}, 5, True),  # any other value, of any type
            ({"anything-but": "Root"}, None, True),
            ({"anything-but": ["Root", "AWSService"]}, "AWSService", False),
            ({"anything-but": ["Root", "AWSService"]}, "IAMUser", True),
            ({"anything-but": 123}, 123, False),
            ({"anything-but": 123}, 123.0, False),
            ({"anything-but": 123}, "123", True),
            ({"anything-but": [100, 200]}, 300, True),
            ({"anything-but": [1]}, True, True),
            ({"anything-but": {"prefix": "us-"}}, "us-east-1", False),
            ({"anything-but": {"prefix": "us-"}}, "eu-west-1", True),
            ({"anything-but": {"prefix": ["us-", "eu-"]}}, "eu-west-1", False),
            ({"anything-but": {"suffix": ".png"}}, "a.png", False),
            ({"anything-but": {"suffix": ".png"}}, "a.jpg", True),
            ({"anything-but": {"equals-ignore-case": "root"}}, "ROOT", False),
            ({"anything-but": {"equals-ignore-case": ["root", "x"]}}, "X", False),
            ({"anything-but": {"equals-ignore-case": "root"}}, "Roots", True),
            ({"anything-but": {"wildcard": "*/lib/*"}}, "/usr/lib/a", False),
            ({"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}, "/usr/bin/a", False),
            ({"anything-but": {"wildcard": "*/lib/*"}}, "/usr/share/a", True),
        ],
    )
    def test_operator(self, condition: dict[str, Any], value: Any, expected: bool) -> None:
        assert matches({"f": [condition]}, {"f": value}) is expected

    def test_missing_field_never_matches(self) -> None:
        assert not matches({"f": [{"anything-but": "x"}]}, {})
        assert not matches({"f": [{"anything-but": "x"}]}, {"f": {"nested": 1}})

    def test_array_matches_if_some_element_is_not_excluded(self) -> None:
        assert matches({"f": [{"anything-but": "a"}]}, {"f": ["a", "b"]})
        assert not matches({"f": [{"anything-but": "a"}]}, {"f": ["a", "a"]})


class TestNumeric:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ([">", 0, "<=", 5], 5, True),
            ([">", 0, "<=", 5], 0, False),
            ([">=", 0, "<", 5], 0, True),
            ([">=", 0, "<", 5], 5, False),
            (["<", 10], 9.999, True),
            (["<", 10], 10, False),
            (["<=", 10], 10, True),
            ([">", 10], 10.000001, True),
            (["=", 3.018e2], 301.8, True),
            (["=", 300], 300.0, True),
            (["=", 300], "300", False),  # JSON numbers only
            ([">", 0], True, False),  # booleans are not numbers
            ([">", 0], None, False),
            ([">", 0], float("nan"), False),
            ([">", 0], 10**400, True),  # huge integers compare exactly, no overflow
            (["<", 0], -(10**400), True),
        ],
    )
    def test_operator(self, condition: list[Any], value: Any, expected: bool) -> None:
        assert matches({"f": [{"numeric": condition}]}, {"f": value}) is expected

    def test_any_element_of_an_array(self) -> None:
        assert matches({"f": [{"numeric": [">", 5]}]}, {"f": [1, "9", 6]})


class TestExists:
    @pytest.mark.parametrize(
        ("value", "exists"),
        [
            ("x", True),
            ("", True),
            (None, True),  # null is a value
            (0, True),
            (False, True),
            (["a"], True),
            ([], False),  # no leaf value
            ([[], []], False),
            ({"c1": 100}, False),  # exists only sees leaves: an object does not count
            ({}, False),
            ([{"c1": 100}], False),
        ],
    )
    def test_leaf_semantics(self, value: Any, exists: bool) -> None:
        assert matches({"f": [{"exists": True}]}, {"f": value}) is exists
        assert matches({"f": [{"exists": False}]}, {"f": value}) is not exists

    def test_absent_field(self) -> None:
        assert matches({"f": [{"exists": False}]}, {})
        assert not matches({"f": [{"exists": True}]}, {})

    def test_absent_parent_and_scalar_parent(self) -> None:
        pattern = {"userIdentity": {"invokedBy": [{"exists": False}]}}
        assert matches(pattern, {"eventName": "x"})
        assert matches(pattern, {"userIdentity": "a string"})
        assert matches(pattern, {"userIdentity": {"type": "Root"}})
        assert not matches(pattern, {"userIdentity": {"invokedBy": "ec2.amazonaws.com"}})

    def test_combined_with_values(self) -> None:
        pattern = {"f": ["a", {"exists": False}]}
        assert matches(pattern, {})
        assert matches(pattern, {"f": "a"})
        assert not matches(pattern, {"f": "b"})


class TestOrAndStructure:
    def test_top_level_or(self) -> None:
        pattern = {
            "eventSource": ["signin.amazonaws.com"],
            "$or": [{"errorMessage": [{"exists": True}]}, {"userIdentity": {"type": ["Root"]}}],
        }
        assert matches(pattern, LOGIN)
        assert not matches(pattern, {**LOGIN, "errorMessage": [], "userIdentity": {}})
        assert matches(pattern, {**LOGIN, "errorMessage": [], "userIdentity": {"type": "Root"}})

    def test_nested_or_inside_an_object_and_inside_a_branch(self) -> None:
        pattern = {
            "userIdentity": {
                "$or": [
                    {"type": ["Root"]},
                    {"type": ["IAMUser"], "$or": [{"userName": ["bob"]}, {"userName": ["alice"]}]},
                ]
            }
        }
        assert matches(pattern, LOGIN)
        assert not matches(pattern, {"userIdentity": {"type": "IAMUser", "userName": "eve"}})
        assert matches(pattern, {"userIdentity": {"type": "Root"}})

    def test_parallel_ors_are_anded(self) -> None:
        pattern = {"$or": [{"a": ["1"]}, {"b": ["1"]}], "c": {"$or": [{"d": ["1"]}, {"e": ["1"]}]}}
        assert matches(pattern, {"a": "1", "c": {"e": "1"}})
        assert not matches(pattern, {"a": "1", "c": {"f": "1"}})

    def test_array_of_objects_is_matched_element_by_element(self) -> None:
        record = {"resources": [{"type": "AWS::S3::Bucket", "ARN": "a"}, {"type": "T", "ARN": "b"}]}
        assert matches({"resources": {"type": ["T"]}}, record)
        assert matches({"resources": {"type": ["T"], "ARN": ["b"]}}, record)
        # both fields must come from the same element
        assert not matches({"resources": {"type": ["T"], "ARN": ["a"]}}, record)
        assert matches({"resources": {"ARN": [{"exists": False}]}}, {"resources": []})

    def test_non_mapping_records_do_not_raise(self) -> None:
        pattern = compile_event_pattern({"a": [{"exists": False}]})
        assert pattern.matches([])  # type: ignore[arg-type]
        assert not compile_event_pattern({"a": ["x"]}).matches("text")  # type: ignore[arg-type]


class TestValidation:
    @pytest.mark.parametrize(
        ("pattern", "where", "message"),
        [
            ("{}", "", "must be an object"),
            ({}, "", "empty objects"),
            ({"a": {}}, "a", "empty objects"),
            ({"eventName": "ConsoleLogin"}, "eventName", "object or an array"),
            ({"eventName": 5}, "eventName", "object or an array"),
            ({"eventName": []}, "eventName", "empty arrays"),
            ({"a": [["x"]]}, "a[0]", "match value"),
            ({"errorCode": ["x", {"prefix": 5}]}, "errorCode[1].prefix", "string"),
            ({"a": [{"prefix": ["x"]}]}, "a[0].prefix", "string"),
            ({"a": [{"prefix": {"wildcard": "x"}}]}, "a[0].prefix", "unsupported prefix"),
            ({"a": [{"suffix": None}]}, "a[0].suffix", "string"),
            ({"a": [{"regex": "x"}]}, "a[0].regex", "unknown operator"),
            ({"a": [{}]}, "a[0]", "exactly one key"),
            ({"a": [{"prefix": "x", "suffix": "y"}]}, "a[0]", "exactly one key"),
            ({"a": [{"exists": "true"}]}, "a[0].exists", "true or false"),
            ({"a": [{"equals-ignore-case": 1}]}, "a[0].equals-ignore-case", "string"),
            ({"a": [{"wildcard": "a**b"}]}, "a[0].wildcard", "consecutive"),
            ({"a": [{"wildcard": r"a\b"}]}, "a[0].wildcard", "escape"),
            ({"a": [{"wildcard": "a\\"}]}, "a[0].wildcard", "escape"),
            ({"a": [{"cidr": "10.0.0.1"}]}, "a[0].cidr", "prefix length"),
            ({"a": [{"cidr": "10.0.0.0/33"}]}, "a[0].cidr", "invalid CIDR"),
            ({"a": [{"cidr": "nope/8"}]}, "a[0].cidr", "invalid CIDR"),
            ({"a": [{"numeric": ">"}]}, "a[0].numeric", "numeric takes"),
            ({"a": [{"numeric": [">", 1, "<"]}]}, "a[0].numeric", "numeric takes"),
            ({"a": [{"numeric": ["!=", 1]}]}, "a[0].numeric[0]", "unknown numeric operator"),
            ({"a": [{"numeric": [">", "1"]}]}, "a[0].numeric[1]", "number"),
            ({"a": [{"numeric": [">", True]}]}, "a[0].numeric[1]", "number"),
            ({"a": [{"numeric": [">", 6e9]}]}, "a[0].numeric[1]", "outside"),
            ({"a": [{"numeric": [">", 5, "<", 5]}]}, "a[0].numeric", "empty"),
            ({"a": [{"numeric": [">", 1, ">", 5]}]}, "a[0].numeric", "range is"),
            ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "a[0].numeric", "range is"),
            ({"a": [{"numeric": ["=", 5, "<", 6]}]}, "a[0].numeric", "range is"),
            ({"a": [float("nan")]}, "a[0]", "finite"),
            ({"a": [{"anything-but": []}]}, "a[0].anything-but", "anything-but takes"),
            ({"a": [{"anything-but": ["x", 1]}]}, "a[0].anything-but", "only strings"),
            ({"a": [{"anything-but": None}]}, "a[0].anything-but", "anything-but takes"),
            ({"a": [{"anything-but": [True]}]}, "a[0].anything-but", "anything-but takes"),
            (
                {"a": [{"anything-but": {"numeric": [">", 1]}}]},
                "a[0].anything-but.numeric",
                "unsupported",
            ),
            ({"a": [{"anything-but": {"prefix": ""}}]}, "a[0].anything-but.prefix", "non-empty"),
            ({"a": [{"anything-but": {"suffix": 1}}]}, "a[0].anything-but.suffix", "string"),
            (
                {"a": [{"anything-but": {"wildcard": "**"}}]},
                "a[0].anything-but.wildcard",
                "consecutive",
            ),
            ({"$or": {"a": ["x"]}}, "$or", "at least 2"),
            ({"$or": [{"a": ["x"]}]}, "$or", "at least 2"),
            ({"$or": [{"a": ["x"]}, "b"]}, "$or[1]", "branch must be an object"),
            ({"$or": [{"a": ["x"]}, {}]}, "$or[1]", "empty objects"),
            (
                {"$or": [{"a": ["x"]}, {"userIdentity": {"type": "Root"}}]},
                "$or[1].userIdentity.type",
                "object or an array",
            ),
            ({1: ["x"]}, "", "field names must be strings"),
        ],
    )
    def test_rejected_with_location(self, pattern: Any, where: str, message: str) -> None:
        with pytest.raises(MatcherError) as caught:
            compile_event_pattern(pattern)
        assert caught.value.where == where
        assert message in caught.value.message

    def test_deeply_nested_pattern_is_an_error_not_a_crash(self) -> None:
        pattern: dict[str, Any] = {"leaf": ["x"]}
        for _ in range(5000):
            pattern = {"n": pattern}
        with pytest.raises(MatcherError, match="nested too deeply"):
            compile_event_pattern(pattern)


class TestRequiredValues:
    @pytest.mark.parametrize(
        ("pattern", "path", "expected"),
        [
            ({"eventName": ["A", "B"]}, ("eventName",), {"A", "B"}),
            ({"eventName": ["A"]}, ("eventSource",), None),
            ({"eventName": ["A", {"prefix": "B"}]}, ("eventName",), None),
            ({"eventName": [{"anything-but": "A"}]}, ("eventName",), None),
            ({"eventName": ["A", {"exists": True}]}, ("eventName",), None),
            ({"readOnly": [False]}, ("readOnly",), {False}),
            ({"a": [None, 1]}, ("a",), {None, 1}),
            ({"userIdentity": {"type": ["Root"]}}, ("userIdentity", "type"), {"Root"}),
            ({"userIdentity": {"type": ["Root"]}}, ("userIdentity",), None),
            ({"userIdentity": ["x"]}, ("userIdentity", "type"), None),
            ({"$or": [{"eventName": ["A"]}, {"eventName": ["B"]}]}, ("eventName",), {"A", "B"}),
            ({"$or": [{"eventName": ["A"]}, {"eventSource": ["s"]}]}, ("eventName",), None),
            (
                {"eventName": ["A", "B"], "$or": [{"eventName": ["B", "C"]}, {"eventName": ["B"]}]},
                ("eventName",),
                {"B"},
            ),
            (
                {"$or": [{"u": {"t": ["R"]}}, {"$or": [{"u": {"t": ["S"]}}, {"u": {"t": ["T"]}}]}]},
                ("u", "t"),
                {"R", "S", "T"},
            ),
            ({"eventName": ["A"]}, (), None),
        ],
    )
    def test_values(
        self, pattern: dict[str, Any], path: tuple[str, ...], expected: set[Any] | None
    ) -> None:
        got = compile_event_pattern(pattern).required_values(path)
        assert got == (None if expected is None else frozenset(expected))


# -- properties ------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["f", "g", "x", "$or"]) | st.text(max_size=3), children, max_size=4
        )
    ),
    max_leaves=25,
)

CONDITIONS = [
    "x",
    1,
    0.5,
    True,
    None,
    "",
    {"prefix": "a"},
    {"suffix": {"equals-ignore-case": "A"}},
    {"equals-ignore-case": "X"},
    {"wildcard": "*a*"},
    {"cidr": "10.0.0.0/8"},
    {"cidr": "::/0"},
    {"numeric": [">", 0, "<=", 5]},
    {"exists": True},
    {"exists": False},
    {"anything-but": ["x", "y"]},
    {"anything-but": 1},
    {"anything-but": {"wildcard": "a*"}},
    {"anything-but": {"equals-ignore-case": "X"}},
]
PATTERN = st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=3).flatmap(
    lambda leaf: st.sampled_from(
        [
            {"f": leaf},
            {"f": {"g": leaf}},
            {"$or": [{"f": leaf}, {"x": {"g": leaf}}]},
            {"f": {"$or": [{"g": leaf}, {"x": ["x"]}]}, "x": leaf},
        ]
    )
)


@settings(max_examples=400, deadline=None)
@given(PATTERN, JSON)
def test_matching_never_raises_and_is_a_bool(pattern: dict[str, Any], record: Any) -> None:
    compiled = compile_event_pattern(pattern)
    assert compiled.matches(record) in (True, False)
    if isinstance(record, dict):
        assert compiled.matches({"f": record, "x": record}) in (True, False)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_compiling_arbitrary_json_either_works_or_raises_matcher_error(pattern: Any) -> None:
    try:
        compiled = compile_event_pattern(pattern)
    except MatcherError as exc:
        message = exc.message
    else:
        message = "compiled"
        assert compiled.matches({"f": pattern}) in (True, False)
    assert message


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["A", "B", "C", 1, None, False]), min_size=1, max_size=3), JSON)
def test_required_values_are_sound(values: list[Any], value: Any) -> None:
    pattern = compile_event_pattern({"$or": [{"k": values}, {"k": values[:1]}]})
    pinned = pattern.required_values(("k",))
    assert pinned is not None
    scalar = not isinstance(value, (list, dict))
    if scalar and pattern.matches({"k": value}):
        assert any(value == p and type(value) is type(p) for p in pinned) or value in pinned


def test_very_deep_record_does_not_raise() -> None:
    value: Any = "x"
    for _ in range(50_000):
        value = [value]
    assert matches({"f": ["x"]}, {"f": value})
    assert matches({"f": {"g": [{"exists": False}]}}, {"f": value})
