"""Sliding windows per (rule, group), counted by eventTime.

The state is a plain value (``WindowState``) that the caller persists between ticks
(``to_json``/``from_json``). Times are epoch seconds (floats) to keep memory small: a group
holds only the matches still inside ``within + lateness`` of ``now``.

Decisions (docs/architecture.md, "Thresholds"):
- an alert fires when some window of length ``within`` holds ``count`` matches; the matches
  of that window are then consumed, so the next alert needs ``count`` new ones;
- out-of-order (late) events are inserted at their eventTime and can complete an older window;
- ``realert`` suppresses further alerts for the group for that long, measured in eventTime
  (so a replay gives the same answer as the live daemon);
- groups are forgotten once their newest match is older than ``within + lateness`` and no
  suppression is running.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

DISTINCT_CAP = 10
SAMPLE_CAP = 5


@dataclass(slots=True)
class GroupWindow:
    times: list[float] = field(default_factory=list)  # sorted eventTimes of live matches
    ids: list[str] = field(default_factory=list)  # event ids, aligned with ``times``
    distinct: dict[str, list[str]] = field(default_factory=dict)
    suppressed_until: float | None = None  # eventTime until which alerts are suppressed
    suppressed: int = 0  # matches that would have fired while suppressed

    def add(self, t: float, event_id: str) -> int:
        i = bisect.bisect_right(self.times, t)
        self.times.insert(i, t)
        self.ids.insert(i, event_id)
        return i

    def note_distinct(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            seen = self.distinct.setdefault(key, [])
            if value not in seen and len(seen) < DISTINCT_CAP:
                seen.append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.times,
            "i": self.ids,
            "d": self.distinct,
            "s": self.suppressed_until,
            "n": self.suppressed,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GroupWindow:
        return cls(
            times=[float(x) for x in d["t"]],
            ids=[str(x) for x in d["i"]],
            distinct={str(k): [str(x) for x in v] for k, v in d["d"].items()},
            suppressed_until=None if d["s"] is None else float(d["s"]),
            suppressed=int(d.get("n", 0)),
        )


@dataclass(frozen=True, slots=True)
class Firing:
    """A window that reached its count: the facts an alert is made of."""

    count: int
    first: float
    last: float
    sample_ids: tuple[str, ...]
    distinct: dict[str, tuple[str, ...]]
    suppressed_before: int


def find_window(times: list[float], i: int, count: int, within: float) -> tuple[int, int] | None:
    """A span [lo, hi] of ``count`` matches around index ``i`` that fits in ``within``."""
    n = len(times)
    for lo in range(max(0, i - count + 1), min(i, n - count) + 1):
        hi = lo + count - 1
        if times[hi] - times[lo] <= within:
            return lo, hi
    return None


def observe(
    window: GroupWindow,
    t: float,
    event_id: str,
    distinct: dict[str, str],
    *,
    count: int,
    within: float,
    realert: float | None,
) -> Firing | None:
    """Add one match at eventTime ``t``; return a Firing if it completes a window."""
    i = window.add(t, event_id)
    window.note_distinct(distinct)
    span = find_window(window.times, i, count, within)
    if span is None:
        return None
    if window.suppressed_until is not None and t < window.suppressed_until:
        window.suppressed += 1
        return None
    lo, hi = span
    # Extend the span to every match inside [times[lo], times[lo] + within].
    end = bisect.bisect_right(window.times, window.times[lo] + within)
    hi = max(hi, end - 1)
    ids = window.ids[lo : hi + 1]
    firing = Firing(
        count=hi - lo + 1,
        first=window.times[lo],
        last=window.times[hi],
        sample_ids=tuple(ids[:SAMPLE_CAP]),
        distinct={k: tuple(v) for k, v in window.distinct.items()},
        suppressed_before=window.suppressed,
    )
    del window.times[lo : hi + 1]
    del window.ids[lo : hi + 1]
    window.distinct = {}
    window.suppressed = 0
    if realert is not None:
        window.suppressed_until = t + realert
    return firing


def expire(window: GroupWindow, horizon: float) -> bool:
    """Drop matches older than ``horizon``; True when the group can be forgotten."""
    k = bisect.bisect_left(window.times, horizon)
    if k:
        del window.times[:k]
        del window.ids[:k]
    if window.suppressed_until is not None and window.suppressed_until < horizon:
        window.suppressed_until = None
    if not window.times:
        window.distinct = {}
    return not window.times and window.suppressed_until is None
