"""A finished batch transform is scored, gated, and deployed when it is good enough."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients, storage
from pipeline_common.config import Settings
from pipeline_common.gate import GateDecision, decide, missed_bar
from pipeline_common.lifecycle import completed_job, conclude
from pipeline_common.metrics import PRIMARY_METRIC, EvaluationError, evaluate_outputs
from pipeline_common.naming import ON_LIVE_TEST_SET, RunRef, endpoint_name, job_name
from pipeline_common.observability import logger
from pipeline_common.outcome import Outcome
from pipeline_common.problem import ProblemType
from pipeline_common.runs import RunsTable, Stage, Status, now, stamp
from pipeline_common.sagemaker_calls import create, describe_endpoint, is_transient, not_found
from pipeline_common.sagemaker_requests import (
    deployment_config,
    endpoint_config_request,
    metrics_key,
    rollback_alarm_requests,
    transform_output_prefix,
)

# UpdateEndpoint is refused while the endpoint is changing.
BUSY_ENDPOINT = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


def on_transform_job_change(settings: Settings, detail: Mapping[str, Any]) -> Outcome:
    name = str(detail.get("TransformJobName", ""))
    on_live_test_set = name.endswith(ON_LIVE_TEST_SET)
    if on_live_test_set:
        detail = {**detail, "TransformJobName": name.removesuffix(ON_LIVE_TEST_SET)}
    step = "batch transform of the live model's test set" if on_live_test_set else "batch transform"
    job = completed_job(settings, detail, "Transform", step)
    if isinstance(job, Outcome):
        return job
    ref, runs, run = job.ref, job.runs, job.run
    endpoint = endpoint_name(settings.job_prefix, ref.model)
    if run["stage"] == Stage.DEPLOYING:
        # A retry of an invocation that claimed the endpoint but died before pointing it here.
        reason, since = str(run["gate"]["reason"]), str(run.get("deploying_at", ""))
        return _guarded(
            settings,
            runs,
            ref,
            lambda: point_endpoint(settings, ref, endpoint, reason, resuming_since=since),
        )
    if run["stage"] != Stage.TRANSFORMING:
        return Outcome("duplicate", ref.model, ref.run_id, f"the run is {run['stage']}")
    pending = _transform_pending(run, job.name, on_live_test_set)
    if pending:
        return Outcome("waiting", ref.model, ref.run_id, f"{pending} has not completed yet")
    busy = _busy(runs, ref, describe_endpoint(endpoint))
    if busy:
        return _park(runs, ref, busy)
    # The stage change is the lock: of two duplicated events, one scores and deploys.
    if not runs.advance(ref, Stage.TRANSFORMING, Stage.EVALUATING, {}):
        return Outcome("duplicate", ref.model, ref.run_id, "another invocation is scoring")
    return _guarded(
        settings, runs, ref, lambda: _evaluate_and_deploy(settings, runs, ref, run, endpoint)
    )


def _update_endpoint(settings: Settings, endpoint: str, request: dict[str, str]) -> str:
    """A new config on the same endpoint: SageMaker shifts traffic without downtime, and on an
    instance endpoint rolls back by itself when an alarm fires during the bake."""
    update: dict[str, Any] = dict(request)
    config_of_update = deployment_config(settings, endpoint)
    if config_of_update:
        cloudwatch = clients.client("cloudwatch")
        for alarm in rollback_alarm_requests(endpoint):
            cloudwatch.put_metric_alarm(**alarm)
        update["DeploymentConfig"] = config_of_update
    try:
        clients.client("sagemaker").update_endpoint(**update)
    except ClientError as error:
        # Two deliveries of the run's events raced to make the same update; one made it.
        if "in-progress" in str(error.response.get("Error", {}).get("Message", "")):
            return "endpoint_changing"
        raise
    return "endpoint_updated"


def _failed_since(endpoint: Mapping[str, Any], since: str) -> bool:
    changed = endpoint.get("LastModifiedTime")
    return bool(endpoint.get("FailureReason")) and (changed is None or stamp(changed) >= since)


def _transform_pending(run: Mapping[str, Any], own_job: str, on_live_test_set: bool) -> str | None:
    """The run's other batch transform when it has not completed: the gate needs both."""
    live_test_set = run.get("live_test_set")
    if not live_test_set:
        return None
    other = own_job if on_live_test_set else str(live_test_set["transform_job"])
    try:
        status = clients.client("sagemaker").describe_transform_job(TransformJobName=other)
    except ClientError as error:
        if not_found(error):
            return other  # the retry of the training event creates it
        raise
    return None if status["TransformJobStatus"] == "Completed" else other


