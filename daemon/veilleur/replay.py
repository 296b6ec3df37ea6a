"""Offline evaluation of CloudTrail files (a backtest), with the daemon's own engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from veilleur.alerts import Alert
from veilleur.model import TrailEvent
from veilleur.rules.engine import Engine
from veilleur.rules.spec import Rule
from veilleur.sources.files import Problem, expand, read_file


@dataclass
class ReplayResult:
    alerts: list[Alert]
    files: int
    events: int
    duplicates: int
    problems: list[Problem]
    matches: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)

    def summary(self, rules: Sequence[Rule]) -> dict[str, Any]:
        return {
            "files": self.files,
            "events": self.events,
            "duplicates": self.duplicates,
            "invalid": len(self.problems),
            "rules": {
                r.id: {"matches": self.matches[r.id], "alerts": self.alerts_by_rule[r.id]}
                for r in rules
            },
        }


def replay(paths: Sequence[str], rules: Sequence[Rule]) -> ReplayResult:
    """Read every file, sort by eventTime, drop duplicate event ids, evaluate."""
    problems: list[Problem] = []
    files = expand(list(paths))
    events: dict[str, TrailEvent] = {}
    duplicates = 0
    for path in files:
        for event in read_file(path, problems):
            if event.event_id in events:
                duplicates += 1
                continue
            events[event.event_id] = event
    ordered = sorted(events.values(), key=lambda e: (e.event_time, e.event_id))
    engine = Engine(rules)
    alerts: list[Alert] = []
    # The replay clock is the eventTime itself: state expires as the trail's time advances.
    step = 1000
    for i in range(0, len(ordered), step):
        chunk = ordered[i : i + step]
        alerts.extend(engine.process(chunk, chunk[-1].event_time))
    return ReplayResult(
        alerts=alerts,
        files=len(files),
        events=len(ordered),
        duplicates=duplicates,
        problems=problems,
        matches=engine.stats.matches,
        alerts_by_rule=engine.stats.alerts,
    )
