"""A drop of train/validation/test CSVs becomes exactly one validated training job."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import storage
from pipeline_common.config import Settings
from pipeline_common.drops import (
    CHANNELS,
    GZIP_SUFFIX,
    Channel,
    Drop,
    Incomplete,
    model_prefix,
    read_drop,
)
from pipeline_common.hyperparameters import (
    HyperparameterError,
    ResolvedHyperparameters,
    resolve_hyperparameters,
)
from pipeline_common.lifecycle import conclude
from pipeline_common.metrics import METRICS_OF
from pipeline_common.naming import (
    HYPERPARAMETERS_FILE,
    PIPELINE_FILE,
    SUCCESS_MARKER,
    RunRef,
    job_name,
    model_name_problem,
    run_id,
)
from pipeline_common.observability import logger, metrics
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status
from pipeline_common.sagemaker_calls import create, is_transient
from pipeline_common.sagemaker_requests import input_key, training_job_request
from pipeline_common.validation import (
    CsvProfile,
    DropRejected,
    check_drop,
    merge_profiles,
    profile_csv,
)

# Parts copied (or decompressed) at once; a decompression holds one 8 MB piece (storage._PIECE).
SNAPSHOT_THREADS = 4
# Every part's first bytes get the full schema check; beyond them, validation streams up to this
# many bytes in all (about 12 MB/s per vCPU: a minute or two within the 15-minute limit), the
# same share of every part, and leaves the rest to the training job.
HEAD_BYTES = 64 * 1024
VALIDATION_BYTE_BUDGET = 512 * 2**20
# A first row longer than a part's share is read up to this far before it is refused.
WIDE_ROW_BYTES = 16 * 2**20
# Decompression and upload ran at about 30 MB/s of CSV on the local cloud (2 shared cores): 12 GiB
# takes some 7 minutes, which leaves the rest of the 15 for the copies and validation.
MAX_DECOMPRESSED_BYTES = 12 * 2**30
# Scoring streams about 330k rows (some 25 MB) a second; a live model doubles the rows.
MAX_TEST_BYTES = 8 * 2**30


class SupersededUpload(RuntimeError):
    """A file changed while the run was being prepared; the newer upload's event takes over."""


def start_training(settings: Settings, model: str) -> Outcome:
    bucket = settings.data_bucket
    listed = storage.list_objects(bucket, model_prefix(model))
    try:
        found = read_drop(model, listed)
    except DropRejected as rejected:
        # A layout no upload completes: the run of what is there records why.
        everything = {o.key: o.etag for o in listed if not o.key.endswith(SUCCESS_MARKER)}
        ref = RunRef(model, run_id(everything, settings.fingerprint()))
        runs = RunsTable(settings.runs_table)
        if not runs.begin(ref, {"inputs": {}}):
            return Outcome("duplicate", model, ref.run_id, "this set of files already has a run")
        return reject(settings, runs, ref, str(rejected))
    drop = _with_versions(bucket, found) if isinstance(found, Drop) else found
    if isinstance(drop, Incomplete):
        return Outcome("waiting", model=model, detail=f"waiting for {', '.join(drop.waiting_for)}")
    ref = RunRef(model, run_id(drop.fingerprint(), settings.fingerprint()))
    runs = RunsTable(settings.runs_table)
    inputs = {
        **{channel.source: channel.record() for channel in drop.channels.values()},
        **{
            name: {"key": o.key, "etag": o.etag, "version_id": o.version_id, "size": o.size}
            for name, o in drop.settings.items()
        },
    }
    if not runs.begin(ref, {"inputs": inputs}):
        run = runs.get(ref) or {}
        if run.get("stage") == Stage.TRAINING and run.get("status") == Status.IN_PROGRESS:
            # A retry of an invocation that recorded the stage but died before the job existed.
            return create_training_job(settings, runs, ref, run)
        return Outcome("duplicate", model, ref.run_id, "this set of files already has a run")
    try:
        problem = model_name_problem(ref.model)
        if problem:
            raise DropRejected(problem)
        pipeline = _json_object(settings, drop.settings, PIPELINE_FILE)
        hyperparameters = resolve_hyperparameters(
            _json_object(settings, drop.settings, HYPERPARAMETERS_FILE)
        )
        bars = gate_bars(pipeline, hyperparameters)
        counts = instance_counts(settings, pipeline)
        _check_decompression(drop)
        budget = ByteBudget(MAX_DECOMPRESSED_BYTES)
        channels = {
            name: _snapshot_channel(bucket, ref, channel, budget)
            for name, channel in drop.channels.items()
        }
        _check_test_size(channels["test"])
        num_features, checked = _validate(bucket, hyperparameters, channels)
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
        "channels": {
            # Parts with rows: what instances can be given.
            name: {"key": snapshot.key, "parts": sum(part.size > 0 for part in snapshot.parts)}
            for name, snapshot in channels.items()
        },
        "instance_counts": counts,
        "validation": checked,
    }
    # Record first, then act: the job's own event can never find the run a stage behind.
    if not runs.advance(ref, Stage.VALIDATING, Stage.TRAINING, fields):
        return Outcome("duplicate", model, ref.run_id, "another invocation took the run")
    return create_training_job(settings, runs, ref, fields)


