"""Metrics from batch transform joined output, checked against scikit-learn."""

import random
import tracemalloc
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_common import metrics
from pipeline_common.metrics import (
    HIGHER_IS_BETTER,
    PRIMARY_METRIC,
    EvaluationError,
    evaluate_joined_output,
)
from pipeline_common.problem import ProblemType
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

ABALONE = Path("/work/shared/datasets/abalone.csv")
TOLERANCE = 1e-9
FEATURES = 3


def joined(
    labels: Iterable[Any], predictions: Iterable[Any], features: int = FEATURES
) -> list[bytes]:
    """Joined output lines: label, the features, then the prediction as the container writes it."""
    rng = np.random.default_rng(0)
    lines = []
    for label, prediction in zip(labels, predictions, strict=True):
        row = [repr(float(label)), *(f"{x:.3f}" for x in rng.random(features))]
        if isinstance(prediction, np.ndarray):
            row.append("[" + ", ".join(repr(float(p)) for p in prediction) + "]")
        else:
            row.append(repr(float(prediction)))
        lines.append((",".join(row) + "\n").encode())
    return lines


def assert_close(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=0, abs=TOLERANCE), name


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rows", [2, 7, 1000])
def test_regression_metrics_match_scikit_learn(seed: int, rows: int) -> None:
    # Given labels far from zero (a naive sum-of-squares R^2 loses digits there) and ties
    rng = np.random.default_rng(seed)
    labels = np.round(1e4 + rng.normal(0, 3, rows), 1)
    predictions = np.round(labels + rng.normal(0, 1, rows), 1)

    # When evaluated
    metrics = evaluate_joined_output(
        joined(labels, predictions), ProblemType.REGRESSION, FEATURES + 1
    )

    # Then each metric is scikit-learn's
    assert_close(
        metrics,
        {
            "rows": rows,
            "rmse": np.sqrt(mean_squared_error(labels, predictions)),
            "mae": mean_absolute_error(labels, predictions),
            "r2": r2_score(labels, predictions),
        },
    )


def test_regression_on_abalone_sized_data() -> None:
    # Given abalone's rings and a rough linear predictor of them, as test.csv.out would hold
    rows = [line.split(",") for line in ABALONE.read_text().splitlines()[1:]]
    labels = np.array([float(r[-1]) for r in rows])
    shell_weight = np.array([float(r[-2]) for r in rows])
    predictions = np.round(6.5 + 15 * shell_weight, 4)
    lines = [
        f"{int(label)},{','.join(r[1:-1])},{p}\n".encode()
        for label, r, p in zip(labels, rows, predictions, strict=True)
    ]

    metrics = evaluate_joined_output(lines, ProblemType.REGRESSION, input_width=8)

    assert_close(
        metrics,
        {
            "rows": 4177,
            "rmse": np.sqrt(mean_squared_error(labels, predictions)),
            "mae": mean_absolute_error(labels, predictions),
            "r2": r2_score(labels, predictions),
        },
    )


@pytest.mark.parametrize(
    ("labels", "predictions", "r2"),
    [
        ([3.0, 3.0, 3.0], [3.0, 3.0, 3.0], 1.0),  # constant label, perfect fit
        ([3.0, 3.0, 3.0], [3.0, 2.0, 3.0], 0.0),  # constant label, any error
    ],
)
def test_r2_of_a_constant_label_follows_scikit_learn(
    labels: list[float], predictions: list[float], r2: float
) -> None:
    metrics = evaluate_joined_output(joined(labels, predictions), ProblemType.REGRESSION, 4)

    assert metrics["r2"] == r2 == r2_score(labels, predictions)


def test_r2_is_left_out_for_a_single_row() -> None:
    metrics = evaluate_joined_output([b"3,1,2,2.5"], ProblemType.REGRESSION, 3)

    assert metrics == {"rows": 1, "rmse": 0.5, "mae": 0.5}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rows", [2, 50, 4177])
def test_binary_probability_metrics_match_scikit_learn(seed: int, rows: int) -> None:
    # Given P(1) rounded to two digits (many ties), with certain 0 and 1 among them (clipping)
    rng = np.random.default_rng(seed)
    labels = np.r_[0, 1, rng.integers(0, 2, rows - 2)]
    probabilities = np.round(np.clip(labels * 0.3 + rng.random(rows) * 0.8, 0, 1), 2)
    probabilities[rng.integers(0, rows, 3)] = 1.0
    probabilities[rng.integers(0, rows, 3)] = 0.0

    for objective in ("binary:logistic", None):
        metrics = evaluate_joined_output(
            joined(labels, probabilities), ProblemType.BINARY, FEATURES + 1, objective=objective
        )

        assert_close(
            metrics,
            {
                "rows": rows,
                "auc": roc_auc_score(labels, probabilities),
                "auc_error_bound": 0.0,  # exact
                "accuracy": accuracy_score(labels, probabilities > 0.5),
                "logloss": log_loss(labels, probabilities),
            },
        )


