"""A drop of train/validation/test CSVs becomes exactly one validated training job."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import storage
from pipeline_common.config import Settings
from pipeline_common.hyperparameters import (
    HyperparameterError,
    ResolvedHyperparameters,
    resolve_hyperparameters,
)
from pipeline_common.lifecycle import conclude
from pipeline_common.metrics import METRICS_OF
from pipeline_common.naming import (
    DATASET_FILES,
    HYPERPARAMETERS_FILE,
    PIPELINE_FILE,
    RunRef,
    dataset_key,
    job_name,
    model_name_problem,
    run_id,
)
from pipeline_common.observability import logger, metrics
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status
from pipeline_common.sagemaker_calls import create, is_transient
from pipeline_common.sagemaker_requests import input_key, training_job_request
from pipeline_common.validation import DropRejected, check_drop, profile_csv


class SupersededUpload(RuntimeError):
    """A file changed while the run was being prepared; the newer upload's event takes over."""


def start_training(settings: Settings, model: str) -> Outcome:
    bucket = settings.data_bucket
    names = (*DATASET_FILES, HYPERPARAMETERS_FILE, PIPELINE_FILE)
    objects = {name: storage.head(bucket, dataset_key(model, name)) for name in names}
    missing = [name for name in DATASET_FILES if objects[name] is None]
    if missing:
        return Outcome("waiting", model=model, detail=f"waiting for {', '.join(missing)}")
    present = {name: obj for name, obj in objects.items() if obj is not None}
    ref = RunRef(model, run_id({n: o.etag for n, o in present.items()}, settings.fingerprint()))
    runs = RunsTable(settings.runs_table)
    inputs = {
        name: {"key": obj.key, "etag": obj.etag, "version_id": obj.version_id, "size": obj.size}
        for name, obj in present.items()
    }
    if not runs.begin(ref, {"inputs": inputs}):
        run = runs.get(ref) or {}
        if run.get("stage") == Stage.TRAINING and run.get("status") == Status.IN_PROGRESS:
            # A retry of an invocation that recorded the stage but died before the job existed.
            return create_training_job(settings, runs, ref, run)
        return Outcome("duplicate", model, ref.run_id, "this set of files already has a run")
    try:
        hyperparameters, num_features = _validate(settings, ref, present)
        bars = gate_bars(_json_object(settings, present, PIPELINE_FILE), hyperparameters)
    except (DropRejected, HyperparameterError) as rejected:
        return reject(settings, runs, ref, str(rejected))
    except SupersededUpload as superseded:
        return reject(settings, runs, ref, str(superseded), status=Status.STOPPED)

    fields = {
        "training_job": job_name(settings.job_prefix, ref),
        "objective": hyperparameters.objective,
        "problem": hyperparameters.problem,
        "num_class": hyperparameters.num_class,
        "num_features": num_features,
        "hyperparameters": hyperparameters.values,
        "gate_bars": bars,
    }
    # Record first, then act: the job's own event can never find the run a stage behind.
    if not runs.advance(ref, Stage.VALIDATING, Stage.TRAINING, fields):
        return Outcome("duplicate", model, ref.run_id, "another invocation took the run")
    return create_training_job(settings, runs, ref, fields)


def create_training_job(
    settings: Settings, runs: RunsTable, ref: RunRef, run: Mapping[str, Any]
) -> Outcome:
    """Create the job a run in the training stage names; safe to repeat (the name is the key)."""
    request = training_job_request(settings, ref, run["hyperparameters"])
    try:
        created = create("create_training_job", request)
    except ClientError as error:
        if is_transient(error):
            raise  # Lambda retries the event (or reconcile_runs the run), which lands here again
        return conclude(settings, runs, ref, Status.FAILED, f"training not started: {error}")
    if created:
        metrics.add_metric(name="TrainingJobsStarted", unit="Count", value=1)
    logger.info("training job started", extra={"job": request["TrainingJobName"]})
    return Outcome(
        "training_started" if created else "training_already_started",
        ref.model,
        ref.run_id,
        data={"training_job": request["TrainingJobName"], "num_features": run["num_features"]},
    )


