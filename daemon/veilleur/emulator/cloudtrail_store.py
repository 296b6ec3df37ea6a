"""LookupEvents request validation, filtering and paging over the emulator's events.

Pure apart from the ``EventStore`` container, which the caller guards with its own lock."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from veilleur.emulator.cloudtrail_events import AttributeKey, LookupAttribute, Scope, StoredEvent

MAX_RESULTS = 50
HORIZON_SECONDS = 90 * 86400.0
INSIGHT = "insight"
_MAX_ATTRIBUTE_VALUE = 2000


class LookupApiError(Exception):
    """An error answered as HTTP ``status`` with ``{"__type": error_type, "message": ...}``."""

    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.status = status

    def to_body(self) -> dict[str, str]:
        return {"__type": self.error_type, "message": self.message}


@dataclass(frozen=True, slots=True)
class LookupQuery:
    """A validated LookupEvents request."""

    attribute: LookupAttribute | None = None
    start_time: float | None = None
    end_time: float | None = None
    event_category: str | None = None
    max_results: int = MAX_RESULTS
    next_token: str | None = None

    def binding(self, scope: Scope, generation: int) -> str:
        """Digest of every parameter a NextToken is tied to (MaxResults excluded: a
        client may change its page size between pages)."""
        attr = None if self.attribute is None else [self.attribute.key.value, self.attribute.value]
        canonical = json.dumps(
            [
                scope.account,
                scope.region,
                attr,
                self.start_time,
                self.end_time,
                self.event_category,
                generation,
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LookupPage:
    events: tuple[StoredEvent, ...]
    next_token: str | None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Events": [e.to_api() for e in self.events]}
        if self.next_token is not None:
            body["NextToken"] = self.next_token
        return body


def _time(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LookupApiError("SerializationException", f"{name} must be epoch seconds")
    return float(value)


def _attribute(body: Mapping[str, Any]) -> LookupAttribute | None:
    attrs = body.get("LookupAttributes")
    if attrs is None:
        return None
    if not isinstance(attrs, list):
        raise LookupApiError("SerializationException", "LookupAttributes must be a list")
    if len(attrs) > 1:
        raise LookupApiError(
            "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute"
        )
    if not attrs:
        return None
    item = attrs[0]
    if not isinstance(item, dict):
        raise LookupApiError("InvalidLookupAttributesException", "lookup attribute not an object")
    key, value = item.get("AttributeKey"), item.get("AttributeValue")
    valid = {k.value: k for k in AttributeKey}
    if not isinstance(key, str) or key not in valid:
        raise LookupApiError(
            "InvalidLookupAttributesException", f"AttributeKey must be one of {sorted(valid)}"
        )
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ATTRIBUTE_VALUE:
        raise LookupApiError(
            "InvalidLookupAttributesException", "AttributeValue must be 1 to 2000 characters"
        )
    return LookupAttribute(valid[key], value)


def parse_query(body: object) -> LookupQuery:
    """Validate a LookupEvents request body; raise ``LookupApiError`` as the API would."""
    if not isinstance(body, dict):
        raise LookupApiError("SerializationException", "request body must be a JSON object")
    max_results = body.get("MaxResults", MAX_RESULTS)
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise LookupApiError("InvalidMaxResultsException", "MaxResults must be an integer")
    if not 1 <= max_results <= MAX_RESULTS:
        raise LookupApiError("InvalidMaxResultsException", "MaxResults must be from 1 to 50")
    attribute = _attribute(body)
    category = body.get("EventCategory")
    if category is not None and category != INSIGHT:
        raise LookupApiError("InvalidEventCategoryException", "EventCategory must be 'insight'")
    start, end = _time(body, "StartTime"), _time(body, "EndTime")
    if start is not None and end is not None and start > end:
        raise LookupApiError("InvalidTimeRangeException", "StartTime is after EndTime")
    token = body.get("NextToken")
    if token is not None and (not isinstance(token, str) or not token):
        raise LookupApiError("InvalidNextTokenException", "Invalid NextToken")
    return LookupQuery(attribute, start, end, category, max_results, token)


def encode_token(binding: str, cursor: tuple[float, str]) -> str:
    raw = json.dumps({"b": binding, "t": cursor[0], "i": cursor[1]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str, binding: str) -> tuple[float, str]:
    """The cursor (sort key of the last item served) a token carries; the token must come
    from a request with the same parameters."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        cursor_time, cursor_id, token_binding = data["t"], data["i"], data["b"]
    except (ValueError, binascii.Error, KeyError, TypeError) as exc:
        raise LookupApiError("InvalidNextTokenException", "Invalid NextToken") from exc
    if not isinstance(cursor_time, int | float) or not isinstance(cursor_id, str):
        raise LookupApiError("InvalidNextTokenException", "Invalid NextToken")
    if token_binding != binding:
        raise LookupApiError(
            "InvalidNextTokenException",
            "NextToken must be passed with the same parameters as the call that returned it",
        )
    return (float(cursor_time), cursor_id)


