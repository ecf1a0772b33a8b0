"""Resolving a drop's hyperparameters.json into CreateTrainingJob's HyperParameters."""

import pytest
from pipeline_common.hyperparameters import (
    SEED_DEFAULTS,
    HyperparameterError,
    resolve_hyperparameters,
)
from pipeline_common.problem import ProblemType


def test_seed_defaults_are_the_notebooks_settings() -> None:
    assert dict(SEED_DEFAULTS) == {
        "max_depth": "5",
        "eta": "0.2",
        "gamma": "4",
        "min_child_weight": "6",
        "subsample": "0.8",
        "objective": "reg:squarederror",
        "early_stopping_rounds": "10",
        "num_round": "200",
    }


@pytest.mark.parametrize("user", [None, {}])
def test_no_hyperparameters_gives_the_seed_plus_an_eval_metric(user: dict | None) -> None:
    # When no hyperparameters.json was dropped
    resolved = resolve_hyperparameters(user)

    # Then the seed trains regression and early stopping has a metric to watch
    assert resolved.values == {**SEED_DEFAULTS, "eval_metric": "rmse"}
    assert resolved.objective == "reg:squarederror"
    assert resolved.problem is ProblemType.REGRESSION
    assert resolved.num_class is None
    assert resolved.eval_metric == "rmse"


def test_deprecated_reg_linear_is_mapped_to_squarederror() -> None:
    resolved = resolve_hyperparameters({"objective": "reg:linear"})

    assert resolved.values["objective"] == "reg:squarederror"
    assert resolved.objective == "reg:squarederror"


def test_user_values_override_the_seed_and_are_rendered_as_container_strings() -> None:
    # Given JSON numbers, strings and booleans of every shape
    user = {
        "max_depth": 6.0,
        "num_round": "300",
        "eta": 0.05,
        "gamma": 0,
        "subsample": "1.0",
        "min_child_weight": 1e-3,
        "save_model_on_termination": True,
        "deterministic_histogram": False,
        "seed": -7,
    }

    # When resolved
    values = resolve_hyperparameters(user).values

    # Then each is the string the container parses: ints without ".0", bools lower-case
    assert values["max_depth"] == "6"
    assert values["num_round"] == "300"
    assert values["eta"] == "0.05"
    assert values["gamma"] == "0"
    assert values["subsample"] == "1"
    assert values["min_child_weight"] == "0.001"
    assert values["save_model_on_termination"] == "true"
    assert values["deterministic_histogram"] == "false"
    assert values["seed"] == "-7"
    assert all(isinstance(v, str) for v in values.values())


def test_aliases_are_stored_under_the_container_name() -> None:
    values = resolve_hyperparameters({"learning_rate": 0.1, "reg_lambda": 2}).values

    assert values["eta"] == "0.1"
    assert values["lambda"] == "2"
    assert "learning_rate" not in values
    assert "reg_lambda" not in values


