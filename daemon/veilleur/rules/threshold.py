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


Values = tuple[tuple[str, str], ...]  # (field, value) pairs of one match, for the alert


@dataclass(slots=True)
class GroupWindow:
    times: list[float] = field(default_factory=list)  # sorted eventTimes of live matches
    ids: list[str] = field(default_factory=list)  # event ids, aligned with ``times``
    values: list[Values] = field(default_factory=list)  # aligned with ``times``
    suppressed_until: float | None = None  # eventTime until which alerts are suppressed
    suppressed: int = 0  # matches that would have fired while suppressed
    fired_at: float | None = None  # eventTime of the last firing (what `veilleur alarms` shows)
    # One shared tuple per distinct combination: the matches of a group mostly repeat the
    # same user, IP and name, so a match costs a list slot, not a tuple of strings.
    _interned: dict[Values, Values] = field(default_factory=dict, repr=False, compare=False)

    def add(self, t: float, event_id: str, values: Values = ()) -> int:
        i = bisect.bisect_right(self.times, t)
        self.times.insert(i, t)
        self.ids.insert(i, event_id)
        self.values.insert(i, self._interned.setdefault(values, values))
        return i

    def remove(self, lo: int, hi: int) -> None:
        """Forget matches ``lo`` up to, not including, ``hi``."""
        del self.times[lo:hi]
        del self.ids[lo:hi]
        del self.values[lo:hi]
        if len(self._interned) > 2 * len(self.values) + 16:
            # A group that never empties would keep every combination it ever saw.
            self._interned = {v: v for v in self.values}

    def distinct(self, lo: int, hi: int) -> dict[str, tuple[str, ...]]:
        """Distinct values per field among matches ``lo..hi`` (inclusive), first seen first."""
        out: dict[str, list[str]] = {}
        for combo in dict.fromkeys(self.values[lo : hi + 1]):
            for key, value in combo:
                seen = out.setdefault(key, [])
                if value not in seen and len(seen) < DISTINCT_CAP:
                    seen.append(value)
        return {k: tuple(v) for k, v in out.items()}

    def to_json(self) -> dict[str, Any]:
        combos = list(dict.fromkeys(self.values))
        index = {c: n for n, c in enumerate(combos)}
        return {
            "t": self.times,
            "i": self.ids,
            "c": [[list(pair) for pair in c] for c in combos],
            "v": [index[c] for c in self.values],
            "s": self.suppressed_until,
            "n": self.suppressed,
            "f": self.fired_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GroupWindow:
        combos: list[Values] = [tuple((str(k), str(v)) for k, v in c) for c in d.get("c", [])]
        times = [float(x) for x in d["t"]]
        # State written before per-match values ("d": one bag per group) restores without them.
        indexes = d.get("v") or []
        values = [combos[int(n)] for n in indexes] if len(indexes) == len(times) else []
        window = cls(
            times=times,
            ids=[str(x) for x in d["i"]],
            values=values or [()] * len(times),
            suppressed_until=None if d["s"] is None else float(d["s"]),
            suppressed=int(d.get("n", 0)),
            fired_at=None if d.get("f") is None else float(d["f"]),
        )
        window.values = [window._interned.setdefault(v, v) for v in window.values]
        return window


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
    values: Values,
    *,
    count: int,
    within: float,
    realert: float | None,
) -> Firing | None:
    """Add one match at eventTime ``t``; return a Firing if it completes a window.

    ``values`` are the match's (field, value) pairs whose distinct values the alert carries:
    only the matches of the window that fired contribute.
    """
    i = window.add(t, event_id, values)
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
        distinct=window.distinct(lo, hi),
        suppressed_before=window.suppressed,
    )
    window.remove(lo, hi + 1)
    window.suppressed = 0
    window.fired_at = t
    if realert is not None:
        window.suppressed_until = t + realert
    return firing


def expire(window: GroupWindow, horizon: float) -> bool:
    """Drop matches older than ``horizon``; True when the group can be forgotten."""
    k = bisect.bisect_left(window.times, horizon)
    if k:
        window.remove(0, k)
    if window.suppressed_until is not None and window.suppressed_until < horizon:
        window.suppressed_until = None
    if window.fired_at is not None and window.fired_at < horizon:
        window.fired_at = None
    return not window.times and window.suppressed_until is None and window.fired_at is None
