"""A finished batch transform is scored, gated, and deployed when it is good enough."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_common import clients, storage
from pipeline_common.config import Settings
from pipeline_common.gate import decide
from pipeline_common.lifecycle import conclude
from pipeline_common.metrics import EvaluationError, evaluate_joined_output
from pipeline_common.naming import RunRef, endpoint_name, parse_job_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.problem import ProblemType
from pipeline_common.runs import RunsTable, Stage, Status
from pipeline_common.sagemaker_calls import create, describe_endpoint
from pipeline_common.sagemaker_requests import (
    endpoint_config_request,
    metrics_key,
    transform_output_key,
)

_ENDED = {"Failed": Status.FAILED, "Stopped": Status.STOPPED}
# UpdateEndpoint is refused while the endpoint is changing; Lambda's retries come back later.
_BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


class EndpointBusy(RuntimeError):
    """The endpoint is changing; raising lets Lambda retry the event after a back-off."""


def on_transform_job_change(settings: Settings, detail: Mapping[str, Any]) -> Outcome:
    name = str(detail.get("TransformJobName", ""))
    status = str(detail.get("TransformJobStatus", ""))
    ref = parse_job_name(settings.job_prefix, name)
    if ref is None:
        return Outcome("ignored", detail=f"{name} is not a job of this stack")
    runs = RunsTable(settings.runs_table)
    if status in _ENDED:
        reason = str(detail.get("FailureReason") or f"transform job {name} {status.lower()}")
        return conclude(settings, runs, ref, _ENDED[status], f"batch transform failed: {reason}")
    if status != "Completed":
        return Outcome("ignored", ref.model, ref.run_id, f"transform job is {status}")

    run = runs.get(ref)
    if run is None or run.get("stage") != Stage.TRANSFORMING:
        return Outcome("duplicate", ref.model, ref.run_id, "the run is not waiting for scoring")
    endpoint = endpoint_name(settings.job_prefix, ref.model)
    live_endpoint = describe_endpoint(endpoint)
    if live_endpoint and live_endpoint["EndpointStatus"] in _BUSY:
        raise EndpointBusy(f"endpoint {endpoint} is {live_endpoint['EndpointStatus']}")
    # The stage change is the lock: of two duplicated events, one scores and deploys.
    if not runs.advance(ref, Stage.TRANSFORMING, Stage.EVALUATING, {}):
        return Outcome("duplicate", ref.model, ref.run_id, "another invocation is scoring")
    try:
        return _evaluate_and_deploy(settings, runs, ref, run, endpoint, live_endpoint)
    except Exception as error:
        # Past the lock no retry can resume the run, so end it visibly, then let Lambda log it.
        conclude(settings, runs, ref, Status.FAILED, f"deployment failed: {error}")
        raise


def _evaluate_and_deploy(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    run: Mapping[str, Any],
    endpoint: str,
    live_endpoint: Mapping[str, Any] | None,
) -> Outcome:
    problem = ProblemType(run["problem"])
    try:
        scores = evaluate_joined_output(
            storage.iter_lines(settings.data_bucket, transform_output_key(ref)),
            problem,
            input_width=int(run["num_features"]) + 1,
            num_class=run.get("num_class"),
            objective=run.get("objective"),
        )
    except EvaluationError as error:
        return conclude(settings, runs, ref, Status.FAILED, f"evaluation failed: {error}")

    model_item = runs.model(ref.model) or {}
    live = model_item.get("live") or {}
    decision = decide(problem, scores, settings.gate_threshold, live.get("metrics"))
    gate = {
        "passed": decision.passed,
        "reason": decision.reason,
        "metric": decision.metric,
        "value": decision.value,
        "threshold": decision.threshold,
        "live_value": decision.live_value,
        "live_run_id": live.get("run_id"),
    }
    storage.put_json(
        settings.data_bucket,
        metrics_key(ref),
        {
            "model": ref.model,
            "run_id": ref.run_id,
            "problem": problem,
            "metrics": scores,
            "gate": gate,
        },
    )
    if not decision.passed:
        return conclude(
            settings,
            runs,
            ref,
            Status.REJECTED,
            decision.reason,
            {"metrics": scores, "gate": gate},
        )

    config = endpoint_config_request(settings, ref)
    create("create_endpoint_config", config)
    sagemaker = clients.client("sagemaker")
    name = config["EndpointConfigName"]
    if live_endpoint is None:
        create(
            "create_endpoint",
            {"EndpointName": endpoint, "EndpointConfigName": name, "Tags": config["Tags"]},
        )
        action = "endpoint_created"
    else:
        # A new config on the same endpoint: SageMaker shifts traffic without downtime.
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=name)
        action = "endpoint_updated"
    runs.set_deploying(ref)
    runs.advance(
        ref,
        Stage.EVALUATING,
        Stage.DEPLOYING,
        {"metrics": scores, "gate": gate, "endpoint": endpoint, "endpoint_config": name},
    )
    logger.info(action, extra={"endpoint": endpoint, "endpoint_config": name})
    return Outcome(
        action,
        ref.model,
        ref.run_id,
        decision.reason,
        data={"metrics": scores, "endpoint": endpoint},
    )
