"""The emulator's behaviour knobs: rate limit, delivery delay, injected faults, counters.

Each piece takes ``now`` or a ``random.Random`` from its caller: no clock, no global state."""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from veilleur.emulator.cloudtrail_events import Scope


class RateLimitMode(enum.Enum):
    SLIDING_WINDOW = "sliding_window"  # at most N accepted requests in any window: strict
    # burst of N, refilled at N per window: lenient
    TOKEN_BUCKET = "token_bucket"  # noqa: S105 - a mode name, not a password


@dataclass(frozen=True, slots=True)
class RateLimit:
    """LookupEvents allows 2 requests per second per account and region."""

    requests: int = 2
    per_seconds: float = 1.0
    mode: RateLimitMode = RateLimitMode.SLIDING_WINDOW


class RateLimiter:
    """Admits requests per scope; a refused request consumes nothing."""

    def __init__(self, policy: RateLimit) -> None:
        if policy.requests < 1 or policy.per_seconds <= 0:
            raise ValueError(f"invalid rate limit {policy}")
        self._policy = policy
        self._accepted: dict[Scope, deque[float]] = {}
        self._buckets: dict[Scope, tuple[float, float]] = {}  # scope -> (tokens, at)

    def try_acquire(self, scope: Scope, now: float) -> bool:
        if self._policy.mode is RateLimitMode.TOKEN_BUCKET:
            return self._bucket(scope, now)
        window = self._accepted.setdefault(scope, deque())
        while window and window[0] <= now - self._policy.per_seconds:
            window.popleft()
        if len(window) >= self._policy.requests:
            return False
        window.append(now)
        return True

    def _bucket(self, scope: Scope, now: float) -> bool:
        capacity = float(self._policy.requests)
        tokens, at = self._buckets.get(scope, (capacity, now))
        rate = capacity / self._policy.per_seconds
        tokens = min(capacity, tokens + max(0.0, now - at) * rate)
        if tokens < 1.0:
            self._buckets[scope] = (tokens, now)
            return False
        self._buckets[scope] = (tokens - 1.0, now)
        return True

    def reset(self) -> None:
        self._accepted.clear()
        self._buckets.clear()


@dataclass(frozen=True, slots=True)
class DelayModel:
    """Delivery delay from eventTime to visibility: log-normal around ``median_s`` (a few
    minutes), and with ``tail_probability`` a late delivery uniform in the tail range."""

    median_s: float = 180.0
    sigma: float = 0.5
    min_s: float = 30.0
    tail_probability: float = 0.05
    tail_min_s: float = 900.0
    tail_max_s: float = 1800.0

    def sample(self, rng: random.Random) -> float:
        if rng.random() < self.tail_probability:
            return rng.uniform(self.tail_min_s, self.tail_max_s)
        return max(self.min_s, rng.lognormvariate(math.log(self.median_s), self.sigma))


class FaultKind(enum.Enum):
    INTERNAL_ERROR = "internal_error"  # HTTP 500 InternalServerError
    SERVICE_UNAVAILABLE = "service_unavailable"  # HTTP 503 ServiceUnavailableException
    THROTTLE = "throttle"  # HTTP 400 ThrottlingException whatever the rate
    SLOW = "slow"  # sleep delay_s, then answer normally
    RESET = "reset"  # close the connection without an answer


@dataclass(frozen=True, slots=True)
class Fault:
    """The next ``count`` LookupEvents requests (of ``account``/``region`` if set) fail."""

    kind: FaultKind
    count: int = 1
    delay_s: float = 0.0
    account: str | None = None
    region: str | None = None

    def applies_to(self, scope: Scope) -> bool:
        return (self.account is None or self.account == scope.account) and (
            self.region is None or self.region == scope.region
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "count": self.count,
            "delay_s": self.delay_s,
            "account": self.account,
            "region": self.region,
        }

    @classmethod
    def from_json(cls, data: object) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        try:
            kind = FaultKind(data.get("kind"))
        except ValueError as exc:
            kinds = [k.value for k in FaultKind]
            raise ValueError(f"fault kind must be one of {kinds}") from exc
        count, delay = data.get("count", 1), data.get("delay_s", 0.0)
        account, region = data.get("account"), data.get("region")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("fault count must be a positive integer")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError("fault delay_s must be a non-negative number")
        if not isinstance(account, str | None) or not isinstance(region, str | None):
            raise ValueError("fault account and region must be strings")
        return cls(kind, count, float(delay), account, region)