def create_training_job(
    settings: Settings, runs: RunsTable, ref: RunRef, run: Mapping[str, Any]
) -> Outcome:
    """Create the job a run in the training stage names; safe to repeat (the name is the key)."""
    request = training_job_request(settings, ref, run)
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


def _with_versions(bucket: str, drop: Drop) -> Drop | Incomplete:
    """The drop with the S3 version of each single file and settings file (listing gives none),
    or the files deleted since the listing. Parts are pinned by their ETags instead."""
    singles = [c.parts[0] for c in drop.channels.values() if not c.is_folder]
    heads = {
        stored.key: storage.head(bucket, stored.key)
        for stored in (*drop.settings.values(), *singles)
    }
    gone = tuple(key.rpartition("/")[2] for key, head in heads.items() if head is None)
    if gone:
        return Incomplete(gone)
    found = {key: head for key, head in heads.items() if head is not None}
    return Drop(
        channels={
            name: c if c.is_folder else replace(c, parts=(found[c.parts[0].key],))
            for name, c in drop.channels.items()
        },
        settings={name: found[stored.key] for name, stored in drop.settings.items()},
    )


@dataclass(frozen=True)
class Snapshot:
    """A channel copied into the run: `key` is the file, or the folder (ending in `/`) of parts."""

    source: str  # as dropped: `train.csv` or `train/`
    key: str
    parts: tuple[storage.StoredObject, ...]
    display: tuple[str, ...]  # each part as the user named it, for messages


def _snapshot_channel(bucket: str, ref: RunRef, channel: Channel, budget: ByteBudget) -> Snapshot:
    """Copy the exact bytes that were seen, so a later upload cannot change a running job;
    gzip parts are stored decompressed, which the built-in algorithm needs in File mode.
    Empty parts (Spark's empty partitions) are left out: they hold no rows."""
    key = input_key(ref, channel.source)
    targets = {
        part: key + channel.snapshot_name(part) if channel.is_folder else key
        for part in channel.parts
        if part.size or not channel.is_folder
    }
    pool = ThreadPoolExecutor(max_workers=SNAPSHOT_THREADS)
    try:
        copies = [
            pool.submit(_snapshot, bucket, part, target, channel.part_name(part), budget)
            for part, target in targets.items()
        ]
        for copy in as_completed(copies):
            copy.result()
    finally:
        pool.shutdown(cancel_futures=True)  # the first failure stops the copies not begun
    copied = {stored.key: stored for stored in storage.list_objects(bucket, key)}
    return Snapshot(
        channel.source,
        key,
        tuple(copied[target] for target in targets.values()),
        tuple(channel.part_name(part) for part in targets),
    )


class ByteBudget:
    """The bytes decompression may still write, shared by the copying threads."""

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            self._left -= size
            if self._left < 0:
                raise _too_much_gzip()


def _too_much_gzip() -> DropRejected:
    return DropRejected(
        f"the drop's gzip parts decompress to more than {MAX_DECOMPRESSED_BYTES / 2**30:.0f} GiB, "
        "more than one invocation decompresses within its 15 minutes (the built-in algorithm "
        "reads only plain CSV); upload the parts uncompressed: SageMaker reads them straight "
        "from S3"
    )


def _check_test_size(test: Snapshot) -> None:
    """Refuse a test set too large to score within one invocation of DeployModel."""
    size = sum(part.size for part in test.parts)
    if size > MAX_TEST_BYTES:
        raise DropRejected(
            f"{test.source} holds {size / 2**30:.1f} GiB; the gate scores the test set (and, "
            "while a model is live, the live model's too) within one invocation's 15 minutes, "
            f"so sample it below {MAX_TEST_BYTES / 2**30:.0f} GiB (a 1% sample of a large data "
            "set measures the metrics well)"
        )


def _check_decompression(drop: Drop) -> None:
    """Refuse at once gzip parts whose compressed size alone passes the decompression limit."""
    compressed = sum(
        part.size
        for channel in drop.channels.values()
        for part in channel.parts
        if part.key.endswith(GZIP_SUFFIX)
    )
    if compressed > MAX_DECOMPRESSED_BYTES:
        raise _too_much_gzip()


