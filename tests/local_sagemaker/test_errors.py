"""Bad requests get AWS's error codes and a message that says what to fix; the server goes on.

Control-plane requests go through a boto3 client with client-side validation off, so the server's
own checks (from botocore's service model) are what answers, as AWS's frontend would.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import numpy as np
import pytest
import xgboost as xgb
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.local_sagemaker.conftest import (
    IMAGE,
    REGION,
    ROLE,
    Stack,
    training_request,
    wait_until,
)

ENDPOINT = "errors-endpoint"
FEATURES = 10


@dataclass(frozen=True)
class BadRequest:
    """One row of the table: a call, the error code AWS gives, and words the message must hold."""

    case: str
    operation: str
    params: Callable[[str], dict[str, Any]]
    code: str
    says: str
    setup: Callable[[Any, str], None] = field(default=lambda _client, _bucket: None)


def _training(bucket: str, **changes: Any) -> dict[str, Any]:
    request = training_request(bucket, "errors-job", {"num_round": "2"})
    request.update(changes)
    return request


def _with_resources(bucket: str, **resources: Any) -> dict[str, Any]:
    request = _training(bucket, TrainingJobName="errors-quota")
    request["ResourceConfig"] = {**request["ResourceConfig"], **resources}
    return request


def _existing_job(client: Any, bucket: str) -> None:
    client.create_training_job(**_training(bucket, TrainingJobName="errors-duplicate"))


CONTROL_PLANE = [
    BadRequest(
        "missing required member",
        "create_training_job",
        lambda b: {k: v for k, v in _training(b).items() if k != "RoleArn"},
        "ValidationException",
        "Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
    ),
    BadRequest(
        "name breaks the pattern",
        "create_training_job",
        lambda b: _training(b, TrainingJobName="bad_name!"),
        "ValidationException",
        "at 'trainingJobName' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern",
    ),
    BadRequest(
        "name too long",
        "create_training_job",
        lambda b: _training(b, TrainingJobName="x" * 64),
        "ValidationException",
        "Member must have length less than or equal to 63",
    ),
    BadRequest(
        "value outside the enum",
        "create_training_job",
        lambda b: _training(
            b, AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "Stream"}
        ),
        "ValidationException",
        "at 'algorithmSpecification.trainingInputMode' failed to satisfy constraint: Member must "
        "satisfy enum value set",
    ),
    BadRequest(
        "number below its range",
        "create_training_job",
        lambda b: _training(
            b, TrainingJobName="errors-range", StoppingCondition={"MaxRuntimeInSeconds": 0}
        ),
        "ValidationException",
        "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    ),
    BadRequest(
        "more than 100 hyperparameters",
        "create_training_job",
        lambda b: _training(b, HyperParameters={f"hp{i}": "1" for i in range(101)}),
        "ValidationException",
        "at 'hyperParameters' failed to satisfy constraint: Member must have length less than or "
        "equal to 100",
    ),
    BadRequest(
        "empty input prefix",
        "create_training_job",
        lambda b: _training(
            b,
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{b}/nothing/"}
                    },
                }
            ],
        ),
        "ValidationException",
        'No S3 objects found under S3 URL "s3://',
    ),
    BadRequest(
        "an image the local SageMaker cannot run",
        "create_training_job",
        lambda b: _training(
            b, AlgorithmSpecification={"TrainingImage": "my/image:1", "TrainingInputMode": "File"}
        ),
        "ValidationException",
        "runs only the built-in XGBoost image",
    ),
    BadRequest(
        "duplicate training job name",
        "create_training_job",
        lambda b: _training(b, TrainingJobName="errors-duplicate"),
        "ResourceInUse",
        "a training job with this name already exists",
        setup=_existing_job,
    ),
    BadRequest(
        "over the training instance quota",
        "create_training_job",
        lambda b: _with_resources(b, InstanceCount=25),
        "ResourceLimitExceeded",
        "account-level service limit",
    ),
    BadRequest(
        "unknown training job",
        "describe_training_job",
        lambda _b: {"TrainingJobName": "no-such-job"},
        "ValidationException",
        "Requested resource not found.",
    ),
    BadRequest(
        "stop an unknown training job",
        "stop_training_job",
        lambda _b: {"TrainingJobName": "no-such-job"},
        "ResourceNotFound",
        "no-such-job does not exist",
    ),
    BadRequest(
        "unknown endpoint",
        "describe_endpoint",
        lambda _b: {"EndpointName": "no-such-endpoint"},
        "ValidationException",
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/'
        'no-such-endpoint"',
    ),
    BadRequest(
        "endpoint config naming an unknown model",
        "create_endpoint_config",
        lambda _b: {
            "EndpointConfigName": "errors-config",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "no-such-model",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
                }
            ],
        },
        "ValidationException",
        "Could not find model",
    ),
    BadRequest(
        "endpoint with an unknown config",
        "create_endpoint",
        lambda _b: {"EndpointName": "errors-endpoint-2", "EndpointConfigName": "no-such-config"},
        "ValidationException",
        "Could not find endpoint configuration",
    ),
    BadRequest(
        "update an unknown endpoint",
        "update_endpoint",
        lambda _b: {"EndpointName": "no-such-endpoint", "EndpointConfigName": "errors-config"},
        "ValidationException",
        "Could not find endpoint",
    ),
    BadRequest(
        "transform with an unsupported JSONPath filter",
        "create_transform_job",
        lambda b: {
            "TransformJobName": "errors-transform",
            "ModelName": "errors-model",
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{b}/datasets/"}
                }
            },
            "TransformOutput": {"S3OutputPath": f"s3://{b}/out"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "DataProcessing": {"InputFilter": "$.features"},
        },
        "ValidationException",
        "DataProcessing.InputFilter: JSONPath expression '$.features' is not supported",
    ),
]


@pytest.fixture(scope="module")
def raw_sagemaker(stack: Stack) -> Any:
    """A client that sends what it is given, so the server's validation answers."""
    return boto3.client(
        "sagemaker",
        endpoint_url=stack.server.url,
        region_name=REGION,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


@pytest.mark.parametrize("bad", CONTROL_PLANE, ids=[bad.case for bad in CONTROL_PLANE])
def test_control_plane_errors(stack: Stack, raw_sagemaker: Any, bad: BadRequest) -> None:
    bad.setup(raw_sagemaker, stack.bucket)
    with pytest.raises(ClientError) as raised:
        getattr(raw_sagemaker, bad.operation)(**bad.params(stack.bucket))
    error = raised.value.response["Error"]
    assert error["Code"] == bad.code
    assert bad.says in error["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---------------------------------------------------------------------- failed training jobs


JOB_FAILURES = {
    "errors-hp-range": (
        {"num_round": "0"},
        "Hyperparameter num_round: 0 is not in [1, +inf)",
    ),
    "errors-hp-unknown": (
        {"num_round": "2", "learning_speed": "9"},
        "Extraneous hyperparameter found: learning_speed",
    ),
    "errors-hp-missing": ({"max_depth": "3"}, "Missing required hyperparameter: num_round"),
    "errors-hp-type": ({"num_round": "ten"}, "Hyperparameter num_round: could not parse value"),
    "errors-hp-num-class": (
        {"num_round": "2", "objective": "multi:softmax"},
        "Require input for parameter 'num_class' for multi-classification",
    ),
    "errors-malformed-csv": ({"num_round": "2"}, "Could not determine delimiter on line"),
    "errors-not-numeric": ({"num_round": "2"}, "XGB train call failed with exception"),
}
CHANNEL_FILES = {"errors-malformed-csv": b"\nhello,1\n", "errors-not-numeric": b"hello\n"}


@pytest.fixture(scope="module")
def failed_jobs(stack: Stack) -> dict[str, dict[str, Any]]:
    """Start every failing job at once, then wait for all of them."""
    for name, (hyperparameters, _) in JOB_FAILURES.items():
        request = training_request(stack.bucket, name, hyperparameters)
        if name in CHANNEL_FILES:
            stack.s3.put_object(
                Bucket=stack.bucket, Key=f"{name}/train.csv", Body=CHANNEL_FILES[name]
            )
            request["InputDataConfig"] = request["InputDataConfig"][:1]
            source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
            source["S3Uri"] = f"s3://{stack.bucket}/{name}/train.csv"
        stack.sagemaker.create_training_job(**request)

    def finished(name: str) -> dict[str, Any]:
        return wait_until(
            lambda: stack.sagemaker.describe_training_job(TrainingJobName=name),
            lambda job: job["TrainingJobStatus"] not in ("InProgress", "Stopping"),
        )

    return {name: finished(name) for name in JOB_FAILURES}


@pytest.mark.parametrize("name", list(JOB_FAILURES))
def test_training_job_fails_like_the_container(
    failed_jobs: dict[str, dict[str, Any]], name: str
) -> None:
    job = failed_jobs[name]
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: framework error: ")
    assert JOB_FAILURES[name][1] in job["FailureReason"]
    assert "ModelArtifacts" not in job


# ---------------------------------------------------------------------- runtime errors


@pytest.fixture(scope="module")
def endpoint(stack: Stack) -> str:
    """An endpoint serving a small model trained here (10 features)."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, FEATURES))
    booster = xgb.train(
        {"objective": "reg:squarederror"},
        xgb.DMatrix(features, label=features.sum(axis=1)),
        num_boost_round=3,
    )
    model = bytes(booster.save_raw("ubj"))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(model)
        tar.addfile(info, io.BytesIO(model))
    stack.s3.put_object(Bucket=stack.bucket, Key="errors/model.tar.gz", Body=archive.getvalue())
    stack.sagemaker.create_model(
        ModelName="errors-model",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{stack.bucket}/errors/model.tar.gz",
        },
        ExecutionRoleArn=ROLE,
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName="errors-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "errors-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    stack.sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="errors-config")
    wait_until(
        lambda: stack.sagemaker.describe_endpoint(EndpointName=ENDPOINT),
        lambda described: described["EndpointStatus"] == "InService",
    )
    return ENDPOINT


@dataclass(frozen=True)
class BadInvocation:
    case: str
    body: bytes
    content_type: str
    code: str
    status: int
    says: str
    accept: str = "text/csv"
    original_status: int | None = None
    endpoint: str = ENDPOINT


ROW = ",".join(["0.5"] * FEATURES).encode()
RUNTIME = [
    BadInvocation(
        "more columns than the model has",
        ",".join(["0.5"] * (FEATURES + 2)).encode(),
        "text/csv",
        "ModelError",
        424,
        "Unable to evaluate payload provided",
        original_status=400,
    ),
    BadInvocation(
        "JSON input, which the container does not read",
        b'{"instances": [[1, 2]]}',
        "application/json",
        "ModelError",
        424,
        "application/json is not an accepted ContentType",
        original_status=415,
    ),
    BadInvocation(
        "ragged CSV rows",
        ROW + b"\n0.5,0.5",
        "text/csv",
        "ModelError",
        424,
        "Loading csv data failed with Exception, please ensure data is in csv format",
        original_status=415,
    ),
    BadInvocation(
        "an Accept type the container does not write",
        ROW,
        "text/csv",
        "ModelError",
        424,
        "Accept type text/html is not supported",
        accept="text/html",
        original_status=406,
    ),
    BadInvocation(
        "payload over 6 MB",
        ROW * (6_291_457 // len(ROW) + 1),
        "text/csv",
        "ValidationError",
        400,
        "Member must have length less than or equal to 6291456",
    ),
    BadInvocation(
        "unknown endpoint",
        ROW,
        "text/csv",
        "ValidationError",
        400,
        "Endpoint no-such-endpoint of account 123456789012 not found.",
        endpoint="no-such-endpoint",
    ),
]


@pytest.mark.parametrize("bad", RUNTIME, ids=[bad.case for bad in RUNTIME])
def test_runtime_errors(stack: Stack, endpoint: str, bad: BadInvocation) -> None:
    with pytest.raises(ClientError) as raised:
        stack.runtime.invoke_endpoint(
            EndpointName=bad.endpoint,
            Body=bad.body,
            ContentType=bad.content_type,
            Accept=bad.accept,
        )
    response: dict[str, Any] = dict(raised.value.response)
    assert response["Error"]["Code"] == bad.code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == bad.status
    assert bad.says in response["Error"]["Message"]
    if bad.original_status is not None:
        assert response["OriginalStatusCode"] == bad.original_status
        assert bad.says in response["OriginalMessage"]
        assert response["Error"]["Message"].startswith(
            f"Received client error ({bad.original_status}) from primary with message"
        )


def test_endpoint_fails_when_its_model_cannot_load(stack: Stack) -> None:
    stack.s3.put_object(Bucket=stack.bucket, Key="errors/broken.tar.gz", Body=b"not a tarball")
    stack.sagemaker.create_model(
        ModelName="broken-model",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{stack.bucket}/errors/broken.tar.gz",
        },
        ExecutionRoleArn=ROLE,
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName="broken-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "broken-model",
                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1},
            }
        ],
    )
    stack.sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="broken-config")
    described = wait_until(
        lambda: stack.sagemaker.describe_endpoint(EndpointName="broken"),
        lambda endpoint: endpoint["EndpointStatus"] != "Creating",
    )
    assert described["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in described["FailureReason"]


def test_server_keeps_serving_after_every_bad_request(stack: Stack, endpoint: str) -> None:
    response = stack.runtime.invoke_endpoint(
        EndpointName=endpoint, Body=ROW, ContentType="text/csv"
    )
    assert response["Body"].read().decode().count("\n") == 1
    assert stack.sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
