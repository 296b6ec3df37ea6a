"""Text and JSON renderings for the command line (tables, summaries). No logic."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from veilleur.alerts import Alert
from veilleur.config import Config
from veilleur.model import format_time
from veilleur.notify.render import sanitize
from veilleur.rules.metric_spec import MetricRule
from veilleur.rules.spec import Rule
from veilleur.rules.testing import CaseResult


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def config_summary(cfg: Config, out: TextIO) -> None:
    m = cfg.model
    rules = cfg.rules
    out.write(f"config: {cfg.path or '(defaults)'}: OK\n")
    for warning in cfg.warnings:
        out.write(f"warning: {warning}\n")
    out.write(f"rules: {len(rules) + len(cfg.metric_rules)}\n")
    by_origin = Counter([r.origin for r in rules] + [r.origin for r in cfg.metric_rules])
    for origin, n in sorted(by_origin.items()):
        out.write(f"  {origin}: {n}\n")
    every: list[Rule | MetricRule] = [*rules, *cfg.metric_rules]
    by_sev = Counter(r.severity.label for r in every)
    out.write("  by severity: " + ", ".join(f"{k} {v}" for k, v in sorted(by_sev.items())) + "\n")
    by_type = Counter(rule_type(r) for r in every)
    out.write("  by type: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())) + "\n")
    if m.disable:
        out.write(f"  disabled: {', '.join(m.disable)}\n")
    tests = sum(len(r.tests) for r in rules) + sum(len(r.tests) for r in cfg.metric_rules)
    out.write(f"  test cases: {tests}\n")
    accounts = [a.id or "(ambient credentials)" for a in m.accounts]
    out.write("sources:\n")
    state = "on" if m.cloudtrail.enabled else "off"
    out.write(
        f"  cloudtrail ({state}): accounts {', '.join(accounts)}; regions {', '.join(m.regions)};"
        f" every {int(m.cloudtrail.poll_interval.total_seconds())}s,"
        f" lateness {int(m.cloudtrail.lateness.total_seconds())}s\n"
    )
    cw = "on" if m.cloudwatch.enabled else "off"
    out.write(
        f"  cloudwatch ({cw}): {len(cfg.metric_rules)} metric rule(s);"
        f" every {int(m.cloudwatch.poll_interval.total_seconds())}s,"
        f" delay {int(m.cloudwatch.delay.total_seconds())}s\n"
    )
    out.write("sinks:\n")
    if not m.sinks.sns and not m.sinks.eventbridge:
        out.write("  (none: alerts are only logged)\n")
    for s in m.sinks.sns:
        out.write(f"  sns {s.name}: {s.topic_arn} mode={s.mode} min_severity={s.min_severity}\n")
    for e in m.sinks.eventbridge:
        out.write(f"  eventbridge {e.name}: bus={e.bus} source={e.source}\n")
    out.write(f"state: {m.state_dir}\nmetrics: http://{m.metrics.listen}/metrics\n")


def rule_type(rule: Rule | MetricRule) -> str:
    if isinstance(rule, MetricRule):
        return "metric"
    if rule.threshold:
        return "threshold"
    return "event"


def test_report(results: Sequence[CaseResult], out: TextIO, verbose: bool) -> None:
    for r in results:
        if not r.passed or verbose:
            mark = "PASS" if r.passed else "FAIL"
            out.write(f"{mark} {r.rule_id} :: {r.name}: {r.detail}\n")
    failed = sum(not r.passed for r in results)
    out.write(f"{len(results) - failed} passed, {failed} failed\n")


def alerts_table(alerts: Sequence[Alert], out: TextIO) -> None:
    rows = [["first seen", "last seen", "severity", "rule", "count", "group"]]
    for a in alerts:
        group = ", ".join(f"{k}={sanitize(v, 40)}" for k, v in a.group) or "-"
        rows.append(
            [
                format_time(a.first_seen),
                format_time(a.last_seen),
                a.severity.label,
                a.rule_id,
                str(a.count),
                group,
            ]
        )
    _table(rows, out)


def alert_line(a: Alert) -> dict[str, Any]:
    d = a.to_dict()
    return {
        "rule_id": d["rule_id"],
        "severity": d["severity"],
        "title": d["title"],
        "count": d["count"],
        "first_seen": d["first_seen"],
        "last_seen": d["last_seen"],
        "group": d["group"],
        "sample_event_ids": d["sample_event_ids"],
        "notification_id": d["notification_id"],
        "distinct": d["distinct"],
        "account": d["account"],
        "region": d["region"],
    }


def json_line(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, sort_keys=False, ensure_ascii=False) + "\n")


def summary_table(summary: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"\n{summary['files']} file(s), {summary['events']} event(s), "
        f"{summary['duplicates']} duplicate(s), {summary['invalid']} invalid\n"
    )
    rows = [["rule", "matches", "alerts"]]
    for rule_id, s in summary["rules"].items():
        rows.append([rule_id, str(s["matches"]), str(s["alerts"])])
    _table(rows, out)


def dead_letters(rows: Sequence[Any], out: TextIO, as_json: bool) -> None:
    if as_json:
        for r in rows:
            json_line(
                {
                    "notification_id": r.notification_id,
                    "sink": r.sink,
                    "rule_id": r.alert_doc.get("rule_id"),
                    "created_at": format_time(r.created_at),
                    "dead_at": format_time(r.finished_at) if r.finished_at else None,
                    "attempts": r.attempts,
                    "error": r.last_error,
                },
                out,
            )
        return
    table = [["created", "sink", "rule", "attempts", "notification id", "last error"]]
    for r in rows:
        table.append(
            [
                format_time(r.created_at),
                r.sink,
                str(r.alert_doc.get("rule_id", "?")),
                str(r.attempts),
                r.notification_id,
                sanitize(r.last_error or "", 80),
            ]
        )
    _table(table, out)
    out.write(f"{len(rows)} dead letter(s)\n")


def alarms(rows: Sequence[Any], out: TextIO, as_json: bool) -> None:
    if as_json:
        for r in rows:
            json_line(
                {
                    "rule_id": r.rule_id,
                    "kind": r.kind,
                    "dimensions": r.dimensions,
                    "state": r.state,
                    "since": format_time(r.since) if r.since else None,
                    "reason": r.reason,
                },
                out,
            )
        return
    table = [["rule", "kind", "dimensions", "state", "since", "reason"]]
    for r in rows:
        table.append(
            [
                r.rule_id,
                r.kind,
                sanitize(r.dimensions, 60),
                r.state,
                format_time(r.since) if r.since else "-",
                sanitize(r.reason, 100),
            ]
        )
    _table(table, out)
