"""Property-based tests of the two parsers that meet users' bytes: the drop's CSV validator and
the prediction API's request parser. Whatever they are given, they either accept it exactly or
refuse it with their own error naming the place; nothing else may escape. And of the evaluator's
AUC, whatever the scores: exact, or within the error bound it reports."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_common import metrics
from pipeline_common.predictions import (
    PredictionRequest,
    PredictionRequestError,
    parse_request,
)
from pipeline_common.problem import ProblemType
from pipeline_common.validation import CsvProfile, DropRejected, profile_csv
from sklearn.metrics import roc_auc_score

# The same examples on every run, so CI never fails on a draw no one can replay; new draws come
# from changing the strategies.
EXAMPLES = settings(max_examples=250, deadline=None, derandomize=True)
# Within XGBoost's 32-bit floats, which the validator enforces.
values = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)


@st.composite
def tables(draw: st.DrawFn, min_width: int = 2) -> list[list[float]]:
    width = draw(st.integers(min_value=min_width, max_value=6))
    return draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=1, max_size=30))


def csv_lines(rows: list[list[float]], ending: bytes) -> list[bytes]:
    return [",".join(map(repr, row)).encode() + ending for row in rows]


@EXAMPLES
@given(tables(), st.sampled_from([b"\n", b"\r\n", b""]))
def test_well_formed_csv_is_accepted_and_profiled_exactly(
    rows: list[list[float]], ending: bytes
) -> None:
    profile = profile_csv("train.csv", csv_lines(rows, ending))

    labels = [row[0] for row in rows]
    assert profile.rows == len(rows)
    assert profile.columns == len(rows[0])
    assert profile.label_min == min(labels)
    assert profile.label_max == max(labels)
    assert profile.labels_integral == all(label.is_integer() for label in labels)


@EXAMPLES
@given(tables(), st.data())
def test_a_ragged_row_is_refused_by_its_line_number(
    rows: list[list[float]], data: st.DataObject
) -> None:
    rows = [*rows, list(rows[0])]
    ragged = data.draw(st.integers(min_value=1, max_value=len(rows) - 1))
    extra = data.draw(st.sampled_from([[0.5], []]))
    rows[ragged] = rows[ragged][:-1] if not extra else rows[ragged] + extra

    with pytest.raises(DropRejected, match=f"^test.csv line {ragged + 1} has"):
        profile_csv("test.csv", csv_lines(rows, b"\n"))


@EXAMPLES
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_any_bytes_are_accepted_or_refused_with_a_reason(lines: list[bytes]) -> None:
    try:
        outcome: object = profile_csv("validation.csv", lines)
    except DropRejected as rejected:
        outcome = rejected
    assert isinstance(outcome, CsvProfile) or str(outcome).startswith("validation.csv")


@EXAMPLES
@given(tables(min_width=1))
def test_json_and_csv_rows_parse_to_exactly_the_values_sent(rows: list[list[float]]) -> None:
    width = len(rows[0])
    as_json = parse_request(json.dumps({"instances": rows}), "application/json", width)
    as_csv = parse_request("\n".join(",".join(map(repr, r)) for r in rows), "text/csv", width)

    assert as_json.rows == rows
    assert as_csv.rows == rows


@EXAMPLES
@given(tables(min_width=1), st.data())
def test_a_row_of_the_wrong_width_is_named(rows: list[list[float]], data: st.DataObject) -> None:
    width = len(rows[0])
    wrong = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    rows[wrong] = [*rows[wrong], 1.0]

    with pytest.raises(PredictionRequestError, match=f"^row {wrong + 1} has {width + 1} values"):
        parse_request(json.dumps({"instances": rows}), "application/json", width)


@EXAMPLES
@given(
    st.one_of(st.none(), st.text(max_size=200)),
    st.sampled_from([None, "application/json", "text/csv", "text/plain", "application/json; x"]),
)
def test_any_body_is_parsed_or_refused_with_a_message(
    body: str | None, content_type: str | None
) -> None:
    try:
        outcome: object = parse_request(body, content_type, 3)
    except PredictionRequestError as error:
        outcome = error
    assert isinstance(outcome, PredictionRequest) or str(outcome)


@EXAMPLES
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=2, max_value=40),
)
def test_auc_is_exact_within_the_limit_and_within_its_bound_past_it(
    rows: list[tuple[bool, float]], limit: int
) -> None:
    # Scores of any sign and size (margins), -0.0, subnormals and ties, with both classes
    rows = [(False, rows[0][1]), (True, rows[-1][1]), *rows]
    labels, scores = [y for y, _ in rows], [s for _, s in rows]
    lines = [f"{int(y)},{s!r}".encode() for y, s in rows]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "EXACT_AUC_SCORES", limit)
        result = metrics.evaluate_joined_output(lines, ProblemType.BINARY, 1)

    # scikit-learn's trapezoids in floats may differ in the last bits from the exact fraction
    expected = roc_auc_score(labels, scores)
    if len(set(scores)) <= limit:
        assert result["auc_error_bound"] == 0.0
        assert result["auc"] == pytest.approx(expected, rel=0, abs=1e-12)
    else:
        assert abs(result["auc"] - expected) <= result["auc_error_bound"] + 1e-12
