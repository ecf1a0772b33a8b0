"""Resolve a drop's hyperparameters into the exact strings CreateTrainingJob sends.

The names, types and ranges are those the built-in algorithm's container validates
(sagemaker-xgboost-container, algorithm_mode/hyperparameter_validation.py), with its wording where
it has one, so a bad value is refused here, before any job starts, instead of failing the job. On
top of that, the pipeline refuses what it cannot evaluate or serve (ranking, survival,
cross-validation, instance weights) and fills in `eval_metric`, without which the container
silently skips early stopping.
"""

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipeline_common.problem import ProblemType

SEED_DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        "max_depth": "5",
        "eta": "0.2",
        "gamma": "4",
        "min_child_weight": "6",
        "subsample": "0.8",
        "objective": "reg:squarederror",
        "early_stopping_rounds": "10",
        "num_round": "200",
    }
)

MAX_ENTRIES = 100  # CreateTrainingJob's limit on the HyperParameters map
MAX_VALUE_LENGTH = 2500  # CreateTrainingJob's limit on one value
DEPRECATED_OBJECTIVES: Mapping[str, str] = MappingProxyType({"reg:linear": "reg:squarederror"})

OBJECTIVE_PROBLEMS: Mapping[str, ProblemType] = MappingProxyType(
    {
        "reg:squarederror": ProblemType.REGRESSION,
        "reg:logistic": ProblemType.REGRESSION,
        "reg:gamma": ProblemType.REGRESSION,
        "reg:pseudohubererror": ProblemType.REGRESSION,
        "reg:squaredlogerror": ProblemType.REGRESSION,
        "reg:absoluteerror": ProblemType.REGRESSION,
        "reg:tweedie": ProblemType.REGRESSION,
        "count:poisson": ProblemType.REGRESSION,
        "binary:logistic": ProblemType.BINARY,
        "binary:logitraw": ProblemType.BINARY,
        "binary:hinge": ProblemType.BINARY,
        "multi:softmax": ProblemType.MULTICLASS,
        "multi:softprob": ProblemType.MULTICLASS,
    }
)

# Objectives the container accepts but this pipeline refuses, with the reason.
UNSUPPORTED_OBJECTIVES: Mapping[str, str] = MappingProxyType(
    {
        "rank:": "ranking needs query groups, which CSV training data cannot carry, and is "
        "judged per query (map, ndcg), not by RMSE, AUC or accuracy",
        "survival:": "survival labels are censored times (survival:aft needs lower and upper "
        "bound columns) and the model predicts hazards, which RMSE, AUC or accuracy cannot judge",
    }
)

# Early stopping watches this metric when the user names none. Each is the metric the gate judges
# or its training-time counterpart. Binary uses AUC rather than logloss: it is the gate's metric,
# and, being rank-based, it stays meaningful for binary:logitraw margins and binary:hinge 0/1
# outputs, where logloss is not.
DEFAULT_EVAL_METRIC: Mapping[ProblemType, str] = MappingProxyType(
    {
        ProblemType.REGRESSION: "rmse",
        ProblemType.BINARY: "auc",
        ProblemType.MULTICLASS: "mlogloss",
    }
)

# The container's metric names (constants/xgb_constants.py), by the problems each one fits.
_REGRESSION_METRICS = frozenset(
    {
        "rmse",
        "rmsle",
        "mae",
        "mape",
        "mphe",
        "mse",
        "r2",
        "poisson-nloglik",
        "gamma-nloglik",
        "gamma-deviance",
        "tweedie-nloglik",
    }
)
_BINARY_METRICS = frozenset(
    {
        "logloss",
        "error",
        "auc",
        "aucpr",
        "accuracy",
        "balanced_accuracy",
        "f1",
        "f1_binary",
        "precision",
        "recall",
        "rmse",
        "mae",
        "mse",
    }
)
_MULTICLASS_METRICS = frozenset(
    {
        "merror",
        "mlogloss",
        "accuracy",
        "balanced_accuracy",
        "f1",
        "f1_macro",
        "precision_macro",
        "precision_micro",
        "recall_macro",
        "recall_micro",
    }
)
_OTHER_METRICS = frozenset(
    {"map", "ndcg", "cox-nloglik", "aft-nloglik", "interval-regression-accuracy"}
)
_METRICS_BY_PROBLEM: Mapping[ProblemType, frozenset[str]] = MappingProxyType(
    {
        ProblemType.REGRESSION: _REGRESSION_METRICS,
        ProblemType.BINARY: _BINARY_METRICS,
        ProblemType.MULTICLASS: _MULTICLASS_METRICS,
    }
)
_KNOWN_METRICS = _REGRESSION_METRICS | _BINARY_METRICS | _MULTICLASS_METRICS | _OTHER_METRICS
_THRESHOLD_METRICS = frozenset({"error", "ndcg", "map"})  # the ones that take `@t`

