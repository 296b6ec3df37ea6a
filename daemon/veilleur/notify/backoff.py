"""When to try a failed delivery again, and when to give up. Pure: time and randomness come in.

Exponential backoff with full jitter (the delay is drawn uniformly up to
``min(cap, base * 2**(attempts-1))``), so that many rows failing together do not retry
together. Giving up is decided by age, not by a count of attempts: an outage of a few hours
must not lose alerts, whatever the number of attempts it took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

# The smallest delay: a retry is never due again within the drain that scheduled it.
_MIN_DELAY = timedelta(milliseconds=1)


class Rng(Protocol):
    """What the policy needs from a random source; ``random.Random`` fits."""

    def random(self) -> float:
        """A float in [0.0, 1.0)."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.base <= timedelta(0):
            raise ValueError(f"retry base must be positive, got {self.base}")
        if self.cap < self.base:
            raise ValueError(f"retry cap {self.cap} is below its base {self.base}")
        if self.max_age <= timedelta(0):
            raise ValueError(f"dead-letter age must be positive, got {self.max_age}")

    def ceiling(self, attempts: int) -> timedelta:
        """The largest delay after ``attempts`` failed attempts (1 -> base, 2 -> 2*base, ...)."""
        exponent = max(attempts - 1, 0)
        # Past 2**30 the cap has long been reached; avoid huge intermediate numbers.
        if exponent >= 30:
            return self.cap
        return min(self.cap, self.base * (1 << exponent))

    def next_attempt(self, attempts: int, now: datetime, rng: Rng) -> datetime:
        """When to try again after ``attempts`` failed attempts (counting the one that just
        failed). Always strictly after ``now`` (by at least a millisecond)."""
        return now + max(self.ceiling(attempts) * (1.0 - rng.random()), _MIN_DELAY)

    def should_dead_letter(self, created_at: datetime, now: datetime) -> bool:
        return should_dead_letter(created_at, now, self.max_age)


def should_dead_letter(created_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """Give up on a row once it is ``max_age`` old (by when it was enqueued)."""
    return now - created_at >= max_age
