"""The CloudTrail source: LookupEvents over an overlapping window, never skipping.

Each poll reads ``[watermark - lateness, now]`` (LookupEvents shows events minutes after their
eventTime), oldest slice first, every page of every query of the plan. The watermark moves only
to the end of a slice read completely; a poll that runs out of its page budget or meets an error
it cannot retry past stops there and says so (``behind``); the next one continues.
Events already seen (by EventId) are dropped. Nothing here mutates the caller's state: the
result says what changed and the service applies it once it is committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from veilleur.aws import Target
from veilleur.model import InvalidRecord, TrailEvent
from veilleur.sources.pacing import Pacer
from veilleur.sources.query_plan import QueryPlan

THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
PERMANENT_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "OperationNotPermittedException",
    }
)
MAX_RECORD_BYTES = 1_048_576 * 2


@dataclass
class SourceState:
    """What a CloudTrail source remembers between polls (persisted by the store)."""

    watermark: datetime | None = None
    seen: dict[str, float] = field(default_factory=dict)  # EventId -> eventTime (epoch s)
    last_sweep: datetime | None = None  # in memory only: a restart sweeps at once
    sweep_cursor: datetime | None = None  # a sweep under way resumes here (in memory only)

    def apply(self, result: PollResult, lateness: timedelta) -> list[str]:
        """After a committed poll: remember new ids, move the watermark, forget old ids
        (``lateness`` is the longest look-back, the late sweep's when there is one).
        Returns the ids pruned."""
        for event in result.events:
            self.seen[event.event_id] = event.event_time.timestamp()
        self.seen.update(result.invalid_ids)
        if result.watermark is not None:
            self.watermark = result.watermark
        if result.swept:
            self.last_sweep = result.window_end
            self.sweep_cursor = None
        elif result.sweep_cursor is not None:
            self.sweep_cursor = result.sweep_cursor
        if self.watermark is None:
            return []
        # An id can come back only while its eventTime is inside a future window.
        horizon = (self.watermark - lateness).timestamp() - 60
        old = [i for i, t in self.seen.items() if t < horizon]
        for i in old:
            del self.seen[i]
        return old


@dataclass
class PollResult:
    events: list[TrailEvent]  # new events, eventTime order
    watermark: datetime | None  # where the watermark may move (None: unchanged)
    window_start: datetime
    window_end: datetime
    complete: bool  # the whole window was read
    calls: int = 0
    pages: int = 0
    throttles: int = 0
    call_errors: int = 0  # failed calls other than throttles
    retries: int = 0
    duplicates: int = 0
    invalid: list[str] = field(default_factory=list)  # reasons, safe to log
    invalid_ids: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the poll stopped early
    permanent: bool = False  # the error will not go away by itself (access denied)
    swept: bool = False  # the late sweep ran to completion in this poll
    sweep_cursor: datetime | None = None  # the sweep stopped here (budget or error): resume
    sweep_error: str | None = None


class PollError(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class PollSettings:
    lateness: timedelta = timedelta(minutes=15)
    slice_length: timedelta = timedelta(minutes=30)
    max_pages: int = 200
    page_retries: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 20.0
    # The late sweep: every ``sweep_interval``, once the main window is read, also read
    # ``[now - sweep_lateness, window start)`` for events LookupEvents showed later than
    # ``lateness`` (AWS documents no bound). None disables it.
    sweep_lateness: timedelta | None = timedelta(hours=1)
    sweep_interval: timedelta = timedelta(minutes=5)
    # A sweep reads this many pages per poll at most (checked between its 5-minute slices),
    # then resumes at the next poll: it never holds the main window up for minutes.
    sweep_max_pages: int = 40
    sweep_slice: timedelta = timedelta(minutes=5)

    @property
    def lookback(self) -> timedelta:
        """How far back an event can still be read: seen ids and windows live this long."""
        return max(self.lateness, self.sweep_lateness or self.lateness)


class CloudTrailPoller:
    def __init__(
        self,
        client: Any,
        target: Target,
        plan: QueryPlan,
        pacer: Pacer,
        settings: PollSettings = PollSettings(),
    ) -> None:
        self._client = client
        self.target = target
        self.plan = plan
        self._pacer = pacer
        self.settings = settings

    def window(self, state: SourceState, now: datetime) -> tuple[datetime, datetime]:
        mark = state.watermark or now
        return mark - self.settings.lateness, now

    def poll(self, state: SourceState, now: datetime) -> PollResult:
        start, end = self.window(state, now)
        result = PollResult(
            events=[], watermark=None, window_start=start, window_end=end, complete=False
        )
        found: dict[str, TrailEvent] = {}
        slice_start = start
        try:
            while slice_start < end:
                # The budget is checked between slices only: a slice once begun is read to
                # its end, so even a slice larger than the budget makes progress.
                if result.pages >= self.settings.max_pages:
                    raise _Budget
                slice_end = min(end, slice_start + self.settings.slice_length)
                for lookup in self.plan.lookups:
                    self._read(lookup, slice_start, slice_end, state.seen, found, result)
                result.watermark = slice_end
                slice_start = slice_end
            result.complete = True
        except PollError as exc:
            result.error = str(exc)
            result.permanent = exc.permanent
        except _Budget:
            result.error = f"page budget of {self.settings.max_pages} reached"
        if result.complete and (state.sweep_cursor is not None or self._sweep_due(state, now)):
            self._sweep(start, now, state, found, result)
        result.events = sorted(found.values(), key=lambda e: (e.event_time, e.event_id))
        return result

    def _sweep_due(self, state: SourceState, now: datetime) -> bool:
        s = self.settings
        if s.sweep_lateness is None or s.sweep_lateness <= s.lateness:
            return False
        return state.last_sweep is None or now - state.last_sweep >= s.sweep_interval

    def _sweep(
        self,
        window_start: datetime,
        now: datetime,
        state: SourceState,
        found: dict[str, TrailEvent],
        result: PollResult,
    ) -> None:
        """Read ``[now - sweep_lateness, window_start)``, ``sweep_max_pages`` at most, then
        resume there at the next poll. Its failure never holds back the watermark (the main
        window was read): it is reported and resumed next poll."""
        s = self.settings
        assert s.sweep_lateness is not None
        # Never behind the look-back: older ids may be forgotten, and would count twice.
        start = now - s.sweep_lateness
        slice_start = max(state.sweep_cursor, start) if state.sweep_cursor else start
        first_page = result.pages
        try:
            while slice_start < window_start:
                if result.pages - first_page >= s.sweep_max_pages:
                    result.sweep_cursor = slice_start
                    return
                slice_end = min(window_start, slice_start + s.sweep_slice)
                for lookup in self.plan.lookups:
                    self._read(lookup, slice_start, slice_end, state.seen, found, result)
                slice_start = slice_end
            result.swept = True
        except PollError as exc:
            result.sweep_error = str(exc)
            result.sweep_cursor = slice_start

    # -- one query over one slice, every page ---------------------------------------------
    def _read(
        self,
        lookup: tuple[str, str] | None,
        start: datetime,
        end: datetime,
        seen: Mapping[str, float],
        found: dict[str, TrailEvent],
        result: PollResult,
    ) -> None:
        params: dict[str, Any] = {"StartTime": start, "EndTime": end, "MaxResults": 50}
        if lookup is not None:
            params["LookupAttributes"] = [{"AttributeKey": lookup[0], "AttributeValue": lookup[1]}]
        token: str | None = None
        while True:
            page = self._call(dict(params, NextToken=token) if token else params, result)
            result.pages += 1
            for item in page.get("Events", []):
                self._take(item, seen, found, result, end)
            token = page.get("NextToken")
            if not token:
                return

    def _take(
        self,
        item: Mapping[str, Any],
        seen: Mapping[str, float],
        found: dict[str, TrailEvent],
        result: PollResult,
        slice_end: datetime,
    ) -> None:
        event_id = item.get("EventId")
        if not isinstance(event_id, str):
            result.invalid.append("item without EventId")
            return
        if event_id in seen or event_id in found or event_id in result.invalid_ids:
            result.duplicates += 1
            return
        raw = item.get("CloudTrailEvent")
        try:
            if not isinstance(raw, str):
                raise InvalidRecord("CloudTrailEvent missing or not a string")
            if len(raw) > MAX_RECORD_BYTES:
                raise InvalidRecord(f"record of {len(raw)} bytes exceeds the limit")
            event = TrailEvent.from_json(raw)
            if event.event_id != event_id:
                raise InvalidRecord("eventID inside the record differs from EventId")
        except Exception as exc:  # any failure on attacker text = an invalid record
            reason = exc if isinstance(exc, InvalidRecord) else f"unusable record ({exc!r:.120})"
            result.invalid.append(f"{event_id[:64]}: {reason}")
            when = item.get("EventTime")
            # Remembered like a seen id, so overlapping polls do not count it again.
            ts = when.timestamp() if isinstance(when, datetime) else slice_end.timestamp()
            result.invalid_ids[event_id] = ts
            return
        found[event_id] = event

    def _call(self, params: dict[str, Any], result: PollResult) -> dict[str, Any]:
        s = self.settings
        for attempt in range(s.page_retries + 1):
            self._pacer.acquire()
            result.calls += 1
            try:
                response: dict[str, Any] = self._client.lookup_events(**params)
                return response
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in THROTTLE_CODES:
                    result.throttles += 1
                else:
                    result.call_errors += 1
                if code in THROTTLE_CODES:
                    pass
                elif code in PERMANENT_CODES:
                    raise PollError(f"LookupEvents: {code}", permanent=True) from exc
                elif not (isinstance(status, int) and status >= 500):
                    raise PollError(f"LookupEvents: {code or status}", permanent=False) from exc
                reason = code or f"HTTP {status}"
            except BotoCoreError as exc:
                result.call_errors += 1
                reason = type(exc).__name__
            if attempt == s.page_retries:
                raise PollError(
                    f"LookupEvents: gave up after {attempt + 1} attempts ({reason})",
                    permanent=False,
                )
            result.retries += 1
            delay = min(s.backoff_cap, s.backoff_base * 2**attempt)
            self._pacer.penalise(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class _Budget(Exception):
    pass
