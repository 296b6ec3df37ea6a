"""The retry policy: exponential ceiling, full jitter, dead-letter by age."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veilleur.notify.backoff import RetryPolicy, should_dead_letter

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=10))


class FixedRng:
    """Returns the same draw every time: the jittered delay is then exact."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_ceiling_doubles_from_base_up_to_the_cap() -> None:
    ceilings = [POLICY.ceiling(n).total_seconds() for n in range(1, 10)]
    assert ceilings == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert POLICY.ceiling(0) == timedelta(seconds=5)
    assert POLICY.ceiling(10**9) == timedelta(minutes=10)


def test_jitter_scales_the_ceiling_exactly() -> None:
    assert POLICY.next_attempt(1, T0, FixedRng(0.0)) == T0 + timedelta(seconds=5)
    assert POLICY.next_attempt(3, T0, FixedRng(0.5)) == T0 + timedelta(seconds=10)
    assert POLICY.next_attempt(20, T0, FixedRng(0.75)) == T0 + timedelta(seconds=150)


def test_next_attempt_is_always_strictly_later() -> None:
    nearly_one = 1.0 - 2.0**-53
    assert POLICY.next_attempt(1, T0, FixedRng(nearly_one)) > T0


def test_full_jitter_spreads_retries_over_the_whole_range() -> None:
    rng = random.Random(42)
    delays = [(POLICY.next_attempt(4, T0, rng) - T0).total_seconds() for _ in range(500)]
    assert all(0 < d <= 40 for d in delays)
    assert min(delays) < 4  # not clustered at the ceiling: full jitter, not "equal jitter"
    assert max(delays) > 36


@given(attempts=st.integers(min_value=0, max_value=10_000), draw=st.floats(0.0, 1.0))
def test_next_attempt_stays_within_now_and_the_cap(attempts: int, draw: float) -> None:
    draw = min(draw, 1.0 - 2.0**-53)  # random() is in [0, 1)
    at = POLICY.next_attempt(attempts, T0, FixedRng(draw))
    assert T0 < at <= T0 + POLICY.ceiling(attempts) <= T0 + POLICY.cap


def test_dead_letter_is_decided_by_age_not_by_attempts() -> None:
    day = timedelta(hours=24)
    assert not should_dead_letter(T0, T0 + timedelta(hours=3), day)  # a 3 h SNS outage
    assert not should_dead_letter(T0, T0 + day - timedelta(microseconds=1), day)
    assert should_dead_letter(T0, T0 + day, day)
    assert RetryPolicy(max_age=timedelta(hours=1)).should_dead_letter(T0, T0 + timedelta(hours=2))


@pytest.mark.parametrize(
    ("base", "cap", "max_age", "message"),
    [
        (timedelta(0), timedelta(minutes=10), timedelta(hours=1), "base must be positive"),
        (timedelta(minutes=1), timedelta(seconds=5), timedelta(hours=1), "below its base"),
        (timedelta(seconds=5), timedelta(minutes=10), timedelta(0), "age must be positive"),
    ],
)
def test_policy_refuses_nonsense(
    base: timedelta, cap: timedelta, max_age: timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(base=base, cap=cap, max_age=max_age)
