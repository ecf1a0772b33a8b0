"""A finished training job becomes a SageMaker model and a batch transform of the test set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.lifecycle import conclude, unless_completed
from pipeline_common.naming import parse_job_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status
from pipeline_common.sagemaker_calls import create
from pipeline_common.sagemaker_requests import model_request, transform_job_request


def on_training_job_change(settings: Settings, detail: Mapping[str, Any]) -> Outcome:
    name = str(detail.get("TrainingJobName", ""))
    ref = parse_job_name(settings.job_prefix, name)
    if ref is None:
        return Outcome("ignored", detail=f"{name} is not a job of this stack")
    runs = RunsTable(settings.runs_table)
    unfinished = unless_completed(settings, runs, ref, "training", detail, "TrainingJobStatus")
    if unfinished:
        return unfinished
    run = runs.get(ref)
    if run is None or run.get("stage") != Stage.TRAINING:
        return Outcome("duplicate", ref.model, ref.run_id, "the run is not waiting for training")
    # Events are best-effort and their detail varies; the job's description is authoritative.
    job = clients.client("sagemaker").describe_training_job(TrainingJobName=name)
    model = model_request(
        settings,
        ref,
        image=job["AlgorithmSpecification"]["TrainingImage"],
        model_data_url=job["ModelArtifacts"]["S3ModelArtifacts"],
    )
    transform = transform_job_request(settings, ref)
    training_metrics = {
        m["MetricName"]: float(m["Value"]) for m in job.get("FinalMetricDataList", [])
    }
    # Record first, then act: the transform's own event can never find the run a stage behind.
    if not runs.advance(
        ref,
        Stage.TRAINING,
        Stage.TRANSFORMING,
        {
            "model_name": model["ModelName"],
            "model_artifacts": model["PrimaryContainer"]["ModelDataUrl"],
            "transform_job": transform["TransformJobName"],
            "training_metrics": training_metrics,
        },
    ):
        return Outcome("duplicate", ref.model, ref.run_id, "another invocation took the run")
    try:
        create("create_model", model)
        create("create_transform_job", transform)
    except ClientError as error:
        return conclude(settings, runs, ref, Status.FAILED, f"batch transform not started: {error}")
    logger.info("batch transform started", extra={"job": transform["TransformJobName"]})
    return Outcome(
        "transform_started",
        ref.model,
        ref.run_id,
        data={"transform_job": transform["TransformJobName"], "training_metrics": training_metrics},
    )
