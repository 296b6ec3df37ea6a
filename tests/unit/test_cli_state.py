"""CLI commands that read the store while the daemon may run: dead letters, alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.helpers import event, rule
from veilleur.cli import main
from veilleur.rules.engine import Engine
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import OutboxEnqueue, TickCommit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def config(tmp_path: Path, rules: str = "[builtin:essentials]") -> Path:
    (tmp_path / "state").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"rules: {rules}\nstate_dir: {tmp_path / 'state'}\n")
    return cfg


def test_dead_letters_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    (alert,) = Engine([rule()]).process([event(0)], NOW)
    with SqliteStore.open(tmp_path / "state" / "veilleur.sqlite3") as store:
        store.commit_tick(TickCommit(now=NOW, notifications=[OutboxEnqueue(alert, ("sns",))]))
        (row,) = store.due(NOW + timedelta(seconds=1), 10)
        store.mark_dead(row.id, NOW + timedelta(hours=25), "AuthorizationError: not allowed")
    assert main(["dead-letters", "-c", str(cfg), "--format", "json"]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["notification_id"] == alert.notification_id
    assert line["sink"] == "sns" and "AuthorizationError" in line["error"]
    assert main(["dead-letters", "-c", str(cfg)]) == 0
    assert "1 dead letter(s)" in capsys.readouterr().out
    # Re-queued: pending again, same notification id, age and attempts restarted.
    assert main(["dead-letters", "-c", str(cfg), "--requeue", alert.notification_id]) == 0
    assert "1 dead letter(s) queued again" in capsys.readouterr().out
    with SqliteStore.open(tmp_path / "state" / "veilleur.sqlite3") as store:
        assert store.dead_letters(10) == []
        (again,) = store.due(datetime.now(tz=UTC) + timedelta(seconds=1), 10)
        assert again.notification_id == alert.notification_id
        assert again.attempts == 0
    assert main(["dead-letters", "-c", str(cfg), "--requeue"]) == 0
    assert "0 dead letter(s) queued again" in capsys.readouterr().out


def test_no_state_yet_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert main(["dead-letters", "-c", str(cfg)]) == 0
    assert main(["alarms", "-c", str(cfg), "--format", "json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    ids = {r["rule_id"] for r in rows}
    assert "console-login-failures-per-ip" in ids  # threshold rules are listed too
    assert all(r["state"] == "OK" for r in rows)


def test_a_threshold_rule_without_realert_shows_alarm_for_one_window_after_it_fires() -> None:
    from tests.unit.helpers import T0
    from veilleur.alarm_status import alarm_rows

    r = rule(count=2, group_by=("sourceIPAddress",))  # no realert
    engine = Engine([r])
    assert engine.process([event(0), event(10)], T0 + timedelta(seconds=10))
    state = json.loads(json.dumps(engine.state_json()))

    def shown(seconds: float) -> tuple[str, str]:
        rows = alarm_rows([], [r], [], state, T0 + timedelta(seconds=seconds))
        return rows[0].state, rows[0].reason

    state_now, reason = shown(60)
    assert state_now == "ALARM" and "no realert" in reason
    assert shown(10 + 5 * 60 + 1)[0] == "OK"  # one window after the firing
    engine.expire(T0 + timedelta(hours=1))
    assert engine.group_count() == 0  # and the group is forgotten like any other