def _profile(
    bucket: str, part: storage.StoredObject, display: str, limit: int, folder: bool
) -> CsvProfile:
    """The part's profile from its first `limit` bytes, or from all of it when that is less."""
    whole = limit >= part.size
    lines = storage.iter_lines(bucket, part.key, None if whole else limit)
    return profile_csv(display, lines, complete=whole, part=folder)


def _validate(
    bucket: str, hyperparameters: ResolvedHyperparameters, channels: Mapping[str, Snapshot]
) -> tuple[int, dict[str, Any]]:
    """Check every part's head in full and as much of the rest as the byte budget allows.

    Returns the number of features and what was checked, for the run record.
    """
    total = sum(part.size for snapshot in channels.values() for part in snapshot.parts)
    share = min(1.0, VALIDATION_BYTE_BUDGET / total) if total else 1.0
    checked = 0
    profiles = {}
    for name in CHANNELS:
        snapshot = channels[name]
        parts = []
        for part, display in zip(snapshot.parts, snapshot.display, strict=True):
            limit = max(HEAD_BYTES, math.ceil(share * part.size))
            profile = _profile(bucket, part, display, limit, folder=snapshot.key.endswith("/"))
            if profile.rows == 0 and not profile.complete:
                # The share ended inside the first row: read on until a row is whole.
                limit = max(limit, WIDE_ROW_BYTES)
                profile = _profile(bucket, part, display, limit, folder=snapshot.key.endswith("/"))
                if profile.rows == 0 and not profile.complete:
                    raise DropRejected(
                        f"{display} has a first row longer than {WIDE_ROW_BYTES // 2**20} MiB; "
                        "rows that wide are not checked: split the features into fewer columns"
                    )
            parts.append(profile)
            checked += min(limit, part.size)
        profiles[name] = merge_profiles(snapshot.source, parts)
    num_features = check_drop(
        profiles["train"], profiles["validation"], profiles["test"], hyperparameters
    )
    record: dict[str, Any] = {"checked_bytes": checked, "total_bytes": total}
    if checked < total:
        record["note"] = (
            f"checked every part's first {HEAD_BYTES // 1024} KiB and {checked / 2**20:,.0f} of "
            f"{total / 2**20:,.0f} MiB in all, within the byte budget of one invocation; the "
            "training job reads the rest, and a fault there fails it with its reason"
        )
    return num_features, record


def _json_object(
    settings: Settings, present: Mapping[str, storage.StoredObject], name: str
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


# pipeline.json's settings besides the gate: per-model instance counts of the jobs.
INSTANCE_COUNT_SETTINGS = {
    "training_instance_count": "training",
    "transform_instance_count": "transform",
}
MAX_INSTANCE_COUNT = 100


def instance_counts(settings: Settings, pipeline: dict[str, Any] | None) -> dict[str, int]:
    """Instances asked for each job: pipeline.json's, else the stack's parameters."""
    counts = {
        "training": settings.training_instance_count,
        "transform": settings.transform_instance_count,
    }
    for setting, job in INSTANCE_COUNT_SETTINGS.items():
        if pipeline and setting in pipeline:
            value = pipeline[setting]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not (1 <= value <= MAX_INSTANCE_COUNT)
            ):
                raise DropRejected(
                    f"{PIPELINE_FILE}: {setting} must be a whole number from 1 to "
                    f"{MAX_INSTANCE_COUNT}, not {value!r}"
                )
            counts[job] = value
    return counts


def gate_bars(
    pipeline: dict[str, Any] | None, hyperparameters: ResolvedHyperparameters
) -> dict[str, float]:
    """pipeline.json's bars, one per metric the model is scored on."""
    if not pipeline:
        return {}
    known = {"gate", *INSTANCE_COUNT_SETTINGS}
    unknown = sorted(set(pipeline) - known)
    if unknown:
        raise DropRejected(
            f"{PIPELINE_FILE} has unknown settings {unknown}; it may set {', '.join(sorted(known))}"
        )
    if "gate" not in pipeline:
        return {}
    problem = hyperparameters.problem
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


def _snapshot(
    bucket: str, source: storage.StoredObject, target_key: str, shown: str, budget: ByteBudget
) -> None:
    try:
        if source.key.endswith(GZIP_SUFFIX):
            storage.snapshot_decompressed(bucket, source, target_key, budget.take)
        else:
            storage.snapshot(bucket, source, target_key)
    except storage.NotGzip as error:
        raise DropRejected(
            f"{shown} is named .gz but does not decompress ({error}); upload it gzip-compressed, "
            "or as plain CSV without the .gz"
        ) from error
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