class EventStore:
    """Events per scope, sorted oldest first by (eventTime, eventId). Not thread-safe."""

    def __init__(self) -> None:
        self._events: dict[Scope, list[StoredEvent]] = {}
        self._ids: dict[Scope, set[str]] = {}

    def add(self, event: StoredEvent) -> bool:
        """Store the event; False (and nothing stored) if its id is already there."""
        ids = self._ids.setdefault(event.scope, set())
        if event.event_id in ids:
            return False
        ids.add(event.event_id)
        events = self._events.setdefault(event.scope, [])
        if not events or events[-1].sort_key <= event.sort_key:
            events.append(event)  # the usual case: records arrive in time order
        else:
            bisect.insort(events, event, key=lambda e: e.sort_key)
        return True

    def clear(self) -> None:
        self._events.clear()
        self._ids.clear()

    def forget_before(self, event_time: float) -> int:
        """Drop events older than ``event_time`` (benchmarks that simulate long runs keep
        only the recent past in memory). Returns how many were dropped."""
        dropped = 0
        for scope, events in self._events.items():
            k = bisect.bisect_left([e.event_time for e in events], event_time)
            for e in events[:k]:
                self._ids[scope].discard(e.event_id)
            del events[:k]
            dropped += k
        return dropped

    def count(self, scope: Scope | None = None) -> int:
        if scope is not None:
            return len(self._events.get(scope, ()))
        return sum(len(v) for v in self._events.values())

    def visible_count(self, now: float) -> int:
        return sum(1 for v in self._events.values() for e in v if e.visible_at <= now)

    def lookup(
        self,
        query: LookupQuery,
        scope: Scope,
        now: float,
        *,
        generation: int = 0,
        horizon: float = HORIZON_SECONDS,
    ) -> LookupPage:
        """One page, newest first: visible events of ``scope`` in the inclusive time range,
        within the horizon, matching the attribute, after the token's cursor."""
        binding = query.binding(scope, generation)
        cursor = None if query.next_token is None else decode_token(query.next_token, binding)
        if query.event_category == INSIGHT:
            return LookupPage((), None)  # the emulator records no Insights events
        events = self._events.get(scope, [])
        oldest = now - horizon
        if query.start_time is not None:
            oldest = max(oldest, query.start_time)
        low = bisect.bisect_left(events, oldest, key=lambda e: e.event_time)
        high = len(events)
        if query.end_time is not None:
            high = bisect.bisect_right(events, query.end_time, key=lambda e: e.event_time)
        if cursor is not None:
            high = min(high, bisect.bisect_left(events, cursor, key=lambda e: e.sort_key))
        page: list[StoredEvent] = []
        has_more = False
        for index in range(high - 1, low - 1, -1):
            event = events[index]
            if event.visible_at > now or not event.matches(query.attribute):
                continue
            if len(page) == query.max_results:
                has_more = True
                break
            page.append(event)
        token = encode_token(binding, page[-1].sort_key) if has_more else None
        return LookupPage(tuple(page), token)
