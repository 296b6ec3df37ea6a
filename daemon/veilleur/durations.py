"""Durations as operators write them: ``30s``, ``5m``, ``1h``, ``1d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


class DurationError(ValueError):
    """A duration string that does not parse."""


def parse_duration(text: object) -> timedelta:
    """Parse ``30s``/``5m``/``1h30m``; bare integers are seconds. Raise DurationError."""
    if isinstance(text, bool):
        raise DurationError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h)")
    if isinstance(text, int | float):
        if text < 0:
            raise DurationError(f"invalid duration {text!r} (must not be negative)")
        return timedelta(seconds=float(text))
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise DurationError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h)")
    s = text.strip()
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise DurationError(f'invalid duration "{text}" (expected e.g. 30s, 5m, 1h, 1h30m)')
    return timedelta(seconds=total)


def format_duration(td: timedelta) -> str:
    """The shortest exact form: 300 s -> ``5m``, 5400 s -> ``1h30m``."""
    secs = int(td.total_seconds())
    if secs == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, secs = divmod(secs, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
