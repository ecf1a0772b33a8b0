"""The fault file: what a fault may target, and that it fires exactly as often as armed."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from xgbpipe.local.faults import Fault, FaultError, FaultFile, call_fault_hook


@pytest.mark.parametrize(
    ("target", "effect", "times", "message"),
    [
        ("CreateTrainingJob", "error", 1, "service.Operation"),
        ("sagemaker.CreateTrainingJob", "fail", 1, "TrainingJob, TransformJob, Endpoint"),
        ("TrainingJob", "explode", 1, "unknown effect"),
        ("TrainingJob", "fail", 0, "at least once"),
    ],
)
def test_a_fault_that_cannot_fire_is_refused(
    target: str, effect: str, times: int, message: str
) -> None:
    with pytest.raises(FaultError, match=message):
        Fault(target, effect, times=times)  # type: ignore[arg-type]


def test_a_fault_fires_as_often_as_armed_for_its_function_only(tmp_path: Path) -> None:
    faults = FaultFile.in_state_dir(tmp_path)
    fault = faults.arm(Fault("s3.GetObject", "error", times=2, function="predict"))

    claims = [faults.claim("s3.GetObject", function) for function in ("train", "predict") * 2]
    claims.append(faults.claim("s3.GetObject", "predict"))

    assert [c.id if c else None for c in claims] == [None, fault.id, None, fault.id, None]
    assert faults.get(fault.id).fired == 2


def _claim(path: Path) -> bool:
    return FaultFile(path).claim("TrainingJob") is not None


def test_processes_racing_for_a_fault_fire_it_exactly_as_often_as_armed(tmp_path: Path) -> None:
    faults = FaultFile.in_state_dir(tmp_path)
    faults.arm(Fault("TrainingJob", "fail", times=5))

    # Spawned, not forked: the test process has threads, which fork may deadlock.
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        fired = list(pool.map(_claim, [faults.path] * 40))

    assert sum(fired) == 5


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("sagemaker", "describe_endpoint", {"EndpointName": "e"}),
        ("dynamodb", "get_item", {"TableName": "t", "Key": {"k": {"S": "v"}}}),
        ("s3", "head_object", {"Bucket": "b", "Key": "k"}),
        ("sns", "publish", {"TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "m"}),
        ("sqs", "get_queue_url", {"QueueName": "q"}),
        ("cloudwatch", "list_metrics", {}),
    ],
)
def test_an_error_fault_reaches_botocore_in_the_services_own_protocol(
    tmp_path: Path, service: str, operation: str, params: dict[str, Any]
) -> None:
    faults = FaultFile.in_state_dir(tmp_path)
    session = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    for event, handler in call_fault_hook(faults, "predict").items():
        session.events.register(event, handler)
    # No retry, and nowhere to send a request: the fault must answer before anything is sent.
    client = session.client(
        service,  # type: ignore[call-overload]
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    target = (
        f"{client.meta.service_model.service_id.hyphenize()}.{_operation_name(client, operation)}"
    )
    faults.arm(Fault(target, "error", function="predict", code="ThrottlingException"))

    with pytest.raises(ClientError) as raised:
        getattr(client, operation)(**params)

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["Error"]["Message"] == "Rate exceeded"


def _operation_name(client: Any, method: str) -> str:
    return str(client.meta.method_to_api_mapping[method])
