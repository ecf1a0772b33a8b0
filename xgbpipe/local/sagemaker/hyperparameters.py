"""The built-in XGBoost container's hyperparameters: names, types, ranges and error messages.

Hyperparameters arrive as strings. The container parses each by type, checks its range, then its
dependencies, and fails the job with a user error worded as below; we keep the same order so the
first problem reported is the one AWS would report.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from xgbpipe.local.sagemaker.errors import AlgorithmUserError

MAXIMIZE_METRICS = (
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
)
MINIMIZE_METRICS = (
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
)
OBJECTIVES = (
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
)
TREE_UPDATERS = (
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_quantile_histmaker",
)
LINEAR_UPDATERS = ("shotgun", "coord_descent")
ALIASES = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
}
_TRUE_FALSE = ("true", "false")


@dataclass(frozen=True)
class Interval:
    """A numeric range, printed the way the container prints it: `[1, +inf)`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        low = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low}"
        high = "+inf)" if self.high is None else f"{self.high}{')' if self.high_open else ']'}"
        return f"{low}, {high}"


@dataclass(frozen=True)
class Spec:
    kind: str  # integer | continuous | categorical | list | tuple | nested
    allowed: Interval | tuple[Any, ...] | None = None
    required: bool = False


def _int(low: float | None = None, high: float | None = None, **kw: bool) -> Spec:
    return Spec("integer", Interval(low, high, **kw))


def _float(low: float | None = None, high: float | None = None, **kw: bool) -> Spec:
    return Spec("continuous", Interval(low, high, **kw))


def _choice(*values: str) -> Spec:
    return Spec("categorical", values)


SPECS: dict[str, Spec] = {
    "num_round": Spec("integer", Interval(1), required=True),
    "csv_weights": _int(0, 1),
    "early_stopping_rounds": _int(1),
    "booster": _choice("gbtree", "gblinear", "dart"),
    "verbosity": _int(0, 3),
    "nthread": _int(1),
    "eta": _float(0, 1),
    "gamma": _float(0),
    "max_depth": _int(0),
    "min_child_weight": _float(0),
    "max_delta_step": _float(0),
    "subsample": _float(0, 1, low_open=True),
    "colsample_bytree": _float(0, 1, low_open=True),
    "colsample_bylevel": _float(0, 1, low_open=True),
    "colsample_bynode": _float(0, 1, low_open=True),
    "lambda": _float(0),
    "alpha": _float(0),
    "tree_method": _choice("auto", "exact", "approx", "hist", "gpu_hist"),
    "sketch_eps": _float(0, 1, low_open=True, high_open=True),
    "scale_pos_weight": _float(0, low_open=True),
    "updater": Spec("list", TREE_UPDATERS + LINEAR_UPDATERS),
    "dsplit": _choice("row", "col"),
    "refresh_leaf": _int(0, 1),
    "process_type": _choice("default", "update"),
    "grow_policy": _choice("depthwise", "lossguide"),
    "max_leaves": _int(0),
    "max_bin": _int(0),
    "predictor": _choice("auto", "cpu_predictor", "gpu_predictor"),
    "monotone_constraints": Spec("tuple", (-1, 0, 1)),
    "interaction_constraints": Spec("nested", Interval(1)),
    "sample_type": _choice("uniform", "weighted"),
    "normalize_type": _choice("tree", "forest"),
    "rate_drop": _float(0, 1),
    "one_drop": _int(0, 1),
    "skip_drop": _float(0, 1),
    "lambda_bias": _float(0, 1),
    "tweedie_variance_power": _float(1, 2, low_open=True, high_open=True),
    "objective": Spec("categorical", OBJECTIVES),
    "num_class": _int(2),
    "base_score": _float(0),
    "_kfold": _int(2),
    "_num_cv_round": _int(1),
    "_tuning_objective_metric": Spec(
        "categorical", tuple(f"validation:{m}" for m in MAXIMIZE_METRICS + MINIMIZE_METRICS)
    ),
    "eval_metric": Spec("list", MAXIMIZE_METRICS + MINIMIZE_METRICS),
    "seed": _int(-(2**31), 2**31 - 1, low_open=True, high_open=True),
    "num_parallel_tree": _int(1),
    "save_model_on_termination": _choice(*_TRUE_FALSE),
    "aft_loss_distribution": _choice("normal", "logistic", "extreme"),
    "aft_loss_distribution_scale": _float(0),
    "deterministic_histogram": _choice(*_TRUE_FALSE),
    "sampling_method": _choice("uniform", "gradient_based"),
    "prob_buffer_row": _float(1.0, low_open=True),
    "use_dask_gpu_training": _choice(*_TRUE_FALSE),
}


