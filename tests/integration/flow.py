"""Drive a run through the stack's handlers, step by step, with the sample events."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from functions.deploy_model.handler import lambda_handler as deploy_model
from functions.run_batch_transform.handler import lambda_handler as run_batch_transform
from functions.start_training.handler import lambda_handler as start_training
from functions.track_endpoint.handler import lambda_handler as track_endpoint
from tests.integration.conftest import BUCKET, Stack, eventbridge_event, s3_event

CONTEXT = SimpleNamespace(
    function_name="test-function",
    memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:test-function",
    aws_request_id="00000000-0000-0000-0000-000000000000",
    get_remaining_time_in_millis=lambda: 60_000,
)


def job(model: str, run_id: str) -> str:
    return f"xgbp-{model}-{run_id}"


def start(stack: Stack, model: str, files: dict[str, str]) -> str:
    keys = stack.drop(model, files)
    (outcome,) = start_training(s3_event(keys[-1:]), CONTEXT)["outcomes"]
    assert outcome["action"] == "training_started", outcome
    return str(outcome["run_id"])


def training_changed(model: str, run_id: str, status: str, **detail: Any) -> dict[str, Any]:
    event = eventbridge_event(
        "run_batch_transform.json",
        {"TrainingJobName": job(model, run_id), "TrainingJobStatus": status, **detail},
    )
    return run_batch_transform(event, CONTEXT)


def transform_changed(model: str, run_id: str, status: str, **detail: Any) -> dict[str, Any]:
    event = eventbridge_event(
        "deploy_model.json",
        {"TransformJobName": job(model, run_id), "TransformJobStatus": status, **detail},
    )
    return deploy_model(event, CONTEXT)


def endpoint_changed(model: str, config: str, status: str) -> dict[str, Any]:
    event = eventbridge_event(
        "track_endpoint.json",
        {"EndpointName": f"xgbp-{model}", "EndpointConfigName": config, "EndpointStatus": status},
    )
    return track_endpoint(event, CONTEXT)


def write_transform_output(
    stack: Stack,
    model: str,
    run_id: str,
    rows: list[str],
    on_live_test_set: list[str] | None = None,
) -> None:
    """What the run's batch transforms write: of its test set, and of the live model's (the
    same rows unless given; read only when a model was live as the run trained)."""
    for folder, written in (("transform", rows), ("transform-on-live", on_live_test_set or rows)):
        stack.s3.put_object(
            Bucket=BUCKET,
            Key=f"runs/{model}/{run_id}/{folder}/test.csv.out",
            Body="".join(f"{row}\n" for row in written).encode(),
        )


def deploy(stack: Stack, model: str, files: dict[str, str], joined: list[str]) -> str:
    """A run all the way to its endpoint being in service; returns its run id."""
    run_id = start(stack, model, files)
    training_changed(model, run_id, "Completed")
    write_transform_output(stack, model, run_id, joined)
    outcome = transform_changed(model, run_id, "Completed")
    assert outcome["action"] in {"endpoint_created", "endpoint_updated"}, outcome
    endpoint_changed(model, job(model, run_id), "IN_SERVICE")
    return run_id


# A perfect model's joined transform output: label, eight features, prediction equal to the label.
PERFECT_OUTPUT = [f"{v},{','.join(['1'] * 8)},{v}" for v in range(9)]


def endpoint_answer(status: str, config: str, **extra: str) -> Any:
    """A scripted DescribeEndpoint: the endpoint in `status` on `config`."""

    def answer(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = params["EndpointName"]
        return 200, {
            "EndpointName": name,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
            "EndpointConfigName": config,
            "EndpointStatus": status,
            **extra,
        }

    return answer