@pytest.mark.parametrize("objective", ["binary:logitraw", None])
def test_binary_margins_threshold_at_zero_without_logloss(objective: str | None) -> None:
    # Given binary:logitraw margins, some of them outside [0, 1]
    rng = np.random.default_rng(7)
    labels = np.r_[0, 1, rng.integers(0, 2, 498)]
    margins = np.round(labels * 1.5 - 0.75 + rng.normal(0, 1, 500), 1)

    metrics = evaluate_joined_output(
        joined(labels, margins), ProblemType.BINARY, FEATURES + 1, objective=objective
    )

    assert_close(
        metrics,
        {
            "rows": 500,
            "auc": roc_auc_score(labels, margins),
            "auc_error_bound": 0.0,
            "accuracy": accuracy_score(labels, margins > 0),
        },
    )


def test_binary_hinge_classes_have_no_logloss() -> None:
    labels = [0, 1, 1, 0, 1]
    classes = [0, 1, 0, 0, 1]

    metrics = evaluate_joined_output(
        joined(labels, classes), ProblemType.BINARY, FEATURES + 1, objective="binary:hinge"
    )

    assert_close(
        metrics,
        {
            "rows": 5,
            "auc": roc_auc_score(labels, classes),
            "auc_error_bound": 0.0,
            "accuracy": accuracy_score(labels, classes),
        },
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_class", [2, 3, 7])
def test_multiclass_probabilities_match_scikit_learn(seed: int, num_class: int) -> None:
    # Given softprob rows, written like [0.1, 0.2, 0.7], with tied maxima and a zero probability
    rng = np.random.default_rng(seed)
    rows = 600
    labels = rng.integers(0, num_class, rows)
    raw = np.round(rng.random((rows, num_class)) * 4, 0) + 1e-3
    probabilities = raw / raw.sum(axis=1, keepdims=True)
    probabilities[0] = 0.0
    probabilities[0, (labels[0] + 1) % num_class] = 1.0

    metrics = evaluate_joined_output(
        joined(labels, list(probabilities)),
        ProblemType.MULTICLASS,
        FEATURES + 1,
        num_class=num_class,
    )

    assert_close(
        metrics,
        {
            "rows": rows,
            "accuracy": accuracy_score(labels, probabilities.argmax(axis=1)),
            "logloss": log_loss(labels, probabilities, labels=range(num_class)),
        },
    )


def test_multiclass_probabilities_written_as_plain_fields() -> None:
    lines = [b"2,0.5,1.5,0.1,0.2,0.7", b"0,0.5,1.5,0.2,0.5,0.3"]

    metrics = evaluate_joined_output(lines, ProblemType.MULTICLASS, 3, num_class=3)

    assert_close(
        metrics,
        {
            "rows": 2,
            "accuracy": 0.5,
            "logloss": log_loss([2, 0], [[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]], labels=range(3)),
        },
    )


def test_num_class_read_back_from_dynamodb_as_a_decimal() -> None:
    lines = [b"2,0.5,1.5,0.1,0.2,0.7", b"1,0.5,1.5,0.2,0.5,0.3"]

    num_class: Any = Decimal(3)

    metrics = evaluate_joined_output(lines, ProblemType.MULTICLASS, 3, num_class=num_class)

    assert metrics["accuracy"] == 1.0


def test_multiclass_softmax_classes_give_accuracy_only() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 300)
    classes = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 4, 300))

    metrics = evaluate_joined_output(
        joined(labels, classes), ProblemType.MULTICLASS, FEATURES + 1, num_class=4
    )

    assert_close(metrics, {"rows": 300, "accuracy": accuracy_score(labels, classes)})


def test_crlf_and_blank_trailing_lines_are_ignored() -> None:
    lines = [b"1,0.5,2.0\r\n", b"3,0.5,2.0\r\n", b"\r\n", b""]

    metrics = evaluate_joined_output(lines, ProblemType.REGRESSION, 2)

    assert metrics == {"rows": 2, "rmse": 1.0, "mae": 1.0, "r2": 0.0}


