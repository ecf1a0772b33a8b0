"""A model's versions, and the changes made to what it serves on request or when it sits idle.

Every deployed run is a version of its model. A rollback puts an earlier version back on the
endpoint through the same path as a deploy (blue/green, alarms, the endpoint's event makes it
live and announces it); deleting the endpoint, on request or after it sat idle, keeps every
version, so a rollback can serve one again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.deployment import point_endpoint
from pipeline_common.naming import RunRef, endpoint_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable
from pipeline_common.sagemaker_calls import delete_endpoint, describe_endpoint, is_transient
from pipeline_common.sagemaker_requests import VARIANT_NAME, rollback_alarm_requests
from pipeline_common.serving import ModelNotFound


class ModelConflict(RuntimeError):
    """The model's state does not allow the change now (HTTP 409)."""


_VERSION_FIELDS = (
    "metrics",
    "model_artifacts",
    "hyperparameters",
    "objective",
    "num_features",
    "deployed_at",
    "training_job",
)


def versions(settings: Settings, model: str) -> dict[str, Any]:
    runs = RunsTable(settings.runs_table)
    item = _model_item(runs, model)
    live = (item.get("live") or {}).get("run_id")
    return {
        "model": model,
        "live_version": live,
        "versions": [
            {
                "version": run["run_id"],
                "live": run["run_id"] == live,
                **{key: run[key] for key in _VERSION_FIELDS if key in run},
                "data": {
                    name: {"etag": entry.get("etag"), "version_id": entry.get("version_id")}
                    for name, entry in (run.get("inputs") or {}).items()
                },
            }
            for run in runs.deployed_versions(model)
        ],
        "history": item.get("history", []),
    }


def rollback(settings: Settings, model: str, version: str | None) -> dict[str, Any]:
    """Start putting a version back (the previous one unless named); the endpoint's event
    makes it live."""
    runs = RunsTable(settings.runs_table)
    item = _model_item(runs, model)
    current = (item.get("live") or {}).get("run_id")
    target = version or _previous(item, current)
    if target is None:
        raise ModelConflict(f"model {model} has no earlier version to roll back to")
    if target == current:
        raise ModelConflict(f"version {target} of {model} is already live")
    if target not in {run["run_id"] for run in runs.deployed_versions(model)}:
        raise ModelNotFound(
            f"version {target} of {model} was never deployed; "
            f"GET /models/{model}/versions lists the versions that were"
        )
    ref = RunRef(model, target)
    deploying = item.get("deploying_run_id")
    if deploying or not runs.begin_rollback(ref, current or ""):
        raise ModelConflict(
            f"run {deploying or 'another'} is changing the endpoint; retry when it has finished"
        )
    endpoint = endpoint_name(settings.job_prefix, model)
    reason = f"rolled back from version {current} on request" if current else "restored"
    try:
        described = describe_endpoint(endpoint)
        if described and described["EndpointStatus"] != "InService":
            # Busy, or Failed: no update would be taken, and no event would settle the claim.
            raise ModelConflict(
                f"endpoint {endpoint} is {described['EndpointStatus']}; retry when it is in "
                f"service, or delete it (DELETE /models/{model}) and roll back onto a new one"
            )
        outcome = point_endpoint(settings, ref, endpoint, reason)
    except ClientError as error:
        runs.end_rollback(ref)
        if is_transient(error):
            raise
        raise ModelConflict(f"version {target} cannot be put back: {error}") from error
    except Exception:
        runs.end_rollback(ref)
        raise
    logger.info("rollback started", extra=outcome.as_dict())
    return {
        "model": model,
        "version": target,
        "from": current,
        "endpoint": endpoint,
        "status": "rolling_back",
    }


def _previous(item: Mapping[str, Any], current: str | None) -> str | None:
    """The version that served before the current one, from the model's history."""
    for entry in reversed(item.get("history", [])):
        if entry["version"] != current:
            return str(entry["version"])
    return None


def delete(settings: Settings, model: str, reason: str = "deleted on request") -> dict[str, Any]:
    """Delete the model's endpoint (and its alarms); its versions and data stay."""
    runs = RunsTable(settings.runs_table)
    item = _model_item(runs, model)
    if item.get("deploying_run_id"):
        raise ModelConflict(
            f"run {item['deploying_run_id']} is changing the endpoint; retry when it has finished"
        )
    endpoint = endpoint_name(settings.job_prefix, model)
    delete_endpoint(endpoint)
    alarms = [alarm["AlarmName"] for alarm in rollback_alarm_requests(endpoint)]
    clients.client("cloudwatch").delete_alarms(AlarmNames=alarms)
    runs.retire(model, f"its endpoint {endpoint} was {reason}")
    logger.info("endpoint deleted", extra={"model": model, "endpoint": endpoint, "reason": reason})
    return {"model": model, "endpoint": endpoint, "status": "deleted", "reason": reason}


def retire_idle(settings: Settings, at: datetime | None = None) -> list[Outcome]:
    """Delete the endpoints that answered no invocation for the configured hours."""
    hours = settings.idle_endpoint_hours
    if not hours:
        return []
    moment = at or datetime.now(UTC)
    window = timedelta(hours=hours)
    runs = RunsTable(settings.runs_table)
    outcomes = []
    for item in runs.model_items("live"):
        try:
            outcome = _retire_if_idle(settings, item, moment, window)
        except Exception as error:
            # One model's trouble (a deployment claimed it meanwhile) must not spare the others.
            logger.exception("could not judge an endpoint", extra={"model": item["model"]})
            outcome = Outcome("error", str(item["model"]), detail=str(error))
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _retire_if_idle(
    settings: Settings, item: Mapping[str, Any], moment: datetime, window: timedelta
) -> Outcome | None:
    model, live = str(item["model"]), item["live"]
    described = describe_endpoint(str(live["endpoint"]))
    if described is None or described["EndpointStatus"] != "InService":
        return None
    deployed = datetime.fromisoformat(str(live["deployed_at"]).replace("Z", "+00:00"))
    serving_since = max(described.get("LastModifiedTime", deployed), deployed)
    if moment - serving_since < window:
        return Outcome("kept", model, detail="serving for less than the idle time")
    calls = _invocations(str(live["endpoint"]), moment - window, moment)
    if calls:
        return Outcome("kept", model, detail=f"{calls:g} invocations")
    hours = settings.idle_endpoint_hours
    result = delete(settings, model, f"deleted after {hours:g} hours without invocations")
    return Outcome("deleted", model, detail=str(result["reason"]))


def _invocations(endpoint: str, start: datetime, end: datetime) -> float:
    period = max(60, int((end - start).total_seconds()) // 60 * 60)
    datapoints = clients.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": VARIANT_NAME},
        ],
        StartTime=start,
        EndTime=end,
        Period=period,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point["Sum"] for point in datapoints))


def _model_item(runs: RunsTable, model: str) -> dict[str, Any]:
    item = runs.model(model)
    if item is None:
        raise ModelNotFound(f"there is no model named {model}")
    return item
