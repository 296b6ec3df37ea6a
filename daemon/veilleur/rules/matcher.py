"""What every matcher dialect offers the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Scalar = str | int | float | bool | None


class Matcher(Protocol):
    """A compiled, pure predicate over one parsed CloudTrail record."""

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True if the record matches. Never raises on any JSON value."""
        ...

    def required_values(self, path: tuple[str, ...]) -> frozenset[Scalar] | None:
        """The exact values the field at ``path`` must hold for a match, or None when the
        matcher does not pin it to a finite set of exact values. Used by the engine to
        index rules (by eventName) and by the poller's query plan (readOnly). Must be
        sound: if it returns a set, no record whose field is outside the set matches."""
        ...

    def required_prefixes(self, path: tuple[str, ...]) -> frozenset[str] | None:
        """Strings one of which every matching value at ``path`` starts with, or None.
        Sound like ``required_values``; the engine indexes eventName prefix rules with it."""
        ...


class MatcherError(ValueError):
    """A pattern that cannot be compiled. ``where`` locates the problem inside it."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.where = where
