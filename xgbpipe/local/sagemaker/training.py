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
from dataclasses import dataclass
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
from xgbpipe.local.sagemaker.joblogs import JobLog
from xgbpipe.local.sagemaker.serving import MODEL_FILE_NAME, TRAINING_CONTENT_TYPES, data_format
from xgbpipe.local.sagemaker.sharding import is_data_file

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


def channel_keys(job: dict[str, Any], client: Any) -> dict[str, list[str]]:
    """Every key under each channel's S3Prefix."""
    return {
        channel["ChannelName"]: s3io.list_keys(
            client, s3io.S3Location.parse(channel["DataSource"]["S3DataSource"]["S3Uri"])
        )
        for channel in job.get("InputDataConfig", [])
    }


def download_channels(
    job: dict[str, Any], client: Any, root: Path, keys: dict[str, list[str]] | None = None
) -> dict[str, Path]:
    """Copy each channel's objects (all of them, or this host's `keys`) to `<root>/<channel>/`,
    keeping their names."""
    paths: dict[str, Path] = {}
    for channel in job.get("InputDataConfig", []):
        source = channel["DataSource"]["S3DataSource"]
        prefix = s3io.S3Location.parse(source["S3Uri"])
        folder = root / channel["ChannelName"]
        folder.mkdir(parents=True)
        chosen = keys[channel["ChannelName"]] if keys is not None else None
        for key in s3io.list_keys(client, prefix) if chosen is None else chosen:
            target = folder / s3io.relative_key(prefix.key, key)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3io.read(client, s3io.S3Location(prefix.bucket, key)))
        paths[channel["ChannelName"]] = folder
    return paths


def log_channel_files(
    log: JobLog, job: dict[str, Any], keys: dict[str, list[str]], host: str
) -> None:
    """Name the files a host received, so a job's logs show how its data was distributed."""
    for channel in job.get("InputDataConfig", []):
        name = channel["ChannelName"]
        prefix = s3io.S3Location.parse(channel["DataSource"]["S3DataSource"]["S3Uri"]).key
        files = [s3io.relative_key(prefix, key) for key in sorted(keys[name])]
        data = [file for file in files if is_data_file(file)]
        log.write(f"Files of channel {name} on {host}: {', '.join(data) or '(none)'}")
        others = [file for file in files if not is_data_file(file)]
        if others:
            log.write(
                f"Files of channel {name} on {host} that are not validated as data (names "
                f"starting with '.' or '_'): {', '.join(others)}"
            )


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
    """The files xgboost reads, as the container hands it the channel's folder.

    The container's `get_size` fails on any name starting with `.`; names starting with `_`
    only skip its format check (`_is_data_file`), xgboost's reader still loads them, and skips
    empty files, so an empty Spark `_SUCCESS` marker adds nothing (see `_single_file`).
    The container sniffs the CSV delimiter from whichever file it lists first, which may be an
    empty marker that fails the job; the local SageMaker sniffs the first line of the data.
    """
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
    config: dict[str, Any],
    train: xgb.DMatrix,
    validation: xgb.DMatrix | None,
    *,
    is_master: bool = True,
) -> tuple[xgb.Booster, dict[str, dict[str, list[float]]]]:
    """Train as the container does and return the booster and its evaluation history.

    In distributed training (inside a collective) xgboost computes its own metrics over every
    host's data, and averages each container-computed metric over the hosts (each host scores
    its own data; `xgboost.callback._allreduce_metric`), so every host sees the same history and
    early stopping stops them all at the same round. Only the master keeps the best iteration,
    as in the container, since only its model is saved.
    """
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
                save_best=is_master,
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


@dataclass(frozen=True)
class HostData:
    """What one host loaded: the validated config and its DMatrices (None when it has no data)."""

    config: dict[str, Any]
    train: xgb.DMatrix | None
    validation: xgb.DMatrix | None


def load_host_data(job: dict[str, Any], folders: dict[str, Path]) -> HostData:
    """Validate hyperparameters and channels, then load the downloaded data, as the container
    does on every host."""
    config = validate_hyperparameters(job.get("HyperParameters", {}))
    kind = validate_channels(job)
    csv_weights = config.get("csv_weights", 0)
    train = load_dmatrix(folders["train"], kind, csv_weights)
    validation = None
    if "validation" in folders:
        validation = load_dmatrix(folders["validation"], kind, csv_weights)
    return HostData(config, train, validation)


def upload_model(
    job: dict[str, Any], client: Any, booster: xgb.Booster, workdir: Path
) -> s3io.S3Location:
    output = s3io.S3Location.parse(job["OutputDataConfig"]["S3OutputPath"]).child(
        job["TrainingJobName"], "output", "model.tar.gz"
    )
    s3io.write(client, output, model_archive(booster, workdir))
    return output


def job_result(
    output: s3io.S3Location, history: dict[str, dict[str, list[float]]]
) -> dict[str, Any]:
    return {
        "S3ModelArtifacts": output.uri(),
        "FinalMetricDataList": final_metrics(history, time.time()),
    }


def run_training_job(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    """Worker entry point of a single-instance job: run the job described by `spec`,
    reporting secondary statuses; the job's log goes to algo-1's stream."""
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    log = JobLog.training(spec, "algo-1")
    try:
        return _train_single_host(spec["job"], report, client, log)
    except Exception as error:
        log.write(f"Training failed: {error}")
        raise
    finally:
        log.flush()


def _train_single_host(
    job: dict[str, Any], report: Report, client: Any, log: JobLog
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xgbpipe-training-") as tmp:
        workdir = Path(tmp)
        report("Downloading")
        keys = channel_keys(job, client)
        folders = download_channels(job, client, workdir / "data", keys)
        log_channel_files(log, job, keys, "algo-1")
        report("Training")
        data = load_host_data(job, folders)
        if data.train is None:
            raise AlgorithmUserError(f"No data in training channel path {folders['train']}")
        if "validation" in folders and data.validation is None:
            raise AlgorithmUserError(f"No data in validation channel path {folders['validation']}")
        log.write("Single node training.")
        booster, history = train_booster(data.config, data.train, data.validation)
        report("Uploading")
        output = upload_model(job, client, booster, workdir)
    return job_result(output, history)