INVALID_OUTPUT = [
    pytest.param(ProblemType.REGRESSION, [], None, "no rows to evaluate", id="empty"),
    pytest.param(
        ProblemType.REGRESSION,
        [b"1,2,3"],
        None,
        "Line 1 has 3 fields and no prediction after the 3 input fields",
        id="no-join",
    ),
    pytest.param(
        ProblemType.REGRESSION,
        [b"x,2,3,4"],
        None,
        "Line 1: the label 'x' is not a number",
        id="label",
    ),
    pytest.param(
        ProblemType.REGRESSION, [b"1,2,3,nan"], None, "the prediction is nan", id="nan-prediction"
    ),
    pytest.param(
        ProblemType.REGRESSION, [b"1,2,3,4,5"], None, "has 2 prediction values", id="two-values"
    ),
    pytest.param(ProblemType.BINARY, [b"2,2,3,0.5"], None, "the label 2 is not 0 or 1", id="bin"),
    pytest.param(
        ProblemType.BINARY,
        [b"1,2,3,0.5", b"1,2,3,0.7"],
        None,
        "every test row is positive (1); test.csv needs both classes",
        id="one-class",
    ),
    pytest.param(
        ProblemType.MULTICLASS,
        [b"3,2,3,0.2,0.3,0.5"],
        3,
        "the label 3 is not a class number (0 to 2)",
        id="label-beyond-num_class",
    ),
    pytest.param(
        ProblemType.MULTICLASS,
        [b"1,2,3,0.5,0.5"],
        3,
        "has 2 prediction values; expected 1 (a class) or 3",
        id="too-few-probabilities",
    ),
    pytest.param(
        ProblemType.MULTICLASS,
        [b"1,2,3,1.5"],
        3,
        "the predicted class 1.5 is not a class number",
        id="fractional-class",
    ),
]


@pytest.mark.parametrize(("problem", "lines", "num_class", "reason"), INVALID_OUTPUT)
def test_unusable_output_raises_with_the_line(
    problem: ProblemType, lines: list[bytes], num_class: int | None, reason: str
) -> None:
    with pytest.raises(EvaluationError) as failed:
        evaluate_joined_output(lines, problem, 3, num_class)

    assert reason in str(failed.value)


def test_every_primary_metric_has_a_direction() -> None:
    assert set(PRIMARY_METRIC.values()) <= HIGHER_IS_BETTER.keys()
    assert HIGHER_IS_BETTER["rmse"] is False
    assert HIGHER_IS_BETTER["auc"] is True
    assert HIGHER_IS_BETTER["accuracy"] is True


def test_long_outputs_score_in_chunks_exactly_as_scikit_learn() -> None:
    # Given more lines than one chunk, and a bracketed prediction that sends its chunk line by line
    rng = np.random.default_rng(3)
    rows = 20_000
    labels = np.round(1e4 + rng.normal(0, 3, rows), 2)
    predictions = np.round(labels + rng.normal(0, 1, rows), 2)
    lines = joined(labels, predictions)
    lines[15_000] = lines[15_000].replace(
        b"," + repr(float(predictions[15_000])).encode(),
        b",[" + repr(float(predictions[15_000])).encode() + b"]",
    )

    metrics = evaluate_joined_output(lines, ProblemType.REGRESSION, 1 + FEATURES)

    assert_close(
        metrics,
        {
            "rows": rows,
            "rmse": mean_squared_error(labels, predictions) ** 0.5,
            "mae": mean_absolute_error(labels, predictions),
            "r2": r2_score(labels, predictions),
        },
    )


def test_a_bad_label_deep_in_a_long_binary_output_is_named_by_its_line() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 20_000).astype(float)
    labels[12_345] = 2.0
    lines = joined(labels, rng.random(20_000))

    with pytest.raises(EvaluationError, match="Line 12346: the label 2 is not 0 or 1"):
        evaluate_joined_output(lines, ProblemType.BINARY, 1 + FEATURES)


def auc_lines(labels: Iterable[Any], scores: Iterable[Any], form: str = "{!r}") -> list[bytes]:
    """Joined output with no features: label, score."""
    pairs = zip(labels, scores, strict=True)
    return [f"{int(y)},{form.format(float(s))}\n".encode() for y, s in pairs]


def binary_auc(lines: Iterable[bytes], **options: Any) -> tuple[float, float]:
    metrics = evaluate_joined_output(lines, ProblemType.BINARY, 1, **options)
    return metrics["auc"], metrics["auc_error_bound"]


