"""Ending a run: one record, one notification, one metric, whichever invocation gets there first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_common.config import Settings
from pipeline_common.naming import RunRef, parse_job_name
from pipeline_common.notifications import notify
from pipeline_common.observability import logger, metrics
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Status

_ENDED_JOB = {"Failed": Status.FAILED, "Stopped": Status.STOPPED}
_METRIC = {
    Status.DEPLOYED: "RunsDeployed",
    Status.REJECTED: "RunsRejected",
    Status.INVALID: "DropsRejected",
    Status.FAILED: "RunsFailed",
    Status.STOPPED: "RunsStopped",
}


def conclude(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    status: Status,
    reason: str,
    fields: Mapping[str, Any] | None = None,
) -> Outcome:
    finished = runs.finish(ref, status, reason, fields)
    if finished:
        logger.info(
            "run ended",
            extra={
                "model": ref.model,
                "run_id": ref.run_id,
                "status": str(status),
                "reason": reason,
            },
        )
        metrics.add_metric(name=_METRIC[status], unit="Count", value=1)
    run = runs.get(ref)
    if run is None or run.get("status") == Status.IN_PROGRESS:
        return Outcome("ignored", ref.model, ref.run_id, "no such run, or it is still going")
    runs.clear_deploying(ref)
    # Claim, announce, then remember: a publish that failed is retried by the next delivery of
    # the event or by reconcile_runs; a claim keeps two concurrent deliveries from both sending.
    if not runs.claim_notification(ref):
        return Outcome("duplicate", ref.model, ref.run_id, "the run had already ended")
    notify(settings.topic_arn, run)
    runs.mark_notified(ref)
    return Outcome(str(run["status"]), ref.model, ref.run_id, str(run.get("reason", reason)))


@dataclass(frozen=True)
class CompletedJob:
    """A Completed job event that the run it names is waiting for."""

    name: str
    ref: RunRef
    runs: RunsTable
    run: dict[str, Any]


def completed_job(
    settings: Settings, detail: Mapping[str, Any], kind: str, step: str
) -> CompletedJob | Outcome:
    """Read a `<kind>Job State Change` detail: the run in progress it completes, or how it ends.

    Failed or Stopped ends the run; other states, jobs of other stacks and runs already over
    (a duplicate or late event) are ignored. The caller judges the run's stage.
    """
    name = str(detail.get(f"{kind}JobName", ""))
    ref = parse_job_name(settings.job_prefix, name)
    if ref is None:
        return Outcome("ignored", detail=f"{name} is not a job of this stack")
    runs = RunsTable(settings.runs_table)
    status = str(detail.get(f"{kind}JobStatus", ""))
    if status in _ENDED_JOB:
        reason = detail.get("FailureReason") or f"the {step} job was {status.lower()}"
        return conclude(settings, runs, ref, _ENDED_JOB[status], f"{step} failed: {reason}")
    if status != "Completed":
        return Outcome("ignored", ref.model, ref.run_id, f"the {step} job is {status}")
    run = runs.get(ref)
    if run is None or run.get("status") != Status.IN_PROGRESS:
        return Outcome("duplicate", ref.model, ref.run_id, f"the run is not waiting for {step}")
    return CompletedJob(name, ref, runs, run)
