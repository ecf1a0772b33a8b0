"""A training job as the built-in XGBoost container runs it; executed inside a worker process.

Order of work follows the container: download the channels, validate hyperparameters, validate
channels, load the data with xgboost's own CSV/libsvm readers, train with the container's
callbacks (early stopping on the last metric, keeping the best model), save `xgboost-model`
with `save_model` (UBJSON on xgboost 3.x) and upload it as `model.tar.gz`.
"""

from __future__ import annotations

import csv
import io
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from xgbpipe.local.sagemaker import s3io
from xgbpipe.local.sagemaker.errors import AlgorithmInternalError, AlgorithmUserError
from xgbpipe.local.sagemaker.hyperparameters import (
    MAXIMIZE_METRICS,
    MINIMIZE_METRICS,
    validate_hyperparameters,
)
from xgbpipe.local.sagemaker.serving import MODEL_FILE_NAME, TRAINING_CONTENT_TYPES, data_format

Report = Callable[[str], None]
CHANNELS = ("train", "validation")
# Metrics the container computes itself (scikit-learn) instead of asking xgboost for them.
CUSTOM_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "mse",
    "rmse",
    "mae",
    "precision",
    "precision_macro",
    "precision_micro",
    "r2",
    "recall",
    "recall_macro",
    "recall_micro",
)
# xgboost failures the container blames on the user's data or parameters.
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for "
    "logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
)
_NOT_XGBOOST_PARAMS = (
    "num_round",
    "save_model_on_termination",
    "early_stopping_rounds",
    "_tuning_objective_metric",
)
# Cross-validation writes one model per fold; the local SageMaker trains a single model.
_UNSUPPORTED_PARAMS = ("_kfold", "_num_cv_round")


def _class_labels(predictions: np.ndarray) -> np.ndarray:
    if predictions.ndim > 1:
        return np.argmax(predictions, axis=-1)
    return (predictions > 0.0).astype(int)


def _custom_metric(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    # Imported here so the server process does not pay for scikit-learn; workers preload it.
    from sklearn import metrics as skm

    regression: dict[str, Callable[[Any, Any], Any]] = {
        "mse": skm.mean_squared_error,
        "rmse": skm.root_mean_squared_error,
        "mae": skm.mean_absolute_error,
        "r2": skm.r2_score,
    }
    if name in regression:
        return float(regression[name](labels, predictions))
    classification: dict[str, Callable[[Any, Any], Any]] = {
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
        "f1": lambda y, p: skm.f1_score(y, p, average="macro"),
        "f1_binary": lambda y, p: skm.f1_score(y, p, average="binary"),
        "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro"),
        "precision": skm.precision_score,
        "precision_macro": lambda y, p: skm.precision_score(y, p, average="macro"),
        "precision_micro": lambda y, p: skm.precision_score(y, p, average="micro"),
        "recall": skm.recall_score,
        "recall_macro": lambda y, p: skm.recall_score(y, p, average="macro"),
        "recall_micro": lambda y, p: skm.recall_score(y, p, average="micro"),
    }
    if predictions.size == 0:
        return 0.0
    return float(classification[name](labels, _class_labels(predictions)))


def _feval(names: list[str]) -> Callable[[np.ndarray, xgb.DMatrix], list[tuple[str, float]]]:
    def evaluate(predictions: np.ndarray, dmatrix: xgb.DMatrix) -> list[tuple[str, float]]:
        labels = dmatrix.get_label()
        return [(name, _custom_metric(name, predictions, labels)) for name in names]

    return evaluate


def download_channels(job: dict[str, Any], client: Any, root: Path) -> dict[str, Path]:
    """Copy each channel's objects to `<root>/<channel>/`, keeping their names."""
    paths: dict[str, Path] = {}
    for channel in job.get("InputDataConfig", []):
        source = channel["DataSource"]["S3DataSource"]
        prefix = s3io.S3Location.parse(source["S3Uri"])
        folder = root / channel["ChannelName"]
        folder.mkdir(parents=True)
        for key in s3io.list_keys(client, prefix):
            target = folder / s3io.relative_key(prefix.key, key)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3io.read(client, s3io.S3Location(prefix.bucket, key)))
        paths[channel["ChannelName"]] = folder
    return paths


