"""Config and rule files: every error at once, with its path and the offending value."""

from __future__ import annotations

from pathlib import Path

import pytest

from veilleur.config import load_config, parse_config
from veilleur.rules.loader import load_rules, parse_rules
from veilleur.validation import ConfigError

GOOD_RULE = """
- id: console-failures
  title: Failed sign-ins
  severity: high
  filter_pattern: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
  threshold: {count: 5, within: 5m, group_by: [sourceIPAddress]}
  realert: 30m
"""


def errors_of(fn, *args) -> list[str]:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return info.value.messages


def test_a_good_rule_file_compiles() -> None:
    (rule,) = parse_rules(GOOD_RULE, "r.yaml")
    assert rule.id == "console-failures"
    assert rule.threshold is not None
    assert rule.threshold.count == 5
    assert rule.threshold.within.total_seconds() == 300
    assert rule.realert is not None
    assert rule.realert.total_seconds() == 1800
    assert rule.matcher.required_values(("eventName",)) == frozenset({"ConsoleLogin"})


def test_every_rule_error_is_reported_with_its_path() -> None:
    text = """
rules:
  - id: Bad_Id
    title: x
    severity: urgent
    match: {eventName: [A]}
  - id: two-matchers
    title: x
    severity: low
    match: {eventName: [A]}
    filter_pattern: '{ $.a = 1 }'
  - id: bad-duration
    title: x
    severity: low
    match: {eventName: [A]}
    threshold: {count: 5, within: 5 minutes}
  - id: bad-pattern
    title: x
    severity: low
    match: {errorCode: [{prefix: 5}]}
  - id: bad-filter
    title: x
    severity: low
    filter_pattern: '{ ($.a = 1 }'
  - id: unknown-field
    title: x
    severity: low
    match: {eventName: [A]}
    treshold: {count: 1}
"""
    msgs = errors_of(parse_rules, text, "f.yaml")
    joined = "\n".join(msgs)
    assert "rules[0] (Bad_Id).id: invalid rule id" in joined
    assert "rules[0] (Bad_Id).severity" in joined and "urgent" in joined
    assert "rules[1] (two-matchers): exactly one of `match` or `filter_pattern`" in joined
    assert 'rules[2] (bad-duration).threshold.within: invalid duration "5 minutes"' in joined
    assert "rules[3] (bad-pattern).match.errorCode[0].prefix" in joined
    assert "rules[4] (bad-filter).filter_pattern:" in joined
    assert "rules[5] (unknown-field).treshold: unknown field" in joined
    assert all(m.startswith("f.yaml: ") for m in msgs)


def test_yaml_syntax_error_and_wrong_shape() -> None:
    assert "not valid YAML" in errors_of(parse_rules, "rules: [", "x.yaml")[0]
    assert "expected a list of rules" in errors_of(parse_rules, "a: 1", "x.yaml")[0]


def test_duplicate_ids_across_files_and_unknown_pack(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(GOOD_RULE)
    b = tmp_path / "b.yaml"
    b.write_text(GOOD_RULE)
    msgs = errors_of(load_rules, [str(a), str(b), "builtin:nope", str(tmp_path / "missing.yaml")])
    joined = "\n".join(msgs)
    assert "duplicate rule id 'console-failures'" in joined
    assert 'unknown built-in pack "builtin:nope"' in joined
    assert "missing.yaml: cannot read rule file" in joined


def test_builtin_packs_load_with_the_cis_ids() -> None:
    rules = load_rules(["builtin:cis", "builtin:essentials"])
    cis = {r.id for r in rules if r.origin == "builtin:cis"}
    # Exactly the ids of the table in AWS-FACTS.md.
    assert cis == {
        f"cis-{name}"
        for name in [
            "cloudtrail-changes",
            "config-changes",
            "console-auth-failures",
            "console-login-no-mfa",
            "iam-policy-changes",
            "kms-key-disable-delete",
            "nacl-changes",
            "network-gateway-changes",
            "organizations-changes",
            "root-usage",
            "route-table-changes",
            "s3-bucket-policy-changes",
            "security-group-changes",
            "unauthorized-api-calls",
            "vpc-changes",
        ]
    }
    assert all(r.metadata.get("control") for r in rules if r.origin == "builtin:cis")
    for r in rules:  # every built-in rule proves both ways
        assert any(t.expect.alerts >= 1 for t in r.tests), f"{r.id}: no case where it fires"
        assert any(t.expect.alerts == 0 for t in r.tests), f"{r.id}: no case where it does not"


def test_config_errors_all_at_once_with_paths() -> None:
    data = {
        "regions": ["us-east-1", "mars-north-1"],
        "cloudtrail": {"poll_interval": "soon", "max_requests_per_second": 5},
        "sinks": {"sns": [{"name": "a", "topic_arn": "not-an-arn"}]},
        "accounts": [{"id": "12345"}],
        "metrics": {"listen": "nowhere"},
        "bogus": 1,
    }
    msgs = errors_of(parse_config, data, "c.yaml")
    joined = "\n".join(msgs)
    assert "c.yaml: regions: not an AWS region: 'mars-north-1'" in joined
    assert 'c.yaml: cloudtrail.poll_interval: invalid duration "soon"' in joined
    assert "c.yaml: cloudtrail.max_requests_per_second" in joined
    assert "c.yaml: sinks.sns[0].topic_arn: not an SNS topic ARN" in joined
    assert 'c.yaml: accounts[0].id: account id must be 12 digits, got "12345"' in joined
    assert "c.yaml: metrics.listen: expected HOST:PORT" in joined
    assert "c.yaml: bogus: unknown field" in joined


def test_a_rule_field_error_shows_the_value_found() -> None:
    text = (
        "- {id: x, title: t, severity: low, match: {eventName: [A]},"
        " threshold: {count: 2, within: 0s}}"
    )
    msgs = errors_of(parse_rules, text, "f.yaml")
    assert msgs == ["f.yaml: rules[0] (x).threshold.within: must be between 1s and 7d (got '0s')"]


def test_config_defaults_and_rule_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(GOOD_RULE)
    cfg_file = tmp_path / "veilleur.yaml"
    cfg_file.write_text("rules: [builtin:cis, mine.yaml]\nstate_dir: /tmp/x\n")
    cfg = load_config(cfg_file)
    assert cfg.model.cloudtrail.lateness.total_seconds() == 900
    assert cfg.model.cloudtrail.poll_interval.total_seconds() == 30
    assert len(cfg.rules) == 16


def test_example_config_in_repo_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "config" / "veilleur.example.yaml")
    assert cfg.rules


