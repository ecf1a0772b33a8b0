"""Endpoint state changes settle a deploying run: live when in service, failed otherwise."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline_common.config import Settings
from pipeline_common.deployment import on_transform_job_change
from pipeline_common.lifecycle import conclude
from pipeline_common.naming import (
    RunRef,
    endpoint_name,
    job_name,
    parse_endpoint_name,
    parse_job_name,
)
from pipeline_common.notifications import message, notify
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Stage, Status, now
from pipeline_common.sagemaker_calls import delete_endpoint, describe_endpoint

_FAILED = {"FAILED", "UPDATE_ROLLBACK_FAILED", "DELETING"}
_SETTLED = {Status.DEPLOYED, Status.FAILED, "rolled_back", "rollback_failed"}


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
    event_status = normalise_status(str(detail.get("EndpointStatus", "")))
    runs = RunsTable(settings.runs_table)
    # Events arrive late, twice and out of order: judge the endpoint as it is now.
    described = describe_endpoint(endpoint)
    if described is None or described["EndpointStatus"] == "Deleting":
        runs.clear_live(model, f"endpoint {endpoint} was deleted")
    item = runs.model(model) or {}
    deploying = item.get("deploying_run_id")
    if not deploying:
        return Outcome(
            "ignored", model, detail=f"no deployment waits on {endpoint} ({event_status})"
        )
    ref = RunRef(model, str(deploying))
    run = runs.get(ref)
    rollback = item.get("rollback") or {}
    if run is not None and rollback.get("to") == ref.run_id:
        outcome = settle_rollback(settings, runs, ref, run, str(rollback["from"]), described)
    elif run is None or run.get("stage") != Stage.DEPLOYING:
        runs.clear_deploying(ref)  # a claim its run no longer needs
        return Outcome("ignored", model, ref.run_id, "the claiming run is not deploying")
    else:
        outcome = settle_deployment(settings, runs, ref, run, described, final=False)
    if outcome.action in _SETTLED:
        resume_parked(settings, runs, model)
    return outcome


def live_record(ref: RunRef, run: Mapping[str, Any], endpoint: str, config: str) -> dict[str, Any]:
    """What the model item says about the version it serves (the API reads only this)."""
    return {
        "run_id": ref.run_id,
        "endpoint": endpoint,
        "endpoint_config": config,
        "metrics": run.get("metrics", {}),
        "problem": run.get("problem"),
        "num_class": run.get("num_class"),
        "num_features": run.get("num_features"),
        "objective": run.get("objective"),
        "deployed_at": now(),
    }


def settle_rollback(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    run: Mapping[str, Any],
    rolled_back_from: str,
    described: Mapping[str, Any] | None,
    final: bool = False,
) -> Outcome:
    """An earlier version put back on request: live once the endpoint serves its config.

    `final` is the reconciler's view of a rollback stale for longer than any update: an
    endpoint in service on another config then means the update was never made.
    """
    endpoint = endpoint_name(settings.job_prefix, ref.model)
    current = normalise_status(described["EndpointStatus"]) if described else "GONE"
    config = str((described or {}).get("EndpointConfigName", ""))
    if current == "IN_SERVICE" and parse_job_name(settings.job_prefix, config) == ref:
        live = {
            **live_record(ref, run, endpoint, config),
            "via": "rollback",
            "rolled_back_from": rolled_back_from or None,
        }
        how = f"rolled back from version {rolled_back_from}" if rolled_back_from else "restored"
        reason = f"{how} on request; serving on {endpoint}"
        notice = message({**run, "status": "rolled_back", "reason": reason})
        if not runs.set_live(ref, live, notice):
            return Outcome("duplicate", ref.model, ref.run_id, "another invocation made it live")
        send_notice(settings, runs, ref.model, notice)
        return Outcome("rolled_back", ref.model, ref.run_id, reason)
    failure = (described or {}).get("FailureReason")
    if current in _FAILED or current == "GONE" or (current == "IN_SERVICE" and (failure or final)):
        reason = (
            f"the rollback to version {ref.run_id} failed: {failure or f'endpoint is {current}'}"
        )
        notice = message({**run, "status": "rollback_failed", "reason": reason})
        if not runs.end_rollback(ref, notice):
            return Outcome("duplicate", ref.model, ref.run_id, "the rollback was already settled")
        send_notice(settings, runs, ref.model, notice)
        return Outcome("rollback_failed", ref.model, ref.run_id, reason)
    return Outcome("ignored", ref.model, ref.run_id, f"endpoint is {current}")


def send_notice(settings: Settings, runs: RunsTable, model: str, notice: Mapping[str, Any]) -> None:
    """Announce a change recorded with its notice; reconcile_runs resends one left pending."""
    notify(settings.topic_arn, notice)
    runs.notice_sent(model)


def settle_deployment(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    run: Mapping[str, Any],
    described: Mapping[str, Any] | None,
    final: bool,
) -> Outcome:
    """Live when the endpoint serves this run's config; failed when it cannot or did not.

    `final` is the reconciler's view of a run stale for longer than any deployment step: an
    endpoint in service on another config then means the update rolled back or never happened.
    """
    endpoint = str(run.get("endpoint", ""))
    if described is None:
        return conclude(settings, runs, ref, Status.FAILED, f"endpoint {endpoint} is gone")
    current = normalise_status(described["EndpointStatus"])
    config = described.get("EndpointConfigName", "")
    if current == "IN_SERVICE" and parse_job_name(settings.job_prefix, config) == ref:
        live = live_record(ref, run, endpoint, config)
        if not runs.set_live(ref, live):
            return Outcome("duplicate", ref.model, ref.run_id, "another invocation made it live")
        logger.info("model live", extra={"endpoint": endpoint, "run_id": ref.run_id})
        return conclude(
            settings,
            runs,
            ref,
            Status.DEPLOYED,
            f"serving on endpoint {endpoint}",
            {"deployed_at": live["deployed_at"]},
        )
    failure = described.get("FailureReason")
    if current in _FAILED or (current == "IN_SERVICE" and (failure or final)):
        reason = failure or (
            f"endpoint {endpoint} is {current} on {config}: "
            "the update rolled back or was never made"
        )
        if current == "FAILED":
            # A Failed endpoint serves nothing and takes no update: delete it so that the next
            # drop can create it again.
            delete_endpoint(endpoint)
            reason += f"; endpoint {endpoint} was deleted and the next drop creates it anew"
        return conclude(settings, runs, ref, Status.FAILED, f"deployment failed: {reason}")
    return Outcome("ignored", ref.model, ref.run_id, f"endpoint is {current}")


def resume_parked(settings: Settings, runs: RunsTable, model: str) -> None:
    """The endpoint is free again: the oldest run that waited for it deploys now."""
    for ref in runs.waiting_for_endpoint(model)[:1]:
        detail = {
            "TransformJobName": job_name(settings.job_prefix, ref),
            "TransformJobStatus": "Completed",
        }
        outcome = on_transform_job_change(settings, detail)
        logger.info("parked run resumed", extra=outcome.as_dict())