def _validate(
    settings: Settings, ref: RunRef, present: dict[str, storage.StoredObject]
) -> tuple[ResolvedHyperparameters, int]:
    problem = model_name_problem(ref.model)
    if problem:
        raise DropRejected(problem)
    hyperparameters = resolve_hyperparameters(_json_object(settings, present, HYPERPARAMETERS_FILE))
    for name in DATASET_FILES:
        _snapshot(settings.data_bucket, present[name], input_key(ref, name))
    train, validation, test = (
        profile_csv(name, storage.iter_lines(settings.data_bucket, input_key(ref, name)))
        for name in DATASET_FILES
    )
    return hyperparameters, check_drop(train, validation, test, hyperparameters)


def _json_object(
    settings: Settings, present: dict[str, storage.StoredObject], name: str
) -> dict[str, Any] | None:
    """An optional JSON file of the drop, which must hold one object."""
    stored = present.get(name)
    if stored is None:
        return None
    raw = storage.read_bytes(settings.data_bucket, stored.key, stored.version_id)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DropRejected(f"{name} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise DropRejected(f"{name} must be a JSON object, such as {_EXAMPLES[name]}")
    return document


_EXAMPLES = {HYPERPARAMETERS_FILE: '{"max_depth": 5}', PIPELINE_FILE: '{"gate": {"rmse": 2.5}}'}


# The objectives whose predictions are probabilities, which logloss needs.
_PROBABILITIES = {"binary:logistic", "multi:softprob"}


def gate_bars(
    pipeline: dict[str, Any] | None, hyperparameters: ResolvedHyperparameters
) -> dict[str, float]:
    """pipeline.json's bars, one per metric the model is scored on."""
    if not pipeline:
        return {}
    problem = hyperparameters.problem
    unknown = sorted(set(pipeline) - {"gate"})
    if unknown:
        raise DropRejected(f"{PIPELINE_FILE} has unknown settings {unknown}; it may set only gate")
    bars = pipeline["gate"]
    allowed = METRICS_OF[problem]
    if not isinstance(bars, dict):
        raise DropRejected(
            f'{PIPELINE_FILE}: "gate" must map metrics to bars, such as {{"rmse": 2.5}}'
        )
    checked = {}
    for metric, bar in bars.items():
        if metric == "logloss" and hyperparameters.objective not in _PROBABILITIES:
            raise DropRejected(
                f"{PIPELINE_FILE}: {hyperparameters.objective} predicts no probabilities, so its "
                "models have no logloss to set a bar on"
            )
        if metric not in allowed:
            raise DropRejected(
                f"{PIPELINE_FILE}: {problem} models are scored on {', '.join(allowed)}, "
                f"not {metric!r}"
            )
        if isinstance(bar, bool) or not isinstance(bar, int | float) or not math.isfinite(bar):
            raise DropRejected(
                f"{PIPELINE_FILE}: the bar of {metric} must be a number, not {bar!r}"
            )
        checked[metric] = float(bar)
    return checked


def _snapshot(bucket: str, source: storage.StoredObject, target_key: str) -> None:
    try:
        storage.snapshot(bucket, source, target_key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {
            "NoSuchKey",
            "404",
            "NoSuchVersion",
            "PreconditionFailed",
            "412",
        }:
            raise SupersededUpload(
                f"{source.key} changed while the run was being prepared; the newer upload "
                "starts its own run"
            ) from error
        raise


def reject(
    settings: Settings, runs: RunsTable, ref: RunRef, reason: str, status: Status = Status.INVALID
) -> Outcome:
    logger.warning("drop rejected", extra={"model": ref.model, "reason": reason})
    return conclude(settings, runs, ref, status, reason)
