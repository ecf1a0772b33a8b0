"""The stack's pre-check and the local container agree: what the stack sends, training accepts.

The layer (Lambda side) and the local SageMaker (container side) each encode the built-in
algorithm's hyperparameter rules, independently; this table keeps them in step. The stack may be
stricter (objectives it cannot evaluate), never looser: a drop it lets through must not fail in
the container on a hyperparameter.
"""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_common.hyperparameters import HyperparameterError, resolve_hyperparameters

from xgbpipe.local.sagemaker.hyperparameters import validate_hyperparameters

CASES: list[dict[str, Any]] = [
    {},
    {"objective": "reg:linear"},
    {"max_depth": 0},
    {"max_depth": -1},
    {"max_depth": 3.5},
    {"eta": 0},
    {"eta": 1.5},
    {"gamma": -1},
    {"subsample": 0},
    {"subsample": 1.2},
    {"colsample_bytree": 0.5, "colsample_bylevel": 0.7, "colsample_bynode": 0.9},
    {"num_round": 0},
    {"num_round": "ten"},
    {"min_child_weight": -2},
    {"lambda": 2, "alpha": 0.5},
    {"tree_method": "hist", "max_bin": 128},
    {"tree_method": "exact", "grow_policy": "lossguide"},
    {"tree_method": "magic"},
    {"booster": "gblinear", "updater": "shotgun"},
    {"booster": "dart", "rate_drop": 0.1, "skip_drop": 0.5},
    {"objective": "binary:logistic", "scale_pos_weight": 3},
    {"objective": "binary:logitraw", "eval_metric": "auc"},
    {"objective": "binary:hinge"},
    {"objective": "multi:softmax", "num_class": 3},
    {"objective": "multi:softprob", "num_class": 1},
    {"objective": "multi:softprob"},
    {"objective": "count:poisson", "max_delta_step": 0.7},
    {"objective": "reg:tweedie", "tweedie_variance_power": 1.5},
    {"objective": "reg:tweedie", "tweedie_variance_power": 2.5},
    {"objective": "reg:pseudohubererror", "huber_slope": 1.0},
    {"objective": "reg:absoluteerror"},
    {"objective": "reg:quantileerror"},
    {"objective": "reg:nonsense"},
    {"eval_metric": "mae"},
    {"eval_metric": "rmse,mae"},
    {"eval_metric": "auc"},
    {"eval_metric": "error@0.7", "objective": "binary:logistic"},
    {"eval_metric": "bogus"},
    {"early_stopping_rounds": 0},
    {"seed": 42, "verbosity": 1},
    {"nthread": 2},
    {"sampling_method": "gradient_based"},
    {"max_dept": 4},
    {"interaction_constraints": "[[0, 1], [2, 3]]"},
    {"monotone_constraints": "(1,0,-1)"},
]


def _stack_accepts(user: dict[str, Any]) -> dict[str, str] | None:
    try:
        return resolve_hyperparameters(user).values
    except HyperparameterError:
        return None


def _container_accepts(values: dict[str, str]) -> bool:
    try:
        validate_hyperparameters(values)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("user", CASES, ids=[str(case) for case in CASES])
def test_what_the_stack_lets_through_the_container_accepts(user: dict[str, Any]) -> None:
    resolved = _stack_accepts(user)
    if resolved is not None:
        assert _container_accepts(resolved), f"the container refuses {resolved}"


def test_the_table_exercises_both_answers() -> None:
    answers = [_stack_accepts(case) is not None for case in CASES]
    assert sum(answers) >= 15
    assert answers.count(False) >= 15


@pytest.mark.parametrize(
    "values",
    [
        {"num_round": "10", "eta": "2"},
        {"num_round": "10", "max_dept": "4"},
        {"num_round": "10", "objective": "multi:softmax"},
    ],
)
def test_what_the_container_refuses_the_stack_refuses(values: dict[str, str]) -> None:
    assert not _container_accepts(values)
    assert _stack_accepts(values) is None
