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
    config = str(detail.get("EndpointConfigName", ""))
    runs = RunsTable(settings.runs_table)
    model_item = runs.model(model) or {}
    deploying = model_item.get("deploying_run_id")
    if status == "DELETING":
        cleared = runs.clear_live(model, config)
        return Outcome(
            "live_cleared" if cleared else "ignored",
            model,
            detail=f"endpoint {endpoint} is being deleted",
        )
    if not deploying:
        return Outcome("ignored", model, detail=f"no deployment waits on {endpoint} ({status})")
    ref = RunRef(model, str(deploying))
    run = runs.get(ref)
    if run is None or run.get("stage") != Stage.DEPLOYING:
        return Outcome("duplicate", model, ref.run_id, "the run is not deploying")
    serving = parse_job_name(settings.job_prefix, config)

    if status == "IN_SERVICE" and serving == ref:
        runs.set_live(
            model,
            {
                "run_id": ref.run_id,
                "endpoint": endpoint,
                "endpoint_config": config,
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
    if status in _FAILED or status == "IN_SERVICE":
        # IN_SERVICE on another config means SageMaker rolled the update back.
        described = describe_endpoint(endpoint) or {}
        reason = described.get("FailureReason") or f"endpoint {endpoint} went {status} on {config}"
        return conclude(settings, runs, ref, Status.FAILED, f"deployment failed: {reason}")
    return Outcome("ignored", model, ref.run_id, f"endpoint is {status}")
