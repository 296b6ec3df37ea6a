"""`veilleur replay`, `test` and `check` as a user runs them (in-process, real files)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.unit.shared_data import README_CIS_COUNTS, dataset_or_skip
from veilleur.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[dict], dict, str]:
    code = main(["replay", "--format", "json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert "summary" in lines[-1]
    return lines[:-1], lines[-1]["summary"], err


def test_replay_of_the_dataset_agrees_with_its_readme(capsys: pytest.CaptureFixture[str]) -> None:
    alerts, summary, _ = run_json(capsys, "--rules", "builtin:cis", str(dataset_or_skip()))
    assert summary["events"] == 2900
    assert summary["invalid"] == 0
    matches = {k: v["matches"] for k, v in summary["rules"].items() if v["matches"]}
    assert matches == README_CIS_COUNTS
    for a in alerts:
        assert {
            "rule_id",
            "severity",
            "title",
            "count",
            "first_seen",
            "last_seen",
            "group",
            "sample_event_ids",
        } <= set(a)
    times = [a["last_seen"] for a in alerts]
    assert times == sorted(times), "alerts come out in eventTime order"


def test_replay_reads_every_format_and_reports_bad_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = {
        "eventID": "e1",
        "eventTime": "2024-05-01T10:00:00Z",
        "eventName": "StopLogging",
        "eventSource": "cloudtrail.amazonaws.com",
        "awsRegion": "us-east-1",
    }
    rec2 = dict(rec, eventID="e2", eventTime="2024-05-01T10:01:00Z")
    rec3 = dict(rec, eventID="e3", eventTime="2024-05-01T10:02:00Z")
    (tmp_path / "a.json.gz").write_bytes(
        gzip.compress(json.dumps({"Records": [rec, {"x": 1}]}).encode())
    )
    (tmp_path / "b.jsonl").write_text(json.dumps(rec2) + "\n{not json\n" + json.dumps(rec) + "\n")
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "Events": [
                    {"EventId": "e3", "CloudTrailEvent": json.dumps(rec3)},
                    {"EventId": "bad", "CloudTrailEvent": "{oops"},
                ]
            }
        )
    )
    (tmp_path / "d.json").write_text("[1, 2")  # not JSON at all
    # A pretty-printed S3 file cut short (a truncated download): one problem, not one a line.
    pretty = json.dumps({"Records": [dict(rec, eventID=f"t{i}") for i in range(20)]}, indent=2)
    (tmp_path / "e.json").write_text(pretty[: len(pretty) // 2])
    alerts, summary, err = run_json(capsys, "--rules", "builtin:cis", str(tmp_path))
    assert summary["events"] == 3
    assert summary["duplicates"] == 1
    assert summary["invalid"] == 5
    assert summary["rules"]["cis-cloudtrail-changes"] == {"matches": 3, "alerts": 3}
    assert "a.json.gz[1]" in err and "b.jsonl:2: not valid JSON" in err and "c.json[1]" in err
    assert "d.json" in err
    assert err.count("e.json") == 1 and "e.json: not valid JSON" in err
    assert [a["sample_event_ids"] for a in alerts] == [["e1"], ["e2"], ["e3"]]


def test_replay_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", "--rules", "builtin:cis", str(dataset_or_skip())])
    out = capsys.readouterr().out
    assert code == 0
    assert "cis-route-table-changes" in out
    assert "2900 event(s)" in out


def test_rule_tests_pass_and_a_failing_case_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "builtin:cis", "builtin:essentials"]) == 0
    assert " 0 failed" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
- id: expects-too-much
  title: x
  severity: low
  match: {eventName: [StopLogging]}
  tests:
    - name: claims two alerts
      events: [{eventName: StopLogging}]
      expect: {alerts: 2}
""")
    assert main(["test", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL expects-too-much :: claims two alerts: expected 2 alert(s), got 1" in out


def test_check_reports_all_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "regions: [nowhere]\n"
        "cloudtrail: {lateness: 15 minutes}\n"
        "rules: [builtin:cis, missing.yaml]\n"
    )
    assert main(["check", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "regions: not an AWS region" in err
    assert 'cloudtrail.lateness: invalid duration "15 minutes"' in err
    assert "missing.yaml: cannot read rule file" in err
    assert "nothing started" in err


def test_check_summary(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["check", "-c", str(root / "config" / "veilleur.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "builtin:cis: 15" in out
    assert "by severity:" in out and "by type:" in out
    assert "sns security-email" in out


def test_output_cut_short_by_the_reader_is_not_an_error(tmp_path: Path) -> None:
    """`veilleur replay … | head`: no traceback, exit 0."""
    import subprocess
    import sys

    rec = {"eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com"}
    lines = [
        json.dumps(
            dict(rec, eventID=f"e{i}", eventTime=f"2024-05-01T10:{i // 60 % 60:02}:{i % 60:02}Z")
        )
        for i in range(3000)
    ]
    (tmp_path / "many.jsonl").write_text("\n".join(lines) + "\n")  # > a pipe buffer of alerts
    cmd = [sys.executable, "-m", "veilleur.cli", "replay", "--rules", "builtin:cis"]
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "many.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err