def test_sweep_must_look_further_back_than_lateness() -> None:
    msgs = errors_of(
        parse_config, {"cloudtrail": {"lateness": "30m", "sweep_lateness": "20m"}}, "c.yaml"
    )
    assert "sweep_lateness must be longer than lateness" in msgs[0]
    assert (
        parse_config(
            {"cloudtrail": {"sweep_lateness": "0s"}}
        ).cloudtrail.sweep_lateness.total_seconds()
        == 0
    )


def test_disable_removes_rules_and_rejects_unknown_ids(tmp_path: Path) -> None:
    cfg_file = tmp_path / "veilleur.yaml"
    cfg_file.write_text("rules: [builtin:cis, builtin:essentials]\ndisable: [cis-root-usage]\n")
    ids = {r.id for r in load_config(cfg_file).rules}
    assert "cis-root-usage" not in ids
    assert "root-console-login" in ids
    cfg_file.write_text("rules: [builtin:cis]\ndisable: [cis-root-usage, no-such-rule]\n")
    msgs = errors_of(load_config, cfg_file)
    assert msgs == [f"{cfg_file}: disable: unknown rule id 'no-such-rule' (not in any rule source)"]


def test_warnings_for_a_valid_config_that_probably_misses_something(tmp_path: Path) -> None:
    sinks = "sinks: {sns: [{name: a, topic_arn: 'arn:aws:sns:eu-west-1:123456789012:t'}]}\n"
    cfg_file = tmp_path / "veilleur.yaml"
    cfg_file.write_text("regions: [eu-west-1]\n" + sinks)
    [warning] = load_config(cfg_file).warnings
    assert warning.startswith("regions: us-east-1 is not polled")
    cfg_file.write_text(
        "regions: [us-east-1]\naccounts: [{}, {id: '210987654321', regions: [eu-west-1],"
        " role_arn: 'arn:aws:iam::210987654321:role/r'}]\n" + sinks
    )
    assert [w.split(":")[0] for w in load_config(cfg_file).warnings] == ["accounts[1].regions"]
    cfg_file.write_text("regions: [us-east-1]\n" + sinks)
    assert load_config(cfg_file).warnings == ()
    cfg_file.write_text("regions: [us-east-1]\n")
    assert load_config(cfg_file).warnings == ("sinks: none configured: alerts are only logged",)


def test_one_run_lists_matcher_errors_and_duplicates_beside_field_errors() -> None:
    text = """
- {id: Bad_Id, title: x, severity: urgent, match: {eventName: [{prefix: 5}]}}
- {id: dup, title: y, severity: high, filter_pattern: '{ $.b NOT EXIST }'}
- {id: dup, title: z, severity: low, match: {eventName: [A]}}
"""
    msgs = errors_of(parse_rules, text, "f.yaml")
    assert any(m.startswith("f.yaml: rules[0] (Bad_Id).severity:") for m in msgs)
    assert "f.yaml: rules[0] (Bad_Id).match.eventName[0].prefix: expected a string" in "\n".join(
        msgs
    )
    assert any(m.startswith("f.yaml: rules[1] (dup).filter_pattern: expected EXISTS") for m in msgs)
    assert msgs[-1] == "f.yaml: duplicate rule id 'dup' (2 rules)"


def test_rule_tests_accept_expected_and_does_not_fire_as_written_in_prose() -> None:
    text = """
- id: x
  title: t
  severity: low
  match: {eventName: [A]}
  tests:
    - {name: a, events: [{eventName: A}], expected: fires}
    - {name: b, events: [{eventName: B}], expected: does_not_fire}
    - {name: c, events: [{eventName: B}], expect: no_alert}
"""
    (rule,) = parse_rules(text, "r.yaml")
    assert [t.expect.alerts for t in rule.tests] == [1, 0, 0]
