"""Pacing requests under an API's rate limit (LookupEvents: 2 requests/s per account-region)."""

from __future__ import annotations

from collections.abc import Callable


class Pacer:
    """Spaces calls at least ``1/rate`` seconds apart. Clock and sleep are injected."""

    def __init__(
        self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self.waited = 0.0

    def acquire(self) -> None:
        now = self._clock()
        wait = self._next - now
        if wait > 0:
            self.waited += wait
            self._sleep(wait)
            now = self._next
        self._next = now + self._interval

    def penalise(self, seconds: float) -> None:
        """After a throttle: nothing goes out for ``seconds``."""
        self._next = max(self._next, self._clock() + seconds)