def _parse(name: str, spec: Spec, raw: str) -> Any:
    try:
        if spec.kind == "integer":
            return int(raw)
        if spec.kind == "continuous":
            return float(raw)
        if spec.kind == "list":
            return raw.split(",")
        if spec.kind in ("tuple", "nested"):
            parsed = ast.literal_eval(raw)
            return tuple(parsed) if spec.kind == "tuple" and isinstance(parsed, list) else parsed
    except (ValueError, SyntaxError) as error:
        message = f"Hyperparameter {name}: could not parse value"
        raise AlgorithmUserError(f"{message} (caused by {type(error).__name__})") from error
    return raw


def _eval_metric_allowed(metric: str) -> bool:
    if "@" not in metric:
        return metric in MAXIMIZE_METRICS + MINIMIZE_METRICS
    name, threshold = (part.strip() for part in metric.split("@", 1))
    if name not in ("error", "ndcg", "map"):
        raise AlgorithmUserError(
            f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
            "threshold should be one of these options: 'error', 'ndcg', 'map'."
        )
    try:
        float(threshold)
    except ValueError as error:
        raise AlgorithmUserError(
            f"Threshold value 't' in '{name}@t' expects float input."
        ) from error
    return True


def _check_range(name: str, spec: Spec, value: Any) -> None:
    allowed = spec.allowed
    if spec.kind in ("integer", "continuous", "categorical"):
        assert allowed is not None
        if value not in allowed:
            shown = list(allowed) if isinstance(allowed, tuple) else allowed
            raise AlgorithmUserError(f"Hyperparameter {name}: {value} is not in {shown}")
        return
    if spec.kind == "list":
        assert isinstance(allowed, tuple)
        ok = all(
            _eval_metric_allowed(item) if name == "eval_metric" else item in allowed
            for item in value
        )
        if not ok:
            raise AlgorithmUserError(
                f"Hyperparameter {name}: value {value} not in range {list(allowed)}"
            )
        return
    items = [element for group in value for element in group] if spec.kind == "nested" else value
    if any(item not in allowed for item in items):  # type: ignore[operator]
        raise AlgorithmUserError(f"Hyperparameter {name}: value {value} not in range {allowed}")


def _check_dependencies(config: dict[str, Any]) -> None:
    objective = config.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in config:
        raise AlgorithmUserError("Require input for parameter 'num_class' for multi-classification")
    metrics = config.get("eval_metric")
    if metrics is not None:
        if objective is None:
            # The container's metric check reads the objective unguarded and dies with a KeyError.
            raise AlgorithmUserError(
                "KeyError: 'objective' (eval_metric is checked against the objective: set one)"
            )
        if "auc" in metrics and not objective.startswith(("binary:", "rank:")):
            raise AlgorithmUserError(
                "Metric 'auc' can only be applied for classification and ranking problems."
            )
        if "aft-nloglik" in metrics and objective != "survival:aft":
            raise AlgorithmUserError(
                "Metric 'aft-nloglik' can only be applied for 'survival:aft' objective."
            )
    tree_method = config.get("tree_method")
    if "monotone_constraints" in config and tree_method not in ("exact", "hist"):
        raise AlgorithmUserError(
            "monotone_constraints can be used only when the tree_method parameter is set to "
            "either 'exact' or 'hist'."
        )
    if "interaction_constraints" in config and tree_method not in ("exact", "hist", "approx"):
        raise AlgorithmUserError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )
    _check_updater(config)


def _check_updater(config: dict[str, Any]) -> None:
    updaters = config.get("updater")
    if updaters is None:
        return
    if config.get("booster") == "gblinear":
        if not (len(updaters) == 1 and updaters[0] in LINEAR_UPDATERS):
            raise AlgorithmUserError(
                "Linear updater should be one of these options: 'shotgun', 'coord_descent'."
            )
    elif config.get("process_type") == "update":
        if not all(u in ("refresh", "prune") for u in updaters):
            raise AlgorithmUserError(
                "process_type 'update' can only be used with updater 'refresh' and 'prune'"
            )
    elif not all(u in TREE_UPDATERS for u in updaters):
        raise AlgorithmUserError(
            f"Tree updater should be selected from these options: {', '.join(TREE_UPDATERS)}."
        )


def validate_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """Parse and check the job's hyperparameters as the container does; return typed values."""
    config = {ALIASES.get(name, name): value for name, value in raw.items()}
    for name, spec in SPECS.items():
        if spec.required and name not in config:
            raise AlgorithmUserError(f"Missing required hyperparameter: {name}")
    parsed: dict[str, Any] = {}
    for name, value in config.items():
        if name not in SPECS:
            raise AlgorithmUserError(f"Extraneous hyperparameter found: {name}")
        parsed[name] = _parse(name, SPECS[name], value)
    for name, value in parsed.items():
        _check_range(name, SPECS[name], value)
    _check_dependencies(parsed)
    return parsed


def is_maximized(metric: str) -> bool:
    return metric in MAXIMIZE_METRICS
