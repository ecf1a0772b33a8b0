"""A finished training job becomes a SageMaker model and a batch transform of the test set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.lifecycle import completed_job, conclude
from pipeline_common.naming import RunRef
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status
from pipeline_common.sagemaker_calls import create, is_transient
from pipeline_common.sagemaker_requests import (
    ChannelInput,
    model_request,
    transform_job_request,
)


def _live_test_set(
    runs: RunsTable, ref: RunRef, run: Mapping[str, Any]
) -> tuple[RunRef, ChannelInput] | None:
    """The live run whose test set the new model is also scored on, when it takes the same rows.

    A retry keeps the choice its run recorded, whatever is live by then.
    """
    if run["stage"] == Stage.TRANSFORMING:
        recorded = run.get("live_test_set")
        champion = RunRef(ref.model, str(recorded["run_id"])) if recorded else None
    else:
        live = (runs.model(ref.model) or {}).get("live") or {}
        comparable = (
            live
            and live["run_id"] != ref.run_id
            and live.get("num_features") == run.get("num_features")
            and live.get("problem") == run.get("problem")
            and live.get("num_class") == run.get("num_class")
        )
        champion = RunRef(ref.model, str(live["run_id"])) if comparable else None
    if champion is None:
        return None
    return champion, ChannelInput.of(runs.get(champion) or {}, champion, "test")


def on_training_job_change(settings: Settings, detail: Mapping[str, Any]) -> Outcome:
    job = completed_job(settings, detail, "Training", "training")
    if isinstance(job, Outcome):
        return job
    name, ref, runs, stage = job.name, job.ref, job.runs, job.run["stage"]
    if stage not in (Stage.TRAINING, Stage.TRANSFORMING):
        return Outcome("duplicate", ref.model, ref.run_id, f"the run is {stage}")
    # Events are best-effort and their detail varies; the job's description is authoritative.
    described = clients.client("sagemaker").describe_training_job(TrainingJobName=name)
    model = model_request(
        settings,
        ref,
        image=described["AlgorithmSpecification"]["TrainingImage"],
        model_data_url=described["ModelArtifacts"]["S3ModelArtifacts"],
    )
    live_test_set = _live_test_set(runs, ref, job.run)
    transform = transform_job_request(settings, ref, job.run)
    transforms = [transform]
    if live_test_set:
        transforms.append(transform_job_request(settings, ref, job.run, live_test_set))
    training_metrics = {
        m["MetricName"]: float(m["Value"]) for m in described.get("FinalMetricDataList", [])
    }
    # Record first, then act: the transform's own event can never find the run a stage behind.
    # A run already transforming is a retry, which creates what the first attempt did not.
    if stage == Stage.TRAINING and not runs.advance(
        ref,
        Stage.TRAINING,
        Stage.TRANSFORMING,
        {
            "model_name": model["ModelName"],
            "model_artifacts": model["PrimaryContainer"]["ModelDataUrl"],
            "transform_job": transform["TransformJobName"],
            "training_metrics": training_metrics,
            "live_test_set": {
                "run_id": live_test_set[0].run_id,
                "transform_job": transforms[-1]["TransformJobName"],
            }
            if live_test_set
            else None,
        },
    ):
        return Outcome("duplicate", ref.model, ref.run_id, "another invocation took the run")
    try:
        create("create_model", model)
        created = create("create_transform_job", transform)
        for request in transforms[1:]:
            create("create_transform_job", request)
    except ClientError as error:
        if is_transient(error):
            raise  # Lambda retries the event, which resumes here
        return conclude(settings, runs, ref, Status.FAILED, f"batch transform not started: {error}")
    logger.info("batch transform started", extra={"job": transform["TransformJobName"]})
    return Outcome(
        "transform_started" if created else "transform_already_started",
        ref.model,
        ref.run_id,
        data={"transform_job": transform["TransformJobName"], "training_metrics": training_metrics},
    )
