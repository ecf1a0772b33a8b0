"""Integration fixtures: the stack's resources in moto, built from template.yaml's own definitions.

moto's SageMaker is a mock (jobs complete at once, no UpdateEndpoint, canned invocations), so the
tests record every SageMaker request the functions make and answer the calls moto lacks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pipeline_common import clients

from tests.helpers import csv_text, load_event, resource

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = f"xgbpipe-local-data-{ACCOUNT}-{REGION}"
TABLE = "xgbpipe-local-RunsTable"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/xgbpipe-local-SageMakerExecutionRole"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.0-5"

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "xgbpipe",
    "POWERTOOLS_METRICS_NAMESPACE": "XGBoostPipeline",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "DATA_BUCKET": BUCKET,
    "RUNS_TABLE": TABLE,
    "JOB_PREFIX": "xgbp",
    "SAGEMAKER_ROLE_ARN": ROLE_ARN,
    "XGBOOST_VERSION": "3.0-5",
    "XGBOOST_IMAGE_URI": IMAGE,
    "TRAINING_INSTANCE_TYPE": "ml.m5.xlarge",
    "TRANSFORM_INSTANCE_TYPE": "ml.m5.xlarge",
    "TRAINING_INSTANCE_COUNT": "1",
    "TRANSFORM_INSTANCE_COUNT": "1",
    "ENDPOINT_KIND": "serverless",
    "SERVERLESS_MEMORY_MB": "2048",
    "SERVERLESS_MAX_CONCURRENCY": "5",
    "ENDPOINT_INSTANCE_TYPE": "ml.m5.large",
    "ENDPOINT_INSTANCE_COUNT": "1",
    "GATE_THRESHOLD": "",
    "DEPLOYMENT_TRAFFIC": "ALL_AT_ONCE",
    "CANARY_PERCENT": "10",
    "BAKE_SECONDS": "300",
    "IDLE_ENDPOINT_HOURS": "0",
}

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass
class Stack:
    """The moto-backed stack one test runs against."""

    s3: Any
    table: Any
    sqs: Any
    queue_url: str
    sagemaker_requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # (operation, name) of every Create* SageMaker accepted.
    created: set[tuple[str, str]] = field(default_factory=set)
    answers: dict[str, Answer] = field(default_factory=dict)

    def drop(self, model: str, files: Mapping[str, str | bytes]) -> list[str]:
        keys = []
        for name, body in files.items():
            key = f"datasets/{model}/{name}"
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            keys.append(key)
        return keys

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.sagemaker_requests if name == operation]

    def notifications(self) -> list[dict[str, Any]]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(json.loads(m["Body"])["Message"]) for m in received.get("Messages", [])]

    def run(self, model: str, run_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.table.get_item(Key={"model": model, "run_id": run_id})["Item"]
        return item

    def runs(self, model: str) -> list[dict[str, Any]]:
        items = self.table.query(
            KeyConditionExpression="model = :m", ExpressionAttributeValues={":m": model}
        )["Items"]
        return [item for item in items if item["run_id"] != "_model"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clients.reset()
        s3 = boto3.client("s3", region_name=REGION)
        bucket = resource("DataBucket")["Properties"]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(
            Bucket=BUCKET, VersioningConfiguration=bucket["VersioningConfiguration"]
        )
        table_properties = resource("RunsTable")["Properties"]
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName=TABLE,
            KeySchema=table_properties["KeySchema"],
            AttributeDefinitions=table_properties["AttributeDefinitions"],
            BillingMode=table_properties["BillingMode"],
        )
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name="xgbpipe-local-NotificationTopic")["TopicArn"]
        monkeypatch.setenv("TOPIC_ARN", topic_arn)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        created = Stack(s3=s3, table=table, sqs=sqs, queue_url=queue_url)
        _record_sagemaker(created)
        yield created
        clients.reset()


def _record_sagemaker(stack: Stack) -> None:
    """Record each SageMaker request the functions make; answer the ones a test scripted."""

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        stack.sagemaker_requests.append((model.name, copy.deepcopy(params)))

    def answer(model: Any, **_: Any) -> Any:
        scripted = stack.answers.get(model.name) or _unique_names(stack, model.name)
        if scripted is None:
            return None
        status, body = scripted(stack.requests(model.name)[-1])
        return SimpleNamespace(status_code=status, headers={}), body

    def remember_created(model: Any, http_response: Any, **_: Any) -> None:
        if model.name in _NAME_TAKEN and http_response.status_code == 200:
            field_name = _NAME_TAKEN[model.name][0]
            stack.created.add((model.name, stack.requests(model.name)[-1][field_name]))

    for service in ("sagemaker", "sagemaker-runtime"):
        client = clients.client(service)
        client.meta.events.register(f"provide-client-params.{service}", record)
        client.meta.events.register(f"before-call.{service}", answer)
        client.meta.events.register(f"after-call.{service}", remember_created)


# What SageMaker answers a Create* whose name is taken; moto accepts the same name again.
_NAME_TAKEN = {
    "CreateTrainingJob": ("TrainingJobName", "ResourceInUse", "Training job names must be unique"),
    "CreateTransformJob": ("TransformJobName", "ResourceInUse", "Job names must be unique"),
    "CreateModel": ("ModelName", "ValidationException", "Cannot create already existing model"),
    "CreateEndpointConfig": (
        "EndpointConfigName",
        "ValidationException",
        "Cannot create already existing endpoint configuration",
    ),
    "CreateEndpoint": ("EndpointName", "ValidationException", "Cannot create already existing"),
}


def _unique_names(stack: Stack, operation: str) -> Any:
    """An answer refusing a name an earlier request of the operation took, as AWS does."""
    if operation not in _NAME_TAKEN:
        return None
    field_name, code, message = _NAME_TAKEN[operation]
    latest = stack.requests(operation)[-1]
    if (operation, latest[field_name]) not in stack.created:
        return None
    error = {"Error": {"Code": code, "Message": f"{message}: {latest[field_name]}"}}
    return lambda _: (400, error)


@pytest.fixture
def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="test-function",
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function",
        aws_request_id="00000000-0000-0000-0000-000000000000",
        get_remaining_time_in_millis=lambda: 60_000,
    )


def s3_event(keys: list[str], bucket: str = BUCKET) -> dict[str, Any]:
    """The sample S3 event, one record per key, keys URL-encoded as S3 sends them."""
    from urllib.parse import quote_plus

    sample = load_event("start_training.json")
    records = []
    for key in keys:
        record = copy.deepcopy(sample["Records"][0])
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"]["key"] = quote_plus(key, safe="/")
        records.append(record)
    return {"Records": records}


def eventbridge_event(sample: str, detail: dict[str, Any]) -> dict[str, Any]:
    event = load_event(sample)
    event["detail"] = {**event["detail"], **detail}
    return event


def abalone_like(rows: int, seed: int = 7) -> dict[str, str]:
    """A small regression drop: label first, eight numeric features, no header."""
    import random

    generator = random.Random(seed)

    def make(count: int) -> str:
        data = []
        for _ in range(count):
            features = [round(generator.random(), 4) for _ in range(8)]
            data.append([round(3 + 10 * features[1] + generator.random(), 3), *features])
        return csv_text(data)

    return {"train.csv": make(rows), "validation.csv": make(rows // 3), "test.csv": make(rows // 3)}
