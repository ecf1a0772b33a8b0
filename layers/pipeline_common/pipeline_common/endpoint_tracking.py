"""Endpoint state changes settle a deploying run: live when in service, failed otherwise."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline_common.config import Settings
from pipeline_common.lifecycle import conclude
from pipeline_common.naming import RunRef, parse_endpoint_name, parse_job_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status, now
from pipeline_common.sagemaker_calls import describe_endpoint

_FAILED = {"FAILED", "UPDATE_ROLLBACK_FAILED"}


def normalise_status(status: str) -> str:
    """Events spell statuses IN_SERVICE, the API InService; compare in the events' spelling."""
    if "_" in status or status.isupper():
        return status.upper()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", status).upper()


def on_endpoint_change(settings: Settings, detail: Mapping[str, Any]) -> Outcome:
    endpoint = str(detail.get("EndpointName", ""))
    model = parse_endpoint_name(settings.job_prefix, endpoint)
    if model is None:
        return Outcome("ignored", detail=f"{endpoint} is not an endpoint of this stack")
    status = normalise_status(str(detail.get("EndpointStatus", "")))
    runs = RunsTable(settings.runs_table)
    deploying = (runs.model(model) or {}).get("deploying_run_id")
    run = runs.get(RunRef(model, str(deploying))) if deploying else None
    if status == "DELETING":
        cleared = runs.clear_live(model, str(detail.get("EndpointConfigName", "")))
        if run and run.get("stage") == Stage.DEPLOYING:
            ref = RunRef(model, str(deploying))
            conclude(settings, runs, ref, Status.FAILED, f"endpoint {endpoint} was deleted")
        return Outcome(
            "live_cleared" if cleared else "ignored",
            model,
            detail=f"endpoint {endpoint} is being deleted",
        )
    if run is None or run.get("stage") != Stage.DEPLOYING:
        return Outcome("ignored", model, detail=f"no deployment waits on {endpoint} ({status})")
    return settle_deployment(settings, runs, RunRef(model, str(deploying)), run, endpoint, status)


def settle_deployment(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    run: Mapping[str, Any],
    endpoint: str,
    status: str,
) -> Outcome:
    """Judge the deployment on the endpoint as it is now: events arrive late, twice, unordered."""
    described = describe_endpoint(endpoint)
    if described is None:
        return conclude(settings, runs, ref, Status.FAILED, f"endpoint {endpoint} is gone")
    current = normalise_status(described["EndpointStatus"])
    serving = parse_job_name(settings.job_prefix, described.get("EndpointConfigName", ""))
    if current == "IN_SERVICE" and serving == ref:
        runs.set_live(
            ref.model,
            {
                "run_id": ref.run_id,
                "endpoint": endpoint,
                "endpoint_config": described["EndpointConfigName"],
                "metrics": run.get("metrics", {}),
                "problem": run.get("problem"),
                "num_class": run.get("num_class"),
                "num_features": run.get("num_features"),
                "objective": run.get("objective"),
                "deployed_at": now(),
            },
        )
        logger.info("model live", extra={"endpoint": endpoint, "run_id": ref.run_id})
        return conclude(
            settings,
            runs,
            ref,
            Status.DEPLOYED,
            f"serving on endpoint {endpoint}",
            {"deployed_at": now()},
        )
    failure = described.get("FailureReason")
    # In service on another config with a failure reason: SageMaker rolled the update back.
    if current in _FAILED or (current == "IN_SERVICE" and failure):
        reason = failure or f"endpoint {endpoint} is {current}"
        return conclude(settings, runs, ref, Status.FAILED, f"deployment failed: {reason}")
    return Outcome("ignored", ref.model, ref.run_id, f"endpoint is {current} (event: {status})")
