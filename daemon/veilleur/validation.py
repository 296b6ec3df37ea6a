"""Turning pydantic's validation errors into the operator's messages.

``rules[3].threshold.within: invalid duration "5 minutes"`` — a path, then what is wrong with
the value found there. Every error at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError, WithJsonSchema

from veilleur.durations import parse_duration


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(ms|s|m|h|d|w))+\s*$"},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ],
    "description": "a duration: 30s, 5m, 1h, 1h30m (a bare number is seconds)",
}

Duration = Annotated[timedelta, BeforeValidator(_duration), WithJsonSchema(DURATION_SCHEMA)]


def format_loc(loc: Iterable[int | str], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean(msg: str) -> str:
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            return msg[len(lead) :]
    return msg


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per error: ``path: message (got value)``."""
    lines = []
    for err in exc.errors(include_url=False):
        # Drop pydantic's union/function tags from the path ("function-after[...]").
        loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
        where = format_loc(loc, prefix) or "(top level)"
        msg = _clean(err["msg"])
        kind = err["type"]
        if kind in ("missing",):
            lines.append(f"{where}: required field missing")
        elif kind == "extra_forbidden":
            lines.append(f"{where}: unknown field")
        elif kind == "value_error":
            value = err.get("input")
            # A scalar the message does not quote already is shown; whole objects (a model's
            # own check across fields) are not.
            if isinstance(value, str | int | float) and str(value) not in msg and "got " not in msg:
                msg += f" (got {_show(value)})"
            lines.append(f"{where}: {msg}")
        else:
            lines.append(f"{where}: {msg} (got {_show(err.get('input'))})")
    return lines


class ConfigError(Exception):
    """Invalid configuration or rules: ``messages`` holds every problem found."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