_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "learning_rate": "eta",
        "min_split_loss": "gamma",
        "reg_lambda": "lambda",
        "reg_alpha": "alpha",
    }
)

_UPDATERS_TREE = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync", "refresh")
_UPDATERS_TREE_GROW = frozenset({"grow_colmaker", "distcol", "grow_histmaker"})
_UPDATERS_LINEAR = ("shotgun", "coord_descent")
_UPDATERS_PROCESS_UPDATE = frozenset({"refresh", "prune"})
_UPDATERS = frozenset({*_UPDATERS_TREE, "prune", *_UPDATERS_LINEAR})


class HyperparameterError(ValueError):
    """A hyperparameter the built-in algorithm or this pipeline would refuse."""


@dataclass(frozen=True)
class ResolvedHyperparameters:
    values: dict[str, str]
    objective: str
    problem: ProblemType
    num_class: int | None
    eval_metric: str


@dataclass(frozen=True)
class Interval:
    """A numeric range, written the way the container writes it: `[0, 1]`, `(0, +inf)`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low = "(-inf" if self.low is None else ("(" if self.low_open else "[") + _render(self.low)
        high = (
            "+inf)" if self.high is None else _render(self.high) + (")" if self.high_open else "]")
        )
        return f"{low}, {high}"


Renderer = Callable[[str, object], str]


def _render(number: float) -> str:
    """The shortest string the container parses back to `number`: `5`, not `5.0`."""
    if float(number).is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(float(number))


def _describe(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _as_number(name: str, raw: object, *, integral: bool) -> float:
    kind = "an integer" if integral else "a number"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise HyperparameterError(
            f"Hyperparameter {name}: could not parse value {_describe(raw)}; it expects {kind}."
        )
    number: float
    if isinstance(raw, str):
        try:
            number = int(raw)
        except ValueError:
            try:
                number = float(raw)
            except ValueError:
                raise HyperparameterError(
                    f"Hyperparameter {name}: could not parse value {_describe(raw)}; "
                    f"it expects {kind}."
                ) from None
    else:
        number = raw
    if not math.isfinite(number):
        raise HyperparameterError(
            f"Hyperparameter {name}: {_describe(raw)} is not a finite number; give {kind}."
        )
    if integral and not float(number).is_integer():
        raise HyperparameterError(
            f"Hyperparameter {name}: could not parse value {_describe(raw)}; it expects {kind}."
        )
    return int(number) if integral else float(number)


def _number(interval: Interval, *, integral: bool) -> Renderer:
    def render(name: str, raw: object) -> str:
        number = _as_number(name, raw, integral=integral)
        if number not in interval:
            raise HyperparameterError(
                f"Hyperparameter {name}: {_render(number)} is not in {interval}; "
                "choose a value in that range."
            )
        return _render(number)

    return render


def _integer(interval: Interval) -> Renderer:
    return _number(interval, integral=True)


def _continuous(interval: Interval) -> Renderer:
    return _number(interval, integral=False)


def _choice(*options: str) -> Renderer:
    def render(name: str, raw: object) -> str:
        if isinstance(raw, bool) and set(options) == {"true", "false"}:
            return "true" if raw else "false"
        if not isinstance(raw, str) or raw not in options:
            raise HyperparameterError(
                f"Hyperparameter {name}: {raw} is not in {list(options)}; use one of those."
            )
        return raw

    return render


def _text(name: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise HyperparameterError(
            f"Hyperparameter {name}: could not parse value {_describe(raw)}; it expects a string."
        )
    return raw


def _comma_list(name: str, raw: object) -> list[str]:
    items = [item.strip() for item in _text(name, raw).split(",")]
    if not all(items):
        raise HyperparameterError(
            f"Hyperparameter {name}: {_describe(raw)} has an empty entry; "
            "write a comma-separated list such as 'rmse,mae'."
        )
    return items


def _eval_metric(name: str, raw: object) -> str:
    metrics = _comma_list(name, raw)
    for metric in metrics:
        base, at, threshold = metric.partition("@")
        if at and base not in _THRESHOLD_METRICS:
            raise HyperparameterError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                "threshold should be one of these options: 'error', 'ndcg', 'map'."
            )
        if at and not _is_float(threshold):
            raise HyperparameterError(
                f"Threshold value 't' in '{base}@t' expects float input, got '{threshold}'."
            )
        if base not in _KNOWN_METRICS:
            raise HyperparameterError(
                f"Hyperparameter {name}: '{metric}' is not a metric the built-in algorithm knows; "
                f"use one of {', '.join(sorted(_KNOWN_METRICS))}."
            )
    return ",".join(metrics)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _updater(name: str, raw: object) -> str:
    updaters = _comma_list(name, raw)
    unknown = [u for u in updaters if u not in _UPDATERS]
    if unknown:
        raise HyperparameterError(
            f"Hyperparameter {name}: value {unknown} not in range; "
            f"use a comma-separated list of {', '.join(sorted(_UPDATERS))}."
        )
    return ",".join(updaters)


_MONOTONE = re.compile(r"\(\s*(-1|0|1)\s*(,\s*(-1|0|1)\s*)*,?\s*\)")


def _monotone_constraints(name: str, raw: object) -> str:
    text = _text(name, raw).strip()
    if not _MONOTONE.fullmatch(text):
        raise HyperparameterError(
            f"Hyperparameter {name}: {_describe(raw)} is not a tuple of -1, 0 and 1, one per "
            "feature; write it like '(1,0,-1)'."
        )
    return text


def _interaction_constraints(name: str, raw: object) -> str:
    text = _text(name, raw).strip()
    try:
        groups = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        groups = None
    if not (
        isinstance(groups, list)
        and all(
            isinstance(group, list) and all(type(index) is int and index >= 1 for index in group)
            for group in groups
        )
    ):
        raise HyperparameterError(
            f"Hyperparameter {name}: {_describe(raw)} is not a nested list of feature indices "
            "(each at least 1); write it like '[[1, 2], [3, 4, 5]]'."
        )
    return text


def _unsupported(reason: str) -> Renderer:
    def render(name: str, raw: object) -> str:
        raise HyperparameterError(
            f"Hyperparameter {name} is not supported by this pipeline {reason}."
        )

    return render


def _csv_weights(name: str, raw: object) -> str:
    value = _integer(Interval(0, 1))(name, raw)
    if value == "1":
        raise HyperparameterError(
            f"Hyperparameter {name}=1 is not supported by this pipeline because it makes the "
            "second column an instance weight, while batch transform sends every column after "
            "the label to the model as a feature; leave it out or set it to 0."
        )
    return value


_AT_LEAST_0 = Interval(0)
_AT_LEAST_1 = Interval(1)
_ABOVE_0 = Interval(0, low_open=True)
_UNIT = Interval(0, 1)
_ABOVE_0_TO_1 = Interval(0, 1, low_open=True)

_SPECS: Mapping[str, Renderer] = MappingProxyType(
    {
        "num_round": _integer(_AT_LEAST_1),
        "csv_weights": _csv_weights,
        "early_stopping_rounds": _integer(_AT_LEAST_1),
        "booster": _choice("gbtree", "gblinear", "dart"),
        "verbosity": _integer(Interval(0, 3)),
        "nthread": _integer(_AT_LEAST_1),
        "eta": _continuous(_UNIT),
        "gamma": _continuous(_AT_LEAST_0),
        "max_depth": _integer(_AT_LEAST_0),
        "min_child_weight": _continuous(_AT_LEAST_0),
        "max_delta_step": _continuous(_AT_LEAST_0),
        "subsample": _continuous(_ABOVE_0_TO_1),
        "colsample_bytree": _continuous(_ABOVE_0_TO_1),
        "colsample_bylevel": _continuous(_ABOVE_0_TO_1),
        "colsample_bynode": _continuous(_ABOVE_0_TO_1),
        "lambda": _continuous(_AT_LEAST_0),
        "alpha": _continuous(_AT_LEAST_0),
        "tree_method": _choice("auto", "exact", "approx", "hist", "gpu_hist"),
        "sketch_eps": _continuous(Interval(0, 1, low_open=True, high_open=True)),
        "scale_pos_weight": _continuous(_ABOVE_0),
        "updater": _updater,
        "dsplit": _choice("row", "col"),
        "refresh_leaf": _integer(_UNIT),
        "process_type": _choice("default", "update"),
        "grow_policy": _choice("depthwise", "lossguide"),
        "max_leaves": _integer(_AT_LEAST_0),
        "max_bin": _integer(_AT_LEAST_0),
        "predictor": _choice("auto", "cpu_predictor", "gpu_predictor"),
        "monotone_constraints": _monotone_constraints,
        "interaction_constraints": _interaction_constraints,
        "sample_type": _choice("uniform", "weighted"),
        "normalize_type": _choice("tree", "forest"),
        "rate_drop": _continuous(_UNIT),
        "one_drop": _integer(_UNIT),
        "skip_drop": _continuous(_UNIT),
        "lambda_bias": _continuous(_UNIT),
        "tweedie_variance_power": _continuous(Interval(1, 2, low_open=True, high_open=True)),
        "objective": _text,  # checked against the objectives in _objective
        "num_class": _integer(Interval(2)),
        "base_score": _continuous(_AT_LEAST_0),
        "_kfold": _unsupported(
            "because cross-validation merges the validation channel into training and saves one "
            "model per fold, while the pipeline validates, gates and serves a single model"
        ),
        "_num_cv_round": _unsupported(
            "because it only applies to cross-validation (_kfold), which the pipeline does not run"
        ),
        "_tuning_objective_metric": _unsupported(
            "because SageMaker automatic model tuning sets it and this pipeline runs plain "
            "training jobs; name the metric to stop early on in eval_metric instead"
        ),
        "eval_metric": _eval_metric,
        "seed": _integer(Interval(-(2**31), 2**31 - 1, low_open=True, high_open=True)),
        "num_parallel_tree": _integer(_AT_LEAST_1),
        "save_model_on_termination": _choice("true", "false"),
        "aft_loss_distribution": _choice("normal", "logistic", "extreme"),
        "aft_loss_distribution_scale": _continuous(_AT_LEAST_0),
        "deterministic_histogram": _choice("true", "false"),
        "sampling_method": _choice("uniform", "gradient_based"),
        "prob_buffer_row": _integer(Interval(1, low_open=True)),
        "use_dask_gpu_training": _choice("true", "false"),
    }
)


def resolve_hyperparameters(user: Mapping[str, object] | None) -> ResolvedHyperparameters:
    """Merge the user's hyperparameters.json over the seed defaults and validate the result.

    Raises HyperparameterError saying what is wrong and what to change.
    """
    values = dict(SEED_DEFAULTS)
    for name, rendered in _render_user_values(user or {}).items():
        values[name] = rendered

    objective = _objective(values)
    values["objective"] = objective
    problem = OBJECTIVE_PROBLEMS[objective]
    num_class = _num_class(values, problem)
    eval_metric = _check_eval_metric(values, objective, problem)
    _check_base_score(values, objective)
    _check_tree_dependencies(values)
    _check_updater(values)
    if len(values) > MAX_ENTRIES:
        raise HyperparameterError(
            f"The training job would get {len(values)} hyperparameters; SageMaker accepts at most "
            f"{MAX_ENTRIES}. Remove some from hyperparameters.json."
        )
    return ResolvedHyperparameters(
        values=values,
        objective=objective,
        problem=problem,
        num_class=num_class,
        eval_metric=eval_metric,
    )


def _render_user_values(user: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(user, Mapping):
        raise HyperparameterError(
            "hyperparameters.json must hold a JSON object of name -> value, "
            f'like {{"max_depth": 6}}; it holds a {type(user).__name__}.'
        )
    if len(user) > MAX_ENTRIES:
        raise HyperparameterError(
            f"hyperparameters.json has {len(user)} entries; SageMaker accepts at most "
            f"{MAX_ENTRIES} hyperparameters."
        )
    rendered: dict[str, str] = {}
    for given_name, raw in user.items():
        name = _ALIASES.get(given_name, given_name)
        spec = _SPECS.get(name)
        if spec is None:
            raise HyperparameterError(
                f"Extraneous hyperparameter found: {given_name}. The built-in XGBoost algorithm "
                "does not know it; remove it or check its spelling."
            )
        if name in rendered:
            raise HyperparameterError(
                f"Hyperparameter {name} is given twice (as {name} and its alias); keep one."
            )
        value = spec(name, raw)
        if len(value) > MAX_VALUE_LENGTH:
            raise HyperparameterError(
                f"Hyperparameter {name} is {len(value)} characters long; SageMaker accepts at "
                f"most {MAX_VALUE_LENGTH}."
            )
        rendered[name] = value
    return rendered


def _objective(values: Mapping[str, str]) -> str:
    given = values["objective"]
    objective = DEPRECATED_OBJECTIVES.get(given, given)
    if objective in OBJECTIVE_PROBLEMS:
        return objective
    for prefix, reason in UNSUPPORTED_OBJECTIVES.items():
        if objective.startswith(prefix):
            raise HyperparameterError(
                f"Objective {objective} is not supported by this pipeline because {reason}. "
                f"Use one of {', '.join(OBJECTIVE_PROBLEMS)}."
            )
    raise HyperparameterError(
        f"Hyperparameter objective: {given} is not in {list(OBJECTIVE_PROBLEMS)}; use one of those."
    )


def _num_class(values: Mapping[str, str], problem: ProblemType) -> int | None:
    given = values.get("num_class")
    if problem is ProblemType.MULTICLASS:
        if given is None:
            raise HyperparameterError(
                "Require input for parameter 'num_class' for multi-classification. "
                'Add "num_class": <number of classes> to hyperparameters.json.'
            )
        return int(given)
    if given is not None:
        raise HyperparameterError(
            "Do not need to setup parameter 'num_class' for learning task other than "
            f"multi-classification. Remove num_class, or use multi:softmax or multi:softprob "
            f"instead of {values['objective']}."
        )
    return None


def _check_eval_metric(values: dict[str, str], objective: str, problem: ProblemType) -> str:
    metrics = values.setdefault("eval_metric", DEFAULT_EVAL_METRIC[problem]).split(",")
    for metric in metrics:
        base = metric.partition("@")[0]
        if base == "auc" and not objective.startswith("binary:"):
            raise HyperparameterError(
                "Metric 'auc' can only be applied for classification and ranking problems. "
                f"Choose another eval_metric for {objective}."
            )
        if base not in _METRICS_BY_PROBLEM[problem]:
            raise HyperparameterError(
                f"eval_metric '{metric}' does not fit objective {objective} ({problem} problem); "
                f"use one of {', '.join(sorted(_METRICS_BY_PROBLEM[problem]))}."
            )
    return metrics[-1]


def _check_base_score(values: Mapping[str, str], objective: str) -> None:
    base_score = values.get("base_score")
    logistic = objective in {"binary:logistic", "reg:logistic"}
    if logistic and base_score is not None and not 0 < float(base_score) < 1:
        raise HyperparameterError(
            f"base_score must be in (0,1) for logistic loss; {objective} got {base_score}."
        )


def _check_tree_dependencies(values: Mapping[str, str]) -> None:
    tree_method = values.get("tree_method")
    if "monotone_constraints" in values and tree_method not in {"exact", "hist"}:
        raise HyperparameterError(
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'."
        )
    if "interaction_constraints" in values and tree_method not in {"exact", "hist", "approx"}:
        raise HyperparameterError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )


def _check_updater(values: Mapping[str, str]) -> None:
    if "updater" not in values:
        return
    updaters = values["updater"].split(",")
    if values.get("booster") == "gblinear":
        if len(updaters) != 1 or updaters[0] not in _UPDATERS_LINEAR:
            raise HyperparameterError(
                "Linear updater should be one of these options: 'shotgun', 'coord_descent'."
            )
    elif values.get("process_type") == "update":
        if not set(updaters) <= _UPDATERS_PROCESS_UPDATE:
            raise HyperparameterError(
                "process_type 'update' can only be used with updater 'refresh' and 'prune'"
            )
    elif any(u in _UPDATERS_LINEAR for u in updaters):
        raise HyperparameterError(
            "Tree updater should be selected from these options: "
            f"{', '.join(repr(u) for u in (*_UPDATERS_TREE, 'prune'))}."
        )
    elif sum(u in _UPDATERS_TREE_GROW for u in updaters) > 1:
        raise HyperparameterError(
            "Only one tree grow plugin can be selected. Choose one from the following: "
            f"{', '.join(repr(u) for u in sorted(_UPDATERS_TREE_GROW))}."
        )