@pytest.mark.parametrize(
    ("user", "problem", "eval_metric"),
    [
        ({"objective": "reg:squarederror"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:logistic"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:gamma"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:tweedie"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:absoluteerror"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:pseudohubererror"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "reg:squaredlogerror"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "count:poisson"}, ProblemType.REGRESSION, "rmse"),
        ({"objective": "binary:logistic"}, ProblemType.BINARY, "auc"),
        ({"objective": "binary:logitraw"}, ProblemType.BINARY, "auc"),
        ({"objective": "binary:hinge"}, ProblemType.BINARY, "auc"),
        ({"objective": "multi:softmax", "num_class": 3}, ProblemType.MULTICLASS, "mlogloss"),
        ({"objective": "multi:softprob", "num_class": 4}, ProblemType.MULTICLASS, "mlogloss"),
    ],
)
def test_objective_decides_problem_and_default_eval_metric(
    user: dict, problem: ProblemType, eval_metric: str
) -> None:
    resolved = resolve_hyperparameters(user)

    assert resolved.problem is problem
    assert resolved.eval_metric == eval_metric
    assert resolved.values["eval_metric"] == eval_metric


def test_multiclass_carries_num_class() -> None:
    resolved = resolve_hyperparameters({"objective": "multi:softprob", "num_class": 5})

    assert resolved.num_class == 5
    assert resolved.values["num_class"] == "5"


@pytest.mark.parametrize(
    ("eval_metric", "rendered", "watched"),
    [
        ("rmse,mae", "rmse,mae", "mae"),
        ("mae, rmse", "mae,rmse", "rmse"),
        ("logloss,error@0.7", "logloss,error@0.7", "error@0.7"),
    ],
)
def test_early_stopping_watches_the_last_user_metric(
    eval_metric: str, rendered: str, watched: str
) -> None:
    objective = "binary:logistic" if "error" in eval_metric else "reg:squarederror"

    resolved = resolve_hyperparameters({"objective": objective, "eval_metric": eval_metric})

    assert resolved.values["eval_metric"] == rendered
    assert resolved.eval_metric == watched


def test_monotone_and_interaction_constraints_with_their_tree_method() -> None:
    values = resolve_hyperparameters(
        {
            "tree_method": "hist",
            "monotone_constraints": "(1,0,-1)",
            "interaction_constraints": "[[1, 2], [3]]",
        }
    ).values

    assert values["monotone_constraints"] == "(1,0,-1)"
    assert values["interaction_constraints"] == "[[1, 2], [3]]"


INVALID = [
    pytest.param({"max_dept": 6}, "Extraneous hyperparameter found: max_dept", id="unknown-name"),
    pytest.param(
        {"objective": "multi:softmax"},
        "Require input for parameter 'num_class' for multi-classification",
        id="multiclass-without-num_class",
    ),
    pytest.param(
        {"num_class": 3},
        "Do not need to setup parameter 'num_class' for learning task other than "
        "multi-classification",
        id="num_class-without-multiclass",
    ),
    pytest.param({"eta": 1.5}, "Hyperparameter eta: 1.5 is not in [0, 1]", id="eta-too-big"),
    pytest.param(
        {"subsample": 0}, "Hyperparameter subsample: 0 is not in (0, 1]", id="subsample-0"
    ),
    pytest.param(
        {"num_round": 0}, "Hyperparameter num_round: 0 is not in [1, +inf)", id="no-rounds"
    ),
    pytest.param(
        {"max_depth": 5.5},
        "Hyperparameter max_depth: could not parse value 5.5; it expects an integer",
        id="fractional-int",
    ),
    pytest.param(
        {"max_depth": "deep"},
        "Hyperparameter max_depth: could not parse value 'deep'",
        id="text-for-int",
    ),
    pytest.param(
        {"max_depth": True},
        "Hyperparameter max_depth: could not parse value True",
        id="bool-for-int",
    ),
    pytest.param(
        {"eta": [0.1]}, "Hyperparameter eta: could not parse value [0.1]", id="list-value"
    ),
    pytest.param({"gamma": "nan"}, "Hyperparameter gamma: 'nan' is not a finite number", id="nan"),
    pytest.param(
        {"booster": "gbforest"},
        "Hyperparameter booster: gbforest is not in ['gbtree', 'gblinear', 'dart']",
        id="unknown-booster",
    ),
    pytest.param(
        {"objective": "reg:cubic"},
        "Hyperparameter objective: reg:cubic is not in [",
        id="unknown-objective",
    ),
    pytest.param(
        {"objective": "rank:pairwise"},
        "Objective rank:pairwise is not supported by this pipeline because ranking needs query "
        "groups",
        id="ranking",
    ),
    pytest.param(
        {"objective": "survival:cox"},
        "Objective survival:cox is not supported by this pipeline because survival labels",
        id="survival",
    ),
    pytest.param(
        {"eval_metric": "auc"},
        "Metric 'auc' can only be applied for classification and ranking problems",
        id="auc-for-regression",
    ),
    pytest.param(
        {"eval_metric": "rmse,accuracyy"},
        "Hyperparameter eval_metric: 'accuracyy' is not a metric the built-in algorithm knows",
        id="unknown-metric",
    ),
    pytest.param(
        {"objective": "binary:logistic", "eval_metric": "logloss@0.5"},
        "Metric 'logloss@0.5' is not supported. Parameter 'eval_metric' with customized threshold",
        id="threshold-on-wrong-metric",
    ),
    pytest.param(
        {"objective": "binary:logistic", "eval_metric": "error@high"},
        "Threshold value 't' in 'error@t' expects float input",
        id="threshold-not-a-number",
    ),
    pytest.param(
        {"eval_metric": "mlogloss"},
        "eval_metric 'mlogloss' does not fit objective reg:squarederror",
        id="metric-for-another-problem",
    ),
    pytest.param({"eval_metric": "rmse,,mae"}, "has an empty entry", id="empty-metric"),
    pytest.param(
        {"objective": "binary:logistic", "base_score": 1.5},
        "base_score must be in (0,1) for logistic loss",
        id="logistic-base_score",
    ),
    pytest.param(
        {"monotone_constraints": "(1,-1)"},
        "monotone_constraints can be used only when the tree_method parameter is set to either "
        "'exact' or 'hist'",
        id="monotone-without-tree_method",
    ),
    pytest.param(
        {"tree_method": "hist", "monotone_constraints": "(1,2)"},
        "is not a tuple of -1, 0 and 1",
        id="monotone-bad-value",
    ),
    pytest.param(
        {"tree_method": "hist", "interaction_constraints": "[[0, 1]]"},
        "is not a nested list of feature indices (each at least 1)",
        id="interaction-bad-value",
    ),
    pytest.param(
        {"booster": "gblinear", "updater": "shotgun,coord_descent"},
        "Linear updater should be one of these options",
        id="two-linear-updaters",
    ),
    pytest.param(
        {"updater": "grow_colmaker,grow_histmaker"},
        "Only one tree grow plugin can be selected",
        id="two-grow-plugins",
    ),
    pytest.param({"updater": "grow_magic"}, "Hyperparameter updater: value", id="unknown-updater"),
    pytest.param(
        {"csv_weights": 1},
        "Hyperparameter csv_weights=1 is not supported by this pipeline because",
        id="instance-weights",
    ),
    pytest.param(
        {"_kfold": 5},
        "Hyperparameter _kfold is not supported by this pipeline because cross-validation",
        id="cross-validation",
    ),
    pytest.param(
        {"_tuning_objective_metric": "validation:rmse"},
        "Hyperparameter _tuning_objective_metric is not supported by this pipeline because",
        id="tuning-metric",
    ),
    pytest.param(
        {"eta": 0.1, "learning_rate": 0.3},
        "Hyperparameter eta is given twice",
        id="name-and-alias",
    ),
    pytest.param(
        {f"p{i}": 1 for i in range(101)},
        "hyperparameters.json has 101 entries; SageMaker accepts at most 100",
        id="too-many",
    ),
    pytest.param(
        ["max_depth", 6],
        "hyperparameters.json must hold a JSON object",
        id="not-an-object",
    ),
]


@pytest.mark.parametrize(("user", "reason"), INVALID)
def test_invalid_hyperparameters_are_refused_with_their_own_reason(user: dict, reason: str) -> None:
    with pytest.raises(HyperparameterError) as refused:
        resolve_hyperparameters(user)

    assert reason in str(refused.value)


def test_every_invalid_case_has_a_distinct_reason() -> None:
    reasons = [case.values[1] for case in INVALID]

    assert len(set(reasons)) == len(reasons) >= 12


def test_refusals_say_what_to_do() -> None:
    with pytest.raises(HyperparameterError, match="remove it or check its spelling"):
        resolve_hyperparameters({"max_dept": 6})
    with pytest.raises(HyperparameterError, match=r"Add \"num_class\""):
        resolve_hyperparameters({"objective": "multi:softprob"})
    with pytest.raises(HyperparameterError, match="Use one of reg:squarederror"):
        resolve_hyperparameters({"objective": "rank:ndcg"})
