"""Job and server lifecycles: stop, worker crash, other image tags, libsvm, restart, CLI."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import xgboost as xgb

from tests.local_sagemaker.conftest import (
    IMAGE,
    REGION,
    ROLE,
    Abalone,
    Stack,
    run_training,
    training_request,
    wait_until,
)
from xgbpipe.local.sagemaker import LocalSageMaker

# Nothing listens here: servers that need no S3 or EventBridge must still never reach AWS.
NOWHERE = "http://127.0.0.1:9"
LONG_TRAINING = {"objective": "reg:squarederror", "num_round": "100000", "max_depth": "8"}


def _until_training(stack: Stack, name: str) -> None:
    wait_until(
        lambda: stack.sagemaker.describe_training_job(TrainingJobName=name),
        lambda job: job["SecondaryStatus"] == "Training",
    )


def _until_finished(stack: Stack, name: str) -> dict[str, Any]:
    return wait_until(
        lambda: stack.sagemaker.describe_training_job(TrainingJobName=name),
        lambda job: job["TrainingJobStatus"] not in ("InProgress", "Stopping"),
    )


def test_stop_training_job(stack: Stack) -> None:
    stack.sagemaker.create_training_job(**training_request(stack.bucket, "stop-me", LONG_TRAINING))
    _until_training(stack, "stop-me")

    stack.sagemaker.stop_training_job(TrainingJobName="stop-me")

    job = _until_finished(stack, "stop-me")
    assert job["TrainingJobStatus"] == "Stopped"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert "ModelArtifacts" not in job


def test_max_runtime_stops_the_job(stack: Stack) -> None:
    request = training_request(stack.bucket, "too-slow", LONG_TRAINING)
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    stack.sagemaker.create_training_job(**request)

    job = _until_finished(stack, "too-slow")

    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_a_killed_worker_fails_its_job_and_not_the_server(stack: Stack) -> None:
    stack.sagemaker.create_training_job(**training_request(stack.bucket, "crash-me", LONG_TRAINING))
    _until_training(stack, "crash-me")

    # The server runs in this process, so its workers are our children; spares die too.
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]

    job = _until_finished(stack, "crash-me")
    assert job["TrainingJobStatus"] == "Failed"
    assert "worker process exited with code -9" in job["FailureReason"]
    after = run_training(stack, "after-crash", {"objective": "reg:squarederror", "num_round": "2"})
    assert after["TrainingJobStatus"] == "Completed"


def test_another_image_tag_runs_with_a_warning(stack: Stack) -> None:
    request = training_request(stack.bucket, "old-tag", {"num_round": "2"})
    request["AlgorithmSpecification"]["TrainingImage"] = IMAGE.replace("3.0-5", "1.7-1")
    stack.sagemaker.create_training_job(**request)

    job = _until_finished(stack, "old-tag")

    assert job["TrainingJobStatus"] == "Completed"
    assert "Image tag 1.7-1 requested" in job["SecondaryStatusTransitions"][0]["StatusMessage"]


def test_libsvm_training_and_serving(stack: Stack, abalone: Abalone) -> None:
    values = abalone.train.to_numpy(dtype=float)[:300]
    lines = [
        " ".join([f"{row[0]:g}"] + [f"{i}:{v:g}" for i, v in enumerate(row[1:], 1) if v])
        for row in values
    ]
    stack.s3.put_object(
        Bucket=stack.bucket, Key="libsvm/train.libsvm", Body="\n".join(lines).encode()
    )
    request = training_request(
        stack.bucket, "libsvm-job", {"objective": "reg:squarederror", "num_round": "3"}
    )
    request["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "ContentType": "text/libsvm",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{stack.bucket}/libsvm/",
                }
            },
        }
    ]
    stack.sagemaker.create_training_job(**request)
    job = _until_finished(stack, "libsvm-job")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    stack.sagemaker.create_model(
        ModelName="libsvm-model",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
        },
        ExecutionRoleArn=ROLE,
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName="libsvm-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "libsvm-model",
                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1},
            }
        ],
    )
    stack.sagemaker.create_endpoint(EndpointName="libsvm", EndpointConfigName="libsvm-config")
    wait_until(
        lambda: stack.sagemaker.describe_endpoint(EndpointName="libsvm"),
        lambda endpoint: endpoint["EndpointStatus"] == "InService",
    )
    response = stack.runtime.invoke_endpoint(
        EndpointName="libsvm", ContentType="text/libsvm", Body=lines[0].encode()
    )
    predictions = response["Body"].read().decode().splitlines()
    assert len(predictions) == 1
    assert np.isfinite(float(predictions[0]))


def _upload_small_model(stack: Stack, key: str) -> str:
    features = np.random.default_rng(5).normal(size=(50, 3))
    booster = xgb.train({}, xgb.DMatrix(features, label=features[:, 0]), num_boost_round=2)
    model = bytes(booster.save_raw("ubj"))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(model)
        tar.addfile(info, io.BytesIO(model))
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=archive.getvalue())
    return f"s3://{stack.bucket}/{key}"


def test_state_dir_keeps_resources_across_restarts(stack: Stack, tmp_path: Path) -> None:
    s3_url = stack.s3.meta.endpoint_url
    model_url = _upload_small_model(stack, "restart/model.tar.gz")
    first = LocalSageMaker(
        state_dir=tmp_path, max_workers=1, s3_endpoint_url=s3_url, events_endpoint_url=NOWHERE
    )
    first.start()
    try:
        client: Any = boto3.client("sagemaker", endpoint_url=first.url, region_name=REGION)
        client.create_model(
            ModelName="kept",
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_url},
            Tags=[{"Key": "team", "Value": "ml"}],
        )
        client.create_endpoint_config(
            EndpointConfigName="kept",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "kept",
                    "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1},
                }
            ],
        )
        client.create_endpoint(EndpointName="kept", EndpointConfigName="kept")
        wait_until(
            lambda: client.describe_endpoint(EndpointName="kept"),
            lambda endpoint: endpoint["EndpointStatus"] == "InService",
        )
    finally:
        first.stop()

    second = LocalSageMaker(
        state_dir=tmp_path, max_workers=1, s3_endpoint_url=s3_url, events_endpoint_url=NOWHERE
    )
    second.start()
    try:
        client = boto3.client("sagemaker", endpoint_url=second.url, region_name=REGION)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=second.url, region_name=REGION)
        described = client.describe_model(ModelName="kept")
        assert described["PrimaryContainer"]["ModelDataUrl"] == model_url
        assert client.list_tags(ResourceArn=described["ModelArn"])["Tags"] == [
            {"Key": "team", "Value": "ml"}
        ]
        assert client.describe_endpoint(EndpointName="kept")["EndpointStatus"] == "InService"
        answer = wait_until(
            lambda: _try_invoke(runtime, "kept", b"0.1,0.2,0.3"),
            lambda result: result["ok"],
            timeout=30,
        )
        assert answer["body"].count(b"\n") == 1
    finally:
        second.stop()


def _try_invoke(runtime: Any, endpoint: str, body: bytes) -> dict[str, Any]:
    """The restored endpoint serves once its model is back in memory (a few ms after start)."""
    try:
        response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body)
    except runtime.exceptions.ValidationError:
        return {"ok": False}
    return {"ok": True, "body": response["Body"].read()}


def test_stop_leaves_no_worker_process_behind(aws_environment: None) -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    server = LocalSageMaker(max_workers=2, s3_endpoint_url=NOWHERE, events_endpoint_url=NOWHERE)
    server.start()
    wait_until(
        lambda: {"workers": {c.pid for c in multiprocessing.active_children()} - before},
        lambda found: len(found["workers"]) == 2,
    )

    server.stop()

    assert {child.pid for child in multiprocessing.active_children()} - before == set()


def test_command_line_serves_until_terminated(aws_environment: None) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "xgbpipe.local.sagemaker", "--port", "0", "--max-workers", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AWS_ENDPOINT_URL": NOWHERE},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        client = boto3.client("sagemaker", endpoint_url=url, region_name=REGION)
        assert client.list_endpoints()["Endpoints"] == []
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_trains_with_the_container_xgboost_version() -> None:
    assert xgb.__version__ == "3.0.5"
