"""Each function's AWS calls, recorded through a whole run, are allowed by its role.

Neither moto nor the local SageMaker checks IAM, so without this a missing permission would pass
every suite and fail only on AWS.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.models import retire_idle
from pipeline_common.reconciliation import STALE_AFTER, reconcile
from samtranslator.translator.transform import transform

from tests.integration import conftest
from tests.integration.conftest import Stack, abalone_like
from tests.integration.flow import (
    PERFECT_OUTPUT,
    endpoint_answer,
    endpoint_changed,
    job,
    start,
    training_changed,
    transform_changed,
    write_transform_output,
)
from tests.integration.test_manage_models import manage
from tests.integration.test_predict import ROWS, _scores, api
from tests.template.stack import NoManagedPolicies, load_template, with_code_placeholders

# The IAM actions an API call needs (only the calls the functions make).
_S3_ACTIONS = {
    "HeadObject": ["s3:GetObject"],
    "GetObject": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "CopyObject": ["s3:GetObject", "s3:PutObject"],
    "UploadPartCopy": ["s3:GetObject", "s3:PutObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
    "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "ListObjectsV2": ["s3:ListBucket"],
}


def required_actions(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    if service == "s3":
        actions = list(_S3_ACTIONS[operation])
        versioned = params.get("VersionId") or "versionId=" in str(params.get("CopySource", ""))
        if versioned or (
            isinstance(params.get("CopySource"), dict) and params["CopySource"].get("VersionId")
        ):
            actions = [a.replace("s3:GetObject", "s3:GetObjectVersion") for a in actions]
        return actions
    prefix = {"sagemaker-runtime": "sagemaker", "dynamodb": "dynamodb", "sns": "sns"}.get(
        service, service
    )
    return [f"{prefix}:{operation}"]


def granted_actions() -> dict[str, list[str]]:
    """Each function's allowed actions, from the template after the SAM transform."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        expanded = transform(with_code_placeholders(load_template()), {}, NoManagedPolicies())
    granted: dict[str, list[str]] = defaultdict(list)
    for logical_id, resource in expanded["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role" or not logical_id.endswith("FunctionRole"):
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow":
                    actions = statement["Action"]
                    granted[logical_id.removesuffix("Role")] += (
                        actions if isinstance(actions, list) else [actions]
                    )
    return granted


class CallRecorder:
    def __init__(self) -> None:
        self.function = ""
        self.calls: dict[str, set[tuple[str, str, str]]] = defaultdict(set)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        for action in required_actions(service, model.name, params):
            self.calls[self.function].add((action, service, model.name))


@pytest.fixture
def recorder(stack: Stack) -> Iterator[CallRecorder]:
    recorder = CallRecorder()
    session = boto3._get_default_session()
    session.events.register("provide-client-params", recorder)
    clients.reset()
    conftest._record_sagemaker(stack)
    yield recorder
    session.events.unregister("provide-client-params", recorder)


def test_every_call_of_a_whole_run_is_granted_to_its_function(
    stack: Stack, recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run driven through every function, as the events would, on an instance endpoint
    # (whose updates also set rollback alarms)
    monkeypatch.setenv("ENDPOINT_KIND", "instance")
    recorder.function = "StartTrainingFunction"
    run_id = start(stack, "abalone", {**abalone_like(30), "hyperparameters.json": '{"eta": 0.3}'})
    recorder.function = "RunBatchTransformFunction"
    training_changed("abalone", run_id, "Completed")
    write_transform_output(stack, "abalone", run_id, PERFECT_OUTPUT)
    recorder.function = "DeployModelFunction"
    transform_changed("abalone", run_id, "Completed")
    # And a second run that waits for the first's endpoint, then follows it
    recorder.function = "StartTrainingFunction"
    second = start(stack, "abalone", abalone_like(30, seed=3))
    recorder.function = "RunBatchTransformFunction"
    training_changed("abalone", second, "Completed")
    write_transform_output(stack, "abalone", second, PERFECT_OUTPUT)
    recorder.function = "DeployModelFunction"
    assert transform_changed("abalone", second, "Completed")["action"] == "waiting"
    recorder.function = "TrackEndpointFunction"
    stack.answers["UpdateEndpoint"] = lambda _: (200, {"EndpointArn": "arn"})
    endpoint_changed("abalone", job("abalone", run_id), "IN_SERVICE")
    assert stack.run("abalone", second)["stage"] == "deploying"
    recorder.function = "PredictFunction"
    stack.answers["InvokeEndpoint"] = _scores
    assert (
        api("POST", "/models/abalone/predictions", json.dumps({"instances": ROWS}))["status"] == 200
    )
    assert api("GET", "/models/abalone")["status"] == 200
    # And the model managed: its second version live, rolled back, idle, deleted
    recorder.function = "TrackEndpointFunction"
    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", second))
    endpoint_changed("abalone", job("abalone", second), "IN_SERVICE")
    recorder.function = "ManageModelsFunction"
    assert manage("GET", "/models/abalone/versions")["status"] == 200
    assert manage("POST", "/models/abalone/rollback")["status"] == 202
    recorder.function = "TrackEndpointFunction"
    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", run_id))
    assert endpoint_changed("abalone", job("abalone", run_id), "IN_SERVICE")["action"] == (
        "rolled_back"
    )
    recorder.function = "RetireIdleEndpointsFunction"
    monkeypatch.setenv("IDLE_ENDPOINT_HOURS", "1")
    (idle,) = retire_idle(Settings.from_env(), at=datetime.now(UTC) + timedelta(hours=2))
    assert idle.action == "deleted"
    recorder.function = "ManageModelsFunction"
    assert manage("DELETE", "/models/abalone")["status"] == 202
    del stack.answers["DescribeEndpoint"]

    recorder.function = "StartTrainingFunction"
    third = start(stack, "abalone", abalone_like(30, seed=5))
    # And a drop in parts, one of them gzip-compressed (decompressed into the run's snapshot)
    files = abalone_like(30, seed=7)
    parts_run = start(
        stack,
        "parts",
        {
            "train/part-0.csv.gz": gzip.compress(files["train.csv"].encode()),
            "validation.csv": files["validation.csv"],
            "test/part-0.csv": files["test.csv"],
            "_SUCCESS": b"",
        },
    )
    assert stack.run("parts", parts_run)["stage"] == "training"
    recorder.function = "ReconcileRunsFunction"
    reconcile(Settings.from_env(), at=datetime.now(UTC) + STALE_AFTER + timedelta(minutes=1))
    assert stack.run("abalone", third)["stage"] == "transforming"
    # Then each function's role allows every action its calls need
    granted = granted_actions()
    assert set(recorder.calls) == {
        "StartTrainingFunction",
        "RunBatchTransformFunction",
        "DeployModelFunction",
        "TrackEndpointFunction",
        "PredictFunction",
        "ReconcileRunsFunction",
        "ManageModelsFunction",
        "RetireIdleEndpointsFunction",
    }
    missing = {
        function: sorted(
            call
            for call in calls
            if not any(fnmatch.fnmatchcase(call[0], pattern) for pattern in granted[function])
        )
        for function, calls in recorder.calls.items()
    }
    assert missing == {function: [] for function in recorder.calls}
