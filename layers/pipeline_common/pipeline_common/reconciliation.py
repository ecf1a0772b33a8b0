"""The safety net under the events: settle runs whose next event never came.

SageMaker's events are best-effort and a function can give up after its retries, so on a schedule
every run that has not moved for a while is judged from the Describe* of its job or endpoint,
through the same logic the events use; a run that ended but was never announced is announced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.deployment import on_transform_job_change
from pipeline_common.endpoint_tracking import send_notice, settle_deployment, settle_rollback
from pipeline_common.lifecycle import conclude
from pipeline_common.naming import RunRef, endpoint_name, job_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status, stamp
from pipeline_common.sagemaker_calls import describe_endpoint, not_found
from pipeline_common.training import create_training_job
from pipeline_common.transform import on_training_job_change

# Longer than any function's timeout (15 minutes at most), so no run still being worked on is
# judged.
STALE_AFTER = timedelta(minutes=20)


def reconcile(settings: Settings, at: datetime | None = None) -> list[Outcome]:
    runs = RunsTable(settings.runs_table)
    cutoff = stamp((at or datetime.now(UTC)) - STALE_AFTER)
    outcomes = [
        _settle_rollback(settings, runs, item)
        for item in runs.model_items("rollback")
        if str(item["updated_at"]) <= cutoff
    ]
    for item in runs.model_items("pending_notice"):
        if str(item["updated_at"]) <= cutoff:
            # The change was recorded, its announcement never went out.
            send_notice(settings, runs, str(item["model"]), item["pending_notice"])
            outcomes.append(Outcome("announced", str(item["model"]), detail="pending notice"))
    for run in runs.unsettled():
        if str(run["updated_at"]) > cutoff:
            continue
        try:
            outcomes.append(reconcile_run(settings, runs, run))
        except Exception as error:
            # One run's trouble must not hide the runs after it.
            logger.exception("could not reconcile", extra={"run_id": run.get("run_id")})
            outcomes.append(Outcome("error", str(run["model"]), str(run["run_id"]), str(error)))
    return outcomes


def _settle_rollback(settings: Settings, runs: RunsTable, item: Mapping[str, Any]) -> Outcome:
    """A rollback whose endpoint event never came (or whose request died half-way)."""
    rollback = item["rollback"]
    ref = RunRef(str(item["model"]), str(rollback["to"]))
    described = describe_endpoint(endpoint_name(settings.job_prefix, ref.model))
    run = runs.get(ref) or {}
    return settle_rollback(settings, runs, ref, run, str(rollback["from"]), described, final=True)


def _described(describe: Callable[..., dict[str, Any]], **name: str) -> dict[str, Any] | None:
    try:
        return describe(**name)
    except ClientError as error:
        if not_found(error):
            return None
        raise


def reconcile_run(settings: Settings, runs: RunsTable, run: Mapping[str, Any]) -> Outcome:
    ref = RunRef(str(run["model"]), str(run["run_id"]))
    if run.get("status") != Status.IN_PROGRESS:
        # Ended, but the announcement never went out: conclude again claims and sends it.
        return conclude(settings, runs, ref, Status(run["status"]), str(run.get("reason", "")))
    stage = run.get("stage")
    name = job_name(settings.job_prefix, ref)
    sagemaker = clients.client("sagemaker")
    if stage == Stage.TRAINING:
        training = _described(sagemaker.describe_training_job, TrainingJobName=name)
        if training is None:
            # Recorded, then every attempt to create the job failed for a passing reason.
            return create_training_job(settings, runs, ref, run)
        return on_training_job_change(settings, training)
    if stage == Stage.TRANSFORMING:
        names = [name]
        if run.get("live_test_set"):
            names.append(str(run["live_test_set"]["transform_job"]))
        transforms = [
            _described(sagemaker.describe_transform_job, TransformJobName=job) for job in names
        ]
        if None in transforms:
            # Resumes the run's creation of its model and transform jobs.
            training = sagemaker.describe_training_job(TrainingJobName=name)
            return on_training_job_change(settings, training)
        # A failed one ends the run, under its own name; else the run's own completes it.
        ended = [t for t in transforms if t and t["TransformJobStatus"] in ("Failed", "Stopped")]
        return on_transform_job_change(settings, (ended or transforms)[0] or {})
    if stage == Stage.DEPLOYING:
        described = describe_endpoint(str(run.get("endpoint", "")))
        return settle_deployment(settings, runs, ref, run, described, final=True)
    # Validation and scoring happen inside one invocation: if they went stale, it died.
    return conclude(
        settings,
        runs,
        ref,
        Status.FAILED,
        f"the {stage} step did not finish (the function may have timed out); to retry, change "
        "any file of the drop (for example hyperparameters.json) and upload it",
    )