def validate_channels(job: dict[str, Any]) -> str:
    """The container's channel check; returns the data format of the train channel."""
    configs = {channel["ChannelName"]: channel for channel in job.get("InputDataConfig", [])}
    if "train" not in configs:
        raise AlgorithmUserError("Missing required channel: train")
    for name, channel in configs.items():
        if name not in CHANNELS:
            raise AlgorithmUserError(f"Extraneous channel found: {name}")
        content_type = channel.get("ContentType", "text/libsvm")
        mode = channel.get("InputMode") or job["AlgorithmSpecification"].get(
            "TrainingInputMode", "File"
        )
        if content_type not in TRAINING_CONTENT_TYPES or mode == "Pipe":
            shown = {
                "ContentType": content_type,
                "TrainingInputMode": mode,
                "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                    "S3DataDistributionType", "FullyReplicated"
                ),
            }
            raise AlgorithmUserError(
                f"Channel configuration for '{name}' channel is not supported: {shown}"
            )
    return data_format(configs["train"].get("ContentType"))


def _data_files(folder: Path) -> list[Path]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if any(path.name.startswith(".") for path in files):
        raise AlgorithmUserError("Hidden file found in the data path! Remove that before training.")
    return files


def _single_file(files: list[Path], folder: Path) -> Path:
    """xgboost's URI reader takes one file; several objects are read as their concatenation."""
    if len(files) == 1:
        return files[0]
    combined = folder.parent / f"{folder.name}.combined"
    with combined.open("wb") as out:
        for path in files:
            data = path.read_bytes()
            out.write(data if data.endswith(b"\n") or not data else data + b"\n")
    return combined


def load_dmatrix(folder: Path, kind: str, csv_weights: int) -> xgb.DMatrix | None:
    files = _data_files(folder)
    if not files or sum(path.stat().st_size for path in files) == 0:
        return None
    path = _single_file(files, folder)
    if kind == "csv":
        with path.open(errors="ignore") as handle:
            first_line = handle.readline()
        try:
            delimiter = csv.Sniffer().sniff(first_line).delimiter
        except csv.Error as error:
            raise AlgorithmUserError(
                f"Could not determine delimiter on line {first_line[:50]}:\n{error}"
            ) from error
        uri = f"{path}?format=csv&label_column=0&delimiter={delimiter}"
        if csv_weights == 1:
            uri += "&weight_column=1"
        try:
            dmatrix = xgb.DMatrix(uri)
        except xgb.core.XGBoostError as error:
            raise AlgorithmUserError(f"Failed to load csv data with exception:\n{error}") from error
    elif kind == "libsvm":
        try:
            dmatrix = xgb.DMatrix(f"{path}?format=libsvm")
        except xgb.core.XGBoostError as error:
            raise AlgorithmUserError(
                f"Failed to load libsvm data with exception:\n{error}"
            ) from error
    else:
        raise AlgorithmUserError(f"Content type {kind} is not supported by the local SageMaker.")
    if dmatrix.get_label().size == 0:
        raise AlgorithmUserError("Got input data without labels. Please check the input data set.")
    return dmatrix


def tuning_metrics(config: dict[str, Any]) -> list[str]:
    """The metrics named by a tuning job's objective, `validation:rmse` -> `["rmse"]`."""
    objective = config.get("_tuning_objective_metric")
    return objective.split(":", 1)[-1].split(",") if objective else []


def evaluated_metrics(config: dict[str, Any]) -> list[str]:
    """eval_metric together with the tuning objective's metrics, as the container unites them."""
    requested: list[str] = config.get("eval_metric") or []
    tuning = tuning_metrics(config)
    return sorted(set(requested) | set(tuning)) if requested and tuning else requested or tuning


