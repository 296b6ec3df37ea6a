"""CloudWatch metric-alarm evaluation, reproduced as a pure function.

One call to :func:`evaluate` is one CloudWatch evaluation: the datapoints of the
evaluation range (oldest first, ``None`` for a period without data), the alarm's
current state and its spec in; the new state, a CloudWatch-like reason and the
datapoints that decided it out. No I/O, no clock. Every rule and every judgement
call is explained, with its source, in ``docs/metric-alarms.md``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

# CloudWatch reads more periods than N (the "evaluation range") and does not publish
# how many; its only worked examples read 5 for N = 3. See docs/metric-alarms.md.
EXTRA_RANGE_PERIODS = 2


class AlarmState(enum.StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Comparison(enum.StrEnum):
    """``ComparisonOperator`` of ``PutMetricAlarm`` (static thresholds only)."""

    GreaterThanThreshold = "GreaterThanThreshold"
    GreaterThanOrEqualToThreshold = "GreaterThanOrEqualToThreshold"
    LessThanThreshold = "LessThanThreshold"
    LessThanOrEqualToThreshold = "LessThanOrEqualToThreshold"

    @classmethod
    def parse(cls, text: str) -> Comparison:
        """Accept the AWS name (any case) or its symbol: ``>``, ``>=``, ``<``, ``<=``."""
        wanted = text.strip()
        for member in cls:
            if wanted == member.symbol or wanted.lower() == member.value.lower():
                return member
        spellings = ", ".join(f"{m.value} ({m.symbol})" for m in cls)
        raise ValueError(f"unknown comparison {text!r}: expected one of {spellings}")

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def phrase(self) -> str:
        """The words CloudWatch uses in a state reason: "greater than or equal to"."""
        return _PHRASES[self]

    def breaches(self, value: float, threshold: float) -> bool:
        if self is Comparison.GreaterThanThreshold:
            return value > threshold
        if self is Comparison.GreaterThanOrEqualToThreshold:
            return value >= threshold
        if self is Comparison.LessThanThreshold:
            return value < threshold
        return value <= threshold


_SYMBOLS = {
    Comparison.GreaterThanThreshold: ">",
    Comparison.GreaterThanOrEqualToThreshold: ">=",
    Comparison.LessThanThreshold: "<",
    Comparison.LessThanOrEqualToThreshold: "<=",
}
_PHRASES = {
    Comparison.GreaterThanThreshold: "greater than",
    Comparison.GreaterThanOrEqualToThreshold: "greater than or equal to",
    Comparison.LessThanThreshold: "less than",
    Comparison.LessThanOrEqualToThreshold: "less than or equal to",
}


class TreatMissing(enum.StrEnum):
    """``TreatMissingData`` of ``PutMetricAlarm``; ``missing`` is the AWS default."""

    missing = "missing"
    ignore = "ignore"
    breaching = "breaching"
    notBreaching = "notBreaching"

    @classmethod
    def parse(cls, text: str) -> TreatMissing:
        """Accept the AWS spelling in any case, with or without ``_``/``-``."""
        wanted = text.strip().lower().replace("_", "").replace("-", "")
        for member in cls:
            if wanted == member.value.lower():
                return member
        spellings = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown treat_missing_data {text!r}: expected one of {spellings}")

    @property
    def label(self) -> str:
        """The bracketed label CloudWatch prints: ``[NonBreaching]``, ``[Missing]``."""
        return "NonBreaching" if self is TreatMissing.notBreaching else self.value.capitalize()


class Basis(enum.StrEnum):
    """What decided an evaluation. Short, stable: fit for a metric label."""

    REAL = "real"  # at least N real datapoints: the newest N decided
    FILLED = "filled"  # fewer than N real datapoints, gaps filled or left out
    ALL_MISSING = "all_missing"  # no datapoint at all in the evaluation range
    PREMATURE = "premature"  # the premature-alarm rule fired
    RETAINED = "retained"  # not enough evidence: the current state is kept


@dataclass(frozen=True)
class AlarmSpec:
    """The threshold part of a metric alarm: "M out of N" against a static threshold."""

    comparison: Comparison
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing: TreatMissing = TreatMissing.missing

    def __post_init__(self) -> None:
        if not isinstance(self.comparison, Comparison):
            raise TypeError(
                f"comparison must be a Comparison (use Comparison.parse), got {self.comparison!r}"
            )
        if not isinstance(self.treat_missing, TreatMissing):
            raise TypeError(
                f"treat_missing must be a TreatMissing (use TreatMissing.parse), "
                f"got {self.treat_missing!r}"
            )
        if not _is_number(self.threshold) or not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
        n, m = self.evaluation_periods, self.datapoints_to_alarm
        if not _is_int(n) or n < 1:
            raise ValueError(f"evaluation_periods (N) must be an integer >= 1, got {n!r}")
        if not _is_int(m) or m < 1:
            raise ValueError(f"datapoints_to_alarm (M) must be an integer >= 1, got {m!r}")
        if m > n:
            raise ValueError(
                f"datapoints_to_alarm (M={m}) must not exceed evaluation_periods (N={n})"
            )

    @property
    def evaluation_range(self) -> int:
        """How many periods one evaluation reads: N + 2 (5 for N = 3, as documented)."""
        return self.evaluation_periods + EXTRA_RANGE_PERIODS

    def breaches(self, value: float) -> bool:
        return self.comparison.breaches(value, self.threshold)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one evaluation.

    ``deciding`` holds the N periods the verdict rests on, oldest first: real values,
    and ``None`` for each missing period that had to stand in for a datapoint (those
    the doc tables count as "data points that must be filled"). ``breaching`` counts
    the breaching ones, filled periods included when they are treated as breaching.
    """

    state: AlarmState
    reason: str
    deciding: tuple[float | None, ...]
    breaching: int
    basis: Basis


