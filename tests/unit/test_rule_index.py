"""The rule index is an optimisation only: indexed and naive engines agree on every event."""

from __future__ import annotations

import json

from tests.unit.shared_data import DATASET
from veilleur.model import TrailEvent
from veilleur.rules.engine import Engine, RuleIndex
from veilleur.rules.event_pattern import compile_event_pattern
from veilleur.rules.loader import load_rules, parse_rules

MIXED = [
    {"id": "by-name", "match": {"eventName": ["CreateRoute", "DeleteRoute"]}},
    {"id": "by-source", "match": {"eventSource": ["iam.amazonaws.com"], "readOnly": [False]}},
    {"id": "by-prefix", "match": {"eventName": [{"prefix": "Describe"}, "GetCallerIdentity"]}},
    {
        "id": "prefix-in-or",
        "match": {
            "$or": [{"eventName": [{"prefix": "Put"}]}, {"eventName": [{"prefix": "Delete"}]}]
        },
    },
    {"id": "ci-prefix", "match": {"eventName": [{"prefix": {"equals-ignore-case": "list"}}]}},
    {"id": "anything", "match": {"errorCode": [{"exists": True}]}},
    {"id": "filter", "filter_pattern": '{ $.eventName = "Create*" && $.readOnly IS FALSE }'},
]


def rules() -> list:
    raw = [{"title": r["id"], "severity": "low", **r} for r in MIXED]
    return parse_rules(json.dumps(raw), "test") + load_rules(["builtin:cis", "builtin:essentials"])


def test_prefixes_are_sound_and_only_for_case_sensitive_prefixes() -> None:
    p = compile_event_pattern({"eventName": [{"prefix": "Describe"}, "GetCallerIdentity"]})
    assert p.required_prefixes(("eventName",)) == frozenset({"Describe", "GetCallerIdentity"})
    ci = compile_event_pattern({"eventName": [{"prefix": {"equals-ignore-case": "list"}}]})
    assert ci.required_prefixes(("eventName",)) is None
    mixed = compile_event_pattern({"eventName": [{"prefix": "Get"}, {"suffix": "Policy"}]})
    assert mixed.required_prefixes(("eventName",)) is None
    ors = compile_event_pattern(
        {"$or": [{"eventName": [{"prefix": "Put"}]}, {"eventName": ["DeleteBucket"]}]}
    )
    assert ors.required_prefixes(("eventName",)) == frozenset({"Put", "DeleteBucket"})


def test_prefix_rules_are_only_tried_on_names_they_can_match() -> None:
    index = RuleIndex(rules())
    ids = {r.id for r in index.candidates("DescribeInstances", "ec2.amazonaws.com")}
    assert "by-prefix" in ids and "prefix-in-or" not in ids
    ids = {r.id for r in index.candidates("PutBucketPolicy", "s3.amazonaws.com")}
    assert "prefix-in-or" in ids and "by-prefix" not in ids
    assert "ci-prefix" in {r.id for r in index.candidates("Whatever", "x.amazonaws.com")}


def test_indexed_and_naive_engines_raise_the_same_alerts_on_real_trails() -> None:
    import gzip

    records = []
    for path in sorted(DATASET.glob("*.json.gz")):
        with gzip.open(path) as fh:
            records += json.load(fh)["Records"]
    assert records, "the shared dataset is needed for this test"
    events = sorted(
        (TrailEvent.from_record(r) for r in records), key=lambda e: (e.event_time, e.event_id)
    )
    now = events[-1].event_time
    indexed = Engine(rules()).process(events, now)
    naive = Engine(rules(), naive=True).process(events, now)
    assert [a.notification_id for a in indexed] == [a.notification_id for a in naive]
    fired = {a.rule_id for a in indexed}
    assert {"by-name", "by-prefix", "anything", "filter"} <= fired