def _guarded(
    settings: Settings, runs: RunsTable, ref: RunRef, step: Callable[[], Outcome]
) -> Outcome:
    """Run a step past the lock: a lasting error ends the run, a passing one is left to retry."""
    try:
        return step()
    except Exception as error:
        if isinstance(error, ClientError) and is_transient(error):
            # Hand the run back for Lambda's retry: scoring again is safe, and a deployment
            # already recorded resumes above.
            runs.advance(ref, Stage.EVALUATING, Stage.TRANSFORMING, {})
        else:
            # No retry could do better, so end the run visibly, then let Lambda log the error.
            conclude(settings, runs, ref, Status.FAILED, f"deployment failed: {error}")
        raise


def _busy(runs: RunsTable, ref: RunRef, endpoint: Mapping[str, Any] | None) -> str | None:
    """Why the model's endpoint cannot take this run now, or None when it can."""
    deploying = (runs.model(ref.model) or {}).get("deploying_run_id")
    if deploying and deploying != ref.run_id:
        return f"run {deploying} is still deploying"
    if endpoint and endpoint["EndpointStatus"] in BUSY_ENDPOINT:
        return f"endpoint {endpoint['EndpointName']} is {endpoint['EndpointStatus']}"
    return None


def _park(runs: RunsTable, ref: RunRef, reason: str) -> Outcome:
    """Leave the run in its stage, marked: the endpoint's settling event resumes it."""
    runs.wait_for_endpoint(ref)
    return Outcome("waiting", ref.model, ref.run_id, f"{reason}; this run deploys after it")


def _evaluate_and_deploy(
    settings: Settings, runs: RunsTable, ref: RunRef, run: Mapping[str, Any], endpoint: str
) -> Outcome:
    problem = ProblemType(run["problem"])
    try:
        scores = _score(settings, ref, run, on_live_test_set=False)
    except EvaluationError as error:
        return conclude(settings, runs, ref, Status.FAILED, f"evaluation failed: {error}")

    live = (runs.model(ref.model) or {}).get("live") or {}
    bars = dict(run.get("gate_bars") or {})
    # pipeline.json's bar on the primary metric overrides the stack's GateThreshold.
    threshold = bars.pop(PRIMARY_METRIC[problem], settings.gate_threshold)
    decision = missed_bar(scores, bars) or decide(problem, scores, threshold, live.get("metrics"))
    gate = _gate_record(decision, live)
    if run.get("live_test_set"):
        try:
            decision, gate["on_live_test_set"] = _on_live_test_set(
                settings, runs, ref, run, decision
            )
        except EvaluationError as error:
            reason = f"evaluation on the live model's test set failed: {error}"
            return conclude(settings, runs, ref, Status.FAILED, reason)
        gate.update(passed=decision.passed, reason=decision.reason)
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
    return _deploy(settings, runs, ref, endpoint, scores, gate)


def _score(
    settings: Settings, ref: RunRef, run: Mapping[str, Any], on_live_test_set: bool
) -> dict[str, float]:
    """The metrics of one of the run's batch transforms: every `.out` part, one streaming pass."""
    bucket = settings.data_bucket
    outputs = storage.list_objects(bucket, transform_output_prefix(ref, on_live_test_set))
    return evaluate_outputs(
        (
            (output.key.rpartition("/")[2], storage.iter_lines(bucket, output.key))
            for output in outputs
        ),
        ProblemType(run["problem"]),
        input_width=int(run["num_features"]) + 1,
        num_class=run.get("num_class"),
        objective=run.get("objective"),
    )