def evaluate(points: Sequence[float | None], current: AlarmState, spec: AlarmSpec) -> Evaluation:
    """Evaluate ``spec`` over the evaluation range ``points`` (oldest first, ``None`` =
    missing period), from state ``current``. ``len(points)`` must equal
    ``spec.evaluation_range``; values must be finite (map NaN or inf to ``None``
    before calling, if that is what they mean)."""
    _check_points(points, spec)
    current = AlarmState(current)  # a stored "OK" string is fine; anything else raises
    n, m, treat = spec.evaluation_periods, spec.datapoints_to_alarm, spec.treat_missing
    real = [i for i, value in enumerate(points) if value is not None]

    if not real:
        return _all_missing(spec, current)

    if len(real) >= n:
        # Enough real datapoints: the newest N decide, missing-data treatment unused.
        window = real[-n:]
        deciding = tuple(points[i] for i in window)
        hits = sum(1 for i in window if _breaches(points[i], spec))
        state = AlarmState.ALARM if hits >= m else AlarmState.OK
        return Evaluation(
            state,
            _threshold_reason(spec, deciding, hits, treat, current, state),
            deciding,
            hits,
            Basis.REAL,
        )

    # Fewer than N real datapoints: every real one counts, and the newest missing
    # periods stand in for the rest, "as few times as possible".
    gaps = [i for i, value in enumerate(points) if value is None][len(real) - n :]
    deciding = tuple(points[i] for i in sorted(real + gaps))
    real_hits = sum(1 for i in real if _breaches(points[i], spec))
    hits = real_hits + (len(gaps) if treat is TreatMissing.breaching else 0)

    if treat in (TreatMissing.breaching, TreatMissing.notBreaching) or hits >= m:
        # Filled gaps decide, or the real datapoints alone already reach M.
        state = AlarmState.ALARM if hits >= m else AlarmState.OK
        return Evaluation(
            state,
            _threshold_reason(spec, deciding, hits, treat, current, state),
            deciding,
            hits,
            Basis.FILLED,
        )

    # missing / ignore, fewer than M real breaching datapoints.
    if real_hits < len(real):
        # A real non-breaching datapoint: OK (doc tables, rows "0 - - - -", "0 - X - -").
        reason = _threshold_reason(spec, deciding, hits, treat, current, AlarmState.OK)
        return Evaluation(AlarmState.OK, reason, deciding, hits, Basis.FILLED)

    oldest_age = len(points) - real[0]  # 1 = the newest period
    if treat is TreatMissing.missing and oldest_age >= m:
        return Evaluation(
            AlarmState.ALARM,
            _premature_reason(spec, deciding, oldest_age),
            deciding,
            hits,
            Basis.PREMATURE,
        )

    # Only breaching datapoints, too few (and, for `missing`, too recent) to alarm:
    # CloudWatch "does not go immediately into ALARM state"; the state is kept.
    return Evaluation(
        current, _retained_reason(spec, len(real), current), deciding, hits, Basis.RETAINED
    )


def is_transition(old: AlarmState, new: Evaluation) -> bool:
    """True when the evaluation changes the state: CloudWatch acts on changes only."""
    return new.state != old


