"""Overhead of the local SageMaker: training and prediction through it vs xgboost in-process.

Training through the server includes what a client waits for: the control-plane call, a worker
process starting, S3 download and upload, and polling DescribeTrainingJob every 50 ms. Predict
latency is one InvokeEndpoint round trip (HTTP, CSV parse, predict, encode) against
`Booster.predict` on an already-built DMatrix in this process.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import xgboost as xgb
from moto.server import ThreadedMotoServer

from benchmarks import Measurement, measure, time_calls
from xgbpipe.local.sagemaker import LocalSageMaker

NAME = "local SageMaker"
ABALONE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "abalone.csv"
REGION = "us-east-1"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.0-5"
NUM_ROUND = 50
TRAINING_RUNS = int(os.environ.get("BENCH_TRAINING_RUNS", "3"))
PREDICT_RUNS = int(os.environ.get("BENCH_PREDICT_RUNS", "200"))
POLL_SECONDS = 0.05


def abalone_csv(path: Path) -> tuple[bytes, np.ndarray]:
    """The built-in format (label first, no header) and the feature rows."""
    raw = pd.read_csv(path)
    sex = pd.get_dummies(raw.pop("sex"), prefix="sex", dtype=float)
    frame = pd.concat([raw.pop("rings").astype(float), raw, sex], axis=1)
    return frame.to_csv(header=False, index=False).encode(), frame.to_numpy(float)[:, 1:]


def _dummy_credentials() -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "benchmark")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def _train_through_server(sagemaker: Any, bucket: str, name: str) -> dict[str, Any]:
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/benchmark",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train.csv"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={"objective": "reg:squarederror", "num_round": str(NUM_ROUND)},
    )
    while True:
        job: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            if job["TrainingJobStatus"] != "Completed":
                raise RuntimeError(f"benchmark training failed: {job.get('FailureReason')}")
            return job
        time.sleep(POLL_SECONDS)


def _deploy(sagemaker: Any, model_url: str) -> str:
    sagemaker.create_model(
        ModelName="bench", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_url}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="bench",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "bench",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    while sagemaker.describe_endpoint(EndpointName="bench")["EndpointStatus"] == "Creating":
        time.sleep(POLL_SECONDS)
    return "bench"


def _booster_from_archive(archive: bytes) -> xgb.Booster:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = xgb.Booster(model_file=bytearray(member.read()))
    booster.set_param("nthread", "1")
    return booster


def run() -> list[Measurement]:
    _dummy_credentials()
    # moto's HTTP server logs every request; the table is what this prints.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    train_csv, features = abalone_csv(ABALONE)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    server = LocalSageMaker(s3_endpoint_url=moto_url, events_endpoint_url=moto_url)
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        sagemaker = boto3.client("sagemaker", endpoint_url=server.url, region_name=REGION)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name=REGION)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="train.csv", Body=train_csv)

        jobs: list[dict[str, Any]] = []
        served = time_calls(
            lambda: jobs.append(_train_through_server(sagemaker, bucket, f"bench-{len(jobs)}")),
            TRAINING_RUNS,
            warmup=1,
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.csv"
            path.write_bytes(train_csv)

            def train_directly() -> None:
                dtrain = xgb.DMatrix(f"{path}?format=csv&label_column=0&delimiter=,")
                xgb.train({"objective": "reg:squarederror"}, dtrain, num_boost_round=NUM_ROUND)

            direct = time_calls(train_directly, TRAINING_RUNS)

        model_url = jobs[0]["ModelArtifacts"]["S3ModelArtifacts"]
        endpoint = _deploy(sagemaker, model_url)
        bucket_name, key = model_url.removeprefix("s3://").split("/", 1)
        booster = _booster_from_archive(s3.get_object(Bucket=bucket_name, Key=key)["Body"].read())
        row = features[:1]
        row_csv = ",".join(str(value) for value in row[0])

        def invoke_once() -> bytes:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="text/csv", Body=row_csv
            )
            body: bytes = response["Body"].read()
            return body

        invoke = time_calls(invoke_once, PREDICT_RUNS, warmup=10)
        in_process = time_calls(lambda: booster.predict(xgb.DMatrix(row)), PREDICT_RUNS, warmup=10)
    finally:
        server.stop()
        moto.stop()

    rows = len(features)
    return [
        measure(
            NAME,
            f"train via CreateTrainingJob ({rows} rows, {NUM_ROUND} rounds)",
            served,
            "until DescribeTrainingJob says Completed",
        ),
        measure(
            NAME,
            f"train via xgboost.train ({rows} rows, {NUM_ROUND} rounds)",
            direct,
            "in-process, CSV read included",
        ),
        measure(NAME, "predict 1 row via InvokeEndpoint", invoke, "boto3 round trip"),
        measure(NAME, "predict 1 row via Booster.predict", in_process, "in-process, DMatrix built"),
    ]