@pytest.mark.parametrize(("limit", "rows", "at_most"), [(64, 5_000, 0.03), (1024, 30_000, 2e-3)])
@pytest.mark.parametrize("kind", ["probability", "margin", "margin line by line"])
def test_auc_past_the_distinct_score_limit_is_within_its_small_bound(
    monkeypatch: pytest.MonkeyPatch, limit: int, rows: int, at_most: float, kind: str
) -> None:
    # Given more distinct scores than the limit, spread smoothly (about 1 / limit apart)
    monkeypatch.setattr(metrics, "EXACT_AUC_SCORES", limit)
    rng = np.random.default_rng(limit)
    labels = rng.integers(0, 2, rows)
    margins = labels * 1.5 - 0.75 + rng.normal(0, 1, rows)
    scores = 1 / (1 + np.exp(-margins)) if kind == "probability" else margins
    # A bracketed prediction ([0.3]) takes every line of its chunk through the line-by-line path
    lines = auc_lines(labels, scores, "[{!r}]" if "line by line" in kind else "{!r}")

    auc, bound = binary_auc(lines)

    # Then AUC is off by no more than the bound reported, which is about 1 / limit
    assert 0 < bound < at_most
    assert abs(auc - roc_auc_score(labels, scores)) <= bound


def test_ties_counted_before_and_after_the_switch_to_bins_stay_ties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given positives scored 0.5 in the first chunk, still exact; then 200 distinct negative
    # scores below 0.25 that switch the count to bins; then negatives also scored 0.5
    monkeypatch.setattr(metrics, "EXACT_AUC_SCORES", 64)
    chunk = metrics._CHUNK_LINES
    labels = [1] * chunk + [0] * chunk + [0] * chunk + [1] * 10
    scores = (
        [0.5] * chunk
        + [0.01 + 0.2 * (i % 200) / 200 for i in range(chunk)]
        + [0.5] * chunk
        + [0.875] * 10
    )

    auc, bound = binary_auc(auc_lines(labels, scores))

    # Then the scores 0.5 tie across the switch, and bins of one class cost nothing: AUC is exact,
    # and the bound is the tie's own pairs, which the bins cannot tell from a tie
    positives, negatives = chunk + 10, 2 * chunk
    assert auc == pytest.approx(roc_auc_score(labels, scores), rel=0, abs=1e-15)
    assert bound == chunk * chunk / (2 * positives * negatives)


MARGINS = [-1e300, -5.0, -1.0, -1e-300, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 0.5, 1.0, 3.0, 1e300]


@pytest.mark.parametrize("limit", [len(MARGINS) - 1, 8, 2])  # -0.0 and 0.0 are one score
def test_margins_order_by_value_across_signs_and_zeros(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    # Given binary:logitraw margins of every sign and size, -0.0 and +0.0 among them
    monkeypatch.setattr(metrics, "EXACT_AUC_SCORES", limit)
    rng = random.Random(limit)
    labels = [int(rng.random() < 0.4) for _ in range(3_000)] + [1, 0, 1, 0]
    scores = [rng.choice(MARGINS) for _ in range(3_000)] + [0.0, -0.0, -1e-300, 5e-324]

    auc, bound = binary_auc(auc_lines(labels, scores), objective="binary:logitraw")

    # Then AUC is scikit-learn's while exact, and within the bound once binned
    expected = roc_auc_score(labels, scores)
    if limit == len(MARGINS) - 1:
        assert (auc, bound) == (pytest.approx(expected, rel=0, abs=1e-15), 0.0)
    else:
        assert abs(auc - expected) <= bound < 0.5


def test_minus_zero_ties_with_zero() -> None:
    # Positive -0.0 against negative 0.0 is a tie (half), as in scikit-learn
    labels, scores = [0, 1, 0, 1], [0.0, -0.0, -1.0, 1.0]

    assert (
        binary_auc(auc_lines(labels, scores))
        == (0.875, 0.0)
        == (
            roc_auc_score(labels, scores),
            0.0,
        )
    )


def score_lines(rows: int, seed: int) -> Iterator[bytes]:
    """Joined output made as it is read, every score distinct: nothing held but the scorer's."""
    rng = random.Random(seed)
    for _ in range(rows):
        positive = rng.random() < 0.3
        yield f"{int(positive)},{rng.random() * 0.7 + 0.3 * positive!r}\n".encode()


def peak_bytes(rows: int) -> int:
    tracemalloc.start()
    try:
        binary_auc(score_lines(rows, seed=rows))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_past_the_distinct_score_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a limit of 256 distinct scores, and 4 times as many rows, all distinct, in one run
    # as in another (exact counts of every score would take about 3 MB more)
    monkeypatch.setattr(metrics, "EXACT_AUC_SCORES", 256)

    small, large = peak_bytes(10_000), peak_bytes(40_000)

    # Then the peak is one chunk's lines and counts either way
    assert large < small + 1_000_000