def _check_points(points: Sequence[float | None], spec: AlarmSpec) -> None:
    if len(points) != spec.evaluation_range:
        raise ValueError(
            f"expected {spec.evaluation_range} datapoints (the evaluation range for "
            f"N={spec.evaluation_periods}), got {len(points)}"
        )
    for index, value in enumerate(points):
        if value is None:
            continue
        if not _is_number(value):
            raise ValueError(f"datapoint {index} is not a number: {value!r}")
        if not math.isfinite(value):
            raise ValueError(
                f"datapoint {index} is {value!r}: pass None for a missing period, "
                "non-finite values are rejected"
            )


def _breaches(value: float | None, spec: AlarmSpec) -> bool:
    return value is not None and spec.breaches(value)


def _all_missing(spec: AlarmSpec, current: AlarmState) -> Evaluation:
    n, treat = spec.evaluation_periods, spec.treat_missing
    deciding: tuple[float | None, ...] = (None,) * n
    what = (
        f"no datapoints were received for {spec.evaluation_range} periods and "
        f"{n} missing datapoint{_s(n)} {_were(n)} treated as [{treat.label}]."
    )
    if treat is TreatMissing.ignore:
        return Evaluation(
            current, f"Unchanged: {what} The state stays {current}.", deciding, 0, Basis.RETAINED
        )
    if treat is TreatMissing.missing:
        return Evaluation(
            AlarmState.INSUFFICIENT_DATA,
            f"Insufficient Data: {what}",
            deciding,
            0,
            Basis.ALL_MISSING,
        )
    breaching = treat is TreatMissing.breaching
    state = AlarmState.ALARM if breaching else AlarmState.OK
    return Evaluation(
        state, f"Threshold Crossed: {what}", deciding, n if breaching else 0, Basis.ALL_MISSING
    )


def _threshold_reason(
    spec: AlarmSpec,
    deciding: tuple[float | None, ...],
    hits: int,
    treat: TreatMissing,
    current: AlarmState,
    state: AlarmState,
) -> str:
    """CloudWatch's wording, datapoints newest first as in its reasons."""
    n = spec.evaluation_periods
    to_alarm = state is AlarmState.ALARM
    gaps = deciding.count(None)
    if to_alarm:
        count = hits
    else:  # real non-breaching datapoints, plus gaps when they count as not breaching
        count = sum(1 for v in deciding if v is not None and not spec.breaches(v))
        count += gaps if treat is TreatMissing.notBreaching else 0
    phrase = spec.comparison.phrase if to_alarm else f"not {spec.comparison.phrase}"
    text = (
        f"Threshold Crossed: {count} out of the last {n} datapoint{_s(n)} "
        f"[{_values(deciding)}] {_were(count)} {phrase} the threshold "
        f"({_num(spec.threshold)})"
    )
    if gaps:
        if treat in (TreatMissing.breaching, TreatMissing.notBreaching):
            text += f"; {gaps} missing datapoint{_s(gaps)} {_were(gaps)} treated as [{treat.label}]"
        else:
            text += f"; {gaps} missing datapoint{_s(gaps)} left out [{treat.label}]"
    if state is not current:
        needed = spec.datapoints_to_alarm if to_alarm else n - spec.datapoints_to_alarm + 1
        text += f" (minimum {needed} datapoint{_s(needed)} for {current} -> {state} transition)"
    return text + "."


def _premature_reason(spec: AlarmSpec, deciding: tuple[float | None, ...], age: int) -> str:
    return (
        f"Threshold Crossed: the oldest breaching datapoint of [{_values(deciding)}] is "
        f"{age} periods old (>= {spec.datapoints_to_alarm} datapoints to alarm) and every "
        f"newer period is {spec.comparison.phrase} the threshold ({_num(spec.threshold)}) "
        "or missing; missing data is treated as [Missing] (premature-alarm rule)."
    )


def _retained_reason(spec: AlarmSpec, real: int, current: AlarmState) -> str:
    n = spec.evaluation_periods
    return (
        f"Unchanged: only {real} of {n} datapoint{_s(n)} available, all {spec.comparison.phrase} "
        f"the threshold ({_num(spec.threshold)}) but too few or too recent to alarm; missing "
        f"data is treated as [{spec.treat_missing.label}]. The state stays {current}."
    )


def _values(deciding: tuple[float | None, ...]) -> str:
    return ", ".join("missing" if v is None else _num(v) for v in reversed(deciding))


def _num(value: float) -> str:
    return repr(float(value))


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