def _on_live_test_set(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    run: Mapping[str, Any],
    decision: GateDecision,
) -> tuple[GateDecision, dict[str, Any]]:
    """The challenger scored on the champion's own test set, against the champion's score."""
    champion = RunRef(ref.model, str(run["live_test_set"]["run_id"]))
    problem = ProblemType(run["problem"])
    scores = _score(settings, ref, run, on_live_test_set=True)
    champion_metrics = (runs.get(champion) or {}).get("metrics") or {}
    head_to_head = decide(problem, scores, None, champion_metrics)
    record = {
        "run_id": champion.run_id,
        "metrics": scores,
        "metric": head_to_head.metric,
        "value": head_to_head.value,
        "live_value": head_to_head.live_value,
    }
    if not decision.passed or head_to_head.live_value is None:
        return decision, record
    shown = f"{head_to_head.metric} {head_to_head.value:.4g}"
    against = f"the live model's {head_to_head.live_value:.4g}"
    if not head_to_head.passed:
        reason = f"On the live model's own test set, {shown} is worse than {against}."
        return replace(head_to_head, reason=reason), record
    reason = f"{decision.reason} On the live model's own test set it scores {shown}, {against}."
    return replace(decision, reason=reason), record


def _gate_record(decision: GateDecision, live: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "passed": decision.passed,
        "reason": decision.reason,
        "metric": decision.metric,
        "value": decision.value,
        "threshold": decision.threshold,
        "live_value": decision.live_value,
        "live_run_id": live.get("run_id"),
    }


def _deploy(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    endpoint: str,
    scores: Mapping[str, float],
    gate: Mapping[str, Any],
) -> Outcome:
    current = describe_endpoint(endpoint)
    if current and current["EndpointStatus"] == "Failed":
        return conclude(
            settings,
            runs,
            ref,
            Status.FAILED,
            f"endpoint {endpoint} is Failed ({current.get('FailureReason', 'no reason given')}); "
            f"delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint}) and the next "
            "drop creates it anew",
            {"metrics": scores, "gate": gate},
        )
    busy = _busy(runs, ref, current)
    if busy is None and not runs.set_deploying(ref):
        busy = "another run claimed the endpoint"
    if busy:
        # The endpoint changed hands while this run was scored: score it again when it is free.
        runs.advance(ref, Stage.EVALUATING, Stage.TRANSFORMING, {})
        return _park(runs, ref, busy)
    # Record first, then act: the endpoint's event can never find the run a stage behind.
    if not runs.advance(
        ref,
        Stage.EVALUATING,
        Stage.DEPLOYING,
        {
            "metrics": scores,
            "gate": gate,
            "endpoint": endpoint,
            "endpoint_config": job_name(settings.job_prefix, ref),
            "deploying_at": now(),
        },
    ):
        runs.clear_deploying(ref)
        return Outcome("duplicate", ref.model, ref.run_id, "the run ended while it was scored")
    return point_endpoint(settings, ref, endpoint, str(gate["reason"]))


def point_endpoint(
    settings: Settings,
    ref: RunRef,
    endpoint: str,
    reason: str,
    resuming_since: str | None = None,
) -> Outcome:
    """Create the run's endpoint config and move the endpoint onto it; safe to repeat.

    `resuming_since` is when the run began deploying, for a later event of it: an endpoint back
    in service on another config, changed since then and with a FailureReason, means the
    update was made and failed, which its own event reports; updating again would deploy
    what was just refused.
    """
    config = endpoint_config_request(settings, ref)
    create("create_endpoint_config", config)
    request = {"EndpointName": endpoint, "EndpointConfigName": config["EndpointConfigName"]}
    current = describe_endpoint(endpoint)
    if current is None:
        create("create_endpoint", {**request, "Tags": config["Tags"]})
        action = "endpoint_created"
    elif (
        current["EndpointStatus"] != "InService"
        or current["EndpointConfigName"] == config["EndpointConfigName"]
        or (resuming_since and _failed_since(current, resuming_since))
    ):
        action = "endpoint_changing"  # a replay: the change is made, under way or failed
    else:
        action = _update_endpoint(settings, endpoint, request)
    logger.info(action, extra=request)
    return Outcome(action, ref.model, ref.run_id, reason, data={"endpoint": endpoint})
