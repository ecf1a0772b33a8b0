"""The deployment gate: threshold on the primary metric, and no worse than the live model."""

import math
from decimal import Decimal

import pytest
from pipeline_common.gate import GateDecision, decide, missed_bar
from pipeline_common.problem import ProblemType

REGRESSION = ProblemType.REGRESSION
BINARY = ProblemType.BINARY
MULTICLASS = ProblemType.MULTICLASS


@pytest.mark.parametrize(
    ("problem", "metrics", "threshold", "live", "passed", "reason"),
    [
        pytest.param(
            REGRESSION,
            {"rmse": 2.31},
            None,
            {"rmse": 2.12},
            False,
            "rmse 2.31 is worse than the live model's 2.12.",
            id="worse-than-live",
        ),
        pytest.param(
            REGRESSION,
            {"rmse": 2.12},
            3.0,
            {"rmse": 2.31},
            True,
            "rmse 2.12 meets the threshold 3, and it is better than the live model's 2.31.",
            id="better-than-live",
        ),
        pytest.param(
            REGRESSION,
            {"rmse": 2.2},
            None,
            {"rmse": 2.2},
            True,
            "rmse is 2.2 (no threshold is set), and it equals the live model's 2.2.",
            id="tie-passes",
        ),
        pytest.param(
            REGRESSION,
            {"rmse": 3.5},
            3.0,
            None,
            False,
            "rmse 3.5 is worse than the threshold of 3 (the most allowed).",
            id="above-rmse-threshold",
        ),
        pytest.param(
            REGRESSION,
            {"rmse": 3.0},
            3.0,
            None,
            True,
            "rmse 3 meets the threshold 3, and there is no live model yet.",
            id="at-threshold-first-model",
        ),
        pytest.param(
            BINARY,
            {"auc": 0.71},
            0.75,
            {"auc": 0.6},
            False,
            "auc 0.71 is worse than the threshold of 0.75 (the least required).",
            id="below-auc-threshold",
        ),
        pytest.param(
            BINARY,
            {"auc": 0.90011},
            0.8,
            {"auc": 0.90012},
            False,
            "auc 0.90011 is worse than the live model's 0.90012.",
            id="close-numbers-shown-apart",
        ),
        pytest.param(
            BINARY,
            {"auc": 0.9},
            0.8,
            {"rmse": 2.1},
            True,
            "auc 0.9 meets the threshold 0.8; the live model has no auc (it was trained with an "
            "objective of another kind), so only the threshold applies.",
            id="objective-changed",
        ),
        pytest.param(
            MULTICLASS,
            {"accuracy": 0.8, "logloss": 0.5},
            None,
            None,
            True,
            "accuracy is 0.8 (no threshold is set), and there is no live model yet.",
            id="first-model-no-threshold",
        ),
        pytest.param(
            MULTICLASS,
            {"logloss": 0.5},
            0.5,
            None,
            False,
            "The evaluation produced no accuracy, so the model cannot be judged.",
            id="metric-missing",
        ),
    ],
)
def test_decide(
    problem: ProblemType,
    metrics: dict[str, float],
    threshold: float | None,
    live: dict[str, float] | None,
    passed: bool,
    reason: str,
) -> None:
    decision = decide(problem, metrics, threshold, live)

    assert decision.passed is passed
    assert decision.reason == reason


def test_decision_records_the_numbers_it_judged() -> None:
    decision = decide(REGRESSION, {"rmse": 2.1, "mae": 1.5, "r2": 0.5}, 2.5, {"rmse": 2.3})

    assert decision == GateDecision(
        passed=True,
        reason=decision.reason,
        metric="rmse",
        value=2.1,
        threshold=2.5,
        live_value=2.3,
    )


def test_a_missing_metric_is_recorded_as_nan() -> None:
    decision = decide(BINARY, {}, None, None)

    assert not decision.passed
    assert decision.metric == "auc"
    assert math.isnan(decision.value)


def test_live_metrics_read_back_from_dynamodb_as_decimals_tie() -> None:
    # Given the live model's rmse stored in DynamoDB, which returns numbers as Decimal
    live = {"rmse": Decimal(str(2.12))}

    # When a retrained model scores the same
    decision = decide(REGRESSION, {"rmse": 2.12}, Decimal("2.5"), live)  # type: ignore[arg-type]

    # Then it ties, and the decision holds plain floats
    assert decision.passed
    assert decision.reason.endswith("equals the live model's 2.12.")
    assert (decision.live_value, decision.threshold) == (2.12, 2.5)
    assert type(decision.live_value) is float


def test_bars_of_pipeline_json_are_checked_metric_by_metric() -> None:
    metrics = {"rmse": 2.1, "mae": 1.5, "r2": 0.52}

    assert missed_bar(metrics, {"rmse": 2.5, "r2": 0.5}) is None
    missed = missed_bar(metrics, {"rmse": 2.5, "mae": 1.4})
    assert missed is not None
    assert (missed.passed, missed.metric, missed.value) == (False, "mae", 1.5)
    assert missed.threshold == 1.4
    assert missed.reason == "mae 1.5 misses the bar of 1.4 (the most allowed) in pipeline.json."
    absent = missed_bar({"accuracy": 0.9}, {"logloss": 0.3})
    assert absent is not None
    assert "produced no logloss" in absent.reason
