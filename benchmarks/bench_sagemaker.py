"""Overhead of the local SageMaker: training and prediction through it vs xgboost in-process.

Training through the server includes what a client waits for: the control-plane call, a worker
process starting, S3 download and upload, and polling DescribeTrainingJob every 50 ms. Predict
latency is one InvokeEndpoint round trip (HTTP, CSV parse, predict, encode) against
`Booster.inplace_predict` in this process, at concurrency 1, 8 and 32.
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
from botocore.config import Config
from moto.server import ThreadedMotoServer

from benchmarks import Measurement, concurrently, measure, time_calls
from xgbpipe.local.sagemaker import LocalSageMaker

NAME = "local SageMaker"
REGION = "us-east-1"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.0-5"
NUM_ROUND = 30
FEATURES = 10
HYPERPARAMETERS = {"objective": "reg:squarederror", "max_depth": "6", "eta": "0.3"}
TRAINING_ROWS = [
    int(n) for n in os.environ.get("BENCH_TRAINING_ROWS", "10000,100000,1000000").split(",")
]
TRAINING_RUNS = int(os.environ.get("BENCH_TRAINING_RUNS", "3"))
PREDICT_REQUESTS = int(os.environ.get("BENCH_PREDICT_REQUESTS", "400"))
CONCURRENCY = (1, 8, 32)
POLL_SECONDS = 0.05


def _dummy_credentials() -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "benchmark")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def _train_through_server(sagemaker: Any, bucket: str, key: str, name: str) -> dict[str, Any]:
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/benchmark",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{key}"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={**HYPERPARAMETERS, "num_round": str(NUM_ROUND)},
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


def synthetic_regression(rows: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """A regression set in the built-in format (label first, no header) and its features."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    label = features @ rng.normal(size=FEATURES) + np.sin(features[:, 0]) * 3
    frame = pd.DataFrame(np.column_stack([label, features]))
    return frame.to_csv(header=False, index=False, float_format="%.5g").encode(), features


def training(sagemaker: Any, s3: Any, bucket: str, work_dir: Path) -> tuple[list[Measurement], str]:
    """Each size trained through CreateTrainingJob and with xgboost.train; the smallest's model."""
    measurements: list[Measurement] = []
    models = []
    for rows in TRAINING_ROWS:
        measured, model = train_one_size(sagemaker, s3, bucket, work_dir, rows)
        measurements += measured
        models.append(model)
    return measurements, models[0]


def train_one_size(
    sagemaker: Any, s3: Any, bucket: str, work_dir: Path, rows: int
) -> tuple[list[Measurement], str]:
    train_csv, _ = synthetic_regression(rows)
    key = f"train-{rows}.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=train_csv)
    path = work_dir / key
    path.write_bytes(train_csv)
    jobs: list[dict[str, Any]] = []

    def through_server() -> None:
        jobs.append(_train_through_server(sagemaker, bucket, key, f"bench-{rows}-{len(jobs)}"))

    def directly() -> None:
        dtrain = xgb.DMatrix(f"{path}?format=csv&label_column=0&delimiter=,")
        xgb.train(HYPERPARAMETERS, dtrain, num_boost_round=NUM_ROUND)

    served = time_calls(through_server, TRAINING_RUNS)
    direct = time_calls(directly, TRAINING_RUNS)
    path.unlink()
    baseline = measure(
        NAME, f"train {rows:,} rows via xgboost.train", direct, "in-process, CSV read included"
    )
    served_measurement = measure(
        NAME,
        f"train {rows:,} rows via CreateTrainingJob",
        served,
        "until DescribeTrainingJob says Completed",
        baseline=baseline,
    )
    return [baseline, served_measurement], str(jobs[0]["ModelArtifacts"]["S3ModelArtifacts"])


def prediction(runtime: Any, endpoint: str, booster: xgb.Booster) -> list[Measurement]:
    """InvokeEndpoint against Booster.inplace_predict, for 1 and 1,000 rows at each concurrency."""
    _, features = synthetic_regression(1000, seed=1)
    measurements: list[Measurement] = []
    for rows in (1, 1000):
        for workers in CONCURRENCY:
            measurements += predict_one_case(runtime, endpoint, booster, features[:rows], workers)
    return measurements


def predict_one_case(
    runtime: Any, endpoint: str, booster: xgb.Booster, batch: np.ndarray, workers: int
) -> list[Measurement]:
    rows = len(batch)
    body = "\n".join(",".join(f"{v:.5g}" for v in row) for row in batch)

    def invoke() -> None:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body)[
            "Body"
        ].read()

    total = PREDICT_REQUESTS if rows == 1 else PREDICT_REQUESTS // 4
    direct, direct_rate = concurrently(lambda: booster.inplace_predict(batch), workers, total)
    served, served_rate = concurrently(invoke, workers, total)
    baseline = measure(
        NAME,
        f"predict {rows} row(s) in-process, concurrency {workers}",
        direct,
        "Booster.inplace_predict",
        throughput=direct_rate * rows,
        throughput_unit="rows/s",
        with_p99=True,
    )
    return [
        baseline,
        measure(
            NAME,
            f"predict {rows} row(s) via InvokeEndpoint, concurrency {workers}",
            served,
            "boto3 round trip, CSV",
            baseline=baseline,
            throughput=served_rate * rows,
            throughput_unit="rows/s",
            with_p99=True,
        ),
    ]


def run() -> list[Measurement]:
    _dummy_credentials()
    # moto's HTTP server logs every request; the table is what this prints.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    server = LocalSageMaker(s3_endpoint_url=moto_url, events_endpoint_url=moto_url)
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        sagemaker = boto3.client("sagemaker", endpoint_url=server.url, region_name=REGION)
        # One connection per concurrent caller, as a client pool would have.
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=server.url,
            region_name=REGION,
            config=Config(max_pool_connections=max(CONCURRENCY)),
        )
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory() as tmp:
            measurements, model_url = training(sagemaker, s3, bucket, Path(tmp))
        endpoint = _deploy(sagemaker, model_url)
        bucket_name, key = model_url.removeprefix("s3://").split("/", 1)
        booster = _booster_from_archive(s3.get_object(Bucket=bucket_name, Key=key)["Body"].read())
        measurements += prediction(runtime, endpoint, booster)
    finally:
        server.stop()
        moto.stop()
    return measurements
