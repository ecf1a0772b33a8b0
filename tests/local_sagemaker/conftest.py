"""One moto server (S3, EventBridge, SQS) and one local SageMaker per test module."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
import requests
from moto.server import ThreadedMotoServer

from xgbpipe.local.sagemaker import LocalSageMaker

ABALONE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "abalone.csv"
REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.0-5"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"


@dataclass(frozen=True)
class Abalone:
    """The abalone set in the built-in format: label (rings) first, no header."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    @staticmethod
    def csv(frame: pd.DataFrame) -> bytes:
        return frame.to_csv(header=False, index=False).encode()


@dataclass(frozen=True)
class Stack:
    sagemaker: Any
    runtime: Any
    s3: Any
    events: Any
    sqs: Any
    server: LocalSageMaker
    bucket: str
    events_queue_url: str


def _free_moto() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Dummy credentials and region so no real AWS account is ever reached."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_SESSION_TOKEN", "testing")
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    patch.delenv("AWS_PROFILE", raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def abalone() -> Abalone:
    raw = pd.read_csv(ABALONE)
    sex = pd.get_dummies(raw.pop("sex"), prefix="sex", dtype=float)
    rings = raw.pop("rings").astype(float)
    frame = pd.concat([rings, raw, sex], axis=1)
    order = np.random.default_rng(7).permutation(len(frame))
    shuffled = frame.iloc[order].reset_index(drop=True)
    cut_train, cut_validation = int(0.7 * len(frame)), int(0.85 * len(frame))
    return Abalone(
        train=shuffled.iloc[:cut_train],
        validation=shuffled.iloc[cut_train:cut_validation],
        test=shuffled.iloc[cut_validation:],
    )


@pytest.fixture(scope="module")
def stack(aws_environment: None, abalone: Abalone) -> Iterator[Stack]:
    moto, moto_url = _free_moto()
    # moto keeps its state per process, not per server: start each module from a clean slate.
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    server = LocalSageMaker(s3_endpoint_url=moto_url, events_endpoint_url=moto_url, max_workers=2)
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        events = boto3.client("events", endpoint_url=moto_url, region_name=REGION)
        sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION)
        bucket = f"data-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        for name, frame in (
            ("train", abalone.train),
            ("validation", abalone.validation),
            ("test", abalone.test),
        ):
            s3.put_object(
                Bucket=bucket, Key=f"datasets/abalone/{name}.csv", Body=Abalone.csv(frame)
            )
        queue_url = sqs.create_queue(QueueName="sagemaker-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="all-sagemaker", EventPattern=json.dumps({"source": ["aws.sagemaker"]})
        )
        events.put_targets(Rule="all-sagemaker", Targets=[{"Id": "queue", "Arn": queue_arn}])
        yield Stack(
            sagemaker=boto3.client("sagemaker", endpoint_url=server.url, region_name=REGION),
            runtime=boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name=REGION),
            s3=s3,
            events=events,
            sqs=sqs,
            server=server,
            bucket=bucket,
            events_queue_url=queue_url,
        )
    finally:
        server.stop()
        moto.stop()


def wait_until(
    probe: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
) -> dict[str, Any]:
    """Poll a Describe call until `done` holds (the boto3 waiters poll every 30-120 s)."""
    deadline = time.monotonic() + timeout
    while True:
        described = probe()
        if done(described):
            return described
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last state: {described}")
        time.sleep(0.2)


def training_request(
    bucket: str, name: str, hyperparameters: dict[str, str], **extra: Any
) -> dict[str, Any]:
    channels = [
        {
            "ChannelName": channel,
            "ContentType": "text/csv",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/datasets/abalone/{channel}.csv",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        for channel in ("train", "validation")
    ]
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": hyperparameters,
        **extra,
    }


def run_training(stack: Stack, name: str, hyperparameters: dict[str, str]) -> dict[str, Any]:
    stack.sagemaker.create_training_job(**training_request(stack.bucket, name, hyperparameters))
    return wait_until(
        lambda: stack.sagemaker.describe_training_job(TrainingJobName=name),
        lambda job: job["TrainingJobStatus"] not in ("InProgress", "Stopping"),
    )