def xgboost_params(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split the validated config into xgboost params and the container-computed metrics."""
    unsupported = sorted(set(config) & set(_UNSUPPORTED_PARAMS))
    if unsupported:
        raise AlgorithmUserError(
            f"Hyperparameters {unsupported} (cross-validation) are not supported by the local "
            "SageMaker."
        )
    params = {key: value for key, value in config.items() if key not in _NOT_XGBOOST_PARAMS}
    if "updater" in params:
        params["updater"] = ",".join(params["updater"])
    metrics = evaluated_metrics(config)
    custom = [name for name in metrics if name in CUSTOM_METRICS]
    native = sorted(set(metrics) - set(custom))
    if native:
        params["eval_metric"] = native
    else:
        params.pop("eval_metric", None)
    return params, custom


def train_booster(
    config: dict[str, Any], train: xgb.DMatrix, validation: xgb.DMatrix | None
) -> tuple[xgb.Booster, dict[str, dict[str, list[float]]]]:
    """Train as the container does and return the booster and its evaluation history."""
    params, custom = xgboost_params(config)
    evals = [(train, "train")] + ([(validation, "validation")] if validation is not None else [])
    callbacks: list[xgb.callback.TrainingCallback] = []
    # Early stopping watches the tuning objective's last metric, else eval_metric's last one.
    watched_from = tuning_metrics(config) or config.get("eval_metric") or []
    rounds = config.get("early_stopping_rounds")
    if rounds and validation is not None and watched_from:
        watched = watched_from[-1]
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=rounds,
                data_name="validation",
                metric_name=watched,
                maximize=watched in MAXIMIZE_METRICS,
                save_best=True,
            )
        )
    history: dict[str, dict[str, list[float]]] = {}
    try:
        booster = xgb.train(
            params,
            train,
            num_boost_round=config["num_round"],
            evals=evals,
            custom_metric=_feval(custom) if custom else None,
            callbacks=callbacks,
            evals_result=history,
            verbose_eval=False,
        )
    except Exception as error:
        if any(known in str(error) for known in CUSTOMER_ERRORS):
            raise AlgorithmUserError(str(error)) from error
        raise AlgorithmInternalError(f"XGB train call failed with exception:\n {error}") from error
    return booster, history


def final_metrics(history: dict[str, dict[str, list[float]]], when: float) -> list[dict[str, Any]]:
    """What SageMaker scrapes from the last log line: `<channel>:<metric>` at 5 decimals.

    A metric computed both by xgboost and by the container appears twice in a log line; the
    metric regex is greedy, so the later (container) value wins, which is the last in history.
    """
    known = MAXIMIZE_METRICS + MINIMIZE_METRICS
    return [
        {
            "MetricName": f"{channel}:{metric}",
            "Value": float(f"{values[-1]:.5f}"),
            "Timestamp": when,
        }
        for channel, by_metric in sorted(history.items())
        for metric, values in sorted(by_metric.items())
        if metric in known and values
    ]


def model_archive(booster: xgb.Booster, workdir: Path) -> bytes:
    model_path = workdir / MODEL_FILE_NAME
    with warnings.catch_warnings():
        # No extension means UBJSON, which is what the container writes; the warning says so.
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(model_path))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(model_path, arcname=MODEL_FILE_NAME)
    return buffer.getvalue()


def run_training_job(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    """Worker entry point: run the job described by `spec`, reporting secondary statuses."""
    job = spec["job"]
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    with tempfile.TemporaryDirectory(prefix="xgbpipe-training-") as tmp:
        workdir = Path(tmp)
        report("Downloading")
        folders = download_channels(job, client, workdir / "data")
        report("Training")
        config = validate_hyperparameters(job.get("HyperParameters", {}))
        kind = validate_channels(job)
        csv_weights = config.get("csv_weights", 0)
        train = load_dmatrix(folders["train"], kind, csv_weights)
        if train is None:
            raise AlgorithmUserError(f"No data in training channel path {folders['train']}")
        validation = None
        if "validation" in folders:
            validation = load_dmatrix(folders["validation"], kind, csv_weights)
            if validation is None:
                raise AlgorithmUserError(
                    f"No data in validation channel path {folders['validation']}"
                )
        booster, history = train_booster(config, train, validation)
        report("Uploading")
        output = s3io.S3Location.parse(job["OutputDataConfig"]["S3OutputPath"]).child(
            job["TrainingJobName"], "output", "model.tar.gz"
        )
        s3io.write(client, output, model_archive(booster, workdir))
    return {
        "S3ModelArtifacts": output.uri(),
        "FinalMetricDataList": final_metrics(history, time.time()),
    }