class FaultQueue:
    """Faults in the order injected; each request consumes one from the first that applies."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.count < 1:
            raise ValueError("fault count must be a positive integer")
        self._pending.append(fault)

    def take(self, scope: Scope) -> Fault | None:
        for index, fault in enumerate(self._pending):
            if fault.applies_to(scope):
                if fault.count == 1:
                    del self._pending[index]
                else:
                    self._pending[index] = Fault(
                        fault.kind, fault.count - 1, fault.delay_s, fault.account, fault.region
                    )
                return fault
        return None

    def pending(self) -> tuple[Fault, ...]:
        return tuple(self._pending)

    def clear(self) -> None:
        self._pending.clear()


class Outcome(enum.Enum):
    OK = "ok"  # a page served
    THROTTLED = "throttled"  # ThrottlingException (over the rate, or injected)
    FAULT = "fault"  # injected 500, 503 or connection reset
    ERROR = "error"  # a client error (validation, token, unknown operation, auth)


@dataclass(frozen=True, slots=True)
class ScopeStats:
    requests: Mapping[Outcome, int] = field(default_factory=dict)
    events_returned: int = 0

    @property
    def pages(self) -> int:
        return self.requests.get(Outcome.OK, 0)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def count(self, outcome: Outcome) -> int:
        return self.requests.get(outcome, 0)

    def to_json(self) -> dict[str, int]:
        out = {o.value: self.count(o) for o in Outcome}
        out.update(pages=self.pages, requests=self.total, events_returned=self.events_returned)
        return out


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """A snapshot of the counters since the last reset."""

    scopes: Mapping[Scope, ScopeStats]
    faults_injected: Mapping[FaultKind, int]
    events_stored: int
    events_visible: int
    faults_pending: tuple[Fault, ...]

    def for_scope(self, account: str, region: str) -> ScopeStats:
        return self.scopes.get(Scope(account, region), ScopeStats())

    def total(self, outcome: Outcome | None = None) -> int:
        if outcome is None:
            return sum(s.total for s in self.scopes.values())
        return sum(s.count(outcome) for s in self.scopes.values())

    def to_json(self) -> dict[str, Any]:
        totals = {o.value: self.total(o) for o in Outcome}
        totals.update(
            pages=self.total(Outcome.OK),
            requests=self.total(),
            events_returned=sum(s.events_returned for s in self.scopes.values()),
        )
        return {
            "totals": totals,
            "scopes": [
                {"account": scope.account, "region": scope.region, **stats.to_json()}
                for scope, stats in sorted(
                    self.scopes.items(), key=lambda kv: (kv[0].account, kv[0].region)
                )
            ],
            "faults_injected": {k.value: self.faults_injected.get(k, 0) for k in FaultKind},
            "faults_pending": [f.to_json() for f in self.faults_pending],
            "events_stored": self.events_stored,
            "events_visible": self.events_visible,
        }


class Counters:
    """Request outcomes per scope and faults fired. Not thread-safe: the caller locks."""

    def __init__(self) -> None:
        self._requests: dict[Scope, dict[Outcome, int]] = {}
        self._events: dict[Scope, int] = {}
        self._faults: dict[FaultKind, int] = {}

    def request(self, scope: Scope, outcome: Outcome, events_returned: int = 0) -> None:
        per = self._requests.setdefault(scope, {})
        per[outcome] = per.get(outcome, 0) + 1
        self._events[scope] = self._events.get(scope, 0) + events_returned

    def fault(self, kind: FaultKind) -> None:
        self._faults[kind] = self._faults.get(kind, 0) + 1

    def snapshot(
        self, events_stored: int, events_visible: int, pending: tuple[Fault, ...]
    ) -> EmulatorStats:
        scopes = {
            scope: ScopeStats(dict(per), self._events.get(scope, 0))
            for scope, per in self._requests.items()
        }
        return EmulatorStats(scopes, dict(self._faults), events_stored, events_visible, pending)

    def clear(self) -> None:
        self._requests.clear()
        self._events.clear()
        self._faults.clear()
