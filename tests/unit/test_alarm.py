"""The CloudWatch metric-alarm evaluator against the AWS user guide's own examples.

The tables below are copied from "Configuring how CloudWatch alarms treat missing data"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html,
section "How alarm state is evaluated when data is missing"), backticks removed, so they
can be read side by side with the page. Points are oldest first, newest on the right:
0 = not breaching, X = breaching, - = missing. Evaluation range 5, N = 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veilleur.rules.alarm import (
    AlarmSpec,
    AlarmState,
    Basis,
    Comparison,
    Evaluation,
    TreatMissing,
    evaluate,
    is_transition,
)

# Current page, first table: Datapoints to Alarm = Evaluation Periods = 3.
TABLE_3_OF_3 = """
| Data points | # of data points that must be filled | MISSING | IGNORE | BREACHING | NOT BREACHING |
| --- | --- | --- | --- | --- | --- |
|  0 - X - X  |  0  |  OK  |  OK  |  OK  |  OK  |
|  0 - - - -  |  2  |  OK  |  OK  |  OK  |  OK  |
|  - - - - -  |  3  |  INSUFFICIENT_DATA  |  Retain current state  |  ALARM  |  OK  |
|  0 X X - X  |  0  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  - - X - -  |  2  |  ALARM  |  Retain current state  |  ALARM  |  OK  |
"""  # noqa: E501 (the page's header row, verbatim)

# Current page, second table: 2 out of 3.
TABLE_2_OF_3 = """
| Data points | # of missing data points | MISSING | IGNORE | BREACHING | NOT BREACHING |
| --- | --- | --- | --- | --- | --- |
|  0 - X - X  |  0  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  0 0 X 0 X  |  0  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  0 - X - -  |  1  |  OK  |  OK  |  ALARM  |  OK  |
|  - - - - 0  |  2  |  OK  |  OK  |  ALARM  |  OK  |
|  - - - X -  |  2  |  ALARM  |  Retain current state  |  ALARM  |  OK  |
"""

# An earlier revision of the same section (awsdocs/amazon-cloudwatch-user-guide,
# doc_source/AlarmThatSendsEmail.md at commit 05fd32f63861ca6646c8aa5c94334fd6e0dfdbf5),
# before "Avoiding premature transitions" was written. Column 2 there counts every "-"
# of the range, so it is not checked. Its "- - - - X" rows answer "Insufficient data"
# for MISSING; the current page only says such an alarm "does not go immediately into
# ALARM state", and `missing` now gives INSUFFICIENT_DATA only when the whole range is
# missing. We keep the current state there, which is INSUFFICIENT_DATA when the alarm
# comes from an empty range: those cells are checked from that state only (DIVERGENT).
OLD_TABLE_3_OF_3 = """
| Data points | # of missing data points | MISSING | IGNORE | BREACHING | NOT BREACHING |
| --- | --- | --- | --- | --- | --- |
|  0 - X - X  |  2  |  OK  |  OK  |  OK  |  OK  |
|  0 - - - -  |  4  |  OK  |  OK  |  OK  |  OK  |
|  - - - - -  |  5  |  Insufficient data  |  Retain current state  |  ALARM  |  OK  |
|  0 X X - X  |  1  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  - - - - X  |  4  |  Insufficient data  |  Retain current state  |  ALARM  |  OK  |
|  X - - - -  |  4  |  ALARM  |  Retain current state  |  ALARM  |  OK  |
"""

OLD_TABLE_2_OF_3 = """
| Data points | # of missing data points | MISSING | IGNORE | BREACHING | NOT BREACHING |
| --- | --- | --- | --- | --- | --- |
|  0 - X - X  |  2  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  0 0 X 0 X  |  0  |  ALARM  |  ALARM  |  ALARM  |  ALARM  |
|  0 - X - -  |  3  |  OK  |  OK  |  ALARM  |  OK  |
|  - - - - 0  |  4  |  OK  |  OK  |  ALARM  |  OK  |
|  - - - - X  |  4  |  Insufficient data  |  Retain current state  |  ALARM  |  OK  |
"""
DIVERGENT = {("- - - - X", TreatMissing.missing)}

COLUMNS = (
    TreatMissing.missing,
    TreatMissing.ignore,
    TreatMissing.breaching,
    TreatMissing.notBreaching,
)
RETAIN = "Retain current state"
EXPECTED = {
    "OK": AlarmState.OK,
    "ALARM": AlarmState.ALARM,
    "INSUFFICIENT_DATA": AlarmState.INSUFFICIENT_DATA,
    "Insufficient data": AlarmState.INSUFFICIENT_DATA,
}

THRESHOLD = 10.0
# For each comparison: a value that breaches and one that does not.
SIDES = {
    Comparison.GreaterThanThreshold: (11.0, 9.0),
    Comparison.GreaterThanOrEqualToThreshold: (10.0, 9.0),
    Comparison.LessThanThreshold: (9.0, 10.0),
    Comparison.LessThanOrEqualToThreshold: (10.0, 11.0),
}


def spec(
    n: int = 3,
    m: int = 3,
    treat: TreatMissing = TreatMissing.missing,
    comparison: Comparison = Comparison.GreaterThanThreshold,
) -> AlarmSpec:
    return AlarmSpec(comparison, THRESHOLD, n, m, treat)


def points(
    row: str, comparison: Comparison = Comparison.GreaterThanThreshold
) -> list[float | None]:
    breach, ok = SIDES[comparison]
    return [{"X": breach, "0": ok, "-": None}[c] for c in row.split()]


def cases(table: str, m: int, check_fill: bool = True) -> Iterator[object]:
    for line in table.strip().splitlines()[2:]:
        row, fill, *cells = (cell.strip() for cell in line.strip().strip("|").split("|"))
        for treat, cell in zip(COLUMNS, cells, strict=True):
            starts = list(AlarmState)
            if (row, treat) in DIVERGENT:
                starts = [AlarmState.INSUFFICIENT_DATA]
            for start in starts:
                expected = start if cell == RETAIN else EXPECTED[cell]
                yield pytest.param(
                    row,
                    int(fill) if check_fill else None,
                    m,
                    treat,
                    start,
                    expected,
                    id=f"{m}of3[{row}]-{treat}-from-{start}",
                )


def check_row(
    row: str,
    fill: int | None,
    m: int,
    treat: TreatMissing,
    start: AlarmState,
    expected: AlarmState,
) -> None:
    for comparison in Comparison:
        result = evaluate(points(row, comparison), start, spec(3, m, treat, comparison))
        assert result.state is expected, (comparison, result.reason)
        assert len(result.deciding) == 3
        if fill is not None:
            assert result.deciding.count(None) == fill


@pytest.mark.parametrize(
    ("row", "fill", "m", "treat", "start", "expected"),
    [*cases(TABLE_3_OF_3, 3), *cases(TABLE_2_OF_3, 2)],
)
def test_documented_tables(
    row: str, fill: int, m: int, treat: TreatMissing, start: AlarmState, expected: AlarmState
) -> None:
    check_row(row, fill, m, treat, start, expected)


@pytest.mark.parametrize(
    ("row", "fill", "m", "treat", "start", "expected"),
    [*cases(OLD_TABLE_3_OF_3, 3, check_fill=False), *cases(OLD_TABLE_2_OF_3, 2, check_fill=False)],
)
def test_earlier_revision_tables(
    row: str, fill: None, m: int, treat: TreatMissing, start: AlarmState, expected: AlarmState
) -> None:
    check_row(row, fill, m, treat, start, expected)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # The section's own sequences, 3 of 3, treated as missing.
        ("- - - - X", None),  # "does not go immediately into ALARM": state kept
        ("- - - X -", None),
        ("- - X - -", AlarmState.ALARM),  # oldest breaching point 3 periods old >= M
        ("- - - X 0", AlarmState.OK),
        ("- - X - 0", AlarmState.OK),
        ("X - - - -", AlarmState.ALARM),  # beyond the last N periods, still in the range
        ("- X - - X", AlarmState.ALARM),
        ("0 - X - -", AlarmState.OK),  # a real non-breaching point turns the rule off
    ],
)
def test_premature_alarm_rule(row: str, expected: AlarmState | None) -> None:
    for start in AlarmState:
        result = evaluate(points(row), start, spec())
        assert result.state is (start if expected is None else expected), result.reason
        if expected is AlarmState.ALARM and row.count("X") < 3:
            assert result.basis is Basis.PREMATURE
            assert "premature" in result.reason


def test_premature_rule_for_m_of_n_counts_age_against_m() -> None:
    # 2 of 3: a lone breach fires once it is 2 periods old, not before.
    assert evaluate(points("- - - - X"), AlarmState.OK, spec(m=2)).state is AlarmState.OK
    assert evaluate(points("- - - X -"), AlarmState.OK, spec(m=2)).state is AlarmState.ALARM
    # ignore never fires on the premature rule: it keeps the state.
    kept = evaluate(points("- - X - -"), AlarmState.OK, spec(treat=TreatMissing.ignore))
    assert (kept.state, kept.basis) == (AlarmState.OK, Basis.RETAINED)


def test_m_of_n_breaches_need_not_be_consecutive() -> None:
    # 3 of 5 (range 7): breaches at the 1st, 3rd and 5th of the last five.
    result = evaluate([1.0, 1.0, 20.0, 1.0, 20.0, 1.0, 20.0], AlarmState.OK, spec(5, 3))
    assert (result.state, result.breaching) == (AlarmState.ALARM, 3)
    assert result.deciding == (20.0, 1.0, 20.0, 1.0, 20.0)
    # The same three breaches spread over six periods: only two are in the last five.
    result = evaluate([1.0, 20.0, 20.0, 1.0, 1.0, 1.0, 20.0], AlarmState.ALARM, spec(5, 3))
    assert (result.state, result.breaching) == (AlarmState.OK, 2)


def test_enough_real_points_reach_back_over_gaps_and_ignore_treatment() -> None:
    for treat in TreatMissing:
        result = evaluate([20.0, None, 20.0, None, 20.0], AlarmState.OK, spec(treat=treat))
        assert (result.state, result.basis) == (AlarmState.ALARM, Basis.REAL)
        assert result.deciding == (20.0, 20.0, 20.0)


def test_real_breaches_reaching_m_alarm_whatever_the_treatment() -> None:
    # 2 of 3 with only two real points, both breaching: no filling can change that.
    for treat in TreatMissing:
        result = evaluate([None, 20.0, None, None, 20.0], AlarmState.OK, spec(m=2, treat=treat))
        assert result.state is AlarmState.ALARM, treat


@pytest.mark.parametrize(
    ("comparison", "at_threshold_breaches"),
    [
        (Comparison.GreaterThanThreshold, False),
        (Comparison.GreaterThanOrEqualToThreshold, True),
        (Comparison.LessThanThreshold, False),
        (Comparison.LessThanOrEqualToThreshold, True),
    ],
)
def test_value_equal_to_threshold(comparison: Comparison, at_threshold_breaches: bool) -> None:
    result = evaluate([THRESHOLD] * 3, AlarmState.OK, spec(1, 1, comparison=comparison))
    assert result.state is (AlarmState.ALARM if at_threshold_breaches else AlarmState.OK)
    assert comparison.breaches(THRESHOLD, THRESHOLD) is at_threshold_breaches


def test_single_period_alarm() -> None:
    one = spec(1, 1)
    assert one.evaluation_range == 3
    assert evaluate([None, None, 11.0], AlarmState.OK, one).state is AlarmState.ALARM
    assert evaluate([11.0, 11.0, 9.0], AlarmState.ALARM, one).state is AlarmState.OK
    # The newest real point decides even when it is two periods old (CloudWatch
    # "might repeatedly re-evaluate the last set of data points").
    assert evaluate([11.0, None, None], AlarmState.OK, one).state is AlarmState.ALARM
    assert evaluate([None] * 3, AlarmState.OK, one).state is AlarmState.INSUFFICIENT_DATA


@pytest.mark.parametrize(
    ("treat", "expected"),
    [
        (TreatMissing.missing, AlarmState.INSUFFICIENT_DATA),
        (TreatMissing.breaching, AlarmState.ALARM),
        (TreatMissing.notBreaching, AlarmState.OK),
    ],
)
def test_range_fully_missing(treat: TreatMissing, expected: AlarmState) -> None:
    for start in AlarmState:
        result = evaluate([None] * 5, start, spec(treat=treat))
        assert result.state is expected
        assert result.deciding == (None, None, None)
        assert "no datapoints were received for 5 periods" in result.reason


def test_missing_gives_insufficient_data_only_for_a_fully_missing_range() -> None:
    for row in ("0 - - - -", "- - - - X", "- - - X -", "- - X - -", "X - - - -"):
        for start in (AlarmState.OK, AlarmState.ALARM):
            result = evaluate(points(row), start, spec())
            assert result.state is not AlarmState.INSUFFICIENT_DATA, row


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_datapoints_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match=r"datapoint 2 is .*pass None for a missing period"):
        evaluate([1.0, 1.0, bad, 1.0, 1.0], AlarmState.OK, spec())


def test_points_must_cover_exactly_the_evaluation_range() -> None:
    with pytest.raises(ValueError, match=r"expected 5 datapoints .*N=3\), got 3"):
        evaluate([1.0, 1.0, 1.0], AlarmState.OK, spec())
    with pytest.raises(ValueError, match="datapoint 0 is not a number: True"):
        evaluate([True, 1.0, 1.0, 1.0, 1.0], AlarmState.OK, spec())


def test_state_transitions_ok_alarm_ok() -> None:
    alarm = spec(3, 2, TreatMissing.notBreaching)
    state = AlarmState.INSUFFICIENT_DATA
    history = []
    for window in ([None] * 5, [1, 1, 1, 1, 1], [1, 1, 1, 20, 20], [1, 1, 20, 20, 20],
                   [1, 20, 20, 20, 1], [20, 20, 20, 1, 1], [20, 20, 1, 1, 1]):  # fmt: skip
        result = evaluate([None if v is None else float(v) for v in window], state, alarm)
        history.append((result.state, is_transition(state, result)))
        state = result.state
    assert history == [
        (AlarmState.OK, True),
        (AlarmState.OK, False),
        (AlarmState.ALARM, True),
        (AlarmState.ALARM, False),
        (AlarmState.ALARM, False),  # 20, 20, 1: still 2 of 3
        (AlarmState.OK, True),
        (AlarmState.OK, False),
    ]


@pytest.mark.parametrize("start", list(AlarmState))
@pytest.mark.parametrize("row", ["- - - - -", "- - - - X", "- - X - -", "X - - - -"])
def test_ignore_keeps_each_starting_state(start: AlarmState, row: str) -> None:
    result = evaluate(points(row), start, spec(treat=TreatMissing.ignore))
    assert (result.state, result.basis) == (start, Basis.RETAINED)
    assert not is_transition(start, result)
    assert f"The state stays {start}" in result.reason


def test_reason_reads_like_cloudwatch() -> None:
    alarm = AlarmSpec(Comparison.GreaterThanThreshold, 80.0, 3, 3)
    fired = evaluate([10.0, None, 92.1, 95.0, 97.3], AlarmState.OK, alarm)
    assert fired.reason == (
        "Threshold Crossed: 3 out of the last 3 datapoints [97.3, 95.0, 92.1] were greater "
        "than the threshold (80.0) (minimum 3 datapoints for OK -> ALARM transition)."
    )
    assert (fired.deciding, fired.breaching) == ((92.1, 95.0, 97.3), 3)
    cleared = evaluate([92.1, 95.0, 97.3, 50.0, 97.3], AlarmState.ALARM, alarm)
    assert cleared.reason == (
        "Threshold Crossed: 1 out of the last 3 datapoints [97.3, 50.0, 97.3] was not greater "
        "than the threshold (80.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    empty = evaluate([None] * 5, AlarmState.OK, alarm)
    assert empty.reason == (
        "Insufficient Data: no datapoints were received for 5 periods and 3 missing "
        "datapoints were treated as [Missing]."
    )
    filled = evaluate(
        [None, None, 97.3, None, None], AlarmState.OK, spec(treat=TreatMissing.breaching)
    )
    assert "[missing, missing, 97.3]" in filled.reason
    assert "2 missing datapoints were treated as [Breaching]" in filled.reason


def test_spec_validation_messages() -> None:
    gt = Comparison.GreaterThanThreshold
    with pytest.raises(
        ValueError, match=r"datapoints_to_alarm \(M=4\) must not exceed evaluation_periods \(N=3\)"
    ):
        AlarmSpec(gt, 1.0, 3, 4)
    with pytest.raises(
        ValueError, match=r"evaluation_periods \(N\) must be an integer >= 1, got 0"
    ):
        AlarmSpec(gt, 1.0, 0, 0)
    with pytest.raises(
        ValueError, match=r"datapoints_to_alarm \(M\) must be an integer >= 1, got 0"
    ):
        AlarmSpec(gt, 1.0, 3, 0)
    with pytest.raises(
        ValueError, match=r"evaluation_periods \(N\) must be an integer >= 1, got 2.0"
    ):
        AlarmSpec(gt, 1.0, 2.0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        AlarmSpec(gt, math.nan, 3, 3)
    with pytest.raises(TypeError, match=r"use Comparison\.parse"):
        AlarmSpec(">", 1.0, 3, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"use TreatMissing\.parse"):
        AlarmSpec(gt, 1.0, 3, 3, "ignore")  # type: ignore[arg-type]
    assert AlarmSpec(gt, 1, 3, 3).treat_missing is TreatMissing.missing  # the AWS default


def test_evaluation_range_is_n_plus_two() -> None:
    assert [spec(n, 1).evaluation_range for n in (1, 3, 5, 10)] == [3, 5, 7, 12]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">", Comparison.GreaterThanThreshold),
        (">=", Comparison.GreaterThanOrEqualToThreshold),
        ("<", Comparison.LessThanThreshold),
        (" <= ", Comparison.LessThanOrEqualToThreshold),
        ("GreaterThanThreshold", Comparison.GreaterThanThreshold),
        ("lessthanorequaltothreshold", Comparison.LessThanOrEqualToThreshold),
    ],
)
def test_comparison_parse(text: str, expected: Comparison) -> None:
    assert Comparison.parse(text) is expected


def test_parse_errors_list_the_accepted_spellings() -> None:
    with pytest.raises(ValueError, match=r"unknown comparison '=>'.*GreaterThanThreshold \(>\)"):
        Comparison.parse("=>")
    assert TreatMissing.parse("not_breaching") is TreatMissing.notBreaching
    assert TreatMissing.parse("notBreaching") is TreatMissing.notBreaching
    with pytest.raises(ValueError, match=r"unknown treat_missing_data 'skip'.*notBreaching"):
        TreatMissing.parse("skip")


def test_is_transition_accepts_a_stored_state_string() -> None:
    result = evaluate([1.0] * 5, "OK", spec())  # type: ignore[arg-type]
    assert result.state is AlarmState.OK
    assert not is_transition(AlarmState.OK, result)
    assert is_transition(AlarmState.INSUFFICIENT_DATA, result)


# Properties over random ranges (N <= 5): the rules above, stated generally.
CELL = st.sampled_from([None, 0.0, 20.0])
SPECS = st.integers(1, 5).flatmap(
    lambda n: st.builds(
        lambda m, treat, cmp: AlarmSpec(cmp, THRESHOLD, n, m, treat),
        st.integers(1, n),
        st.sampled_from(list(TreatMissing)),
        st.sampled_from(list(Comparison)),
    )
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[AlarmSpec, list[float | None], AlarmState]:
    alarm = draw(SPECS)
    window = draw(st.lists(CELL, min_size=alarm.evaluation_range, max_size=alarm.evaluation_range))
    return alarm, window, draw(st.sampled_from(list(AlarmState)))


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_properties(case: tuple[AlarmSpec, list[float | None], AlarmState]) -> None:
    alarm, window, start = case
    result: Evaluation = evaluate(window, start, alarm)
    real = [v for v in window if v is not None]
    assert len(result.deciding) == alarm.evaluation_periods
    # Only a retained verdict depends on the starting state.
    if result.basis is not Basis.RETAINED:
        for other in AlarmState:
            assert evaluate(window, other, alarm).state is result.state
    else:
        assert result.state is start
    # With N real points the treatment of missing data is never consulted.
    if len(real) >= alarm.evaluation_periods:
        assert result.basis is Basis.REAL
        assert all(v is not None for v in result.deciding)
        assert (result.state is AlarmState.ALARM) == (result.breaching >= alarm.datapoints_to_alarm)
    # INSUFFICIENT_DATA only for `missing` over an empty range.
    if result.state is AlarmState.INSUFFICIENT_DATA and result.basis is not Basis.RETAINED:
        assert not real
        assert alarm.treat_missing is TreatMissing.missing
    # Every real point of the range is in the deciding set when there are fewer than N.
    if len(real) < alarm.evaluation_periods:
        assert [v for v in result.deciding if v is not None] == real
